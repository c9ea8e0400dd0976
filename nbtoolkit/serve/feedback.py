"""Feedback into the loop: outcomes joined to the prediction log, and reviewers' comments.

``nbtk feedback MODEL outcomes.csv --key user_id --label malignant`` reads a CSV or Parquet file
and joins each outcome to the log (by row id, or by key: every unlabelled row of that key).
``nbtk comment REF --by NAME --text T [--rating 1-5]`` attaches a comment to a run (id or
prefix), a model version (``MODEL@VERSION`` or ``MODEL@ALIAS``) or an experiment (name).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nbtoolkit import _json, registry
from nbtoolkit.errors import InputError, RunNotFoundError
from nbtoolkit.html import esc
from nbtoolkit.stability._common import load_frame
from nbtoolkit.store.predictions import Comment


def feedback_rows(path: str | Path, *, label: str, key: str | None = None, row_id: str | None = None,
                  ts: str | None = None) -> list[dict[str, Any]]:
    """Read outcomes from a ``.csv`` / ``.parquet`` file as feedback rows.

    Args:
        path: the file.
        label: the outcome column.
        key: join by this key column (every unlabelled log row of the key), or
        row_id: join by this row-id column (the ``ids`` sent with the requests).
        ts: column with the unix time each outcome was observed (default: now).

    Raises:
        InputError: a column is missing, or neither/both of ``key`` and ``row_id`` are given.
    """
    if (key is None) == (row_id is None):
        raise InputError("feedback joins by one column: give --key COLUMN or --id COLUMN.")
    frame = load_frame(path)
    by, column = ("key", key) if key is not None else ("row_id", row_id)
    for name in (column, label, ts):
        if name is not None and name not in frame.columns:
            raise InputError(f"column {name!r} is not in {path} (columns: {', '.join(map(str, frame.columns[:12]))}).")
    rows = []
    for rec in frame.to_dict(orient="records"):
        value = rec[label]
        if value is None or isinstance(value, float) and math.isnan(value):
            continue  # no outcome yet for this row
        row = {by: str(rec[column]), "label": _json.to_jsonable(value)}
        if ts is not None:
            row["ts"] = float(rec[ts])
        rows.append(row)
    return rows


def comment_target(ref: str, *, store: Any) -> tuple[str, str]:
    """``(kind, target)`` of a comment reference: run id, ``MODEL@VERSION|ALIAS`` or experiment name.

    Raises:
        InputError: the reference names nothing in the store.
    """
    ref = ref.strip()
    if "@" in ref:
        mv = registry.resolve(ref, store=store)
        return "version", f"{mv.model}@{mv.version}"
    if ref in store.experiment_names():
        return "experiment", ref
    try:
        return "run", store.resolve_run_id(ref)
    except (RunNotFoundError, InputError):
        raise InputError(
            f"{ref!r} is neither a run id, an experiment nor MODEL@VERSION; list them with `nbtk runs` or `nbtk registry`."
        ) from None


def add_comment(ref: str, *, by: str, text: str, rating: int | None = None, store: Any) -> Comment:
    """Attach a comment (and an optional 1-5 rating) to what ``ref`` names."""
    kind, target = comment_target(ref, store=store)
    comment: Comment = store.add_comment(kind, target, by=by, text=text, rating=rating)
    return comment


def list_comments(ref: str, *, store: Any) -> list[Comment]:
    """The comments on what ``ref`` names, oldest first."""
    kind, target = comment_target(ref, store=store)
    found: list[Comment] = store.comments(kind, target)
    return found


def comments_section(record: Any, store: Any) -> tuple[str, str] | None:
    """Run-report section (``nbtoolkit.report_sections``): reviewers' comments on the run."""
    found = store.comments("run", record.run_id) + store.comments("experiment", record.experiment)
    if not found:
        return None
    items = "".join(
        f"<tr><td>{esc(c.by)}</td><td>{esc(c.target_kind)}</td><td>{'' if c.rating is None else esc(str(c.rating)) + '/5'}</td>"
        f"<td>{esc(c.text)}</td></tr>"
        for c in found
    )
    return "Comments", f"<table><tr><th>by</th><th>on</th><th>rating</th><th>comment</th></tr>{items}</table>"
