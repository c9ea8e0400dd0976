"""Live progress overhead: 10,000 step metrics in an ``%%experiment`` cell, progress on vs off.

    python benchmarks/bench_widgets.py            # 15 repetitions (about a minute)
    python benchmarks/bench_widgets.py --quick    # 5 repetitions
    python benchmarks/bench_widgets.py --stat median --raw

Everything runs in one real ipykernel (nbclient), so display messages really travel to the
client. Repetitions interleave "on" and "off"; the table shows the best (min) of the
repetitions by default, which is robust when other work shares the machine.

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
    src = ("import time as _t\n_t0, _c0 = _t.perf_counter(), _t.thread_time()\n" + body
           + "_loop = (_t.perf_counter() - _t0, _t.thread_time() - _c0)\n")
    t0, c0 = time.perf_counter(), time.process_time()
    ip.run_cell_magic("experiment", "bench-progress", src)
    return (time.perf_counter() - t0, time.process_time() - c0), ip.user_ns["_loop"]

def bare(n=N):
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        x = sum(range(300))
    return time.perf_counter() - t0, time.process_time() - c0

def with_tqdm(n=N):
    from tqdm.auto import tqdm
    t0, c0 = time.perf_counter(), time.process_time()
    for i in tqdm(range(n)):
        x = sum(range(300))
    return time.perf_counter() - t0, time.process_time() - c0

def naive(n=1000):
    h = display(HTML("start"), display_id=True)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        x = sum(range(300))
        h.update(HTML(f"step {i} loss {1 / (i + 1):.4f}"))
    return (time.perf_counter() - t0) * (N / n), (time.process_time() - c0) * (N / n)

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
    ap.add_argument("--raw", action="store_true", help="also print every measurement")
    ap.add_argument("--stat", choices=["min", "median"], default="min",
                    help="summary statistic (min is robust on a busy machine; default)")
    args = ap.parse_args()
    data = run(5 if args.quick else 15)
    if args.raw:
        print(json.dumps(data, indent=1))

    def med(xs: list[list[float]], i: int) -> float:
        pick = min if args.stat == "min" else statistics.median
        return pick(x[i] for x in xs)

    c, lp, p = data["cell"], data["loop"], data["peers"]
    rows = [
        ("(a) tight loop, whole cell", c["tight_on"], c["tight_off"]),
        ("(a) tight loop, logging loop only", lp["tight_on"], lp["tight_off"]),
        ("(b) ~20 us/step, whole cell", c["work_on"], c["work_off"]),
        ("(b) ~20 us/step, loop only", lp["work_on"], lp["work_off"]),
        ("(c) peer: tqdm.auto bar vs bare loop", p["tqdm"], p["bare"]),
        ("(c) peer: update_display every step vs bare", p["naive"], p["bare"]),
    ]
    print(f"{args.stat} of {len(c['tight_on'])} interleaved repetitions; "
          "CPU = process time (cell, peers) or main-thread time (loop only)")
    print(f"{'10,000 steps':46} {'wall on':>9} {'wall off':>9} {'ratio':>7} {'CPU on':>9} {'CPU off':>9} {'ratio':>7}")
    for name, on, off in rows:
        w1, w0, c1, c0 = med(on, 0), med(off, 0), med(on, 1), med(off, 1)
        print(f"{name:46} {w1:9.4f} {w0:9.4f} {w1 / w0:7.3f} {c1:9.4f} {c0:9.4f} {c1 / c0:7.3f}")
    for label, i in (("wall", 0), ("CPU", 1)):
        for key in ("tight", "work"):
            ratio = med(c[f"{key}_on"], i) / med(c[f"{key}_off"], i)
            print(f"goal: whole cell with progress <= 1.10x without ({key}, {label}): {ratio:.3f}x "
                  f"{'OK' if ratio <= 1.10 else 'MISSED'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
