"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_x.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], reps: int, *, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``reps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], Any]], reps: int, *, warmup: int = 1) -> dict[str, float]:
    """Median time of each function, alternating them so that load changes hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for label, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}
