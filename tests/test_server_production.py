"""The REST endpoints behind the sidebar's Production panel, monitor and comments, on a real Jupyter server.

``GET /nbtoolkit/api/production``, ``/monitor/<model>`` (recorded and ``?live=1``) and
``/comments`` over a real project store, once on SQLite and once on PostgreSQL (the server
reads the store named by ``NBTOOLKIT_STORE``, as the CLI does); the numbers shown in the
browser are checked in ``test_browser_production.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _lab import JupyterServer
from _predlog import log_frame
from _stability import demo_models, make_run, register


def api(srv: JupyterServer, path: str) -> tuple[int, Any]:
    status, headers, body = srv.request(f"/nbtoolkit/api/{path}")
    assert "json" in headers.get("Content-Type", ""), headers
    return status, json.loads(body)


def test_production_monitor_and_comments_endpoints(project: Path, backend: Any, tmp_path: Path) -> None:
    store = backend  # SQLite or PostgreSQL: the Jupyter server inherits NBTOOLKIT_STORE from the fixture
    srv = JupyterServer(project, tmp_path / "jupyter", lab=False).start()
    try:
        assert api(srv, "production")[1]["models"] == []  # the fixture's store exists but is empty
        run = make_run("churn-lr", roc_auc=0.9)
        register(store, tmp_path / "b", demo_models()["lr"], model="churn", version="0.1.0", run_id=run)
        status, data = api(srv, "production")
        assert status == 200
        (model,) = data["models"]
        assert model == {"model": "churn", "versions": ["0.1.0"], "aliases": {}, "last_move": None,
                         "production": None, "monitor": None}
        before = data["signature"]

        store.add_comment("run", run, by="rita", text="<i>fine</i>", rating=3)
        store.add_comment("experiment", "churn-lr", by="sam", text="needs more data")
        status, data = api(srv, f"comments?run={run}&experiment=churn-lr&experiment=nothing-here")
        assert status == 200
        assert [(c["by"], c["text"], c["rating"]) for c in data["runs"][run]] == [("rita", "<i>fine</i>", 3)]
        assert [c["by"] for c in data["experiments"]["churn-lr"]] == ["sam"]
        assert data["experiments"]["nothing-here"] == []
        first = data["signature"]
        store.add_comment("run", run, by="lee", text="second look")
        assert api(srv, f"comments?run={run}")[1]["signature"] != first
        assert api(srv, "production")[1]["signature"] == before  # run comments are not the panel's

        # the prediction log in the store, a recorded monitor run, and live numbers from the log
        from nbtoolkit.monitor import monitor
        from nbtoolkit.monitor.record import record_monitor

        now = time.time()
        frame = log_frame([{"ts": now - 60 + i, "version": "0.1.0", "prediction": i % 2, "score": 0.8 if i % 2 else 0.2,
                            "label": i % 2 if i < 30 else 1 - i % 2, "latency_ms": 5 + i % 7, "ok": i != 3}
                           for i in range(40)], model="churn")
        assert store.log_predictions(frame.drop(columns=["label", "label_ts"]).to_dict(orient="records")) == 40
        assert store.add_feedback("churn", [{"row_id": r, "label": int(y)} for r, y in zip(frame["row_id"], frame["label"],
                                                                                           strict=True)]) == 40
        recorded = monitor(store.prediction_log("churn"), model="churn", window="1h", sla={"max.error_rate": 0.01})
        run_id = record_monitor(store, recorded)
        status, data = api(srv, "monitor/churn")
        assert status == 200 and data["run_id"] == run_id and data["ok"] is False
        assert {b["metric"] for b in data["breaches"]} == {"error_rate"}
        status, live = api(srv, "monitor/churn?live=1&window=15m")
        assert status == 200 and live["live"] is True and live["run_id"] is None and live["window_seconds"] == 900
        (overall,) = live["overall"]
        assert overall["version"] == "0.1.0" and overall["traffic"]["rows"] == 40
        assert abs(overall["traffic"]["error_rate"] - 1 / 40) < 1e-9
        assert abs(overall["measured"]["accuracy"]["value"] - 29 / 39) < 1e-9  # 29 of the 39 answered rows right
        status, data = api(srv, "production")
        (model,) = data["models"]
        assert model["monitor"]["run_id"] == run_id and data["signature"] != before
        # what the panel asks for: numbers computed now from the last hour of the log
        status, data = api(srv, "production?live=1")
        (model,) = data["models"]
        assert status == 200 and model["monitor"]["live"] is True and model["monitor"]["run_id"] is None
        assert model["monitor"]["window_seconds"] == 3600 and model["monitor"]["overall"][0]["traffic"]["rows"] == 40
        assert api(srv, "production?live=1")[1]["signature"] == data["signature"]  # stable while no traffic comes
        status, data = api(srv, "production?live=1&window=50s")  # the rows were 21-60 s old when logged
        assert data["models"][0]["monitor"]["live"] is True
        assert 0 < data["models"][0]["monitor"]["overall"][0]["traffic"]["rows"] <= 30
        status, data = api(srv, "production?live=1&window=soon")
        assert status == 400 and "is not a duration" in data["message"]

        status, data = api(srv, "comments?run=../../etc")
        assert status == 400 and "not a run id" in data["message"]
        status, data = api(srv, "comments?" + "&".join(f"run={run}" for _ in range(201)))
        assert status == 400 and "at most 200" in data["message"]
        assert srv.request("/nbtoolkit/api/production", token=False)[0] == 403
    finally:
        srv.stop()
