"""Live canary in ``nbtk serve``: deterministic routing, automatic halt and rollback, flags, alias moves."""

from __future__ import annotations

import hashlib
import time

import pytest
from _faulty import Faulty
from _serve import Server, export_model, records
from _stability import demo_models, set_config
from conftest import nbtk_cli

from nbtoolkit import registry
from nbtoolkit.stability.promotion import promote
from nbtoolkit.store import open_store

pytestmark = pytest.mark.slow

TRUST = ("--trust-type", "_faulty.Faulty")


def routed_by_hand(key: str, pct: float, salt: str = "nbtoolkit") -> bool:
    """The documented routing rule, written independently of the implementation."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) % 10000 < pct * 100


def release(store, tmp_path, challenger_obj) -> None:
    """production -> 1.0.0 (logistic); candidate -> 1.0.0 then 1.0.1 (the challenger)."""
    m = demo_models()
    export_model(tmp_path / "bundles", m["lr"], model="cancer", version="1.0.0")
    export_model(tmp_path / "bundles", challenger_obj, model="cancer", version="1.0.1")
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    promote("cancer", "1.0.0", to="candidate", by="ana", reason="first", store=store)
    promote("cancer", "1.0.1", to="candidate", by="ana", reason="try the gbm", store=store)


def test_canary_share_is_the_hash_rule_and_deterministic_per_key(project, store, tmp_path):
    m = demo_models()
    release(store, tmp_path, m["gb"])
    frame = m["frame"]
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--percent", "30", "--key", "uid")
    try:
        seen: dict[str, str] = {}
        for start in range(0, 240, 12):
            rows = range(start, start + 12)
            recs = [{**r, "uid": frame["uid"].iloc[i]} for r, i in zip(records(frame, rows), rows, strict=True)]
            r = server.score(recs)
            assert r.status_code == 200
            for i, version in zip(rows, r.json()["versions"], strict=True):
                seen[frame["uid"].iloc[i]] = version
            assert set(r.headers["X-Model-Version"].split(",")) == set(r.json()["versions"])
        expected = {k: "1.0.1" if routed_by_hand(k, 30) else "1.0.0" for k in seen}
        assert seen == expected
        share = sum(v == "1.0.1" for v in seen.values()) / len(seen)
        assert 0.2 < share < 0.4
        # the same keys again: the same versions (the key column is not a model input)
        again = [{**r, "uid": frame["uid"].iloc[i]} for r, i in zip(records(frame, range(12)), range(12), strict=True)]
        assert server.score(again).json()["versions"] == [seen[frame["uid"].iloc[i]] for i in range(12)]
        health = server.client.get("/health").json()
        assert health["canary"]["percent"] == 30 and health["canary"]["halt"] is None
    finally:
        server.stop()
    log = open_store().prediction_log("cancer")
    assert set(log["arm"]) == {"champion", "challenger"}
    assert (log.loc[log["arm"] == "challenger", "version"] == "1.0.1").all()
    assert log["key"].iloc[:12].tolist() == frame["uid"].iloc[:12].tolist()  # logged in request order


def _drive_until(server, frame, done, *, timeout: float):
    """Send one-row requests (keys u0000, u0001, ...) until ``done()``; return (statuses, seconds)."""
    statuses, t0, i = [], time.monotonic(), 0
    while not done():
        row = i % len(frame)
        r = server.score(records(frame, [row]), ids=[f"k{i}"])
        statuses.append(r.status_code)
        assert r.json()["predictions"][0] in (0, 1), r.text
        i += 1
        assert time.monotonic() - t0 < timeout, "the canary did not halt in time"
    return statuses, time.monotonic() - t0


def test_a_challenger_that_starts_raising_is_halted_and_rolled_back(project, backend, tmp_path):
    """On SQLite and PostgreSQL: the rollback goes through the registry of the server's store."""
    store = backend
    m = demo_models()
    trigger = tmp_path / "break-now"
    release(store, tmp_path, Faulty(m["gb"], "raise", str(trigger)))
    set_config(project, "\n[tool.nbtoolkit.sla]\nmax.error_rate = 0.05\n\n[tool.nbtoolkit.serve]\nmin_rows = 10\n")
    frame = m["frame"]
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--percent", "50", *TRUST)
    try:
        for i in range(40):  # healthy challenger first
            assert server.score(records(frame, [i]), ids=[f"k{i}"]).status_code == 200
        assert server.client.get("/health").json()["canary"]["halt"] is None
        trigger.write_text("")  # inject the breach
        t0 = time.monotonic()
        statuses, _ = _drive_until(
            server, frame, lambda: registry.current("cancer", "candidate", store=store) == "1.0.0", timeout=30)
        to_rollback = time.monotonic() - t0
        assert set(statuses) == {200}  # no client request failed
        health = server.client.get("/health").json()
        assert health["canary"]["percent"] == 0 and "error_rate" in health["canary"]["halt"]["reason"]
        versions = {server.score(records(frame, [j]), ids=[f"k{j}"]).json()["versions"][0] for j in range(30)}
        assert versions == {"1.0.0"}
    finally:
        server.stop()
    assert to_rollback < 15
    hist = nbtk_cli("history", "cancer", "--alias", "candidate")
    assert hist.returncode == 0
    last = hist.stdout.strip().splitlines()[-1]
    assert "rollback" in last and "1.0.1 -> 1.0.0" in last and "by nbtk serve" in last and "error_rate" in last
    log = open_store().prediction_log("cancer")
    failed = log[~log["ok"]]
    assert len(failed) > 0 and (failed["arm"] == "challenger").all()
    assert failed["error"].str.contains("challenger broken on purpose").all()
    # every failed challenger row was answered again by the champion
    answered = log[log["ok"]]
    assert set(failed["row_id"]) <= set(answered.loc[answered["arm"] == "champion", "row_id"])


def test_a_slow_challenger_breaches_latency_and_is_halted(project, store, tmp_path):
    m = demo_models()
    release(store, tmp_path, Faulty(m["gb"], "sleep", None, delay=0.3))
    set_config(project, "\n[tool.nbtoolkit.sla]\nmax.latency_p95_ms = 100\n\n[tool.nbtoolkit.serve]\nmin_rows = 5\n")
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--percent", "50", *TRUST)
    try:
        statuses, _ = _drive_until(
            server, m["frame"], lambda: registry.current("cancer", "candidate", store=store) == "1.0.0", timeout=60)
        assert set(statuses) == {200}
        halt = server.client.get("/health").json()["canary"]["halt"]
        assert "latency_p95_ms" in halt["reason"]
    finally:
        server.stop()
    moves = registry.history("cancer", alias="candidate", store=store)
    assert moves[-1].action == "rollback" and "latency_p95_ms" in moves[-1].reason


def test_kill_switch_and_alias_moves_take_effect_without_restart(project, store, tmp_path):
    m = demo_models()
    release(store, tmp_path, m["gb"])
    export_model(tmp_path / "bundles", m["gb"], model="cancer", version="1.0.2")
    frame = m["frame"]
    server = Server(project, "cancer@production", "--canary", "cancer@candidate", "--percent", "100")
    pid = server.proc.pid

    def versions() -> set[str]:
        return set(server.score(records(frame, range(10)), ids=[f"k{i}" for i in range(10)]).json()["versions"])

    def wait_for(expected: set[str]) -> None:
        deadline = time.monotonic() + 15
        while versions() != expected:
            assert time.monotonic() < deadline, f"still {versions()}, expected {expected}"
            time.sleep(0.2)

    try:
        assert versions() == {"1.0.1"}
        set_config(project, "\n[tool.nbtoolkit.flags.kill]\ncanary = true\n")
        wait_for({"1.0.0"})
        p = project / "pyproject.toml"
        p.write_text(p.read_text(encoding="utf-8").replace("canary = true", "canary = false"), encoding="utf-8")
        wait_for({"1.0.1"})
        promote("cancer", "1.0.2", to="candidate", by="ana", reason="newer gbm", store=store)
        wait_for({"1.0.2"})
        health = server.client.get("/health").json()
        assert any(e["kind"] == "reload" and "1.0.1 -> 1.0.2" in e["detail"] for e in health["events"])
        assert server.proc.pid == pid and server.proc.poll() is None
    finally:
        server.stop()
