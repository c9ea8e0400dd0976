"""Live progress overhead: 10,000 step metrics in an ``%%experiment`` cell, progress on vs off.

    python benchmarks/bench_widgets.py            # 7 repetitions (about a minute)
    python benchmarks/bench_widgets.py --quick    # 3 repetitions

Everything runs in one real ipykernel (nbclient), so display messages really travel to the
client. Repetitions interleave "on" and "off"; the table shows medians and ratios.

(a) tight loop: the cell only logs 10,000 step metrics (worst case for the listener)
(b) realistic loop: each step does ~20 µs of work, then logs (goal: on/off <= 1.10)
    both timed for the whole cell (run_cell_magic, incl. opening/closing the run) and for the
    logging loop alone
(c) peers in the same kernel: tqdm.auto (ipywidgets progress bar) over the same 10,000-step
    loop vs the bare loop, and a naive ``update_display`` on every step (1,000 steps, x10)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import nbformat

SETUP = r'''
%load_ext nbtoolkit
import os, time, json, statistics
import nbtoolkit as nbtk
from IPython.display import display, HTML
ip = get_ipython()
N = 10_000
TIGHT = "for i in range(N):\n    nbtk.log_metric('loss', 1.0 / (i + 1), step=i)\n"
WORK = "for i in range(N):\n    x = sum(range(300))\n    nbtk.log_metric('loss', 1.0 / (i + 1), step=i)\n"

def cell(body, progress):
    os.environ["NBTOOLKIT_PROGRESS"] = "1" if progress else "0"
    src = "import time as _t\n_t0 = _t.perf_counter()\n" + body + "_loop = _t.perf_counter() - _t0\n"
    t0 = time.perf_counter()
    ip.run_cell_magic("experiment", "bench-progress", src)
    return time.perf_counter() - t0, ip.user_ns["_loop"]

def bare(n=N):
    t0 = time.perf_counter()
    for i in range(n):
        x = sum(range(300))
    return time.perf_counter() - t0

def with_tqdm(n=N):
    from tqdm.auto import tqdm
    t0 = time.perf_counter()
    for i in tqdm(range(n)):
        x = sum(range(300))
    return time.perf_counter() - t0

def naive(n=1000):
    h = display(HTML("start"), display_id=True)
    t0 = time.perf_counter()
    for i in range(n):
        x = sum(range(300))
        h.update(HTML(f"step {i} loss {1 / (i + 1):.4f}"))
    return (time.perf_counter() - t0) * (N / n)

def measure(reps):
    out = {k: [] for k in ("tight_on", "tight_off", "work_on", "work_off")}
    loops = {k: [] for k in out}
    cell(TIGHT, True)  # warm-up (imports, store creation)
    cell(TIGHT, False)
    for r in range(reps):
        for name, body in (("tight", TIGHT), ("work", WORK)):
            order = (True, False) if r % 2 == 0 else (False, True)
            for on in order:
                key = f"{name}_{'on' if on else 'off'}"
                total, loop = cell(body, on)
                out[key].append(total)
                loops[key].append(loop)
    peers = {"bare": [bare() for _ in range(reps)], "tqdm": [with_tqdm() for _ in range(reps)],
             "naive": [naive() for _ in range(max(1, reps // 2))]}
    return {"cell": out, "loop": loops, "peers": peers}
'''


def run(reps: int) -> dict:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_code_cell(f"print('RESULT ' + json.dumps(measure({reps})))")]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "pyproject.toml").write_text("[project]\nname='b'\nversion='0'\n", encoding="utf-8")
        import os

        os.environ["NBTOOLKIT_STORE"] = str(Path(tmp) / ".nbtoolkit")
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
    for out in nb.cells[1].outputs:
        text = out.get("text", "")
        if "RESULT " in text:
            return json.loads(text.split("RESULT ", 1)[1])
    raise RuntimeError(f"no result: {nb.cells[1].outputs}")


def main() -> None:
    import statistics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    data = run(3 if args.quick else 7)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    c, lp, p = data["cell"], data["loop"], data["peers"]
    rows = [
        ("(a) tight loop, whole cell", med(c["tight_on"]), med(c["tight_off"])),
        ("(a) tight loop, logging loop only", med(lp["tight_on"]), med(lp["tight_off"])),
        ("(b) ~20 µs/step, whole cell", med(c["work_on"]), med(c["work_off"])),
        ("(b) ~20 µs/step, loop only", med(lp["work_on"]), med(lp["work_off"])),
        ("(c) peer: tqdm.auto bar vs bare loop", med(p["tqdm"]), med(p["bare"])),
        ("(c) peer: update_display every step vs bare", med(p["naive"]), med(p["bare"])),
    ]
    print(f"{'10,000 steps':48} {'with (s)':>10} {'without (s)':>12} {'ratio':>7}")
    for name, on, off in rows:
        print(f"{name:48} {on:10.4f} {off:12.4f} {on / off:7.3f}")
    goal = med(c["work_on"]) / med(c["work_off"])
    print(f"\ngoal (b) whole cell with progress <= 1.10x without: {goal:.3f}x "
          f"{'OK' if goal <= 1.10 else 'MISSED'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
