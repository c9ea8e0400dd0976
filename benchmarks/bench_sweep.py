"""Sweep throughput: ``nbtk sweep --jobs 2`` (8 points) vs a shell loop of 8 ``papermill`` CLI calls.

Also measures the per-run overhead of ``run_notebook`` (pre-created run, lock, params, output
notebook stored as an artifact, terminal status) over bare kernel execution with nbclient.

Usage: ``python benchmarks/bench_sweep.py [--repeats 3]``. Every run starts a fresh kernel;
no kernel is reused between runs (the sweep starts the next kernel while another one runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

N_RUNS = 8


def make_project(root: Path) -> Path:
    (root / "pyproject.toml").write_text('[project]\nname = "bench"\nversion = "0"\n\n[tool.nbtoolkit]\n', encoding="utf-8")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell("import math\nvalues = [math.sin(i * x) for i in range(10_000)]"),
        nbformat.v4.new_code_cell("total = sum(values)\nprint(x, round(total, 6))"),
    ]
    path = root / "small.ipynb"
    nbformat.write(nb, path)
    return path


def timed(cmd: list[str] | str, *, cwd: Path, env: dict[str, str], shell: bool = False) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, shell=shell, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if res.returncode != 0:
        sys.exit(f"benchmark command failed: {cmd}\n{res.stdout}\n{res.stderr}")
    return elapsed


def bare_kernel_run(nb_path: Path, shutdown: str = "graceful") -> float:
    from nbclient import NotebookClient

    start = time.perf_counter()
    nb = nbformat.read(nb_path, as_version=4)
    NotebookClient(
        nb, kernel_name="python3", shutdown_kernel=shutdown, resources={"metadata": {"path": str(nb_path.parent)}}
    ).execute()
    return time.perf_counter() - start


def nbtk_single_run(nb_path: Path, i: int) -> float:
    from nbtoolkit.execute import run_notebook

    start = time.perf_counter()
    out = run_notebook(nb_path, parameters={"x": i})
    assert out.ok, out.describe_failure()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nbtk-bench-sweep-"))
    try:
        nb = make_project(tmp)
        env = {**os.environ, "NBTOOLKIT_STORE": str(tmp / ".nbtoolkit")}
        os.environ["NBTOOLKIT_STORE"] = env["NBTOOLKIT_STORE"]
        os.chdir(tmp)
        papermill = shutil.which("papermill") or f"{sys.executable} -m papermill"
        loop = f"for i in $(seq 1 {N_RUNS}); do {papermill} small.ipynb out_$i.ipynb -p x $i --no-progress-bar >/dev/null 2>&1 || exit 1; done"
        values = ",".join(str(i) for i in range(1, N_RUNS + 1))
        sweep_cmd = [sys.executable, "-m", "nbtoolkit", "sweep", "small.ipynb", "--grid", f"x={values}", "--jobs", "2", "--force"]

        loop_times, sweep_times = [], []
        for _ in range(args.repeats):  # alternate, so load drift hits both sides alike
            loop_times.append(timed(loop, cwd=tmp, env=env, shell=True))
            sweep_times.append(timed(sweep_cmd, cwd=tmp, env=env))

        bare, bare_now, ours = [], [], []
        for i in range(max(3, args.repeats)):
            bare.append(bare_kernel_run(nb))
            bare_now.append(bare_kernel_run(nb, "immediate"))
            ours.append(nbtk_single_run(nb, 100 + i))

        lm, sm = statistics.median(loop_times), statistics.median(sweep_times)
        bm, bi, om = statistics.median(bare), statistics.median(bare_now), statistics.median(ours)
        print(f"sweep of {N_RUNS} runs of a small notebook, {os.cpu_count()} CPUs, {args.repeats} repeats (medians)")
        print(f"{'measure':<46} {'seconds':>9} {'ratio':>7}")
        print(f"{'shell loop: 8 x papermill CLI':<46} {lm:>9.2f} {1.0:>7.2f}")
        print(f"{'nbtk sweep --jobs 2 (8 fresh kernels)':<46} {sm:>9.2f} {sm / lm:>7.2f}")
        print(f"{'bare nbclient execution, one run':<46} {bm:>9.2f} {1.0:>7.2f}")
        print(f"{'bare nbclient, immediate kernel shutdown':<46} {bi:>9.2f} {bi / bm:>7.2f}")
        print(f"{'nbtk run_notebook, one run (recorded)':<46} {om:>9.2f} {om / bm:>7.2f}")
        print(f"per-run overhead: {om - bm:+.2f} s vs bare nbclient, {om - bi:+.2f} s vs bare with immediate shutdown")
        print(f"goal: sweep <= 0.35 x loop -> {'met' if sm <= 0.35 * lm else 'NOT met'} ({sm / lm:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
