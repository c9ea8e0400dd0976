"""Team store figures: many processes recording runs into one store at the same time.

    python benchmarks/bench_team.py                        # 32 processes x 100 runs, PostgreSQL
    python benchmarks/bench_team.py --backend sqlite       # the same into one SQLite file
    python benchmarks/bench_team.py --url postgresql://user@host/db --procs 8 --runs 25

Without ``--url`` a throw-away PostgreSQL server is started from the distribution's binaries
(as the tests do). Each run records 5 parameters, 20 metric steps, one final metric and one
artifact. Afterwards every run, parameter, metric step and artifact is checked, and every error
a process saw is counted (goal: none; no lock or serialization error reaches a user).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

STEPS = 20


def _worker(args: tuple[str, str, int, int]) -> tuple[list[str], list[str], float]:
    root, location, worker, runs = args
    os.chdir(root)
    os.environ["NBTOOLKIT_STORE"] = location
    os.environ["NBTOOLKIT_ARTIFACTS"] = str(Path(root) / "shared-artifacts")  # a server store names its blobs' place
    import nbtoolkit as nbtk

    ids: list[str] = []
    errors: list[str] = []
    payload = Path(root) / f"payload-{worker}.txt"
    start = time.perf_counter()
    for i in range(runs):
        try:
            params = {"worker": worker, "i": i, "lr": 0.01 * (i + 1), "depth": i % 7, "model": "gbm"}
            with nbtk.start_run("team-bench", params=params) as run:
                for step in range(STEPS):
                    nbtk.log_metric("loss", 1.0 / (step + 1), step=step)
                nbtk.log(score=worker * 1000 + i)
                payload.write_text(f"worker {worker} run {i}", encoding="utf-8")
                nbtk.log_artifact(payload, "payload.txt")
            ids.append(run.run_id)
        except BaseException:  # noqa: BLE001 - counted and shown
            errors.append(traceback.format_exc(limit=3))
    return ids, errors, time.perf_counter() - start


def _verify(store: Any, ids: list[str], procs: int, runs: int) -> list[str]:
    problems = []
    records = store.get_runs(ids)
    if len(records) != procs * runs:
        problems.append(f"{len(records)} runs found, {procs * runs} expected")
    for rec in records:
        if len(rec.params) != 5 or rec.status != "finished":
            problems.append(f"run {rec.run_id[:8]}: {len(rec.params)} params, status {rec.status}")
        if [s for s, _ in rec.metric_history("loss")] != list(range(STEPS)):
            problems.append(f"run {rec.run_id[:8]}: metric steps incomplete")
        art = rec.artifact("payload.txt")
        if art is None or not store.artifacts.exists(art.digest):
            problems.append(f"run {rec.run_id[:8]}: artifact missing")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--procs", type=int, default=32)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--url", help="an existing PostgreSQL database (default: start a throw-away server)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _servers import postgres_server  # the tests' server helper

    from nbtoolkit.store import Store

    with tempfile.TemporaryDirectory(prefix="nbtk-team-") as tmp, _server(args, postgres_server) as url:
        root = Path(tmp)
        location = url if args.backend == "postgresql" else str(root / ".nbtoolkit")
        store = Store(root / ".nbtoolkit", url=url if args.backend == "postgresql" else None, artifacts=str(root / "shared-artifacts"))
        ctx = mp.get_context("spawn")
        start = time.perf_counter()
        with ctx.Pool(args.procs) as pool:
            results = pool.map(_worker, [(tmp, location, w, args.runs) for w in range(args.procs)])
        wall = time.perf_counter() - start
        ids = [i for got, _, _ in results for i in got]
        errors = [e for _, errs, _ in results for e in errs]
        problems = _verify(store, ids, args.procs, args.runs)
        total = args.procs * args.runs
        print(f"backend {args.backend}: {args.procs} processes x {args.runs} runs = {total} runs")
        print(f"  wall {wall:.1f} s, {len(ids) / wall:.1f} runs/s, {1000 * wall / max(len(ids), 1):.1f} ms per run overall")
        print(f"  median per-process time {sorted(t for _, _, t in results)[len(results) // 2]:.1f} s")
        print(f"  runs recorded {len(ids)}/{total}, errors surfaced {len(errors)}, verification problems {len(problems)}")
        for text in (errors + problems)[:5]:
            print("   ", text.strip().splitlines()[-1])
        store.dispose()


class _server:
    """The database URL: ``--url``, a throw-away PostgreSQL server, or none for SQLite."""

    def __init__(self, args: argparse.Namespace, factory: Any) -> None:
        self.args, self.factory, self.cm = args, factory, None

    def __enter__(self) -> str | None:
        if self.args.backend == "sqlite" or self.args.url:
            return None if self.args.backend == "sqlite" else self.args.url
        self.cm = self.factory()
        server = self.cm.__enter__()
        return server.new_database()

    def __exit__(self, *exc: Any) -> None:
        if self.cm is not None:
            self.cm.__exit__(*exc)


if __name__ == "__main__":
    main()
