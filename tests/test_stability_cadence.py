"""Cadence and `nbtk status`: open and past-due experiments, blocked promotions."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from _stability import set_config
from conftest import nbtk_cli

import nbtoolkit as nbtk
from nbtoolkit.errors import ConfigError
from nbtoolkit.policy import load_policy
from nbtoolkit.stability.cadence import status


def _run(name, *, until, roc_auc):
    with nbtk.start_run(name, success="roc_auc >= 0.9", until=until, owner="ana") as run:
        nbtk.log(roc_auc=roc_auc)
    return run


def test_status_open_past_due_and_limit(project, store):
    set_config(project, "\n[tool.nbtoolkit.policy]\nmax_open_experiments = 1\nmin_days_between_promotions = 3\n")
    past = (dt.date.today() - dt.timedelta(days=5)).isoformat()
    future = (dt.date.today() + dt.timedelta(days=20)).isoformat()
    _run("done-exp", until=past, roc_auc=0.95)           # supported, until passed: closed
    _run("late-exp", until=past, roc_auc=0.95)
    late = _run("late-exp", until=past, roc_auc=0.5)     # latest run rejected... still conclusive
    assert late.verdict.status == "rejected"
    with nbtk.start_run("stalled-exp", until=past):      # no criteria -> no conclusive verdict
        nbtk.log(roc_auc=0.9)
    _run("running-exp", until=future, roc_auc=0.95)      # supported but until ahead: still open
    with nbtk.start_run("shadowish", until=past):
        pass
    store.create_run(experiment="shadow", kind="shadow")  # not an experiment: never counted

    report = status(store=store)
    open_names = [e.experiment for e in report.open]
    assert open_names == ["running-exp", "shadowish", "stalled-exp"]
    assert [e.experiment for e in report.past_due] == ["shadowish", "stalled-exp"]
    assert report.over_limit and report.policy.min_days_between_promotions == 3
    out = nbtk_cli("status", cwd=project)
    assert out.returncode == 0
    assert "Open experiments: 3 (limit 1, OVER LIMIT)" in out.stdout and "stalled-exp" in out.stdout
    assert "PAST DUE" in out.stdout and "Past due: 2" in out.stdout
    data = json.loads(nbtk_cli("status", "--json", cwd=project).stdout)
    assert data["past_due"] == ["shadowish", "stalled-exp"] and data["over_limit"] is True


def test_policy_validation(project):
    set_config(project, "\n[tool.nbtoolkit.policy]\nmin_days_between_promotions = -1\n")
    with pytest.raises(ConfigError, match="min_days_between_promotions"):
        load_policy()
    assert nbtk_cli("status", cwd=project).returncode == 2
