"""Canary simulation on the demo models: deterministic routing, halting at the right step, rollback."""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pytest
from _stability import make_run, register, release_gbm_over_logreg, set_config
from conftest import nbtk_cli

import nbtoolkit as nbtk
from nbtoolkit import registry
from nbtoolkit.export.release import release_plan

STEPS = (1, 5, 25, 50, 100)


def routed_by_hand(keys, pct, salt="nbtoolkit"):
    """The documented routing rule, written independently of the implementation."""
    return np.array([int(hashlib.sha256(f"{salt}:{k}".encode()).hexdigest()[:8], 16) % 10000 < pct * 100 for k in keys])


class SlowOnLarge:
    """The GBM, but it takes 200 ms per row of the 'large' slice (mean radius > 15).

    Far above the 60 ms SLA so that scheduling stalls of a loaded CI machine (tens of ms on a
    fast row) cannot move the step where the canary halts.
    """

    def __init__(self, model, delay=0.200):
        self.model, self.delay = model, delay
        self.classes_, self.feature_names_in_ = model.classes_, model.feature_names_in_

    def predict_proba(self, X):
        slow = int((X["mean radius"] > 15).sum())
        if slow:
            time.sleep(self.delay * slow)
        return self.model.predict_proba(X)


class WrongOnLarge:
    """The GBM with its answer flipped on the 'large' slice."""

    def __init__(self, model):
        self.model = model
        self.classes_, self.feature_names_in_ = model.classes_, model.feature_names_in_

    def predict_proba(self, X):
        p = self.model.predict_proba(X)
        large = (X["mean radius"] > 15).to_numpy()
        p[large] = p[large][:, ::-1]
        return p


def expected_halt(frame, challenger_value, breached):
    """Index of the first step whose challenger share breaches, by hand (None: completes)."""
    segments = np.array_split(np.arange(len(frame)), len(STEPS))
    for i, (pct, seg) in enumerate(zip(STEPS, segments, strict=True)):
        rows = seg[routed_by_hand(frame["uid"].iloc[seg], pct)]
        if len(rows) and breached(challenger_value(rows)):
            return i
    return None


@pytest.fixture
def released(project, store, tmp_path):
    """cancer 1.0.0 (logistic) then 1.0.1 (GBM) promoted to production: 1.0.1 is being released."""
    return release_gbm_over_logreg(store, tmp_path / "b")


def test_slow_slice_halts_at_the_right_step_and_rolls_back(released, store):
    m = released
    frame = m["frame"]
    large = (frame["mean radius"] > 15).to_numpy()

    def p95(rows):
        return float(np.percentile(np.where(large[rows], 200.0, 0.5), 95))

    segments = np.array_split(np.arange(len(frame)), len(STEPS))
    for pct, seg in zip(STEPS, segments, strict=True):  # the scenario has no borderline step
        rows = seg[routed_by_hand(frame["uid"].iloc[seg], pct)]
        assert not len(rows) or p95(rows) <= 1 or p95(rows) >= 90
    want = expected_halt(frame, p95, lambda v: v > 60)
    assert want is not None and want > 0

    result = nbtk.canary("cancer@1.0.0", SlowOnLarge(m["gb"]), frame, key="uid", y="label", steps=STEPS,
                         sla={"max.latency_p95_ms": 60}, model="cancer", version="1.0.1", store=store)
    assert result.halted and result.halted_at == STEPS[want]
    statuses = [s.status for s in result.steps]
    assert statuses[want] == "breach" and all(s in ("pass", "no traffic") for s in statuses[:want])
    assert all(s == "not run" for s in statuses[want + 1 :])
    assert result.steps[want].sla.breaches[0].metric == "latency_p95_ms"
    # no row after the halted step went to the challenger
    later = np.concatenate(segments[want + 1 :]) if want + 1 < len(STEPS) else np.array([], dtype=int)
    assert not result.routed[later].any()
    # the rollback restored the previous production version, recorded with the breach
    assert result.rollback["to_version"] == "1.0.0"
    assert registry.current("cancer", "production", store=store) == "1.0.0"
    last = registry.history("cancer", store=store)[-1]
    assert (last.action, last.by, last.from_version) == ("rollback", "canary", "1.0.1")
    assert f"halted at {STEPS[want]:g}%" in last.reason and "latency_p95_ms" in last.reason

    rec = store.get_run(result.run_id)
    assert rec.kind == "canary" and rec.extra["canary"]["halted_at"] == STEPS[want]
    png = rec.artifact("canary_timeline.png")
    assert png.kind == "figure" and store.artifacts.read_bytes(png.digest).startswith(b"\x89PNG")
    assert "rolled back cancer@production to 1.0.0" in result._repr_html_()
    from bs4 import BeautifulSoup

    from nbtoolkit.report import render_run_report

    page = BeautifulSoup(render_run_report(result.run_id, store=store), "html.parser")
    section = page.select_one(".section-canary")
    assert section is not None and "rolled back cancer@production to 1.0.0" in section.get_text(" ")
    assert section.find("img")["src"].startswith("data:image/png;base64,")


def test_wrong_slice_halts_on_accuracy(released, store):
    m = released
    frame = m["frame"]
    X = frame[m["gb"].feature_names_in_]
    wrong = WrongOnLarge(m["gb"])
    pred = wrong.predict_proba(X).argmax(axis=1)
    y = frame["label"].to_numpy()
    want = expected_halt(frame, lambda rows: float(np.mean(pred[rows] == y[rows])), lambda acc: acc < 0.9)
    assert want is not None

    result = nbtk.canary(m["lr"], wrong, frame, key="uid", y="label", steps=STEPS, sla={"min.accuracy": 0.9},
                         model="cancer", version="1.0.1", store=store)
    assert result.halted_at == STEPS[want]
    seg = np.array_split(np.arange(len(frame)), len(STEPS))[want]
    rows = seg[routed_by_hand(frame["uid"].iloc[seg], STEPS[want])]
    b = result.steps[want].sla.breaches[0]
    assert (b.metric, b.allowed) == ("accuracy", 0.9) and b.observed == pytest.approx(np.mean(pred[rows] == y[rows]))
    assert registry.current("cancer", "production", store=store) == "1.0.0"


def test_good_challenger_completes_with_monotonic_deterministic_routing(released, store):
    m = released
    frame = m["frame"]
    result = nbtk.canary(m["lr"], m["gb"], frame, key="uid", y="label", steps=STEPS,
                         sla={"max.error_rate": 0.0}, model="cancer", version="1.0.1", store=store)
    assert not result.halted and result.rollback is None
    assert registry.current("cancer", "production", store=store) == "1.0.1"
    segments = np.array_split(np.arange(len(frame)), len(STEPS))
    for pct, seg, step in zip(STEPS, segments, result.steps, strict=True):
        expect = routed_by_hand(frame["uid"].iloc[seg], pct)
        assert np.array_equal(result.routed[seg], expect) and step.challenger_rows == int(expect.sum())
    assert result.routed[segments[-1]].all()
    # a key in the 5 % share is in every larger share too
    keys = [f"k{i}" for i in range(2000)]
    small, big = routed_by_hand(keys, 5), routed_by_hand(keys, 25)
    assert (small <= big).all() and 0.03 < small.mean() < 0.07
    from nbtoolkit.stability._common import bucket, in_share

    assert [in_share(k, 5) for k in keys[:200]] == list(small[:200])
    assert bucket("u0001") == int(hashlib.sha256(b"nbtoolkit:u0001").hexdigest()[:8], 16) % 10000


def test_release_plan_and_bundle_plan_drive_the_canary(released, store, tmp_path):
    m = released
    plan = release_plan("cancer", steps=(10, 100), sla={"max.error_rate": 0.05}, key="uid", store=store)
    assert plan["schema"] == "nbtoolkit.release.v1" and plan["steps"] == [10.0, 100.0]
    assert plan["rollback_target"]["version"] == "1.0.1"  # current production
    assert plan["sla"] == {"max.error_rate": 0.05} and plan["routing"]["salt"] == "nbtoolkit"
    json.dumps(plan)
    rid = make_run("cancer-gbm2", roc_auc=0.97)
    path = register(store, tmp_path / "b2", m["gb"], model="cancer", version="1.1.0", run_id=rid, release={**plan, "routing": {**plan["routing"], "salt": "s2"}})
    result = nbtk.canary(m["lr"], None, m["frame"], key="uid", bundle=path, record=False)
    assert [s.pct for s in result.steps] == [10.0, 100.0]
    assert result.summary["salt"] == "s2" and result.plan["sla"] == {"max.error_rate": 0.05}
    seg = np.array_split(np.arange(len(m["frame"])), 2)[0]
    assert np.array_equal(result.routed[seg], routed_by_hand(m["frame"]["uid"].iloc[seg], 10, salt="s2"))


def test_cli_canary_halts_and_rolls_back(released, project, store, tmp_path):
    m = released
    csv = tmp_path / "traffic.csv"
    m["frame"].to_csv(csv, index=False)
    set_config(project, "\n[tool.nbtoolkit.sla]\nmin.accuracy = 1.0\n")
    plot = tmp_path / "timeline.png"
    out = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--label", "label",
                   "--model", "cancer", "--plot", str(plot), cwd=project)
    assert out.returncode == 1, out.stderr
    assert "breach" in out.stdout and "accuracy =" in out.stdout and "< min 1" in out.stdout
    assert "Rolled back cancer@production to 1.0.0" in out.stdout
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert registry.current("cancer", "production", store=store) == "1.0.0"
    usage = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--steps", "50,5", cwd=project)
    assert usage.returncode == 2 and "steps must increase" in usage.stderr
