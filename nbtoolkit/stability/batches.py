"""Calling a model on rows in timed batches, shared by shadow tests and canary simulation.

Every batch call is timed with ``time.perf_counter``; each row of the batch is assigned
``batch time / rows in batch``. A challenger's failing batch is retried row by row so each
failure is attributed to the row that caused it; rows it failed on are re-timed individually.
"""

from __future__ import annotations

import time
from typing import Any

from nbtoolkit.stability._common import ModelHandle

__all__ = ["Errors", "call_batches", "call_isolated", "sample_positions", "time_rows"]


#: Per-row failures: ``(row index, exception type name, message)``.
Errors = list[tuple[int, str, str]]


def call_isolated(fn: Any, part: Any, take: Any, start: int, stop: int, lat: Any, ok: Any, blocks: list[Any], errors: Errors) -> None:
    """Call ``fn`` on rows ``start:stop``; when it raises, retry row by row to attribute errors.

    Fills ``lat`` (per-row ms) and ``ok`` for those rows, appends outputs (``None`` for a failed
    row) to ``blocks`` and ``(row, error type, message)`` to ``errors``.
    """
    clock = time.perf_counter
    t0 = clock()
    try:
        out = fn(part)
        if len(out) != stop - start:
            raise ValueError(f"returned {len(out)} outputs for {stop - start} rows")
        lat[start:stop] = (clock() - t0) * 1000.0 / (stop - start)
        blocks.append(out)
        return
    except Exception:  # noqa: BLE001 - the challenger must never break the champion
        pass
    for i in range(start, stop):
        t0 = clock()
        try:
            out = fn(take[i : i + 1])
            if len(out) != 1:
                raise ValueError(f"returned {len(out)} outputs for 1 row")
            blocks.append(out)
        except Exception as exc:  # noqa: BLE001
            ok[i] = False
            errors.append((i, type(exc).__name__, str(exc)[:300]))
            blocks.append(None)
        lat[i] = (clock() - t0) * 1000.0


def call_batches(handle: ModelHandle, method: str, X: Any, batch_size: int, *, isolate: bool) -> tuple[list[Any], Any, Any, Errors]:
    """Call ``handle.method`` on ``X`` in batches, timing each call.

    Args:
        handle: the model to call.
        method: ``predict`` or ``predict_proba``.
        X: the rows (a DataFrame).
        batch_size: rows per call.
        isolate: retry a failing batch row by row and record each row's error (a challenger);
            without it exceptions propagate (a champion).

    Returns:
        ``(outputs per row-block, ok mask, per-row latency ms, errors)``.
    """
    import numpy as np

    fn = getattr(handle.obj, method)
    n = len(X)
    lat = np.empty(n, dtype=float)
    ok = np.ones(n, dtype=bool)
    blocks: list[Any] = []
    errors: Errors = []
    clock = time.perf_counter
    take = X.iloc
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        part = take[start:stop]
        if isolate:
            call_isolated(fn, part, take, start, stop, lat, ok, blocks, errors)
            continue
        t0 = clock()
        blocks.append(fn(part))
        lat[start:stop] = (clock() - t0) * 1000.0 / (stop - start)
    return blocks, ok, lat, errors


def sample_positions(n: int, size: int) -> list[int]:
    """``size`` row positions spread evenly over ``n`` rows (all rows when ``n <= size``)."""
    if n <= size:
        return list(range(n))
    step = n / size
    return [int(i * step) for i in range(size)]


def time_rows(fn: Any, X: Any, positions: list[int]) -> tuple[Any, Any]:
    """Call ``fn`` on each row at ``positions`` alone, timing each call (a request of one row).

    Returns:
        ``(latency ms per sampled row, ok mask)``; a row the model raised on is not ok.
    """
    import numpy as np

    lat = np.empty(len(positions), dtype=float)
    ok = np.ones(len(positions), dtype=bool)
    clock = time.perf_counter
    take = X.iloc
    for j, i in enumerate(positions):
        t0 = clock()
        try:
            fn(take[i : i + 1])
        except Exception:  # noqa: BLE001 - a failing challenger row is an error, counted elsewhere
            ok[j] = False
        lat[j] = (clock() - t0) * 1000.0
    return lat, ok
