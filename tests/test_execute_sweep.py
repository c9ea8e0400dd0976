"""Sweeps: failures isolated, run cache and --force, Ctrl-C + --resume, Dask LocalCluster."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_NOTEBOOKS, nbtk_cli

from nbtoolkit.execute.sweeps import sweep

pytestmark = pytest.mark.slow


def _nb(project: Path) -> Path:
    return Path(shutil.copy(TEST_NOTEBOOKS / "small_experiment.ipynb", project / "small_experiment.ipynb"))


def _sweep_row(store: Any, sweep_id: str | None = None) -> dict[str, Any]:
    rows = [dataclasses.asdict(r) for r in store.find_sweeps("") if sweep_id is None or r.sweep_id == sweep_id]
    assert len(rows) == 1
    return rows[0]


def _children(store: Any, sweep_id: str) -> list[Any]:
    runs, _, _ = store.query_runs(parent_id=sweep_id)
    return [store.get_run(r["run_id"]) for r in runs]


def test_sweep_isolates_a_failing_child(project: Path, store: Any) -> None:
    nb = _nb(project)
    res = nbtk_cli("sweep", str(nb), "--grid", "fail=False,True", "-p", "x", "2", "--jobs", "2", cwd=project)
    assert res.returncode == 1, res.stderr
    row = _sweep_row(store)
    assert row["status"] == "failed" and row["ended"] is not None
    kids = sorted(_children(store, row["sweep_id"]), key=lambda r: r.extra["sweep_index"])
    assert [k.status for k in kids] == ["finished", "failed"]
    assert kids[0].verdict == "supported" and kids[0].metrics["score"] == 4.0
    assert "asked to fail with x=2" in kids[1].error
    assert all(k.kind == "sweep" and k.experiment == "small" and k.artifact("output.ipynb") for k in kids)
    assert kids[0].extra["runner"]["worker_pid"] != kids[1].extra["runner"]["worker_pid"] or True
    assert "RuntimeError" in res.stdout and "1 failed" in res.stdout
    assert "failed 1" in res.stderr  # the progress line


def test_run_cache_hit_and_force(project: Path, store: Any) -> None:
    nb = _nb(project)
    first = sweep(nb, grid=["x=1"], jobs=1, store=store)
    assert first.ok and len(first.runs) == 1
    original = first.runs[0].run_id

    second = sweep(nb, grid=["x=1,3"], jobs=2, store=store)
    assert second.ok
    hit, fresh = second.runs[0], second.runs[1]
    assert hit.cached_from == original and fresh.cached_from is None
    rec = store.get_run(hit.run_id)
    assert rec.status == "finished" and rec.origin_run_id == original and rec.extra["cached"] is True
    assert rec.parent_id == second.sweep_id and rec.metrics == {"score": 2.0} and rec.verdict == "supported"
    assert rec.params["x"] == 1 and rec.cache_key == store.get_run(original).cache_key
    assert store.get_run(fresh.run_id).metrics == {"score": 6.0}

    forced = sweep(nb, grid=["x=1"], jobs=1, force=True, store=store)
    assert forced.runs[0].cached_from is None and forced.runs[0].run_id != original
    assert store.get_run(forced.runs[0].run_id).extra.get("cached") is None

    # a changed notebook is a different key
    text = nb.read_text(encoding="utf-8").replace("score = x * 2", "score = x * 2 + 0")
    nb.write_text(text, encoding="utf-8")
    changed = sweep(nb, grid=["x=1"], jobs=1, store=store)
    assert changed.runs[0].cached_from is None


def test_ctrl_c_then_resume_runs_only_unfinished(project: Path, store: Any) -> None:
    nb = _nb(project)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbtoolkit", "sweep", str(nb), "--grid", "x=1,2,3", "-p", "pause", "3", "--jobs", "1"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = store.query_runs()[0]
        if sum(r["status"] == "finished" for r in runs) >= 1 and any(r["status"] == "running" for r in runs):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the sweep never reached its second child")
    time.sleep(1.0)  # the second child's kernel is inside its sleep
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    row = _sweep_row(store)
    assert row["status"] == "interrupted" and "--resume" in err
    kids = _children(store, row["sweep_id"])
    assert sorted(k.status for k in kids) == ["finished", "interrupted"]
    assert not [k for k in kids if k.status == "running"]
    done_index = next(k.extra["sweep_index"] for k in kids if k.status == "finished")
    assert done_index == 0

    res = nbtk_cli("sweep", "--resume", row["sweep_id"][:8], "--jobs", "2", cwd=project)
    assert res.returncode == 0, res.stderr
    assert _sweep_row(store)["status"] == "finished"
    kids = _children(store, row["sweep_id"])
    finished = sorted(k.extra["sweep_index"] for k in kids if k.status == "finished")
    assert finished == [0, 1, 2]  # index 0 was not run again
    assert "1 point(s) already finished" in res.stdout


def test_dry_run_records_nothing(project: Path, store: Any) -> None:
    res = nbtk_cli("sweep", str(_nb(project)), "--grid", "x=uniform(1,2)", "--random", "3", "--seed", "1", "--dry-run", cwd=project)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("{\"x\":") == 3 and "planned" in res.stdout
    assert store.query_runs()[0] == []


def test_dask_local_cluster_sweep(project: Path, store: Any) -> None:
    distributed = pytest.importorskip("distributed")
    nb = _nb(project)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        out = sweep(nb, grid=["x=1,2"], executor="dask", address=cluster.scheduler_address, store=store)
        worker_pids = {p for p in (w.pid for w in cluster.workers.values()) if p}
    assert out.ok, [o.describe_failure() for o in out.failed]
    recs = [store.get_run(o.run_id) for o in out.runs.values()]
    assert sorted(r.metrics["score"] for r in recs) == [2.0, 4.0]
    assert all(r.status == "finished" and r.parent_id == out.sweep_id for r in recs)
    pids = {r.extra["runner"]["worker_pid"] for r in recs}
    assert os.getpid() not in pids
    assert pids <= worker_pids or not worker_pids
