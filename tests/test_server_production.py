"""The REST endpoints behind the sidebar's Production panel and comments, on a real Jupyter server.

``GET /nbtoolkit/api/production`` and ``GET /nbtoolkit/api/comments`` over a real project store;
the numbers shown in the browser are checked in ``test_browser_production.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _lab import JupyterServer
from _stability import demo_models, make_run, register


def api(srv: JupyterServer, path: str) -> tuple[int, Any]:
    status, headers, body = srv.request(f"/nbtoolkit/api/{path}")
    assert "json" in headers.get("Content-Type", ""), headers
    return status, json.loads(body)


def test_production_and_comments_endpoints(project: Path, store: Any, tmp_path: Path) -> None:
    srv = JupyterServer(project, tmp_path / "jupyter", lab=False,
                        env={"NBTOOLKIT_STORE": str(project / ".nbtoolkit")}).start()
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

        status, data = api(srv, "comments?run=../../etc")
        assert status == 400 and "not a run id" in data["message"]
        status, data = api(srv, "comments?" + "&".join(f"run={run}" for _ in range(201)))
        assert status == 400 and "at most 200" in data["message"]
        assert srv.request("/nbtoolkit/api/production", token=False)[0] == 403
    finally:
        srv.stop()
