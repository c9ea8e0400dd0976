"""Input signatures: what a model expects, inferred from a logged sample input."""

from __future__ import annotations

from typing import Any

SIGNATURE_SCHEMA = "nbtoolkit.signature.v1"


def infer_signature(sample: Any) -> dict[str, Any]:
    """Describe ``sample`` (a DataFrame, array-like or list of rows).

    DataFrames give column names and dtypes; arrays give the per-row shape and dtype.

    Returns:
        A JSON-compatible dict with ``schema``, ``kind`` and the columns or shape.
    """
    columns = getattr(sample, "columns", None)
    dtypes = getattr(sample, "dtypes", None)
    if columns is not None and dtypes is not None:
        return {
            "schema": SIGNATURE_SCHEMA,
            "kind": "dataframe",
            "columns": [{"name": str(c), "dtype": str(dtypes[c])} for c in columns],
        }
    import numpy as np

    arr = np.asarray(sample)
    return {
        "schema": SIGNATURE_SCHEMA,
        "kind": "ndarray",
        "shape": [None, *arr.shape[1:]] if arr.ndim else [],
        "dtype": str(arr.dtype),
    }
