"""``GET /nbtoolkit/api/monitor/<model>`` on a real ``jupyter server`` on 127.0.0.1: the dashboard's numbers as strict JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from _lab import JupyterServer
from _predlog import log_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JupyterServer, dict[str, Any]]]:
    from nbtoolkit.monitor import monitor
    from nbtoolkit.monitor.record import record_monitor
    from nbtoolkit.store import open_store

    root = tmp_path_factory.mktemp("srv") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    store = open_store(path=root / ".nbtoolkit")
    # one class only among the labels: roc_auc is undefined (NaN) and must not reach the JSON
    frame = log_frame([{"ts": 7200 + i, "prediction": 1, "score": 0.9, "label": 1, "latency_ms": 10 + i,
                        "ok": i % 5 != 0, "inputs": {"sex": "f" if i % 2 else "m"}} for i in range(40)], model="cancer")
    result = monitor(frame, model="cancer", window="30m", slices=["sex"], sla={"max.error_rate": 0.1})
    run_id = record_monitor(store, result)
    srv = JupyterServer(root, root.parent / "jupyter", lab=False, env={"NBTOOLKIT_STORE": str(root / ".nbtoolkit")}).start()
    try:
        yield srv, {"run_id": run_id, "result": result.to_dict()}
    finally:
        srv.stop()


def _get(srv: JupyterServer, path: str) -> tuple[int, Any]:
    status, headers, body = srv.request(f"/nbtoolkit/api/{path}")
    assert "json" in headers.get("Content-Type", "")
    text = body.decode()
    return status, json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in the answer"))


def test_latest_monitor_run_as_strict_json(server: Any) -> None:
    srv, want = server
    status, data = _get(srv, "monitor/cancer")
    assert status == 200
    assert data["run_id"] == want["run_id"]
    assert data["ok"] is False and data["breaches"][0]["metric"] == "error_rate"
    assert data["breaches"][0]["observed"] == pytest.approx(0.2)   # every fifth row failed
    (overall,) = data["overall"]
    assert overall["traffic"]["rows"] == 40 and overall["traffic"]["error_rate"] == pytest.approx(0.2)
    assert overall["traffic"] == want["result"]["overall"][0]["traffic"]
    assert overall["measured"]["accuracy"]["value"] == 1.0
    assert "roc_auc" not in overall["measured"]
    floats = [v for v in json.dumps(data).split() if v.rstrip(",") in ("NaN", "Infinity")]
    assert floats == [] and all(math.isfinite(w["traffic"]["throughput_rps"]) for w in data["windows"])


def test_unknown_model_404_and_bad_name_400(server: Any) -> None:
    srv, _ = server
    status, data = _get(srv, "monitor/nobody")
    assert status == 404 and "No monitor run of 'nobody'" in data["message"]
    status, data = _get(srv, "monitor/..%2Fetc")
    assert status in (400, 404)
    status, data = _get(srv, "monitor/bad%20name")
    assert status == 400 and "Model names" in data["message"]


def test_live_reads_the_store_log(server: Any) -> None:
    from nbtoolkit.store.store import Store

    srv, _ = server
    status, data = _get(srv, "monitor/cancer?live=1&window=15m")
    if hasattr(Store, "prediction_log"):   # once the serving store keeps its log
        assert status == 200 and data["live"] is True and data["window_seconds"] == 900
    else:
        assert status == 400 and "keeps no prediction log" in data["message"]
    status, data = _get(srv, "monitor/cancer?live=1&window=soon")
    assert status == 400 and "is not a duration" in data["message"]
