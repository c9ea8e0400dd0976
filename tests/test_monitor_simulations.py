"""The simulations agree with the live path: shadow latency per row, canary SLA from the current policy."""

from __future__ import annotations

import time

from _stability import demo_models

import nbtoolkit as nbtk


class SlowOnLarge:
    """The GBM, 30 ms slower per call that holds a 'large' row (mean radius > 15); ~20% of rows."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.feature_names_in_ = model.feature_names_in_

    def predict_proba(self, X):
        if (X["mean radius"] > 15).any():
            time.sleep(0.030)
        return self.model.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_shadow_latency_percentiles_are_per_row(project):
    m = demo_models()
    frame = m["frame"].drop(columns=["uid", "size"])
    large = float((frame["mean radius"] > 15).mean())
    assert 0.1 < large < 0.4   # so p50 is a fast row and p99 a slow one
    # one batch for all rows: a per-batch figure would give every row the same latency
    res = nbtk.shadow(m["lr"], SlowOnLarge(m["gb"]), frame, y="label", batch_size=len(frame), record=False, sla={})
    lat = res.latency["challenger"]
    assert lat["latency_p50_ms"] < 15 < 30 <= lat["latency_p99_ms"]
    assert lat["latency_p95_ms"] >= 30
    # the amortised per-row time of the single batch is kept apart
    # (one 30 ms sleep + scoring) / 269 rows: well under a millisecond on an idle machine
    assert lat["latency_batch_row_ms"] < 5 < lat["latency_p99_ms"]
    assert "single-row calls" in res.summary["latency_method"]
    # batch_size=1 times every row itself
    assert 0 < (frame["mean radius"].iloc[:60] > 15).mean() < 0.5
    one = nbtk.shadow(m["lr"], SlowOnLarge(m["gb"]), frame.iloc[:60], y="label", batch_size=1, record=False, sla={})
    assert one.latency["challenger"]["latency_p99_ms"] >= 30 > one.latency["challenger"]["latency_p50_ms"]


def _released(store, tmp_path, release=None):
    from _stability import make_run, register

    from nbtoolkit.stability.promotion import promote

    m = demo_models()
    r1, r2 = make_run("cancer-logreg", roc_auc=0.96), make_run("cancer-gbm", roc_auc=0.97)
    register(store, tmp_path / "b", m["lr"], model="cancer", version="1.0.0", run_id=r1)
    register(store, tmp_path / "b", m["gb"], model="cancer", version="1.0.1", run_id=r2, release=release)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    return m


def test_canary_checks_the_current_policy_and_says_so(project, store, tmp_path):
    from _stability import set_config
    from conftest import nbtk_cli

    from nbtoolkit.export.release import release_plan

    # the bundle froze a lenient plan at export; the project's policy has since become strict
    frozen = release_plan(None, steps=(50, 100), sla={"max.error_rate": 0.5})
    m = _released(store, tmp_path, release=frozen)
    csv = tmp_path / "traffic.csv"
    m["frame"].to_csv(csv, index=False)
    set_config(project, "\n[tool.nbtoolkit.sla]\nmin.accuracy = 1.0\n")
    out = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--label", "label", cwd=project)
    assert out.returncode == 1, out.stderr   # the current policy (accuracy 1.0) halts it
    assert "SLA in effect: the current [tool.nbtoolkit.sla]: min.accuracy 1" in out.stdout
    assert "frozen release.json plan differs and is not in effect: max.error_rate 0.5" in out.stdout
    assert "accuracy =" in out.stdout and "< min 1" in out.stdout
    # --sla wins over both
    given = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--label", "label",
                     "--sla", "max.error_rate=0.01", cwd=project)
    assert given.returncode == 0, given.stdout + given.stderr
    assert "SLA in effect: given explicitly (sla= / --sla): max.error_rate 0.01" in given.stdout
    bad = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--sla", "max.error_rate", cwd=project)
    assert bad.returncode == 2 and "BOUND.METRIC=NUMBER" in bad.stderr


def test_canary_falls_back_to_the_frozen_plan_without_a_policy(project, store, tmp_path):
    from nbtoolkit.export.release import release_plan

    frozen = release_plan(None, steps=(50, 100), sla={"min.accuracy": 1.0})
    m = _released(store, tmp_path, release=frozen)
    result = nbtk.canary(m["lr"], None, m["frame"], key="uid", y="label", bundle=tmp_path / "b" / "cancer-1.0.1",
                         record=False, store=store)
    assert result.summary["sla_source"] == "plan" and result.plan["sla"] == {"min.accuracy": 1.0}
    assert result.halted
    plain = nbtk.canary(m["lr"], m["gb"], m["frame"], key="uid", y="label", record=False, store=store)
    assert plain.summary["sla_source"] == "none" and plain.summary["frozen_plan_sla"] is None
