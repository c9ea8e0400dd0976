"""Reading runs back: ``nbtk.runs()`` as a DataFrame, ``nbtk.get_run()``, and ``--where`` filters."""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nbtoolkit._format import iso
from nbtoolkit.errors import InputError
from nbtoolkit.store.kinds import lineage_kind, stored_kinds

if TYPE_CHECKING:
    import pandas as pd

    from nbtoolkit.store import RunRecord, Store
    from nbtoolkit.store.listing import Listing

BASE_COLUMNS = ["run_id", "experiment", "status", "verdict", "started", "ended", "kind", "sweep_id"]
_OPS = {
    ast.Eq: "__eq__",
    ast.NotEq: "__ne__",
    ast.Lt: "__lt__",
    ast.LtE: "__le__",
    ast.Gt: "__gt__",
    ast.GtE: "__ge__",
}


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    from nbtoolkit.store import open_store

    return open_store()


def runs(
    experiment: str | Sequence[str] | None = None,
    *,
    status: str | Sequence[str] | None = None,
    verdict: str | None = None,
    where: str | None = None,
    kind: str | Sequence[str] | None = None,
    sweep: str | None = None,
    limit: int | None = None,
    store: Store | None = None,
) -> pd.DataFrame:
    """All runs as a DataFrame, newest first, one row per run.

    Columns: ``run_id``, ``experiment``, ``status``, ``verdict``, ``started``, ``ended`` (UTC
    timestamps), ``kind`` (the lineage kind: experiment, sweep, cached, reproduction, test,
    monitor), ``sweep_id`` (of a sweep child), then ``params.<name>`` and ``metrics.<name>``
    (last value of a step series).

    Args:
        experiment: keep only these experiments.
        status: keep only these statuses.
        verdict: keep only this verdict.
        where: a filter such as ``"metrics.roc_auc >= 0.9 and params.lr == 0.1"``.
        kind: keep only these lineage kinds (``experiment``, ``sweep``, ``cached``,
            ``reproduction``, ``test``, ``monitor``).
        sweep: keep only the children of this sweep id.
        limit: at most this many (newest) runs.
    """

    kind = stored_kinds(kind) if kind is not None else None
    frame = _listing(store, experiment=experiment, status=status, kind=kind, parent_id=sweep, limit=limit)
    return _selected(frame, verdict, where)


def _selected(frame: pd.DataFrame, verdict: str | None, where: str | None) -> pd.DataFrame:
    """The rows of a listing frame that pass the ``verdict`` and ``where`` filters."""
    if verdict is not None:
        frame = frame[frame["verdict"] == verdict]
    if where:
        frame = frame[filter_mask(frame, where)]
    return frame.reset_index(drop=True)


def run_summaries(
    experiment: str | Sequence[str] | None = None,
    *,
    status: str | Sequence[str] | None = None,
    verdict: str | None = None,
    where: str | None = None,
    kind: str | Sequence[str] | None = None,
    sweep: str | None = None,
    limit: int | None = None,
    store: Store | None = None,
) -> list[dict[str, Any]]:
    """The runs :func:`runs` selects, as JSON-ready dicts (the items of ``nbtk runs --json``).

    Keys: ``run_id``, ``experiment``, ``status``, ``verdict``, ``started``, ``ended`` (ISO 8601
    UTC), ``params``, ``metrics`` (last values; NaN and infinities as floats), ``kind`` and
    ``sweep_id``. Read from the same per-run summary rows as the frame: no full run record is
    loaded per run.
    """
    stored_kind = stored_kinds(kind) if kind is not None else None
    _, wide = _summary_rows(_reader(store), experiment=experiment, status=status, kind=stored_kind, parent_id=sweep, limit=limit)
    frame = _selected(_frame_from_wide(wide), verdict, where)  # one query: the filters read the frame
    keep = set(frame["run_id"]) if len(frame) else set()
    rows = [row for row in wide if row[0] in keep]
    params = _loads_many([row[8] for row in rows])
    metrics = _loads_many([row[9] for row in rows])
    return [
        {
            "run_id": run_id,
            "experiment": experiment_name,
            "status": run_status,
            "verdict": run_verdict,
            "started": iso(started),
            "ended": iso(ended),
            "params": run_params,
            "metrics": {name: math.nan if value is None else float(value) for name, value in run_metrics.items()},
            "kind": lineage_kind(run_kind),
            "sweep_id": parent_id,
        }
        for (run_id, experiment_name, run_status, run_verdict, started, ended, run_kind, parent_id, _, _), run_params, run_metrics
        in zip(rows, params, metrics, strict=True)
    ]


def _key(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple, set, frozenset)) else value


def _reader(store: Store | None) -> Store | Listing | None:
    """Where a listing reads: the given store, else the project's listing connection (or ``None``).

    The listing connection (:mod:`nbtoolkit.store.listing`) lets a fresh process read without
    loading SQLAlchemy; ``None`` when the store must be opened first (missing, older, damaged or
    unreachable database).
    """
    if store is not None:
        return store
    from nbtoolkit.store.listing import open_listing

    return open_listing()


def _summary_rows(reader: Store | Listing | None, **query: Any) -> tuple[Store | Listing, Sequence[Sequence[Any]]]:
    """The summary rows of a listing, and where they were read.

    A listing connection answers ``None`` while the store needs opening (a run marked running, a
    database error): then, as when there is no reader, the project's store serves them.
    """
    rows = reader.runs_wide(**query) if reader is not None else None
    if reader is not None and rows is not None:
        return reader, rows
    store = _store(None)
    return store, store.runs_wide(**query)


def _listing(store: Store | None, **query: Any) -> pd.DataFrame:
    """The unfiltered-by-``where`` frame, reused while the store's data version is unchanged.

    The version is read before the query, so a commit racing with the query only causes one
    extra rebuild later, never a stale result (SQLite; a server database is queried each time).
    """
    key = tuple((k, _key(v)) for k, v in sorted(query.items()))
    reader = _reader(store)
    version = reader.data_version() if reader is not None else None
    if reader is not None and version is not None:
        hit = reader.listing_cache.get(key)
        if hit is not None and hit[0] == version:
            return hit[1].copy()
    source, rows = _summary_rows(reader, **query)
    frame = _frame_from_wide(rows)
    if version is not None and source is reader:  # versions are per connection
        if len(reader.listing_cache) >= 16:
            reader.listing_cache.clear()
        reader.listing_cache[key] = (version, frame.copy())
    return frame


def _loads_many(blobs: Sequence[str | None]) -> list[dict[str, Any]]:
    """Parse many JSON objects in one call (orjson when installed: it comes with DVC)."""
    text = "[" + ",".join(b or "{}" for b in blobs) + "]"
    try:
        import orjson

        return list(orjson.loads(text))
    except ImportError:
        pass
    except ValueError:  # NaN / Infinity parameter values: only the standard parser reads them
        pass
    return list(json.loads(text))


def _frame_from_wide(run_rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Build the ``runs()`` frame from :meth:`Store.runs_wide` rows (columns built in bulk)."""
    import numpy as np
    import pandas as pd

    n = len(run_rows)
    cols = list(zip(*run_rows, strict=True)) if run_rows else [()] * 10
    base: dict[str, Any] = {name: list(values) for name, values in zip(BASE_COLUMNS, cols[:8], strict=True)}
    base["kind"] = [lineage_kind(k) for k in base["kind"]]
    for col in ("started", "ended"):
        base[col] = pd.to_datetime(np.array(base[col], dtype=float), unit="s", utc=True)
    parts = [pd.DataFrame(base, columns=BASE_COLUMNS)]
    # every run's params and last metrics arrive as one JSON object each: parse them all at once
    params = pd.DataFrame.from_records(_loads_many(cols[8]), nrows=n) if n else pd.DataFrame()
    if len(params.columns):
        params = params[sorted(params.columns)]
        for name in params.columns:
            if params[name].dtype == object:
                params[name] = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in params[name]]
        parts.append(params.add_prefix("params."))
    metrics = pd.DataFrame.from_records(_loads_many(cols[9]), nrows=n) if n else pd.DataFrame()
    if len(metrics.columns):
        metrics = metrics[sorted(metrics.columns)]
        for name in metrics.columns:
            if metrics[name].dtype != float:  # None, or "nan" / "inf" / "-inf" for special values
                metrics[name] = pd.to_numeric(metrics[name], errors="coerce").astype(float)
        parts.append(metrics.add_prefix("metrics."))
    return pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]


def get_run(ref: str, *, store: Store | None = None) -> RunRecord:
    """The full record of a run, by id or unique prefix."""
    return _store(store).get_run(ref)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def filter_mask(frame: pd.DataFrame, expr: str) -> Any:
    """Evaluate a ``--where`` expression over ``frame`` without ``eval``.

    Grammar: comparisons ``COLUMN OP LITERAL`` (OP in ``== != < <= > >= in not in``) joined
    by ``and`` / ``or`` / ``not`` and parentheses. COLUMN is ``status``, ``params.lr``,
    ``metrics.roc_auc``...

    Raises:
        InputError: the expression is not of that form or names an unknown column.
    """
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise InputError(f"--where {expr!r} is not a valid expression ({exc.msg}); e.g. \"metrics.auc >= 0.9 and status == 'finished'\".") from None

    def column(node: ast.expr) -> Any:
        name = _dotted(node)
        if name is None:
            raise InputError(f"--where: {ast.unparse(node)!r} is not a column name; use e.g. params.lr or metrics.auc.")
        if name not in frame.columns:
            known = ", ".join(c for c in frame.columns if c not in ("started", "ended"))
            raise InputError(f"--where: unknown column {name!r}; known columns: {known}.")
        return frame[name]

    def literal(node: ast.expr) -> Any:
        try:
            return ast.literal_eval(node)
        except (ValueError, SyntaxError):
            raise InputError(f"--where: {ast.unparse(node)!r} must be a literal (number, string, list).") from None

    def visit(node: ast.expr) -> Any:
        if isinstance(node, ast.BoolOp):
            parts = [visit(v) for v in node.values]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(node.op, ast.And) else (out | p)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return ~visit(node.operand)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, op, right = node.left, node.ops[0], node.comparators[0]
            if _dotted(left) is None and _dotted(right) is not None:
                left, right = right, left
                op = {ast.Lt: ast.Gt(), ast.Gt: ast.Lt(), ast.LtE: ast.GtE(), ast.GtE: ast.LtE()}.get(type(op), op)
            col, value = column(left), literal(right)
            if isinstance(op, (ast.In, ast.NotIn)):
                mask = col.isin(list(value))
                return ~mask if isinstance(op, ast.NotIn) else mask
            method = _OPS.get(type(op))
            if method is None:
                raise InputError(f"--where: operator in {ast.unparse(node)!r} is not supported.")
            try:
                return getattr(col, method)(value).fillna(False).astype(bool)
            except TypeError:
                raise InputError(f"--where: cannot compare {_dotted(left)} with {value!r}.") from None
        raise InputError(
            f"--where: {ast.unparse(node)!r} is not supported; use comparisons joined by and/or/not."
        )

    return visit(tree.body)
