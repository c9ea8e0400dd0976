"""Store benchmarks: recording and listing runs on SQLite and PostgreSQL, side by side with MLflow.

    python benchmarks/bench_store.py                                  # both backends, 2,000 and 10,000 runs
    python benchmarks/bench_store.py --backends sqlite --sizes 2000 --reps 5
    python benchmarks/bench_store.py --procs 4 --record 200

Per backend, nbtoolkit and MLflow write to the same kind of database: two SQLite files in one
folder, or two databases (one for each tool) of ONE throw-away PostgreSQL server started from
the distribution's binaries as the tests start it. MLflow uses its SQLAlchemy tracking store
(``postgresql+psycopg2://…`` / ``sqlite:///…``). Every run has 10 parameters and 5 metrics.

(1) Per-run recording cost, in one process, A/B interleaved run by run (medians): nbtoolkit
    ``with nbtk.start_run(exp, params=...): nbtk.log(**metrics)`` vs MLflow
    ``with mlflow.start_run(): mlflow.log_params(...); mlflow.log_metrics(...)``, each tool's
    ordinary user API, into stores of their own (not the listing stores).
(2) Populating the listing stores to 2,000 then 10,000 runs through each tool's client, with
    ``--procs`` processes per tool at a time: nbtoolkit the same ``start_run`` + ``log`` as (1);
    MLflow ``MlflowClient.create_run`` + one ``log_batch`` (10 params, 5 metrics) +
    ``set_terminated`` per run -- its fastest client path for whole runs. No row is written
    behind either tool's back.
(3) Listing, warm (in this process, interleaved): ``nbtk.runs()`` right after a change (the
    SQLite listing cache cleared, as any commit does) and on an unchanged store, vs
    ``mlflow.search_runs(experiment_ids=[exp], max_results=100_000)`` -- MLflow's default
    ``max_results``, which it reads in pages of 10,000 runs (a 10,000-run experiment takes a
    second, empty page). PostgreSQL listings are never cached (no cheap change counter): warm is
    rebuilt there.
(4) Listing, cold: fresh processes, interleaved (nbtoolkit twice, MLflow, ``import pandas``):
    - first call after import: the call timed inside the process after ``import nbtoolkit``
      (which loads neither pandas nor SQLAlchemy) / ``import mlflow`` + ``set_tracking_uri``
      (``import mlflow`` has already loaded pandas, numpy and pyarrow; not SQLAlchemy); and
      the same for nbtoolkit after ``import nbtoolkit, pandas`` (what ``import mlflow`` loaded);
    - whole process: the same processes timed from outside, start to exit
      (``python -c 'import nbtoolkit as nbtk; nbtk.runs()'`` vs
      ``python -c 'import mlflow; mlflow.search_runs(...)'``), with ``python -c 'import pandas'``
      as the floor of any tool that returns a DataFrame.

Needs the ``bench`` and ``team`` extras (MLflow, psycopg2) and PostgreSQL's server binaries.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _timing import interleaved_medians

PARAMS = {f"p{i}": i * 0.1 for i in range(10)}
METRICS = {f"m{i}": 0.5 + i / 100 for i in range(5)}
EXPERIMENT = "bench-list"
MAX_RESULTS = 100_000  # mlflow.search_runs' default max_results

_COLD_NBTK = """
import sys, time
import nbtoolkit as nbtk
if sys.argv[2:] == ["pandas"]:  # what `import mlflow` has already loaded
    import pandas  # noqa: F401
t = time.perf_counter()
frame = nbtk.runs()
took = time.perf_counter() - t
assert len(frame) == int(sys.argv[1]) and "metrics.m4" in frame.columns, len(frame)
assert "sqlalchemy" not in sys.modules, "the listing did not serve: the full store was opened"
print(took)
"""

_COLD_MLFLOW = """
import sys, time, warnings
warnings.filterwarnings("ignore")
import mlflow
mlflow.set_tracking_uri(sys.argv[2])
t = time.perf_counter()
frame = mlflow.search_runs(experiment_ids=[sys.argv[3]], max_results=100_000)
took = time.perf_counter() - t
assert len(frame) == int(sys.argv[1]) and "metrics.m4" in frame.columns, len(frame)
print(took)
"""


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def quiet() -> None:
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)


# ----------------------------------------------------------------------------- places
class Backend:
    """Where each tool writes on one backend: locations of the record and listing stores."""

    def __init__(self, name: str, root: Path, server: Any) -> None:
        self.name, self.root, self.server = name, root, server
        self.artifacts = str(root / "artifacts")

    def nbtk_location(self, tag: str) -> str:
        if self.server is None:
            return str(self.root / f"nbtk-{tag}")
        return self._database(f"nbtk_{tag}")

    def mlflow_uri(self, tag: str) -> str:
        if self.server is None:
            return f"sqlite:///{self.root / f'mlflow-{tag}.db'}"
        return self._database(f"mlflow_{tag}")

    def _database(self, name: str) -> str:
        self.server.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.server.admin(f'CREATE DATABASE "{name}"')
        return str(self.server.url(name))


def nbtk_env(location: str, artifacts: str) -> dict[str, str]:
    return {**os.environ, "NBTOOLKIT_STORE": location, "NBTOOLKIT_ARTIFACTS": artifacts}


def mlflow_experiment(uri: str, root: Path) -> str:
    import mlflow

    mlflow.set_tracking_uri(uri)  # creates (migrates) MLflow's schema once, before any worker starts
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    return exp.experiment_id if exp else mlflow.create_experiment(EXPERIMENT, artifact_location=str(root / "mlruns"))


@contextmanager
def project(root: Path) -> Iterator[None]:
    """A project folder (nbtoolkit records the git state of the working directory)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "b"\nversion = "0"\n\n[tool.nbtoolkit]\n')
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, env=env)
    old = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old)


# ----------------------------------------------------------------------------- (1) recording
def bench_record(backend: Backend, runs: int) -> dict[str, float]:
    """Median seconds per recorded run, nbtoolkit and MLflow interleaved run by run."""
    import mlflow

    import nbtoolkit as nbtk

    os.environ.update(nbtk_env(backend.nbtk_location("record"), backend.artifacts))
    exp = mlflow_experiment(backend.mlflow_uri("record"), backend.root)

    def ours(i: int) -> None:
        with nbtk.start_run("bench-record", params={k: v * i for k, v in PARAMS.items()}):
            nbtk.log(**{k: v * i for k, v in METRICS.items()})

    def theirs(i: int) -> None:
        with mlflow.start_run(experiment_id=exp):
            mlflow.log_params({k: v * i for k, v in PARAMS.items()})
            mlflow.log_metrics({k: v * i for k, v in METRICS.items()})

    for i in range(5):  # warm-up: imports, connections, the environment lock
        ours(i)
        theirs(i)
    times: dict[str, list[float]] = {"nbtk": [], "mlflow": []}
    for i in range(runs):
        for label, fn in (("nbtk", ours), ("mlflow", theirs)):
            t = time.perf_counter()
            fn(i)
            times[label].append(time.perf_counter() - t)
    del os.environ["NBTOOLKIT_STORE"]
    return {k: statistics.median(v) for k, v in times.items()}


# ----------------------------------------------------------------------------- (2) populate
def _nbtk_worker(args: tuple[str, dict[str, str], int, int]) -> float:
    root, env, first, count = args
    os.chdir(root)
    os.environ.update(env)
    import nbtoolkit as nbtk

    t = time.perf_counter()
    for i in range(first, first + count):
        with nbtk.start_run(EXPERIMENT, params={k: v * i for k, v in PARAMS.items()}):
            nbtk.log(**{k: v * i for k, v in METRICS.items()})
    return time.perf_counter() - t


def _mlflow_worker(args: tuple[str, str, int, int]) -> float:
    uri, exp, first, count = args
    quiet()
    import mlflow
    from mlflow.entities import Metric, Param

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    t = time.perf_counter()
    for i in range(first, first + count):
        run = client.create_run(exp)
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            params=[Param(k, str(v * i)) for k, v in PARAMS.items()],
            metrics=[Metric(k, v * i, now, 0) for k, v in METRICS.items()],
        )
        client.set_terminated(run.info.run_id)
    return time.perf_counter() - t


def populate(backend: Backend, location: str, uri: str, exp: str, have: int, want: int, procs: int) -> dict[str, float]:
    """Add runs ``have..want`` to both listing stores; wall seconds per tool."""
    add = want - have
    shares = [add // procs + (1 if w < add % procs else 0) for w in range(procs)]
    starts = [have + sum(shares[:w]) for w in range(procs)]
    env = {"NBTOOLKIT_STORE": location, "NBTOOLKIT_ARTIFACTS": backend.artifacts}
    ctx = mp.get_context("spawn")
    out = {}
    with ctx.Pool(procs) as pool:
        t = time.perf_counter()
        pool.map(_nbtk_worker, [(str(backend.root), env, s, c) for s, c in zip(starts, shares, strict=True)])
        out["nbtk"] = time.perf_counter() - t
        t = time.perf_counter()
        pool.map(_mlflow_worker, [(uri, exp, s, c) for s, c in zip(starts, shares, strict=True)])
        out["mlflow"] = time.perf_counter() - t
    return out


# ----------------------------------------------------------------------------- (3) warm listing
def bench_warm(backend: Backend, location: str, uri: str, exp: str, n: int, reps: int) -> dict[str, float]:
    import mlflow

    import nbtoolkit as nbtk
    from nbtoolkit.store import Store

    store = Store(backend.root / "nbtk-list", url=None if backend.server is None else location)
    mlflow.set_tracking_uri(uri)
    frame = nbtk.runs(store=store)
    mframe = mlflow.search_runs(experiment_ids=[exp], max_results=MAX_RESULTS)
    assert len(frame) == n and "metrics.m4" in frame.columns and "params.p9" in frame.columns, len(frame)
    assert len(mframe) == n and "metrics.m4" in mframe.columns and "params.p9" in mframe.columns, len(mframe)

    def rebuilt() -> Any:
        store.listing_cache.clear()  # as after any commit
        return nbtk.runs(store=store)

    out = interleaved_medians(
        {
            "nbtk": rebuilt,
            "nbtk_unchanged": lambda: nbtk.runs(store=store),
            "mlflow": lambda: mlflow.search_runs(experiment_ids=[exp], max_results=MAX_RESULTS),
        },
        reps,
    )
    store.dispose()
    return out


# ----------------------------------------------------------------------------- (4) cold listing
def bench_cold(backend: Backend, location: str, uri: str, exp: str, n: int, reps: int) -> dict[str, float]:
    """Fresh processes, interleaved: in-process first-call time and whole-process wall time."""
    env_nbtk = nbtk_env(location, backend.artifacts)
    cmds = {
        "nbtk": ([sys.executable, "-c", _COLD_NBTK, str(n)], env_nbtk),
        "nbtk_pandas": ([sys.executable, "-c", _COLD_NBTK, str(n), "pandas"], env_nbtk),
        "mlflow": ([sys.executable, "-c", _COLD_MLFLOW, str(n), uri, exp], dict(os.environ)),
        "pandas": ([sys.executable, "-c", "import pandas"], dict(os.environ)),
    }
    first: dict[str, list[float]] = {"nbtk": [], "nbtk_pandas": [], "mlflow": []}
    whole: dict[str, list[float]] = {k: [] for k in cmds}
    for rep in range(reps + 1):
        for label, (cmd, env) in cmds.items():
            t = time.perf_counter()
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=backend.root).stdout
            wall = time.perf_counter() - t
            if rep == 0:
                continue  # warm-up round: the page cache holds the libraries after it
            whole[label].append(wall)
            if label in first:
                first[label].append(float(out.strip().splitlines()[-1]))
    res = {f"{k}_first": statistics.median(v) for k, v in first.items()}
    res.update({f"{k}_whole": statistics.median(v) for k, v in whole.items()})
    return res


# ----------------------------------------------------------------------------- main
def run_backend(name: str, root: Path, server: Any, sizes: list[int], reps: int, procs: int, record: int) -> list[tuple[str, str, str, float]]:
    backend = Backend(name, root, server)
    label = "SQLite" if server is None else "PostgreSQL"
    rows: list[tuple[str, str, str, float]] = []
    with project(root):
        print(f"[{label}] (1) recording {record} runs each, interleaved ...", flush=True)
        r = bench_record(backend, record)
        rows.append((f"{label}: recording one run (10 params, 5 metrics)", fmt(r["nbtk"]), fmt(r["mlflow"]), r["nbtk"] / r["mlflow"]))
        location = backend.nbtk_location("list")
        uri = backend.mlflow_uri("list")
        exp = mlflow_experiment(uri, root)
        have = 0
        for n in sizes:
            print(f"[{label}] (2) populating to {n:,} runs with {procs} processes per tool ...", flush=True)
            p = populate(backend, location, uri, exp, have, n, procs)
            print(f"    {n - have:,} runs added: nbtoolkit {p['nbtk']:.0f} s, MLflow {p['mlflow']:.0f} s (wall)", flush=True)
            have = n
            print(f"[{label}] (3) warm listing, {n:,} runs ...", flush=True)
            w = bench_warm(backend, location, uri, exp, n, reps)
            print(f"[{label}] (4) cold listing, {n:,} runs ...", flush=True)
            c = bench_cold(backend, location, uri, exp, n, reps)
            k = f"{label}, {n:,} runs"
            if server is None:
                rows.append((f"{k}: runs() after a change, warm", fmt(w["nbtk"]), fmt(w["mlflow"]), w["nbtk"] / w["mlflow"]))
                rows.append((f"{k}: runs() unchanged store, warm", fmt(w["nbtk_unchanged"]), fmt(w["mlflow"]), w["nbtk_unchanged"] / w["mlflow"]))
            else:
                warm = min(w["nbtk"], w["nbtk_unchanged"])  # the same work on PostgreSQL (never cached)
                rows.append((f"{k}: runs(), warm", fmt(warm), fmt(w["mlflow"]), warm / w["mlflow"]))
            rows.append((f"{k}: first call after import", fmt(c["nbtk_first"]), fmt(c["mlflow_first"]), c["nbtk_first"] / c["mlflow_first"]))
            rows.append((f"{k}: same, pandas imported first (as by import mlflow)", fmt(c["nbtk_pandas_first"]), fmt(c["mlflow_first"]), c["nbtk_pandas_first"] / c["mlflow_first"]))
            rows.append((f"{k}: whole process", fmt(c["nbtk_whole"]), fmt(c["mlflow_whole"]), c["nbtk_whole"] / c["mlflow_whole"]))
            rows.append((f"{k}: floor, python -c 'import pandas'", fmt(c["pandas_whole"]), fmt(c["mlflow_whole"]), c["pandas_whole"] / c["mlflow_whole"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--sizes", default="2000,10000", help="listing sizes, ascending (runs are added, never rewritten)")
    parser.add_argument("--reps", type=int, default=9, help="interleaved repetitions per listing measurement")
    parser.add_argument("--procs", type=int, default=2, help="processes per tool while populating")
    parser.add_argument("--record", type=int, default=100, help="runs per tool for the recording cost")
    args = parser.parse_args()
    quiet()
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    sizes = sorted(int(x) for x in args.sizes.split(","))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import mlflow
    from _servers import postgres_server  # the tests' server helper

    rows: list[tuple[str, str, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="nbtk-store-bench-") as tmp:
        for name in args.backends.split(","):
            root = Path(tmp) / name
            if name == "sqlite":
                rows += run_backend(name, root, None, sizes, args.reps, args.procs, args.record)
            else:
                with postgres_server() as server:
                    rows += run_backend(name, root, server, sizes, args.reps, args.procs, args.record)
    load = os.getloadavg()
    print()
    print(f"nbtoolkit store benchmarks (medians; MLflow {mlflow.__version__}; Python {sys.version.split()[0]}; "
          f"{os.cpu_count()} CPUs; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})")
    w = max(len(r[0]) for r in rows)
    head = f"{'measurement':<{w}} | {'nbtoolkit':>10} | {'MLflow':>10} | ratio"
    print(head)
    print("-" * len(head))
    for what, ours, theirs, ratio in rows:
        print(f"{what:<{w}} | {ours:>10} | {theirs:>10} | {ratio:.3f}")


if __name__ == "__main__":
    main()
