"""Prediction log frames for the monitor tests, in the columns of the store's ``prediction_log``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

COLUMNS = ("request_id", "row_id", "key", "model", "version", "arm", "ts", "latency_ms", "ok", "error",
           "input_hash", "inputs", "prediction", "score", "proba", "label", "label_ts")


def log_frame(rows: Iterable[Mapping[str, Any]], *, model: str = "cancer-gbm") -> Any:
    """A prediction log frame; each row gives what matters to the test, the rest gets contract defaults."""
    import pandas as pd

    out = []
    for i, row in enumerate(rows):
        inputs = row.get("inputs")
        full = {
            "request_id": row.get("request_id", f"req{i:05d}"), "row_id": row.get("row_id", f"row{i:05d}"),
            "key": row.get("key"), "model": model, "version": row.get("version", "1.0.0"),
            "arm": row.get("arm", "champion"), "ts": float(row["ts"]), "latency_ms": float(row.get("latency_ms", 5.0)),
            "ok": bool(row.get("ok", True)), "error": row.get("error"),
            "input_hash": hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest(),
            "inputs": inputs, "prediction": row.get("prediction"), "score": row.get("score"), "proba": row.get("proba"),
            "label": row.get("label"), "label_ts": row.get("label_ts", row["ts"] + 1 if row.get("label") is not None else None),
        }
        out.append(full)
    return pd.DataFrame(out, columns=list(COLUMNS))


def write_log(frame: Any, path: Any) -> Any:
    """Write a log frame as JSON lines (what ``nbtk monitor --log`` reads)."""
    frame.to_json(path, orient="records", lines=True)
    return path
