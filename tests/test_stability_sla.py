"""SLAs: configuration forms, breaches by name with observed vs allowed, export hook."""

from __future__ import annotations

import math

import pytest
from _stability import make_run, set_config

from nbtoolkit.config import load_settings
from nbtoolkit.errors import ConfigError
from nbtoolkit.policy import Sla, SlaReport, check_export_sla, load_sla


def test_dotted_and_flat_keys_and_check():
    sla = Sla.from_mapping({"min": {"roc_auc": 0.85}, "max.latency_p95_ms": 50, "max.error_rate": 0.01})
    assert sla.to_dict() == {"min.roc_auc": 0.85, "max.latency_p95_ms": 50.0, "max.error_rate": 0.01}
    report = sla.check({"roc_auc": 0.81, "latency_p95_ms": 72.5, "error_rate": 0.0})
    assert not report.ok
    assert [(b.metric, b.observed, b.allowed) for b in report.breaches] == [("roc_auc", 0.81, 0.85), ("latency_p95_ms", 72.5, 50.0)]
    assert report.problems() == ["SLA breach: roc_auc = 0.81 < min 0.85", "SLA breach: latency_p95_ms = 72.5 > max 50"]
    assert sla.check({"roc_auc": 0.85, "latency_p95_ms": 50, "error_rate": 0.01}).ok  # bounds are inclusive
    assert not sla.check({"roc_auc": math.nan, "latency_p95_ms": 1, "error_rate": 0}).ok  # NaN never meets a bound
    back = SlaReport.from_dict(report.to_dict())
    assert back.breaches == report.breaches and back.observed == report.observed


def test_missing_metrics_are_listed_and_fail_only_when_strict():
    sla = Sla.from_mapping({"min.roc_auc": 0.9, "max.error_rate": 0.1})
    loose = sla.check({"roc_auc": 0.95})
    assert loose.ok and loose.missing == ("error_rate",)
    strict = sla.check({"roc_auc": 0.95}, strict=True)
    assert not strict.ok and strict.problems() == ["SLA metric 'error_rate' was not measured"]
    assert not Sla.from_mapping({"strict": True, "max.error_rate": 0.1}).check({}).ok


@pytest.mark.parametrize(
    ("table", "message"),
    [({"roc_auc": 0.9}, "min.METRIC"), ({"min.roc_auc": "high"}, "must be a number"), ({"avg.x": 1}, "not understood")],
)
def test_bad_tables_are_config_errors(table, message):
    with pytest.raises(ConfigError, match=message):
        Sla.from_mapping(table)


def test_project_sla_and_export_hook(project, store):
    set_config(project, "\n[tool.nbtoolkit.sla]\nmin.roc_auc = 0.95\nmax.fit_seconds = 30\n")
    settings = load_settings()
    assert load_sla(settings).to_dict() == {"min.roc_auc": 0.95, "max.fit_seconds": 30.0}
    rec = store.get_run(make_run("sla-exp", roc_auc=0.93, fit_seconds=3.0))
    report = check_export_sla(rec, settings)
    assert not report.ok and [b.metric for b in report.breaches] == ["roc_auc"]
    from bs4 import BeautifulSoup

    rows = [[td.get_text() for td in tr.find_all("td")] for tr in BeautifulSoup(report._repr_html_(), "html.parser").find_all("tr")[1:]]
    assert rows == [["roc_auc", "0.93", "≥ 0.95", "breach"], ["fit_seconds", "3", "≤ 30", "ok"]]
