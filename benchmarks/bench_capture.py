"""Capture benchmarks: nbtoolkit vs MLflow, measured side by side in one run.

    python benchmarks/bench_capture.py            # full run (a few minutes)
    python benchmarks/bench_capture.py --quick    # fewer repetitions, 2,000 runs only

Prints a table of medians and the ratio nbtoolkit / MLflow (or pip) against each goal:

(a) ``%%experiment`` recording overhead per cell (10 params, 5 metrics) in a warm shell,
    in-process InteractiveShell and a real ipykernel, vs MLflow recording the same
    (start_run, log_params(10), log_metrics(5), end_run; sqlite backend)        goal <= 0.5x
(b) environment lock capture vs ``pip freeze``                                   goal <= 0.05x
(c) 10,000 ``log_metric`` calls with steps vs MLflow's ``log_metric``            goal <= 0.01x
    (MLflow is timed on 1,000 calls and scaled by 10)
(d) ``nbtk.runs()`` vs ``mlflow.search_runs`` over 2,000 and 10,000 runs        goal <= 0.05x
    (both stores populated by bulk SQL inserts, see populate_*): rebuilt and unchanged in a
    warm process, and the first listing in a fresh process (import + open + query), on SQLite
    or, with ``--store-url postgresql://…``, on PostgreSQL
(e) ``python -c "import nbtoolkit"`` vs ``python -c "import mlflow"``            goal <= 0.1x

Needs the ``bench`` extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _timing import interleaved_medians, median_time

PARAMS = {f"p{i}": i * 0.1 for i in range(10)}
METRICS = {f"m{i}": 0.5 + i / 100 for i in range(5)}

PLAIN_CELL = "\n".join(f"{k} = {v!r}" for k, v in PARAMS.items()) + "\n" + "\n".join(
    f"{k} = {v!r}" for k, v in METRICS.items()
)
MAGIC_CELL = (
    '%%experiment bench-cell --success "m0 >= 0.1"\n'
    + "\n".join(f"{k} = {v!r}" for k, v in PARAMS.items())
    + "\nnbtk.log("
    + ", ".join(f"{k}={v!r}" for k, v in METRICS.items())
    + ")\n"
)
MLFLOW_CELL = (
    PLAIN_CELL
    + "\nwith mlflow.start_run(experiment_id=_mlflow_exp):\n"
    + f"    mlflow.log_params({PARAMS!r})\n"
    + f"    mlflow.log_metrics({METRICS!r})\n"
)


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


@contextlib.contextmanager
def project_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="nbtk-bench-") as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        (root / "pyproject.toml").write_text('[project]\nname = "b"\nversion = "0"\n\n[tool.nbtoolkit]\n')
        (root / ".gitignore").write_text(".nbtoolkit/\nmlruns/\nmlflow.db\n")
        env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"}
        for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
            subprocess.run(["git", *cmd], cwd=root, check=True, env=env)
        old = os.getcwd()
        os.chdir(root)
        os.environ["NBTOOLKIT_STORE"] = str(root / ".nbtoolkit")
        try:
            yield root
        finally:
            os.chdir(old)


def mlflow_setup(root: Path, name: str) -> str:
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.get_experiment_by_name(name)
    return exp.experiment_id if exp else mlflow.create_experiment(name, artifact_location=str(root / "mlruns"))


# ----------------------------------------------------------------------------- (a)
def bench_cell_inprocess(root: Path, reps: int) -> dict[str, float]:
    import mlflow
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext nbtoolkit\nimport nbtoolkit as nbtk\nimport mlflow").raise_error()
    shell.user_ns["_mlflow_exp"] = mlflow_setup(root, "bench-cell")
    shell.display_pub.publish = lambda *a, **k: None  # measure recording, not the frontend
    cells = {"plain": PLAIN_CELL, "nbtk": MAGIC_CELL, "mlflow": MLFLOW_CELL}
    del mlflow
    return interleaved_medians(
        {k: (lambda c=c: shell.run_cell(c, store_history=False).raise_error()) for k, c in cells.items()}, reps, warmup=3
    )


def bench_cell_kernel(root: Path, reps: int) -> dict[str, float]:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(root))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)

        def run(code: str) -> None:
            reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"kernel cell failed: {reply['content']}")

        run(
            "%load_ext nbtoolkit\nimport nbtoolkit as nbtk\nimport mlflow, logging\n"
            "logging.getLogger('mlflow').setLevel(logging.ERROR)\n"
            f"mlflow.set_tracking_uri({'sqlite:///' + str(root / 'mlflow.db')!r})\n"
            "_mlflow_exp = mlflow.get_experiment_by_name('bench-cell').experiment_id\n"
        )
        cells = {"plain": PLAIN_CELL, "nbtk": MAGIC_CELL, "mlflow": MLFLOW_CELL}
        return interleaved_medians({k: (lambda c=c: run(c)) for k, c in cells.items()}, reps, warmup=3)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


# ----------------------------------------------------------------------------- (b)
def bench_lock(root: Path, reps: int) -> dict[str, float]:
    from nbtoolkit.config import load_settings
    from nbtoolkit.envlock import capture_lock, packages

    settings = load_settings()
    capture_lock(settings, seeds={})

    def cold() -> None:
        packages._last_scan = None  # forget the per-process scan of installed distributions
        capture_lock(settings, seeds={})

    def freeze() -> None:
        subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, check=True)

    # interleaved, so load changes on a shared machine hit all three alike
    r = interleaved_medians(
        {"warm": lambda: capture_lock(settings, seeds={}), "cold": cold, "freeze": freeze}, max(5, reps // 2)
    )
    warm, cold_t, freeze_t = r["warm"], r["cold"], r["freeze"]
    return {"warm": warm, "cold": cold_t, "freeze": freeze_t}


# ----------------------------------------------------------------------------- (c)
def bench_log_metric(root: Path, reps: int) -> dict[str, float]:
    import mlflow

    import nbtoolkit as nbtk

    def nbtk_10k() -> None:
        with nbtk.start_run("bench-steps"):
            t = time.perf_counter()
            for i in range(10_000):
                nbtk.log_metric("loss", 1.0 / (i + 1), step=i)
            nbtk.current_run().flush()  # every value is in the store before we stop the clock
            times.append(time.perf_counter() - t)

    times: list[float] = []
    for _ in range(reps + 1):
        nbtk_10k()
    nbtk_t = statistics.median(times[1:])

    exp = mlflow_setup(root, "bench-steps")
    mtimes = []
    for _ in range(max(1, reps // 2)):
        with mlflow.start_run(experiment_id=exp):
            t = time.perf_counter()
            for i in range(1_000):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            mtimes.append(time.perf_counter() - t)
    return {"nbtk": nbtk_t, "mlflow_1k": statistics.median(mtimes), "mlflow": statistics.median(mtimes) * 10}


# ----------------------------------------------------------------------------- (d)
def populate_nbtk(store: Any, n: int) -> None:
    """Bulk-insert ``n`` finished runs (10 params, 5 metrics each) through ``store.write``."""
    from sqlalchemy import insert

    from nbtoolkit.store import schema as S

    now = time.time()
    runs, params, metrics = [], [], []
    for i in range(n):
        rid = uuid.uuid4().hex
        runs.append({
            "run_id": rid, "experiment": "bench-query", "status": "finished", "kind": "experiment",
            "source": "script", "started": now - n + i, "ended": now - n + i + 0.5, "declaration": "{}",
            "extra": "{}", "verdict": "supported" if i % 2 else "rejected",
        })
        params += [{"run_id": rid, "name": k, "value": repr(v * i)} for k, v in PARAMS.items()]
        metrics += [{"run_id": rid, "name": k, "value": v * i, "special": None, "step": None, "ts": now} for k, v in METRICS.items()]

    def write(conn: Any) -> None:
        from sqlalchemy import select

        if conn.execute(select(S.experiments.c.name).where(S.experiments.c.name == "bench-query")).first() is None:
            conn.execute(insert(S.experiments).values(name="bench-query", created=now))
        conn.execute(insert(S.runs), runs)
        conn.execute(insert(S.params), params)
        conn.execute(insert(S.metrics), metrics)
        ids = [r["run_id"] for r in runs]
        for start in range(0, len(ids), 500):  # the per-run summary, as every write keeps it
            S.refresh_summary(conn, ids[start : start + 500])

    store._write(write)  # bulk rows straight into the schema: a benchmark fixture, not an API


def populate_mlflow(root: Path, n: int) -> str:
    """Create one run with MLflow's client API, then clone its rows ``n - 1`` times with
    SQLAlchemy bulk inserts into MLflow's own sqlite schema (every table with ``run_uuid``).

    Populating 10,000 runs through the client API takes many minutes; the clones are rows the
    API would have written, so ``search_runs`` reads exactly what it would read otherwise.
    """
    import mlflow
    from sqlalchemy import MetaData, create_engine, insert, select

    exp = mlflow_setup(root, f"bench-query-{n}")
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_params(PARAMS)
        mlflow.log_metrics(METRICS)
    template = run.info.run_id
    engine = create_engine(f"sqlite:///{root / 'mlflow.db'}")
    md = MetaData()
    md.reflect(engine)
    with engine.begin() as conn:
        for table in md.sorted_tables:
            if "run_uuid" not in table.c:
                continue
            rows = [dict(r) for r in conn.execute(select(table).where(table.c.run_uuid == template)).mappings()]
            if not rows:
                continue
            clones = []
            for _ in range(n - 1):
                rid = uuid.uuid4().hex
                for r in rows:
                    c = dict(r)
                    c["run_uuid"] = rid
                    if "name" in c and table.name == "runs":
                        c["name"] = f"run-{rid[:8]}"
                    if "artifact_uri" in c and c["artifact_uri"]:
                        c["artifact_uri"] = c["artifact_uri"].replace(template, rid)
                    clones.append(c)
            for i in range(0, len(clones), 5000):
                conn.execute(insert(table), clones[i : i + 5000])
    engine.dispose()
    return exp


_COLD_NBTK = """
import sys, time
import nbtoolkit as nbtk
from nbtoolkit.store import Store
if sys.argv[4] == "libs":  # what `import mlflow` has already loaded
    import pandas, sqlalchemy  # noqa: F401, E401
t = time.perf_counter()  # the first call: pandas/SQLAlchemy imports, opening the store, query, frame
frame = nbtk.runs(store=Store(sys.argv[1], url=sys.argv[2] or None))
assert len(frame) == int(sys.argv[3]) and "metrics.m4" in frame.columns
print(time.perf_counter() - t)
"""

_COLD_MLFLOW = """
import sys, time, warnings
warnings.filterwarnings("ignore")
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
t = time.perf_counter()  # the first call: its lazy imports, opening the store, query, frame
frame = mlflow.search_runs(experiment_ids=[sys.argv[2]], max_results=int(sys.argv[3]) + 10)
assert len(frame) == int(sys.argv[3])
print(time.perf_counter() - t)
"""


def cold_medians(store: Any, tracking_uri: str, exp: str, n: int, reps: int) -> dict[str, float]:
    """The first listing call in a fresh process (after ``import nbtoolkit`` / ``import mlflow``).

    Includes what the first call pays: lazy imports (pandas, SQLAlchemy), opening the store,
    the query and the frame. Interleaved; medians.
    """
    nbtk_cmd = [sys.executable, "-c", _COLD_NBTK, str(store.path), store.url or "", str(n), "bare"]
    mlflow_cmd = [sys.executable, "-c", _COLD_MLFLOW, tracking_uri, exp, str(n)]
    libs_cmd = [*nbtk_cmd[:-1], "libs"]
    times: dict[str, list[float]] = {"nbtk_cold": [], "nbtk_cold_libs": [], "mlflow_cold": []}
    for _ in range(reps):
        for label, cmd in (("nbtk_cold", nbtk_cmd), ("nbtk_cold_libs", libs_cmd), ("mlflow_cold", mlflow_cmd)):
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            times[label].append(float(out.strip().splitlines()[-1]))
    return {k: statistics.median(v) for k, v in times.items()}


def bench_query(root: Path, sizes: list[int], reps: int, *, store_url: str | None = None) -> dict[int, dict[str, float]]:
    """``nbtk.runs()`` vs ``mlflow.search_runs`` (MLflow on SQLite), warm and in fresh processes.

    With ``store_url`` (a PostgreSQL database, emptied per size) nbtoolkit reads from it.
    """
    import mlflow

    import nbtoolkit as nbtk
    from nbtoolkit.store import Store

    out = {}
    for n in sizes:
        url = None
        if store_url is not None:
            url = fresh_database(store_url, f"nbtk_bench_{n}")
        store = Store(root / f"query-{n}", url=url)
        populate_nbtk(store, n)
        frame = nbtk.runs(store=store)
        assert len(frame) == n and "metrics.m4" in frame.columns and "params.p9" in frame.columns
        exp = populate_mlflow(root, n)
        mframe = mlflow.search_runs(experiment_ids=[exp], max_results=n + 10)
        assert len(mframe) == n and "metrics.m4" in mframe.columns, (len(mframe), n)
        def cold(st: Any = store) -> Any:
            st.listing_cache.clear()  # as after any commit: the listing is rebuilt
            return nbtk.runs(store=st)

        out[n] = interleaved_medians(
            {
                "nbtk": cold,
                "nbtk_repeat": lambda st=store: nbtk.runs(store=st),
                "mlflow": lambda e=exp, m=n + 10: mlflow.search_runs(experiment_ids=[e], max_results=m),
            },
            reps,
        )
        out[n].update(cold_medians(store, mlflow.get_tracking_uri(), exp, n, max(3, reps // 2)))
        store.dispose()
    return out


@contextlib.contextmanager
def pg_server(store_url: str | None) -> Iterator[str | None]:
    """``store_url`` as given, or with ``start`` a throw-away PostgreSQL server's URL."""
    if store_url != "start":
        yield store_url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _servers import postgres_server  # the tests' server helper

    with postgres_server() as server:
        yield server.url()


def fresh_database(server_url: str, name: str) -> str:
    """Create (or re-create) the database ``name`` on the server of ``server_url``; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(server_url).set(drivername="postgresql+psycopg2")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


# ----------------------------------------------------------------------------- (e)
def bench_import(reps: int) -> dict[str, float]:
    def timed(code: str) -> Callable[[], None]:
        return lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)

    return {
        "bare": median_time(timed("pass"), reps),
        "nbtk": median_time(timed("import nbtoolkit"), reps),
        "mlflow": median_time(timed("import mlflow"), reps),
    }


# ----------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 2,000 runs only")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel cell measurement")
    parser.add_argument("--only", default="abcde", help="which measurements to run, e.g. 'ad' (default: all)")
    parser.add_argument("--store-url", help="(d) on PostgreSQL: a server URL (a database per size is created there), "
                        "or 'start' for a throw-away server started like the tests do")
    parser.add_argument("--sizes", help="(d) run counts, e.g. 2000,10000")
    args = parser.parse_args()
    reps = 7 if args.quick else 21
    sizes = [2_000] if args.quick else [2_000, 10_000]
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

    rows: list[tuple[str, str, str, float, float]] = []  # (what, nbtk, peer, ratio, goal)
    with project_dir() as root:
        if "a" in args.only:
            print("(a) cell overhead, in-process shell ...", flush=True)
            a = bench_cell_inprocess(root, reps)
            rows.append((
            "(a) %%experiment overhead / cell, in-process (vs MLflow run)",
            f"{fmt(a['nbtk'] - a['plain'])} (cell {fmt(a['nbtk'])}, plain {fmt(a['plain'])})",
            f"{fmt(a['mlflow'] - a['plain'])}",
            (a["nbtk"] - a["plain"]) / (a["mlflow"] - a["plain"]), 0.5,
        ))
        if "a" in args.only and not args.no_kernel:
            print("(a) cell overhead, real kernel ...", flush=True)
            k = bench_cell_kernel(root, reps)
            rows.append((
                "(a) %%experiment overhead / cell, real kernel (vs MLflow run)",
                f"{fmt(k['nbtk'] - k['plain'])} (cell {fmt(k['nbtk'])}, plain {fmt(k['plain'])})",
                f"{fmt(k['mlflow'] - k['plain'])}",
                (k["nbtk"] - k["plain"]) / (k["mlflow"] - k["plain"]), 0.5,
            ))
        if "b" in args.only:
            print("(b) lock capture vs pip freeze ...", flush=True)
            b = bench_lock(root, reps)
            rows.append(("(b) env lock capture, warm (vs pip freeze)", fmt(b["warm"]), fmt(b["freeze"]), b["warm"] / b["freeze"], 0.05))
            rows.append(("(b) env lock capture, cold package scan (vs pip freeze)", fmt(b["cold"]), fmt(b["freeze"]), b["cold"] / b["freeze"], 0.05))
        if "c" in args.only:
            print("(c) 10,000 log_metric ...", flush=True)
            c = bench_log_metric(root, max(3, reps // 4))
            rows.append((
                "(c) 10,000 log_metric with steps (MLflow: 1,000 x 10)",
                fmt(c["nbtk"]), f"{fmt(c['mlflow'])} ({fmt(c['mlflow_1k'])} / 1k)", c["nbtk"] / c["mlflow"], 0.01,
            ))
        if "d" in args.only:
            print("(d) runs() vs search_runs ...", flush=True)
            with pg_server(args.store_url) as store_url:
                d = bench_query(root, sizes, max(3, reps // 3), store_url=store_url)
            backend = "PostgreSQL" if args.store_url else "SQLite"
            for n, r in d.items():
                rows.append((f"(d) nbtk.runs() {backend}, {n:,} runs, rebuilt (vs search_runs)", fmt(r["nbtk"]), fmt(r["mlflow"]), r["nbtk"] / r["mlflow"], 0.05))
                rows.append((f"(d) nbtk.runs() {backend}, {n:,} runs, unchanged store (vs search_runs)", fmt(r["nbtk_repeat"]), fmt(r["mlflow"]), r["nbtk_repeat"] / r["mlflow"], 0.05))
                rows.append((f"(d) nbtk.runs() {backend}, {n:,} runs, first call in a fresh process (vs the same)", fmt(r["nbtk_cold"]), fmt(r["mlflow_cold"]), r["nbtk_cold"] / r["mlflow_cold"], 0.05))
                rows.append(("(d) same, pandas + SQLAlchemy already imported (as by import mlflow)", fmt(r["nbtk_cold_libs"]), fmt(r["mlflow_cold"]), r["nbtk_cold_libs"] / r["mlflow_cold"], 0.05))
    if "e" in args.only:
        print("(e) import time ...", flush=True)
        e = bench_import(max(5, reps // 2))
        rows.append(("(e) python -c 'import nbtoolkit' (vs import mlflow)", f"{fmt(e['nbtk'])} (bare python {fmt(e['bare'])})", fmt(e["mlflow"]), e["nbtk"] / e["mlflow"], 0.1))

    import mlflow

    print()
    print(f"nbtoolkit capture benchmarks (medians; MLflow {mlflow.__version__}, sqlite backend; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs)")
    w = max(len(r[0]) for r in rows)
    head = f"{'measurement':<{w}} | {'nbtoolkit':<40} | {'peer':<24} | ratio  | goal   | met"
    print(head)
    print("-" * len(head))
    for what, ours, peer, ratio, goal in rows:
        print(f"{what:<{w}} | {ours:<40} | {peer:<24} | {ratio:6.3f} | <={goal:<4} | {'yes' if ratio <= goal else 'NO'}")


if __name__ == "__main__":
    main()
