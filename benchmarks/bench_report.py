"""Report benchmarks: nbtoolkit reports vs nbconvert, measured side by side in one run.

    python benchmarks/bench_report.py            # full run (~2 minutes, executes the demo notebooks)
    python benchmarks/bench_report.py --quick    # fewer repetitions

(a) ``nbtk report RUN -o FILE`` (whole process: store, statistics, plots, embedded notebook) vs
    ``jupyter nbconvert --to html`` of the same run's executed notebook             goal <= 1.0x
    The run is the demo challenger (``notebooks/challenger_gbm.ipynb`` executed with ``nbtk run``
    after the baseline), so the report holds the criteria with bootstrap intervals, step curves,
    ROC/PR curves, the logged figure and the embedded notebook.
(b) sweep report over 500 runs (in-process ``write_sweep_report`` and whole-process
    ``nbtk report --sweep``)                                                          goal <= 3 s
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import interleaved_medians, median_time

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def paired_medians(fa: Callable[[], Any], fb: Callable[[], Any], reps: int) -> tuple[float, float]:
    """Median times of ``fa`` and ``fb``, alternated so machine load hits both alike."""
    t = interleaved_medians({"a": fa, "b": fb}, reps)
    return t["a"], t["b"]


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def make_project(tmp: Path) -> tuple[Path, dict[str, str]]:
    proj = tmp / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n\n[tool.nbtoolkit]\n')
    for nb in ("baseline_logreg.ipynb", "challenger_gbm.ipynb"):
        shutil.copy(ROOT / "notebooks" / nb, proj / nb)
    env = {**os.environ, "NBTOOLKIT_STORE": str(proj / ".nbtoolkit"), "GIT_AUTHOR_NAME": "b",
           "GIT_AUTHOR_EMAIL": "b@example.invalid", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        run(["git", *args], proj, env)
    return proj, env


def bench_run_report(proj: Path, env: dict[str, str], reps: int) -> list[tuple[str, float, float]]:
    nbtk = [str(BIN / "nbtk")] if (BIN / "nbtk").exists() else [sys.executable, "-m", "nbtoolkit"]
    jupyter = [str(BIN / "jupyter")] if (BIN / "jupyter").exists() else [sys.executable, "-m", "jupyter"]
    print("executing the demo notebooks with `nbtk run` ...", flush=True)
    run([*nbtk, "run", "baseline_logreg.ipynb"], proj, env)
    run([*nbtk, "run", "challenger_gbm.ipynb"], proj, env)
    runs = json.loads(run([*nbtk, "runs", "--json"], proj, env))
    challenger = next(r["run_id"] for r in runs if r["experiment"] == "cancer-gbm")
    sys.path.insert(0, str(ROOT))
    os.environ["NBTOOLKIT_STORE"] = env["NBTOOLKIT_STORE"]
    from nbtoolkit.store import open_store

    store = open_store(path=proj / ".nbtoolkit")
    record = store.get_run(challenger)
    art = record.artifacts_of("notebook")
    if not art:
        raise SystemExit("the challenger run has no executed notebook artifact")
    executed = proj / "executed.ipynb"
    executed.write_bytes(store.artifacts.read_bytes(art[-1].digest))

    def ours() -> None:
        run([*nbtk, "report", challenger, "-o", "report.html"], proj, env)

    def peer() -> None:
        run([*jupyter, "nbconvert", "--to", "html", "executed.ipynb", "--output", "nbconvert.html"], proj, env)

    def library() -> None:  # the same report from a plain `python -c` (no CLI import trimming)
        code = ("import sys; from nbtoolkit.report import write_run_report; "
                "write_run_report(sys.argv[1], 'report_lib.html')")
        run([sys.executable, "-c", code, challenger], proj, env)

    t_ours, t_peer = paired_medians(ours, peer, reps)
    t_lib, t_peer2 = paired_medians(library, peer, reps)
    sizes = ((proj / "report.html").stat().st_size, (proj / "nbconvert.html").stat().st_size)
    print(f"  report {sizes[0] / 1e3:.0f} kB vs nbconvert {sizes[1] / 1e3:.0f} kB")
    return [("(a) nbtk report RUN vs jupyter nbconvert --to html", t_ours, t_peer),
            ("(a) python -c write_run_report(RUN) vs jupyter nbconvert", t_lib, t_peer2)]


def populate_sweep(store: Any, sweep_id: str, n: int) -> None:
    """``n`` finished children of one sweep (lr x depth x seed grid), written through the store API."""
    import random


    rng = random.Random(0)
    spec = {"grid": {"lr": [0.001, 0.003, 0.01, 0.03, 0.1], "max_depth": list(range(2, 12)),
                     "seed": list(range(10))}}
    store.create_sweep(sweep_id, notebook="train.ipynb", spec=spec, status="running")
    store.set_sweep_status(sweep_id, "finished", ended=True)
    decl = {"experiment": "bench-sweep", "success": ["roc_auc >= 0.9"], "hypothesis": "tuning helps"}
    combos = [(lr, d, s) for lr in spec["grid"]["lr"] for d in spec["grid"]["max_depth"] for s in spec["grid"]["seed"]]
    for lr, depth, seed in combos[:n]:
        rid = store.create_run(experiment="bench-sweep", declaration=decl, kind="papermill",
                               source="papermill", parent_id=sweep_id)
        store.log_params(rid, {"lr": lr, "max_depth": depth, "seed": seed, "test_size": 0.3})
        auc = 0.85 + 0.1 * (1 - abs(lr - 0.01) * 5) - 0.004 * abs(depth - 5) + rng.gauss(0, 0.005)
        store.log_metrics(rid, [("roc_auc", auc, None, time.time()), ("accuracy", auc - 0.05, None, time.time()),
                                ("fit_seconds", depth * 0.3 + rng.random(), None, time.time())])
        store.finish_run(rid, status="finished", verdict="supported" if auc >= 0.9 else "rejected")


def bench_sweep(tmp: Path, env: dict[str, str], reps: int, n: int) -> list[tuple[str, float, float]]:
    sys.path.insert(0, str(ROOT))
    from nbtoolkit.report import write_sweep_report
    from nbtoolkit.store import open_store

    folder = tmp / "sweepstore"
    store = open_store(path=folder)
    print(f"populating a sweep of {n} runs ...", flush=True)
    populate_sweep(store, "benchsweep0001", n)
    out = tmp / "sweep.html"
    t_lib = median_time(lambda: write_sweep_report("benchsweep0001", out, store=store), reps)
    nbtk = [str(BIN / "nbtk")] if (BIN / "nbtk").exists() else [sys.executable, "-m", "nbtoolkit"]
    t_cli = median_time(lambda: run([*nbtk, "--store", str(folder), "report", "--sweep", "benchsweep0001",
                                     "-o", str(tmp / "sweep_cli.html")], tmp, env), reps)
    return [(f"(b) sweep report, {n} runs, in-process", t_lib, 3.0),
            (f"(b) sweep report, {n} runs, nbtk report --sweep", t_cli, 3.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    with tempfile.TemporaryDirectory(prefix="nbtk-bench-report-") as tmpdir:
        tmp = Path(tmpdir)
        proj, env = make_project(tmp)
        rows = bench_run_report(proj, env, reps)
        rows += bench_sweep(tmp, env, reps, 500)
    print()
    print(f"{'benchmark':58} {'nbtoolkit':>10} {'peer/goal':>10} {'ratio':>7}  goal")
    for name, ours, peer in rows:
        goal = "<= 1.0x nbconvert" if name.startswith("(a)") else "<= 3 s"
        ok = ours / peer <= 1.0
        print(f"{name:58} {ours:9.2f}s {peer:9.2f}s {ours / peer:6.2f}x  {goal} {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
