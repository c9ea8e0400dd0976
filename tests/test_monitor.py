"""The monitor's numbers, computed by hand on small prediction log frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _predlog import log_frame

from nbtoolkit.errors import InputError
from nbtoolkit.monitor import monitor
from nbtoolkit.monitor.cbpe import Calibrator, expected_accuracy, expected_roc_auc
from nbtoolkit.monitor.drift import psi
from nbtoolkit.monitor.windows import parse_duration

DATA = Path(__file__).parent / "data"


def _ops_frame() -> pd.DataFrame:
    # window [0, 60): 4 rows in 2 requests, one failed; window [60, 120): 2 rows
    return log_frame([
        {"ts": 1, "request_id": "a", "latency_ms": 10, "prediction": 1, "label": 1},
        {"ts": 2, "request_id": "a", "latency_ms": 20, "prediction": 0, "label": 1},
        {"ts": 30, "request_id": "b", "latency_ms": 30, "prediction": 1, "label": 1},
        {"ts": 31, "request_id": "b", "latency_ms": 40, "ok": False, "error": "ValueError: boom"},
        {"ts": 61, "request_id": "c", "latency_ms": 5, "prediction": 0, "label": 0},
        {"ts": 62, "request_id": "c", "latency_ms": 7, "prediction": 1},
    ])


def test_parse_duration() -> None:
    assert parse_duration("1h") == 3600
    assert parse_duration("15m") == 900
    assert parse_duration("90s") == 90
    assert parse_duration("2d") == 172800
    for bad in ("soon", "0h", "-1h", "1y"):
        with pytest.raises(InputError, match="duration"):
            parse_duration(bad)


def test_traffic_error_rate_and_latency_per_window() -> None:
    result = monitor(_ops_frame(), model="m", window="1m")
    assert [(w.start, w.version) for w in result.windows] == [(0.0, "1.0.0"), (60.0, "1.0.0")]
    first, second = result.windows
    assert first.traffic.rows == 4 and first.traffic.requests == 2
    assert first.traffic.throughput_rps == pytest.approx(4 / 60)
    assert first.traffic.error_rate == pytest.approx(0.25)
    assert first.traffic.latency_p50_ms == pytest.approx(25.0)
    assert first.traffic.latency_p95_ms == pytest.approx(38.5)   # 30 + 0.85 * 10
    assert first.traffic.latency_p99_ms == pytest.approx(39.7)
    assert first.traffic.labelled == 3
    assert first.measured["accuracy"].value == pytest.approx(2 / 3)
    assert first.measured["accuracy"].estimated is False
    assert second.traffic.rows == 2 and second.traffic.error_rate == 0.0
    assert second.measured["accuracy"].value == pytest.approx(1.0) and second.measured["accuracy"].n == 1
    (overall,) = result.overall
    assert overall.traffic.rows == 6 and overall.traffic.error_rate == pytest.approx(1 / 6)
    assert overall.measured["accuracy"].value == pytest.approx(3 / 4)


def test_versions_are_reported_apart() -> None:
    frame = log_frame([{"ts": t, "version": v, "ok": ok, "prediction": 1}
                       for t, v, ok in [(1, "1.0.0", True), (2, "1.1.0", False), (3, "1.1.0", True), (4, "1.0.0", True)]])
    result = monitor(frame, window="1h")
    by_version = {w.version: w for w in result.overall}
    assert set(by_version) == {"1.0.0", "1.1.0"}
    assert by_version["1.0.0"].traffic.error_rate == 0.0
    assert by_version["1.1.0"].traffic.error_rate == 0.5


def test_interval_brackets_the_measured_value() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 400)
    pred = np.where(rng.random(400) < 0.8, truth, 1 - truth)
    frame = log_frame([{"ts": i, "prediction": int(p), "label": int(t)} for i, (p, t) in enumerate(zip(pred, truth, strict=True))])
    acc = monitor(frame, window="1h").overall[0].measured["accuracy"]
    assert acc.value == pytest.approx(float(np.mean(pred == truth)))
    assert acc.low is not None and acc.high is not None
    assert acc.low < acc.value < acc.high
    # binomial standard error ~0.02: a 95% interval is about 0.08 wide
    assert 0.04 < acc.high - acc.low < 0.12


def test_fairness_gap_per_slice() -> None:
    # women: 3 of 4 right (0.75); men: 1 of 2 right (0.5) -> gap 0.25, worst slice "m"
    rows = [("f", 1, 1), ("f", 0, 0), ("f", 1, 1), ("f", 1, 0), ("m", 1, 1), ("m", 0, 1)]
    frame = log_frame([{"ts": i, "inputs": {"sex": s, "x": float(i)}, "prediction": p, "label": t}
                       for i, (s, p, t) in enumerate(rows)])
    result = monitor(frame, window="1h", slices=["sex"], metrics=["accuracy"])
    (acc,) = result.overall[0].slices
    assert acc.column == "sex" and acc.metric == "accuracy"
    assert acc.by_slice == {"f": pytest.approx(0.75), "m": pytest.approx(0.5)}
    assert acc.counts == {"f": 4, "m": 2}
    assert acc.worst == "m" and acc.gap == pytest.approx(0.25)
    assert result.overall[0].metrics()["accuracy_slice_gap"] == pytest.approx(0.25)


def test_drift_found_on_shifted_feature_only() -> None:
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"shifted": rng.normal(0, 1, 2000), "steady": rng.normal(0, 1, 2000),
                              "colour": rng.choice(["red", "blue"], 2000)})
    frame = log_frame([{"ts": i, "prediction": 1, "inputs": {"shifted": float(rng.normal(1.0, 1)),
                                                             "steady": float(rng.normal(0, 1)), "colour": "red"}}
                       for i in range(500)])
    result = monitor(frame, window="1h", reference=reference)
    drift = {f.feature: f for f in result.drift_overall}
    assert drift["shifted"].drifted and drift["shifted"].psi > 0.2 and drift["shifted"].ks_pvalue < 1e-10
    assert not drift["steady"].drifted and drift["steady"].psi < 0.1 and drift["steady"].ks_pvalue > 0.01
    assert drift["colour"].kind == "categorical" and drift["colour"].drifted and drift["colour"].ks is None
    assert len(result.drift) == 1 and {f.feature for f in result.drift[0].features} == {"shifted", "steady", "colour"}


def test_psi_by_hand() -> None:
    # (0.6-0.5)ln(0.6/0.5) + (0.4-0.5)ln(0.4/0.5)
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * np.log(1.2) - 0.1 * np.log(0.8))
    assert psi([0.3, 0.7], [0.3, 0.7]) == 0.0


def test_cbpe_by_hand() -> None:
    # predicted 1 with p=0.9 -> right with 0.9; predicted 0 with p=0.2 -> right with 0.8
    assert expected_accuracy([0.9, 0.2], [1, 0]) == pytest.approx(0.85)
    # perfectly certain scores: expected AUC is the real AUC of the certain labels
    assert expected_roc_auc([1.0, 1.0, 0.0, 0.0]) == pytest.approx(1.0)
    # two rows, expected positives 0.8 + 0.2 = 1, negatives 1: the expected curve runs
    # (0, 0) -> (FPR 0.2, TPR 0.8) -> (1, 1); trapezoids 0.2 * 0.8 / 2 + 0.8 * (0.8 + 1) / 2
    assert expected_roc_auc([0.8, 0.2]) == pytest.approx(0.08 + 0.72)
    # the model's scores rank, the calibrated probabilities count: reversed ranking -> 1 - 0.8
    assert expected_roc_auc([0.8, 0.2], scores=[0.1, 0.9]) == pytest.approx(0.2)


def _cbpe_log(label_chunk0: bool = False) -> tuple[pd.DataFrame, dict]:
    data = pd.read_csv(DATA / "cbpe_data.csv")
    expected = json.loads((DATA / "cbpe_nannyml.json").read_text())
    starts = {"reference": 0, "chunk0": 3600, "chunk1": 7200, "chunk2": 10800, "chunk3": 14400}
    rows = []
    for i, r in enumerate(data.itertuples()):
        labelled = r.period == "reference" or (label_chunk0 and r.period == "chunk0")
        rows.append({"ts": starts[r.period] + (i % 3000), "prediction": int(r.y_pred), "score": float(r.score),
                     "label": int(r.y_true) if labelled else None})
    return log_frame(rows), expected


def test_cbpe_matches_nannyml() -> None:
    frame, expected = _cbpe_log()
    # the labelled reference hour calibrates the scores, as NannyML's fit on the reference does
    result = monitor(frame, window="1h")
    analysis = result.windows[1:]
    assert len(analysis) == 4
    for window, want in zip(analysis, expected["chunks"], strict=True):
        assert window.measured == {}
        assert window.quality["accuracy"].estimated is True
        assert window.estimated["accuracy"].value == pytest.approx(want["accuracy"], abs=1e-6)
        assert window.estimated["roc_auc"].value == pytest.approx(want["roc_auc"], abs=1e-6)
    # without calibration the estimate is off: calibration is what makes it match
    raw = monitor(frame, window="1h", calibrator=Calibrator.fit([0.0, 1.0], [0.0, 1.0])).windows[1]
    assert abs(raw.estimated["accuracy"].value - expected["chunks"][0]["accuracy"]) > 0.01


def test_measured_quality_replaces_estimate_when_labels_join() -> None:
    frame, _ = _cbpe_log(label_chunk0=True)
    data = pd.read_csv(DATA / "cbpe_data.csv")
    chunk0 = data[data.period == "chunk0"]
    window = monitor(frame, window="1h").windows[1]
    assert window.label_share == 1.0
    assert window.quality["accuracy"].estimated is False
    assert window.quality["accuracy"].value == pytest.approx(float((chunk0.y_pred == chunk0.y_true).mean()))
    assert "accuracy" in window.estimated   # kept beside it for the estimated-vs-measured plot


def test_sla_breach_per_window() -> None:
    result = monitor(_ops_frame(), window="1m", sla={"max.error_rate": 0.1, "max.latency_p95_ms": 100})
    assert not result.ok
    (breach,) = result.breaches
    assert breach.version == "1.0.0" and breach.start == 0.0
    assert breach.breach.metric == "error_rate" and breach.breach.observed == pytest.approx(0.25)
    assert result.windows[1].sla is not None and result.windows[1].sla.ok
    assert monitor(_ops_frame(), window="1m", sla={"max.error_rate": 0.3}).ok


def test_result_json_has_no_nan() -> None:
    frame = log_frame([{"ts": 1, "prediction": 1, "label": 1}, {"ts": 2, "ok": False}])
    text = json.dumps(monitor(frame, window="1h", sla={"min.roc_auc": 0.8}).to_dict(), allow_nan=False)
    assert '"model"' in text


def test_missing_columns_are_named() -> None:
    with pytest.raises(InputError, match="ts"):
        monitor(pd.DataFrame({"version": ["1"], "ok": [True]}))


def test_multiclass_estimate_and_measured_accuracy() -> None:
    # classes 0, 1, 2 (probabilities in sorted class order); the predicted class's probability is
    # the chance the row is right: (0.7 + 0.6 + 0.5) / 3
    rows = [
        {"ts": 1, "prediction": 0, "proba": [0.7, 0.2, 0.1], "label": 0},
        {"ts": 2, "prediction": 1, "proba": [0.1, 0.6, 0.3], "label": 2},
        {"ts": 3, "prediction": 2, "proba": [0.25, 0.25, 0.5], "label": 2},
    ]
    (window,) = monitor(log_frame(rows), window="1h").windows
    assert window.estimated["accuracy"].value == pytest.approx(0.6)
    assert window.estimated["accuracy"].estimated is True
    assert window.measured["accuracy"].value == pytest.approx(2 / 3)
    assert set(window.measured) == {"accuracy"}   # binary-only metrics are not computed on three classes


def test_monitor_run_report_section(project, store) -> None:
    from bs4 import BeautifulSoup

    from nbtoolkit.monitor.dashboard import report_section
    from nbtoolkit.monitor.record import record_monitor

    frame = _ops_frame()
    frame.loc[0, "version"] = "<b>v</b>"
    run_id = record_monitor(store, monitor(frame, model="m<i>", window="1m", sla={"max.error_rate": 0.1}))
    record = store.get_run(run_id)
    title, html = report_section(record, store)
    assert title == "Production monitor: m<i>"   # the report template escapes titles
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("b") is None and soup.find("i") is None and "<b>v</b>" in soup.get_text()
    rows = soup.select("tr.breach-row")
    assert len(rows) == 1 and "error_rate" in rows[0].get_text() and "0.3333" in rows[0].get_text()
    other = store.get_run(store.create_run(experiment="x"))
    assert report_section(other, store) is None


def test_drift_per_window_starts_when_the_shift_starts() -> None:
    from bs4 import BeautifulSoup

    from nbtoolkit.monitor.dashboard import render_dashboard

    rng = np.random.default_rng(4)
    # first hour like the training data, second hour shifted by two standard deviations
    rows = [{"ts": i * 30, "prediction": 1, "inputs": {"x": float(rng.normal(0 if i < 120 else 2))}} for i in range(240)]
    result = monitor(log_frame(rows), window="1h", reference=pd.DataFrame({"x": rng.normal(size=1000)}))
    first, second = ({f.feature: f for f in d.features}["x"] for d in result.drift)
    assert not first.drifted and first.n == 120
    assert second.drifted and second.psi > 1
    soup = BeautifulSoup(render_dashboard(result), "html.parser")
    (row,) = soup.select("tr.drift-window-row")
    cells = row.find_all("td")
    assert cells[0].get_text() == "x" and cells[1].find("span", class_="breach") is None
    assert cells[2].find("span", class_="breach") is not None


def test_multiclass_cbpe_matches_nannyml() -> None:
    data = pd.read_csv(DATA / "cbpe_multiclass.csv")
    expected = json.loads((DATA / "cbpe_nannyml.json").read_text())["multiclass_chunks"]
    starts = {"chunk0": 0, "chunk1": 3600, "chunk2": 7200}
    rows = [{"ts": starts[r.period] + i % 750, "prediction": int(r.y_pred), "proba": [r.p0, r.p1, r.p2]}
            for i, r in enumerate(data.itertuples())]
    windows = monitor(log_frame(rows), window="1h").windows
    assert len(windows) == 3
    for window, want in zip(windows, expected, strict=True):
        assert window.quality["accuracy"].estimated is True
        assert window.estimated["accuracy"].value == pytest.approx(want["accuracy"], abs=1e-6)
        assert window.estimated["roc_auc"].value == pytest.approx(want["roc_auc"], abs=1e-6)


def test_multiclass_cbpe_with_calibration_matches_nannyml() -> None:
    """Over-confident, biased class probabilities: calibrated one-vs-rest on the labelled reference hour, then renormalised."""
    data = pd.read_csv(DATA / "cbpe_multiclass_calibrated.csv")
    expected = json.loads((DATA / "cbpe_nannyml.json").read_text())["multiclass_calibrated"]
    assert expected["calibrated_classes"] == [0, 1, 2]  # NannyML found calibration needed for every class
    starts = {"reference": 0, "chunk0": 3600, "chunk1": 7200, "chunk2": 10800}
    rows = [{"ts": starts[r.period] + i % 750, "prediction": int(r.y_pred), "proba": [r.p0, r.p1, r.p2],
             "label": int(r.y_true) if r.period == "reference" else None} for i, r in enumerate(data.itertuples())]
    frame = log_frame(rows)
    windows = monitor(frame, window="1h").windows[1:]
    assert len(windows) == 3
    for window, want in zip(windows, expected["chunks"], strict=True):
        assert window.measured == {} and window.quality["accuracy"].estimated is True
        assert window.estimated["accuracy"].value == pytest.approx(want["accuracy"], abs=1e-6)
        assert window.estimated["roc_auc"].value == pytest.approx(want["roc_auc"], abs=1e-6)
    # uncalibrated, the over-confident probabilities overstate accuracy: calibration is what matches
    raw = monitor(frame.assign(label=None), window="1h").windows[1]
    assert raw.estimated["accuracy"].value - expected["chunks"][0]["accuracy"] > 0.05
