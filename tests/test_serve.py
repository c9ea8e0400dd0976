"""``nbtk serve``: MLflow's scoring protocol, signature checks, metrics, the prediction log, shutdown."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time

import numpy as np
import pytest
from _serve import Server, export_model, records
from _stability import demo_models, set_config

from nbtoolkit import registry
from nbtoolkit.stability.promotion import promote
from nbtoolkit.store import open_store
from nbtoolkit.store.predictions import LOG_COLUMNS

pytestmark = pytest.mark.slow


@pytest.fixture
def served(project, backend, tmp_path):
    """cancer 1.0.0 (logistic regression) at production; 'mean radius' is configured sensitive.

    Once with a SQLite store and once with PostgreSQL: the server process inherits
    ``NBTOOLKIT_STORE`` and writes its prediction log there.
    """
    store = backend
    m = demo_models()
    set_config(project, '\n[tool.nbtoolkit.serve]\nsensitive = ["mean radius"]\n')
    export_model(tmp_path / "bundles", m["lr"], model="cancer", version="1.0.0")
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    return m


def metric_value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} {labels} not in /metrics")


def test_four_input_formats_signature_errors_metrics_and_the_log(served, project):
    m = served
    frame, cols = m["frame"], list(m["X"].columns)
    expected = m["lr"].predict(frame[cols]).tolist()
    server = Server(project, "cancer@production", "--log-inputs")
    try:
        rows = frame[cols].iloc[:4]
        bodies = {
            "dataframe_split": {"dataframe_split": {"columns": cols, "data": rows.to_numpy().tolist()}},
            "dataframe_records": {"dataframe_records": rows.to_dict(orient="records")},
            "instances": {"instances": rows.to_dict(orient="records")},
            "inputs": {"inputs": {c: rows[c].tolist() for c in cols}},
        }
        for fmt, body in bodies.items():
            r = server.client.post("/invocations", json=body)
            assert r.status_code == 200, (fmt, r.text)
            assert r.headers["X-Model-Version"] == "1.0.0"
            assert r.json()["predictions"] == expected[:4], fmt
            assert r.json()["versions"] == ["1.0.0"] * 4
        csv = rows.to_csv(index=False).encode()
        r = server.client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
        assert r.status_code == 200 and r.json()["predictions"] == expected[:4]

        # signature: missing column, wrong dtype, two formats at once -> 400 naming the problem
        bad = rows.drop(columns=["mean texture"]).to_dict(orient="records")
        r = server.client.post("/invocations", json={"dataframe_records": bad})
        assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
        assert "'mean texture'" in r.json()["message"] and "missing" in r.json()["message"]
        typed = rows.astype({"worst area": str}).to_dict(orient="records")
        r = server.client.post("/invocations", json={"dataframe_records": typed})
        assert r.status_code == 400 and "'worst area'" in r.json()["message"]
        r = server.client.post("/invocations", json={**bodies["instances"], **bodies["inputs"]})
        assert r.status_code == 400 and "exactly one" in r.json()["message"]
        r = server.client.post("/invocations", content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["message"]

        ids = [f"u{i}" for i in range(10, 30)]
        answered = 5 * 4
        for start in range(0, 20, 5):
            r = server.score(records(frame, range(start, start + 5)), ids=ids[start:start + 5])
            assert r.status_code == 200 and r.json()["predictions"] == expected[start:start + 5]
            answered += 5
        metrics = server.client.get("/metrics")
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        labels = {"model": "cancer", "version": "1.0.0", "arm": "champion"}
        assert metric_value(metrics.text, "nbtk_requests_total", **labels) == 9
        assert metric_value(metrics.text, "nbtk_rows_total", **labels) == answered
        assert metric_value(metrics.text, "nbtk_latency_seconds_count", **labels) == 9
        assert metric_value(metrics.text, "nbtk_bad_requests_total") == 4
        assert server.client.get("/version").json()["version"] == "1.0.0"
        health = server.client.get("/health").json()
        assert health["model"] == "cancer" and health["version"] == "1.0.0"
        r = server.client.post("/feedback", json={"rows": [{"row_id": "u10", "label": 1}, {"key": "u11", "label": 0}]})
        assert r.status_code == 200 and r.json() == {"labelled": 2}
        r = server.client.post("/feedback", json={"rows": [{"label": 1}]})
        assert r.status_code == 400 and "row_id nor key" in r.json()["message"]
    finally:
        server.stop(signal.SIGTERM)

    log = open_store().prediction_log("cancer")
    assert list(log.columns) == list(LOG_COLUMNS)
    assert len(log) == answered and log["ok"].all() and set(log["version"]) == {"1.0.0"}
    tail = log.iloc[-20:]
    assert tail["row_id"].tolist() == ids and tail["key"].tolist() == ids  # ids are the key without --key
    assert tail["prediction"].tolist() == expected[:20]
    scores = m["lr"].predict_proba(frame[cols].iloc[:20])[:, 1]
    assert np.allclose(tail["score"].astype(float), scores)
    first = tail.iloc[0]
    assert "mean radius" not in first["inputs"] and first["inputs"]["mean texture"] == frame["mean texture"].iloc[0]
    canonical = json.dumps(first["inputs"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert first["input_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert (log["latency_ms"] > 0).all()
    assert tail["label"].iloc[:2].tolist() == [1, 0] and tail["label"].iloc[2:].isna().all()
    assert log["label"].iloc[:-20].isna().all() and tail["label_ts"].iloc[0] is not None
    assert all(re.fullmatch(r"[0-9a-f]{32}", r) for r in log["request_id"])


def test_clean_shutdown_loses_nothing_and_kill_9_at_most_the_last_batch(served, project):
    frame = served["frame"]
    server = Server(project, "cancer@production")
    sent = 0
    try:
        for start in range(0, 200, 8):
            assert server.score(records(frame, range(start, start + 8))).status_code == 200
            sent += 8
    finally:
        err = server.stop(signal.SIGINT)
    assert len(open_store().prediction_log("cancer")) == sent, err

    path = registry.resolve("cancer@production").path  # a bundle path serves too (no alias followed)
    server = Server(project, path)
    assert server.client.get("/health").json()["champion"] == {"ref": path, "version": "1.0.0", "model_calls": 0}
    for start in range(0, 80, 8):
        assert server.score(records(frame, range(start, start + 8))).status_code == 200
    time.sleep(1.5)  # several write intervals (0.2 s): these rows are on disk now
    assert server.score(records(frame, range(8))).status_code == 200
    server.kill()  # kill -9: only the last batch (at most these 8 rows) may be lost
    logged = len(open_store().prediction_log("cancer"))
    assert sent + 80 <= logged <= sent + 88


def test_a_bad_reference_exits_2_with_a_clear_line(served, project):
    from conftest import nbtk_cli

    out = nbtk_cli("serve", "cancer@nowhere", "--port", "1")
    assert out.returncode == 2 and "no exported version 'nowhere'" in out.stderr
    out = nbtk_cli("serve", "cancer@production", "--plan", "--port", "1")
    assert out.returncode == 2 and "--canary" in out.stderr


def test_concurrent_requests_share_model_calls_and_a_failing_request_fails_alone(served, project, tmp_path):
    """A slow champion (0.2 s a call) under 16 concurrent requests: they are combined into a few
    model calls, each row still gets its own prediction and log row, and a request the model
    raises on (a NaN the logistic regression refuses) fails alone with a 500."""
    from concurrent.futures import ThreadPoolExecutor

    from _faulty import Faulty

    m = served
    frame, cols = m["frame"], list(m["X"].columns)
    export_model(tmp_path / "bundles", Faulty(m["lr"], "sleep", None, delay=0.2), model="cancer", version="1.0.1")
    expected = m["lr"].predict(frame[cols]).tolist()
    server = Server(project, "cancer@1.0.1", "--trust-type", "_faulty.Faulty")
    bad = {5, 11}

    def one(i: int) -> tuple[int, int, list[object]]:
        row = frame[cols].iloc[i].tolist()
        if i in bad:
            row[3] = float("nan")  # JSON NaN: a float64 value the signature accepts and the model refuses
        r = server.client.post("/invocations", content=json.dumps({"dataframe_split": {"columns": cols, "data": [row]},
                                                                     "ids": [f"c{i}"]}),
                               headers={"content-type": "application/json"})
        return i, r.status_code, r.json().get("predictions", [])

    try:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16, 32)))  # all good
            calls = server.client.get("/health").json()["champion"]["model_calls"]
            answers += list(pool.map(one, range(16)))  # two bad ones among them
    finally:
        server.stop(signal.SIGTERM)
    assert calls <= 8  # 16 requests in at most 8 model calls (one while the first call sleeps: typically 2-3)
    for i, status, predictions in answers:
        if i in bad:
            assert status == 500
        else:
            assert status == 200 and predictions == [expected[i]], i
    log = open_store().prediction_log("cancer")
    assert sorted(log.loc[log["ok"], "row_id"]) == sorted(f"c{i}" for i in range(32) if i not in bad)
    assert (log.loc[log["ok"], "prediction"].tolist() ==
            [expected[int(r[1:])] for r in log.loc[log["ok"], "row_id"]])
