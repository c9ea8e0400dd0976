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
