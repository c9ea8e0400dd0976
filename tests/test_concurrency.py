"""Many processes writing runs to one store at the same time (SQLite file and PostgreSQL server)."""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from pathlib import Path
from typing import Any

import pytest

WORKERS = 8
RUNS_PER_WORKER = 25
STEPS = 20


def _worker(args: tuple[str, str, int]) -> tuple[list[str], list[str]]:
    """Record RUNS_PER_WORKER runs; return (run ids, error tracebacks)."""
    root, location, worker = args
    os.chdir(root)
    os.environ["NBTOOLKIT_STORE"] = location
    import nbtoolkit as nbtk

    ids: list[str] = []
    errors: list[str] = []
    payload = Path(root) / f"payload-{worker}.txt"
    for i in range(RUNS_PER_WORKER):
        try:
            with nbtk.start_run("concurrent", success="score >= 0", params={"worker": worker, "i": i}) as run:
                nbtk.log(score=worker * 1000 + i)
                for step in range(STEPS):
                    nbtk.log_metric("loss", float(step), step=step)
                payload.write_text(f"worker {worker} run {i}", encoding="utf-8")
                nbtk.log_artifact(payload, "payload.txt")
            ids.append(run.run_id)
        except BaseException:  # noqa: BLE001 - reported to the test
            errors.append(traceback.format_exc())
    return ids, errors


@pytest.mark.slow
def test_eight_processes_write_two_hundred_runs(project: Path, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    store = backend
    import types

    if getattr(sys.modules["__main__"], "__spec__", None) is None and not hasattr(sys.modules["__main__"], "__file__"):
        # an in-process IPython shell (another test) may have replaced __main__
        monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    ctx = mp.get_context("spawn")
    with ctx.Pool(WORKERS) as pool:
        results = pool.map(_worker, [(str(project), store.location, w) for w in range(WORKERS)])
    errors = [e for _, errs in results for e in errs]
    assert errors == []
    ids = [rid for got, _ in results for rid in got]
    assert len(ids) == len(set(ids)) == WORKERS * RUNS_PER_WORKER

    records = store.get_runs(ids)
    assert len(records) == WORKERS * RUNS_PER_WORKER
    for rec in records:
        w, i = rec.params["worker"], rec.params["i"]
        assert rec.status == "finished" and rec.verdict == "supported"
        assert rec.metrics == {"score": float(w * 1000 + i), "loss": float(STEPS - 1)}
        assert [s for s, _ in rec.metric_history("loss")] == list(range(STEPS))
        art = rec.artifact("payload.txt")
        assert store.artifacts.read_bytes(art.digest) == f"worker {w} run {i}".encode()
    assert store.query_runs(status="running")[0] == []
    assert {(r.params["worker"], r.params["i"]) for r in records} == {
        (w, i) for w in range(WORKERS) for i in range(RUNS_PER_WORKER)
    }
