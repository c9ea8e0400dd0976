"""The scoring protocol of ``POST /invocations``, following MLflow's scoring server.

A JSON body holds exactly one of these inputs (MLflow's names and shapes)::

    {"dataframe_split": {"columns": [...], "data": [[...], ...]}}   # pandas "split" orient
    {"dataframe_records": [{"col": value, ...}, ...]}               # pandas "records" orient
    {"instances": [...]}                                            # TF-serving row format
    {"inputs": [...] | {"col": [...], ...}}                          # TF-serving row or columnar

plus, as nbtoolkit extensions, ``"ids"``: one caller id per row (logged as ``row_id`` and used
as the routing key when no key column is given). A ``text/csv`` body is read as a frame.
The frame is checked against the bundle's ``signature.json`` with the export stage's
:func:`~nbtoolkit.export.load.check_input`; every mismatch names the column. Errors use MLflow's
body, ``{"error_code": "BAD_REQUEST", "message": ...}``, with status 400.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbtoolkit import _json
from nbtoolkit.errors import BadScoringRequest
from nbtoolkit.export.load import SignatureError, check_input

INPUT_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


#: Raised for a request the server cannot answer (HTTP 400); the name used across the serve stage.
BadRequest = BadScoringRequest


@dataclass
class ScoringRequest:
    """A parsed request: the model input plus the per-row ids, keys and log fields."""

    request_id: str
    frame: Any  # pandas DataFrame (or ndarray for array signatures) checked against the signature
    records: list[dict[str, Any]]  # the rows' inputs as JSON-compatible dicts
    row_ids: list[str]
    keys: list[str | None]
    signature: dict[str, Any]  # the signature the frame was checked against

    @property
    def rows(self) -> int:
        return len(self.row_ids)


def _rows_from_json(payload: dict[str, Any], columns: Sequence[str]) -> list[dict[str, Any]] | list[Any]:
    """The rows of a JSON body: a list of ``{column: value}`` records (or bare rows for arrays)."""
    present = [k for k in INPUT_FORMATS if k in payload]
    if len(present) != 1:
        raise BadRequest(
            "The request body must hold exactly one of " + ", ".join(repr(k) for k in INPUT_FORMATS)
            + (f"; it holds {', '.join(present)}" if present else "")
            + '. Example: {"dataframe_records": [{"col": 1.0}]}.'
        )
    fmt = present[0]
    data = payload[fmt]
    if fmt == "dataframe_split":
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise BadRequest('dataframe_split must be {"columns": [...], "data": [[...], ...]}.')
        names = [str(c) for c in (data.get("columns") or columns)]
        if not names or not all(isinstance(r, list) and len(r) == len(names) for r in data["data"]):
            raise BadRequest(f"dataframe_split: every row of data needs one value per column ({len(names)} columns).")
        return [dict(zip(names, r, strict=True)) for r in data["data"]]
    if isinstance(data, dict) and fmt == "inputs":  # columnar: {"col": [values...]}
        cols = {str(k): v if isinstance(v, list) else [v] for k, v in data.items()}
        sizes = {len(v) for v in cols.values()}
        if len(sizes) != 1:
            raise BadRequest("inputs: every column needs the same number of values.")
        return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    if not isinstance(data, list):
        raise BadRequest(f"{fmt} must be a list of rows" + (" or an object of columns." if fmt == "inputs" else "."))
    if all(isinstance(r, dict) for r in data):
        return [{str(k): v for k, v in r.items()} for r in data]
    if fmt == "dataframe_records":
        raise BadRequest("dataframe_records must be a list of {column: value} objects.")
    if columns and all(isinstance(r, list) and len(r) == len(columns) for r in data):
        return [dict(zip(columns, r, strict=True)) for r in data]
    return list(data)


_COLUMN_INDEX: dict[tuple[str, ...], Any] = {}


def _float_frame(rows: list[Any], signature: dict[str, Any]) -> Any:
    """The frame of rows that hold exactly a float-only signature's columns, in order, as numbers.

    One float64 block built from a list, five times cheaper than pandas' per-column inference of
    a list of records (the common case of numeric models); ``None`` for anything else, which
    :func:`_frame` reads (and :func:`check_input` judges) as usual. A frame returned here holds
    the signature's columns in its order with its dtype: it passes :func:`check_input` by
    construction, so the caller does not check it again.
    """
    columns = signature.get("columns") or []
    if not rows or signature.get("kind") != "dataframe" or not columns or any(c.get("dtype") != "float64" for c in columns):
        return None
    names = tuple(str(c["name"]) for c in columns)
    data = []
    for r in rows:
        if not isinstance(r, dict) or tuple(r) != names:
            return None
        values = list(r.values())
        if not all(type(v) is float or type(v) is int for v in values):  # not bool, str or None
            return None
        data.append(values)
    import numpy as np
    import pandas as pd

    index = _COLUMN_INDEX.get(names)
    if index is None:  # an Index is immutable: built once per signature, shared by every frame
        # object dtype: iterating an Arrow-backed string Index (pandas' default) costs more than
        # the rest of the frame, and the model's own checks iterate the column names on every call
        index = _COLUMN_INDEX[names] = pd.Index(list(names), dtype=object)
    return pd.DataFrame(np.asarray(data, dtype=np.float64), columns=index, copy=False)


def _frame(rows: list[Any]) -> Any:
    import pandas as pd

    try:
        return pd.DataFrame.from_records(rows) if rows and isinstance(rows[0], dict) else pd.DataFrame(rows)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"The rows could not be read as a table: {exc}.") from None


def _load_body(body: bytes, content_type: str) -> tuple[Any, list[Any] | None]:
    import pandas as pd

    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "text/csv":
        try:
            return pd.read_csv(io.BytesIO(body)), None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(f"The CSV body could not be read: {exc}.") from None
    if kind not in ("application/json", ""):
        raise BadRequest(f"Content type {kind!r} is not supported; send application/json or text/csv.")
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise BadRequest("The JSON body must be an object such as {\"dataframe_records\": [...]}.")
    return payload, payload.get("ids")


def parse_request(body: bytes, content_type: str, signature: dict[str, Any], *, key_column: str | None = None) -> ScoringRequest:
    """Parse and check one scoring request.

    Args:
        body: the raw request body.
        content_type: its ``Content-Type`` (``application/json`` or ``text/csv``).
        signature: the bundle's ``signature.json``.
        key_column: the routing key column; removed from the model input when the signature
            does not list it.

    Returns:
        A :class:`ScoringRequest` with a frame ready for the model.

    Raises:
        BadRequest: unreadable body, wrong shape, ids of the wrong length, or a signature
            mismatch (naming every column).
    """
    payload, ids = _load_body(body, content_type)
    columns = [str(c["name"]) for c in signature.get("columns", [])] if signature.get("kind") == "dataframe" else []
    if isinstance(payload, dict):
        rows = _rows_from_json(payload, columns)
        frame = exact = _float_frame(rows, signature)
        if frame is None:
            frame = _frame(rows)
            frame.columns = [str(c) for c in frame.columns]
    else:  # a CSV body, already a frame
        frame, rows, exact = payload, _records(payload), None
        frame.columns = [str(c) for c in frame.columns]
    n = len(frame)
    if n == 0:
        raise BadRequest("The request holds no rows.")
    if ids is not None and (not isinstance(ids, list) or len(ids) != n):
        raise BadRequest(f"ids must be a list with one id per row ({n} rows).")
    keys: list[str | None] = [None if i is None else str(i) for i in ids] if ids is not None else [None] * n
    if key_column is not None and key_column in frame.columns:
        keys = [None if v is None else str(v) for v in frame[key_column].tolist()]
        if key_column not in columns:
            frame = frame.drop(columns=[key_column])
            rows = [{k: v for k, v in r.items() if k != key_column} for r in rows]
    records = [r if isinstance(r, dict) else {"row": r} for r in rows]
    try:
        if exact is not None and frame is exact:  # the signature's columns and dtype by construction
            checked = frame
        elif signature.get("kind") == "dataframe":
            checked = check_input(frame, signature)
        else:
            checked = _array_input(frame, signature)
    except SignatureError as exc:
        raise BadRequest(exc.describe()) from None
    request_id = uuid.uuid4().hex
    row_ids = [str(i) if i is not None else f"{request_id}:{j}" for j, i in enumerate(ids or [None] * n)]
    return ScoringRequest(request_id, checked, records, row_ids, keys, signature)


def _array_input(frame: Any, signature: dict[str, Any]) -> Any:
    if signature.get("kind") != "ndarray":
        return frame
    return check_input(frame.to_numpy(), signature)


def _records(frame: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        out.append({str(k): _json.to_jsonable(v) if not isinstance(v, float) or v == v else None for k, v in row.items()})
    return out


def input_hash(record: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of one row's inputs."""
    return hashlib.sha256(_json.canonical(record).encode()).hexdigest()


def jsonable(values: Any) -> list[Any]:
    """Model outputs as a JSON-compatible list (numpy scalars become Python numbers)."""
    return [_json.to_jsonable(v) for v in list(values)]
