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
from nbtoolkit.store import open_store

pytestmark = pytest.mark.slow


def _release(store, tmp_path, challenger, plan) -> None:
    m = demo_models()
    export_model(tmp_path / "bundles", m["lr"], model="cancer", version="1.0.0")
    export_model(tmp_path / "bundles", challenger, model="cancer", version="1.0.1", release=plan)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    promote("cancer", "1.0.0", to="candidate", by="ana", reason="first", store=store)
    promote("cancer", "1.0.1", to="candidate", by="ana", reason="try it", store=store)


def _walk_plan(project, store, tmp_path, *extra: str, sla: str | None = None):
    """Serve a 10/50/100 plan and send keyed rows until it completes; return the server and its frame.

    ``sla``: a rule for ``[tool.nbtoolkit.sla]`` (the current policy, which wins over the plan's).
    """
    m = demo_models()
    plan = release_plan(steps=(10, 50, 100), sla={"max.error_rate": 0.2}, key="uid")
    _release(store, tmp_path, m["gb"], plan)
    policy = f"\n[tool.nbtoolkit.sla]\n{sla}\n" if sla else ""
    set_config(project, f"{policy}\n[tool.nbtoolkit.serve]\nmin_rows = 5\nwindow = 0.5\n")
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--plan", *extra)
    frame, seen_steps = m["frame"], []
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
    assert [p for p in dict.fromkeys(seen_steps)][:3] == [10, 50, 100]
    return server, frame


def test_a_completed_plan_promotes_the_challenger(project, backend, tmp_path):
    """10 % -> 50 % -> 100 %, each step held; then production moves to the challenger (SQLite and PostgreSQL)."""
    store = backend
    server, frame = _walk_plan(project, store, tmp_path)
    try:
        deadline = time.monotonic() + 15
        while registry.current("cancer", "production", store=store) != "1.0.1":
            assert time.monotonic() < deadline, server.client.get("/health").json()
            time.sleep(0.1)
        health = server.client.get("/health").json()
        deadline = time.monotonic() + 5
        while health["version"] != "1.0.1":  # the swap follows the alias move in the same control round
            assert time.monotonic() < deadline, health
            time.sleep(0.05)
            health = server.client.get("/health").json()
        assert "challenger" not in health and health["canary"]["promoted"] is True and health["canary"]["percent"] == 0
        assert any(e["kind"] == "promote" and "production: 1.0.0 -> 1.0.1" in e["detail"] for e in health["events"])
        r = server.score(records(frame, range(20)), ids=[f"new{j}" for j in range(20)])
        assert r.json()["versions"] == ["1.0.1"] * 20 and r.headers["X-Model-Version"] == "1.0.1"
    finally:
        server.stop()
    move = registry.history("cancer", alias="production", store=store)[-1]
    assert (move.action, move.by, move.to_version) == ("promote", "nbtk serve", "1.0.1")
    assert move.reason.startswith("canary plan completed: step 100% passed the SLA on ")
    assert registry.current("cancer", "candidate", store=store) == "1.0.1"
    log = open_store().prediction_log("cancer")
    assert (log.loc[log["ok"] & log["row_id"].str.startswith("new"), "arm"] == "champion").all()  # answered as the champion


@pytest.mark.parametrize("case", ["no-promote", "gate-refuses"])
def test_a_completed_plan_without_promotion_holds_the_challenger_at_100_percent(project, store, tmp_path, case):
    """``--no-promote``, or a promotion the gates refuse (the run's roc_auc 0.97 is below the
    project's SLA): production stays where it was, the challenger keeps answering every row."""
    extra = ("--no-promote",) if case == "no-promote" else ()
    server, frame = _walk_plan(project, store, tmp_path, *extra,
                               sla="min.roc_auc = 0.99" if case == "gate-refuses" else None)
    try:
        kind, text = ("plan-completed", "--no-promote") if case == "no-promote" else ("promotion-refused", "roc_auc")
        deadline = time.monotonic() + 15
        while not any(e["kind"] == kind and text in e["detail"] for e in server.client.get("/health").json()["events"]):
            assert time.monotonic() < deadline, server.client.get("/health").json()
            time.sleep(0.1)
        time.sleep(1.5)  # another control round: still not promoted
        health = server.client.get("/health").json()
        assert health["canary"]["promoted"] is False and health["canary"]["percent"] == 100
        assert set(server.score(records(frame, range(20)), ids=[f"new{j}" for j in range(20)]).json()["versions"]) == {"1.0.1"}
    finally:
        server.stop()
    assert registry.current("cancer", "production", store=store) == "1.0.0"
    assert registry.history("cancer", alias="production", store=store)[-1].to_version == "1.0.0"


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
