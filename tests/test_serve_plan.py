"""``nbtk serve --plan``: walk the release plan step by step; halt on a quality breach once labels join."""

from __future__ import annotations

import time

import pytest
from _faulty import Faulty
from _serve import Server, export_model, records
from _stability import demo_models, set_config

from nbtoolkit import registry
from nbtoolkit.export.release import release_plan
from nbtoolkit.stability.promotion import promote

pytestmark = pytest.mark.slow


def _release(store, tmp_path, challenger, plan) -> None:
    m = demo_models()
    export_model(tmp_path / "bundles", m["lr"], model="cancer", version="1.0.0")
    export_model(tmp_path / "bundles", challenger, model="cancer", version="1.0.1", release=plan)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    promote("cancer", "1.0.0", to="candidate", by="ana", reason="first", store=store)
    promote("cancer", "1.0.1", to="candidate", by="ana", reason="try it", store=store)


def test_plan_steps_are_walked_when_each_step_holds(project, store, tmp_path):
    m = demo_models()
    plan = release_plan(steps=(10, 50, 100), sla={"max.error_rate": 0.2}, key="uid")
    _release(store, tmp_path, m["gb"], plan)
    set_config(project, "\n[tool.nbtoolkit.serve]\nmin_rows = 5\nwindow = 0.5\n")
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--plan")
    frame, seen_steps = m["frame"], []
    try:
        deadline = time.monotonic() + 60
        i = 0
        while True:
            canary = server.client.get("/health").json()["canary"]
            seen_steps.append(canary["percent"])
            if canary["completed"]:
                break
            assert time.monotonic() < deadline, f"plan stuck: {canary}"
            rows = [j % len(frame) for j in range(i, i + 10)]
            assert server.score(records(frame, rows), ids=[f"k{j}" for j in range(i, i + 10)]).status_code == 200
            i += 10
        assert canary["plan"] == [10, 50, 100] and canary["halt"] is None
        assert [p for p in dict.fromkeys(seen_steps)] == [10, 50, 100]
        r = server.score(records(frame, range(20)), ids=[f"new{j}" for j in range(20)])
        assert set(r.json()["versions"]) == {"1.0.1"}  # 100 %: the challenger answers everything
    finally:
        server.stop()
    assert registry.current("cancer", "candidate", store=store) == "1.0.1"


def test_quality_breach_once_labels_arrive_halts_and_rolls_back(project, store, tmp_path):
    m = demo_models()
    _release(store, tmp_path, Faulty(m["gb"], "wrong"), None)
    set_config(project, "\n[tool.nbtoolkit.sla]\nmin.accuracy = 0.8\n\n[tool.nbtoolkit.serve]\nmin_rows = 10\n")
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--percent", "50",
                    "--trust-type", "_faulty.Faulty")
    frame = m["frame"]
    try:
        ids = [f"k{j}" for j in range(80)]
        r = server.score(records(frame, range(80)), ids=ids)
        assert r.status_code == 200
        time.sleep(2.5)  # no labels yet: nothing to judge quality on
        assert server.client.get("/health").json()["canary"]["halt"] is None
        labels = [{"row_id": k, "label": int(y)} for k, y in zip(ids, frame["label"].iloc[:80], strict=True)]
        assert server.client.post("/feedback", json={"rows": labels}).json()["labelled"] == 80
        deadline = time.monotonic() + 20
        while registry.current("cancer", "candidate", store=store) != "1.0.0":
            assert time.monotonic() < deadline, server.client.get("/health").json()
            time.sleep(0.2)
        halt = server.client.get("/health").json()["canary"]["halt"]
        assert "accuracy" in halt["reason"]
        assert set(server.score(records(frame, range(30)), ids=ids[:30]).json()["versions"]) == {"1.0.0"}
    finally:
        server.stop()
    assert "accuracy" in registry.history("cancer", alias="candidate", store=store)[-1].reason
