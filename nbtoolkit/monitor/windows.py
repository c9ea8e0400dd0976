"""Time windows over a prediction log and the operational numbers of each window.

The log is the frame of :meth:`Store.prediction_log` (one row per answered or failed row). A
window of ``w`` seconds starts at a multiple of ``w`` since the Unix epoch, so two monitor runs
over overlapping periods report the same windows.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

#: the columns of the prediction log frame (see the store's ``prediction_log``)
LOG_COLUMNS = ("request_id", "row_id", "key", "model", "version", "arm", "ts", "latency_ms", "ok", "error",
               "input_hash", "inputs", "prediction", "score", "proba", "label", "label_ts")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_duration(text: str | float | int) -> float:
    """Seconds in ``"30m"``, ``"1h"``, ``"2d"``, ``"90s"`` (or a number of seconds).

    Raises:
        InputError: the text is not a positive duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise InputError(f"Window {text!r} is not a duration; write e.g. 90s, 15m, 1h or 1d.")
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not seconds > 0 or not math.isfinite(seconds):
        raise InputError(f"Window {text!r} must be a positive duration, e.g. 1h.")
    return seconds


def check_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The log frame with every contract column present, ``ts`` sorted; missing optional columns are added empty.

    Raises:
        InputError: a required column (``ts``, ``version``, ``ok``) is missing.
    """
    missing = [c for c in ("ts", "version", "ok") if c not in frame.columns]
    if missing:
        raise InputError(f"The prediction log has no column(s) {', '.join(missing)}; it must be the frame of "
                         "Store.prediction_log (columns: " + ", ".join(LOG_COLUMNS) + ").")
    out = frame.copy()
    for column in LOG_COLUMNS:
        if column not in out.columns:
            out[column] = None
    out["ts"] = out["ts"].astype(float)
    out["ok"] = out["ok"].astype(bool)
    out["version"] = out["version"].astype(str)
    return out.sort_values("ts", kind="mergesort").reset_index(drop=True)


def window_starts(ts: Any, seconds: float) -> Any:
    """The start of the window each timestamp falls in (numpy array of floats)."""
    import numpy as np

    return np.floor(np.asarray(ts, dtype=float) / seconds) * seconds


@dataclass(frozen=True)
class Traffic:
    """Operational numbers of one window (or period) of one model version.

    Attributes:
        rows: rows answered or failed.
        requests: distinct HTTP requests.
        throughput_rps: rows per second of the window.
        error_rate: share of rows whose request failed.
        latency_p50_ms / latency_p95_ms / latency_p99_ms: per-row latency percentiles (None without rows).
        labelled: rows whose outcome has joined.
    """

    rows: int
    requests: int
    throughput_rps: float
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    labelled: int

    def metrics(self) -> dict[str, float]:
        """The numbers by the names an SLA uses (``error_rate``, ``latency_p95_ms``, ...); None left out."""
        values = {"rows": float(self.rows), "requests": float(self.requests), "throughput_rps": self.throughput_rps,
                  "error_rate": self.error_rate, "latency_p50_ms": self.latency_p50_ms,
                  "latency_p95_ms": self.latency_p95_ms, "latency_p99_ms": self.latency_p99_ms,
                  "labelled": float(self.labelled)}
        return {k: float(v) for k, v in values.items() if v is not None}


def traffic(rows: pd.DataFrame, seconds: float) -> Traffic:
    """Traffic, throughput, error rate and latency percentiles of ``rows`` over ``seconds``."""
    import numpy as np

    n = len(rows)
    latency = rows["latency_ms"].dropna().astype(float).to_numpy() if n else np.array([])
    p50, p95, p99 = (float(v) for v in np.percentile(latency, [50, 95, 99])) if len(latency) else (None, None, None)
    return Traffic(
        rows=n,
        requests=int(rows["request_id"].nunique()) if n else 0,
        throughput_rps=n / seconds,
        error_rate=float((~rows["ok"]).mean()) if n else None,
        latency_p50_ms=p50, latency_p95_ms=p95, latency_p99_ms=p99,
        labelled=int(rows["label"].notna().sum()) if n else 0,
    )
