"""The store schema (SQLAlchemy Core) and its migrations.

Every change to the schema bumps :data:`~nbtoolkit.store.version.SCHEMA_VERSION` and appends a migration that upgrades a
store of the previous version in place. New stores are created at the latest version directly.
Migrations use portable DDL only, so the same path serves SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    bindparam,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment", String(128), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("kind", String(32), nullable=False, server_default="experiment"),
    Column("source", String(32), nullable=False, server_default="kernel"),
    Column("started", Float, nullable=False, index=True),
    Column("ended", Float),
    Column("heartbeat", Float),
    Column("host", String(255)),
    Column("pid", Integer),
    Column("proc_start", String(32)),
    Column("notebook_path", Text),
    Column("notebook_hash", String(64)),
    Column("declaration", Text, nullable=False, server_default="{}"),
    Column("baseline_ref", Text),
    Column("baseline_run_id", String(32)),
    Column("verdict", String(16)),
    Column("verdict_detail", Text),
    Column("lock_hash", String(64)),
    Column("parent_id", String(32), index=True),
    Column("origin_run_id", String(32), index=True),
    Column("error", Text),
    Column("extra", Text, nullable=False, server_default="{}"),
    # v2: run cache key for papermill reruns and sweeps
    Column("cache_key", String(64), index=True),
    # v5: per-run summary for listings, kept equal to the params / metrics rows on every write
    # (see refresh_summary): one JSON object of parameter values, one of last metric values
    Column("params_json", Text),
    Column("metrics_json", Text),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "name"),
)

metrics = Table(
    "metrics",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", Float),
    Column("special", String(8)),  # 'nan', 'inf', '-inf': stored apart so every backend keeps them
    Column("step", Integer),
    Column("ts", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "name"),
)

metric_steps = Table(
    "metric_steps",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("step", Integer, nullable=False),
    Column("value", Float),
    Column("special", String(8)),
    Column("ts", Float, nullable=False),
    Index("ix_metric_steps_run_name_step", "run_id", "name", "step"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("name", String(512), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("media_type", String(128)),
    Column("meta", Text, nullable=False, server_default="{}"),
    Column("created", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "name"),
)

locks = Table(
    "locks",
    metadata,
    Column("lock_hash", String(64), primary_key=True),
    Column("created", Float, nullable=False),
    Column("body", Text, nullable=False),
)

datasets = Table(
    "datasets",
    metadata,
    Column("run_id", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("source", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("algo", String(16), nullable=False),
    Column("size", Integer),
    PrimaryKeyConstraint("run_id", "path", "source"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("by", String(255), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created", Float, nullable=False),
)

exports = Table(
    "exports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("model", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("forced", Integer, nullable=False, server_default="0"),
    Column("reason", Text),
    Column("extra", Text, nullable=False, server_default="{}"),
)

# v2
sweeps = Table(
    "sweeps",
    metadata,
    Column("sweep_id", String(32), primary_key=True),
    Column("notebook", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", Float, nullable=False),
    Column("ended", Float),
)


# v3: model registry (aliases and every move of an alias)
aliases = Table(
    "aliases",
    metadata,
    Column("model", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("updated", Float, nullable=False),
    PrimaryKeyConstraint("model", "alias"),
)

alias_history = Table(
    "alias_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", String(64)),
    Column("to_version", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # promote | rollback
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created", Float, nullable=False),
    Column("forced_cadence", Integer, nullable=False, server_default="0"),
    Column("extra", Text, nullable=False, server_default="{}"),  # gate results, override reason
    Index("ix_alias_history_model_alias", "model", "alias", "id"),
)

# v4: the prediction log of `nbtk serve` (with labels joined by feedback) and review comments
predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String(32), nullable=False),
    Column("row_id", String(255), nullable=False),
    Column("key", String(255)),
    Column("model", String(128), nullable=False),
    Column("version", String(64), nullable=False),
    Column("arm", String(16), nullable=False),  # champion | challenger
    Column("ts", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ok", Integer, nullable=False),
    Column("error", Text),
    Column("input_hash", String(64), nullable=False),
    Column("inputs", Text),  # JSON, only when logging inputs is configured
    Column("prediction", Text),  # JSON
    Column("score", Float),
    Column("proba", Text),  # JSON list
    Column("label", Text),  # JSON, joined by feedback
    Column("label_ts", Float),
    Index("ix_predictions_model_ts", "model", "ts"),
    Index("ix_predictions_model_row", "model", "row_id"),
    Index("ix_predictions_model_key", "model", "key"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("target_kind", String(16), nullable=False),  # run | version | experiment
    Column("target", String(255), nullable=False),
    Column("by", String(255), nullable=False),
    Column("text", Text, nullable=False),
    Column("rating", Integer),
    Column("created", Float, nullable=False),
    Index("ix_comments_target", "target_kind", "target"),
)


# v5: pinned baselines (``nbtk baseline set``)
baseline_pins = Table(
    "baseline_pins",
    metadata,
    Column("experiment", String(128), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("by", String(255), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("created", Float, nullable=False),
)


def _v1_to_v2(conn: Connection) -> None:
    """v2 adds the run-cache key and the sweeps table (re-execution stage)."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN cache_key VARCHAR(64)"))
    conn.execute(text("CREATE INDEX ix_runs_cache_key ON runs (cache_key)"))
    sweeps.create(conn)


def _v2_to_v3(conn: Connection) -> None:
    """v3 adds the model registry: ``aliases`` and ``alias_history`` (stability stage)."""
    aliases.create(conn)
    alias_history.create(conn)


def _v3_to_v4(conn: Connection) -> None:
    """v4 adds the serving prediction log and review comments (serve stage)."""
    predictions.create(conn, checkfirst=True)
    comments.create(conn, checkfirst=True)


def _v4_to_v5(conn: Connection) -> None:
    """v5 adds ``baseline_pins`` and names each run's lineage in ``runs.kind``.

    Run kinds before v5 did not tell a cached copy or a sweep child from the run it copies or
    a single ``nbtk run``; they become ``cached`` (a run-cache hit: ``extra.cached`` with an
    ``origin_run_id``) and ``sweep`` (a child whose ``parent_id`` is a sweep).
    """
    baseline_pins.create(conn, checkfirst=True)
    conn.execute(
        update(runs)
        .where(and_(runs.c.origin_run_id.is_not(None), runs.c.kind.not_in(["reproduction", "test"]),
                    runs.c.extra.like('%"cached":true%')))
        .values(kind="cached")
    )
    conn.execute(
        update(runs)
        .where(and_(runs.c.kind == "papermill", runs.c.parent_id.in_(select(sweeps.c.sweep_id))))
        .values(kind="sweep")
    )


def params_summary(rows: Iterable[tuple[str, str]]) -> str | None:
    """``runs.params_json`` from ``(name, value JSON)`` rows: one JSON object (``None`` if no rows)."""
    items = sorted(rows)
    if not items:
        return None
    return "{" + ",".join(f"{json.dumps(name)}:{value}" for name, value in items) + "}"


def metrics_summary(rows: Iterable[tuple[str, float | None, str | None]]) -> str | None:
    """``runs.metrics_json`` from ``(name, value, special)`` rows of last values.

    NaN and infinities are the strings ``"nan"``, ``"inf"``, ``"-inf"`` (strict JSON).
    """
    items = {name: special if special else value for name, value, special in rows}
    return json.dumps(dict(sorted(items.items())), allow_nan=False) if items else None


def refresh_summary(conn: Connection, run_ids: Sequence[str], *, with_params: bool = True, with_metrics: bool = True) -> None:
    """Recompute the summary columns of ``run_ids`` from their rows, inside the caller's transaction.

    Called by every write of parameters or metrics, so ``runs.params_json`` / ``metrics_json``
    always equal what the ``params`` / ``metrics`` rows say.
    """
    if not run_ids:
        return
    values: dict[str, dict[str, str | None]] = {rid: {} for rid in run_ids}
    if with_params:
        found: dict[str, list[tuple[str, str]]] = {rid: [] for rid in run_ids}
        for rid, name, value in conn.execute(select(params.c.run_id, params.c.name, params.c.value).where(params.c.run_id.in_(run_ids))):
            found[rid].append((name, value))
        for rid, rows in found.items():
            values[rid]["params_json"] = params_summary(rows)
    if with_metrics:
        last: dict[str, list[tuple[str, float | None, str | None]]] = {rid: [] for rid in run_ids}
        q = select(metrics.c.run_id, metrics.c.name, metrics.c.value, metrics.c.special).where(metrics.c.run_id.in_(run_ids))
        for rid, name, value, special in conn.execute(q):
            last[rid].append((name, value, special))
        for rid, mrows in last.items():
            values[rid]["metrics_json"] = metrics_summary(mrows)
    columns = [c for c, on in (("params_json", with_params), ("metrics_json", with_metrics)) if on]
    stmt = update(runs).where(runs.c.run_id == bindparam("rid")).values({c: bindparam(c) for c in columns})
    conn.execute(stmt, [{"rid": rid, **v} for rid, v in values.items()])


def _v5_to_v6(conn: Connection) -> None:
    """v6 adds the per-run summary columns read by listings, filled for every existing run."""
    present = {c["name"] for c in inspect(conn).get_columns("runs")}
    for column in ("params_json", "metrics_json"):
        if column not in present:  # a store rebuilt at an earlier version by a newer nbtoolkit has them
            conn.execute(text(f"ALTER TABLE runs ADD COLUMN {column} TEXT"))
    ids = list(conn.execute(select(runs.c.run_id)).scalars())
    for start in range(0, len(ids), 500):
        refresh_summary(conn, ids[start : start + 500])


#: MIGRATIONS[v] upgrades a store at version v to version v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5, 5: _v5_to_v6}
