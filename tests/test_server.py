"""The Jupyter server extension's REST API, against a real ``jupyter server`` on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lab import JupyterServer

pytestmark = pytest.mark.slow


def make_runs(root: Path) -> dict[str, str]:
    """A project store with three finished runs in two experiments and one running run."""
    from nbtoolkit.store import open_store

    store = open_store(path=root / ".nbtoolkit")
    ids = {}
    specs = [
        ("base", "cancer-logreg", "supported", {"C": 1.0}, {"roc_auc": 0.95}),
        ("worse", "cancer-gbm", "rejected", {"depth": 2}, {"roc_auc": 0.91}),
        ("better", "cancer-gbm", "supported", {"depth": 4}, {"roc_auc": 0.97}),
    ]
    for key, experiment, verdict, params, metrics in specs:
        run_id = store.create_run(
            experiment=experiment,
            declaration={"experiment": experiment, "hypothesis": f"<b>{key}</b> & co", "success": ["roc_auc >= 0.9"]},
        )
        store.log_params(run_id, params)
        store.log_metrics(run_id, [(n, v, None, time.time()) for n, v in metrics.items()]
                          + [("loss", 1.0 / (s + 1), s, time.time()) for s in range(5)])
        store.finish_run(run_id, status="finished", verdict=verdict)
        ids[key] = run_id
        time.sleep(0.01)
    ids["running"] = store.create_run(experiment="cancer-gbm", declaration={"experiment": "cancer-gbm"})
    store.update_run(ids["running"], pid=None)
    return ids


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JupyterServer, dict[str, str], Path]]:
    root = tmp_path_factory.mktemp("srv") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    ids = make_runs(root)
    srv = JupyterServer(root, root.parent / "jupyter", lab=False,
                        env={"NBTOOLKIT_STORE": str(root / ".nbtoolkit")}).start()
    try:
        yield srv, ids, root
    finally:
        srv.stop()


def api(srv: JupyterServer, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
    status, headers, body = srv.request(f"/nbtoolkit/api/{path}", **kw)
    ctype = headers.get("Content-Type", "")
    return status, headers, json.loads(body) if "json" in ctype else body.decode()


def test_experiments_lists_every_experiment_with_recent_runs(server: Any) -> None:
    srv, ids, _ = server
    status, _, data = api(srv, "experiments?recent=2")
    assert status == 200
    by_name = {e["name"]: e for e in data["experiments"]}
    assert set(by_name) == {"cancer-logreg", "cancer-gbm"}
    gbm = by_name["cancer-gbm"]
    assert gbm["runs"] == 3
    assert [r["run_id"] for r in gbm["recent"]] == [ids["running"], ids["better"]]  # newest first, 2 kept
    assert gbm["recent"][1]["verdict"] == "supported"
    assert data["signature"] and data["signature"] == api(srv, "experiments")[2]["signature"]


def test_runs_filters_by_experiment_verdict_and_text(server: Any) -> None:
    srv, ids, _ = server
    _, _, data = api(srv, "runs?experiment=cancer-gbm&verdict=supported")
    assert [r["run_id"] for r in data["runs"]] == [ids["better"]]
    assert data["runs"][0]["metrics"]["roc_auc"] == 0.97
    _, _, data = api(srv, "runs?q=depth%3D2")
    assert [r["run_id"] for r in data["runs"]] == [ids["worse"]]
    _, _, data = api(srv, "runs?status=running")
    assert [r["run_id"] for r in data["runs"]] == [ids["running"]]


def test_run_detail_by_id_and_prefix(server: Any) -> None:
    srv, ids, _ = server
    status, _, data = api(srv, f"runs/{ids['worse']}")
    assert status == 200
    assert data["run_id"] == ids["worse"] and data["verdict"] == "rejected"
    assert data["params"] == {"depth": 2}
    status, _, data = api(srv, f"runs/{ids['worse'][:10].upper()}")
    assert status == 200 and data["run_id"] == ids["worse"]


def test_report_is_written_into_the_store_and_served_as_sandboxed_html(server: Any) -> None:
    srv, ids, root = server
    status, headers, body = api(srv, f"runs/{ids['better']}/report")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "sandbox" in headers["Content-Security-Policy"]
    assert "cancer-gbm" in body and ids["better"][:8] in body
    assert "<b>better</b>" not in body  # the hypothesis is escaped
    written = root / ".nbtoolkit" / "reports" / f"{ids['better']}.html"
    assert written.is_file() and written.read_text(encoding="utf-8") == body


def test_unknown_run_is_404_json(server: Any) -> None:
    srv, _, _ = server
    for path in ("runs/" + "0" * 32, "runs/" + "0" * 32 + "/report", "runs/abcdef12"):
        status, headers, data = api(srv, path)
        assert status == 404, path
        assert headers["Content-Type"].startswith("application/json")
        assert "message" in data and "run" in data["message"].lower()
    status, _, data = api(srv, "no/such/route")
    assert status == 404 and "Unknown nbtoolkit API path" in data["message"]


@pytest.mark.parametrize("ref", [
    "..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", "abc", "zzzz", "1234.html", "12345%00",
    "%2Fetc%2Fpasswd", "0123456789abcdef0123456789abcdef0",
])
def test_malformed_ids_are_refused_before_touching_the_store(server: Any, ref: str) -> None:
    srv, _, root = server
    for suffix in ("", "/report"):
        status, headers, body = api(srv, f"runs/{ref}{suffix}")
        assert status in (400, 404), (ref, status)
        assert "root:" not in str(body)
        if status == 400:
            assert headers["Content-Type"].startswith("application/json")
            assert "not a run id" in body["message"]
    assert sorted(p.name for p in (root / ".nbtoolkit" / "reports").glob("*")) == sorted(
        p.name for p in (root / ".nbtoolkit" / "reports").glob("*.html"))


def test_traversal_ids_get_400_json(server: Any) -> None:
    srv, _, _ = server
    status, headers, body = api(srv, "runs/..%2F..%2Fstore.db/report")
    assert status == 400
    assert body["message"].startswith("'../../store.db' is not a run id")


def test_unauthenticated_requests_are_refused_with_403(server: Any) -> None:
    srv, ids, _ = server
    for path in ("experiments", "runs", f"runs/{ids['base']}", f"runs/{ids['base']}/report"):
        status, headers, body = srv.request(f"/nbtoolkit/api/{path}", token=False)
        assert status == 403, path
        assert headers["Content-Type"].startswith("application/json")
        assert ids["base"] not in body.decode()
    status, _, _ = srv.request("/nbtoolkit/api/experiments", token=False, headers={"Authorization": "token wrong"})
    assert status == 403


def test_listing_a_folder_without_store_does_not_create_one(tmp_path: Path) -> None:
    from nbtoolkit.server.data import experiment_summaries, open_project_store

    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    store = open_project_store(tmp_path)
    assert store is None
    assert experiment_summaries(store)["experiments"] == []
    assert not (tmp_path / ".nbtoolkit").exists()


def test_run_comments_for_the_sidebar(server: Any) -> None:
    from nbtoolkit.store import open_store

    srv, ids, root = server
    store = open_store(path=root / ".nbtoolkit")
    store.add_comment("run", ids["better"], by="rita", text="<i>great</i> lift", rating=5)
    store.add_comment("experiment", "cancer-gbm", by="sam", text="keep the depth small")
    store.add_comment("run", ids["worse"], by="lee", text="not this one")
    status, _, data = api(srv, f"runs/{ids['better'][:8]}/comments")
    assert status == 200 and data["run_id"] == ids["better"]
    assert [(c["by"], c["text"], c["rating"]) for c in data["comments"]] == [
        ("rita", "<i>great</i> lift", 5), ("sam", "keep the depth small", None)]
    assert api(srv, "runs/ffffffff/comments")[0] == 404
