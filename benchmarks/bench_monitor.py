"""Monitor benchmark: ``nbtoolkit.monitor.monitor`` over synthetic prediction logs.

    python benchmarks/bench_monitor.py            # 10,000 and 100,000 rows
    python benchmarks/bench_monitor.py --quick    # 10,000 rows only

A day of traffic in 1-hour windows, two versions (90% / 10%), binary scores, half the rows
labelled, one slice column and one drift feature: every number the dashboard shows (traffic,
latency, measured quality with bootstrap intervals, CBPE estimates, Fairlearn slices, PSI/KS).
Prints the median wall time of the ``monitor`` call (libraries imported beforehand).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from _timing import median_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_log(n: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    score = rng.random(n)
    return pd.DataFrame({
        "request_id": [f"r{i // 10}" for i in range(n)], "row_id": [f"x{i}" for i in range(n)], "key": None,
        "model": "m", "version": np.where(rng.random(n) < 0.1, "1.1.0", "1.0.0"), "arm": "champion",
        "ts": np.sort(rng.random(n)) * 86400, "latency_ms": rng.gamma(2, 5, n), "ok": rng.random(n) > 0.01,
        "error": None, "input_hash": "h",
        "inputs": [{"x": float(v), "group": "a" if v > 0 else "b"} for v in rng.normal(size=n)],
        "prediction": (score > 0.5).astype(int), "score": score, "proba": None,
        "label": np.where(rng.random(n) < 0.5, (rng.random(n) < score).astype(float), np.nan), "label_ts": None,
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import fairlearn.metrics  # noqa: F401  (imports are not what is measured)
    import numpy as np
    import pandas as pd
    import scipy.stats  # noqa: F401
    import sklearn.isotonic  # noqa: F401

    from nbtoolkit.monitor import monitor

    reference = pd.DataFrame({"x": np.random.default_rng(1).normal(size=5000)})
    print(f"{'rows':>9}  {'window reports':>14}  {'median s':>9}")
    for n in (10_000,) if args.quick else (10_000, 100_000):
        frame = make_log(n)
        result = monitor(frame, window="1h", slices=["group"], reference=reference)
        seconds = median_time(lambda f=frame: monitor(f, window="1h", slices=["group"], reference=reference),
                              3 if n <= 10_000 else 1, warmup=0)
        print(f"{n:>9,}  {len(result.windows):>14}  {seconds:>9.2f}")


if __name__ == "__main__":
    main()
