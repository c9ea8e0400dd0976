"""Read side of the store: resolving ids and aliases, full run records, fast listings.

:class:`RunReads` is mixed into :class:`~nbtoolkit.store.store.Store`; it only needs the
store's ``_read`` transaction helper and its schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection, Engine

from nbtoolkit import _json
from nbtoolkit.declaration import Declaration
from nbtoolkit.errors import AmbiguousRunIdError, InputError, RunNotFoundError
from nbtoolkit.store import schema as S
from nbtoolkit.store.listing import summary_query
from nbtoolkit.store.records import Approval, ArtifactRef, DataRef, RunRecord
from nbtoolkit.verdict import Verdict

if TYPE_CHECKING:
    from nbtoolkit.store.store import Store


T = TypeVar("T")


class RunReads:
    """Queries over runs (mixed into :class:`~nbtoolkit.store.store.Store`)."""

    # provided by Store: the read engine and ``_read(fn)`` (``fn(conn)`` in a read transaction)
    _reader: Engine

    if TYPE_CHECKING:
        def _read(self, fn: Callable[[Connection], T]) -> T: ...

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        rows = self._read(
            lambda conn: conn.execute(
                select(S.metric_steps.c.step, S.metric_steps.c.value, S.metric_steps.c.special)
                .where(and_(S.metric_steps.c.run_id == run_id, S.metric_steps.c.name == name))
                .order_by(S.metric_steps.c.step, S.metric_steps.c.ts)
            ).all()
        )
        return [(int(step), _json.from_special(value, special)) for step, value, special in rows]

    def resolve_run_id(self, ref: str) -> str:
        """Resolve a full run id or a unique prefix (at least 4 characters)."""
        ref = ref.strip().lower()
        if not ref or any(c not in "0123456789abcdef" for c in ref):
            raise RunNotFoundError(ref, "Run ids are hexadecimal; list them with `nbtk runs`.")
        if len(ref) == 32:
            found = self._read(lambda conn: conn.execute(select(S.runs.c.run_id).where(S.runs.c.run_id == ref)).scalar())
            if found:
                return str(found)
            raise RunNotFoundError(ref)
        if len(ref) < 4:
            raise InputError(f"Run id prefix {ref!r} is too short; give at least 4 characters.")
        matches = self._read(
            lambda conn: conn.execute(select(S.runs.c.run_id).where(S.runs.c.run_id.like(f"{ref}%")).limit(6)).scalars().all()
        )
        if not matches:
            raise RunNotFoundError(ref)
        if len(matches) > 1:
            raise AmbiguousRunIdError(ref, list(matches))
        return str(matches[0])

    def resolve_alias(self, ref: str) -> str | None:
        """Resolve a registry alias (``production``, ``MODEL@ALIAS``) to the run id of its export.

        A bare alias must name exactly one model; ``None`` when nothing matches.

        Raises:
            InputError: a bare alias is set for several models (use ``MODEL@ALIAS``).
        """
        model, _, alias = ref.rpartition("@")
        cond = S.aliases.c.alias == alias.strip()
        if model:
            cond = and_(cond, S.aliases.c.model == model.strip())
        rows = self._read(lambda conn: conn.execute(select(S.aliases.c.model, S.aliases.c.version).where(cond)).all())
        if not rows:
            return None
        if len(rows) > 1:
            names = ", ".join(sorted(f"{m}@{alias}" for m, _ in rows))
            raise InputError(f"Alias {alias!r} is set for several models; name one: {names}.")
        m, version = rows[0]
        q = (
            select(S.exports.c.run_id)
            .where(and_(S.exports.c.model == m, S.exports.c.version == version))
            .order_by(S.exports.c.created.desc())
            .limit(1)
        )
        return cast("str | None", self._read(lambda conn: conn.execute(q).scalar()))

    def experiment_names(self) -> list[str]:
        return list(self._read(lambda conn: conn.execute(select(S.experiments.c.name).order_by(S.experiments.c.name)).scalars().all()))

    def latest_run(self, experiment: str, *, verdict: str | None = None, status: str | None = "finished") -> str | None:
        """Return the id of the latest run of ``experiment`` matching verdict/status."""
        cond = [S.runs.c.experiment == experiment, S.runs.c.kind != "test"]  # smoke runs are never baselines
        if verdict is not None:
            cond.append(S.runs.c.verdict == verdict)
        if status is not None:
            cond.append(S.runs.c.status == status)
        q = select(S.runs.c.run_id).where(and_(*cond)).order_by(S.runs.c.started.desc()).limit(1)
        return cast("str | None", self._read(lambda conn: conn.execute(q).scalar()))

    def run_exists(self, run_id: str) -> bool:
        return bool(self._read(lambda conn: conn.execute(select(func.count()).where(S.runs.c.run_id == run_id)).scalar()))

    def get_run(self, ref: str) -> RunRecord:
        """Return the full record of a run (id or unique prefix)."""
        run_id = self.resolve_run_id(ref)
        return self.get_runs([run_id])[0]

    def get_runs(self, run_ids: Sequence[str]) -> list[RunRecord]:
        """Return full records for the given ids, in the same order (missing ids are skipped)."""
        ids = list(run_ids)
        if not ids:
            return []
        by_id = _group_rows(self._read(lambda conn: _fetch_rows(conn, ids)))
        store = cast("Store", self)
        return [_to_record(by_id[rid], store) for rid in ids if rid in by_id]

    def runs_wide(
        self,
        *,
        experiment: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> Sequence[Sequence[Any]]:
        """Runs for listings, newest first, each with its summary: one query on either backend.

        Returns rows ``(run_id, experiment, status, verdict, started, ended, kind, parent_id,
        params_json, metrics_json)``: the two JSON objects are the per-run summary kept on every write (see
        :func:`~nbtoolkit.store.schema.refresh_summary`), so no parameter or metric row is read
        and nothing is pivoted. The query is :func:`~nbtoolkit.store.listing.summary_query`, the
        same one a driver-level :class:`~nbtoolkit.store.listing.Listing` runs in a fresh process.
        """
        marker = "?" if self._reader.dialect.name == "sqlite" else "%s"
        sql, params = summary_query(
            marker, experiment=experiment, status=status, kind=kind, parent_id=parent_id, limit=limit
        )
        return self._read(lambda conn: conn.exec_driver_sql(sql, tuple(params)).all())

    def query_runs(
        self,
        *,
        experiment: str | Sequence[str] | None = None,
        status: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """Fast tabular read for listings: ``(run rows, param rows, metric rows)``.

        Rows are plain dicts; a run row's ``declaration`` is a
        :class:`~nbtoolkit.declaration.Declaration` (read with ``Declaration.from_stored``),
        param values are JSON text, metrics carry ``value``/``special``.
        """
        cond = []
        for column, value in ((S.runs.c.experiment, experiment), (S.runs.c.status, status), (S.runs.c.kind, kind)):
            if value is None:
                continue
            cond.append(column == value if isinstance(value, str) else column.in_(list(value)))
        if parent_id is not None:
            cond.append(S.runs.c.parent_id == parent_id)
        cols = [
            S.runs.c.run_id,
            S.runs.c.experiment,
            S.runs.c.status,
            S.runs.c.verdict,
            S.runs.c.started,
            S.runs.c.ended,
            S.runs.c.kind,
            S.runs.c.parent_id,
            S.runs.c.origin_run_id,
            S.runs.c.declaration,
        ]
        q = select(*cols).order_by(S.runs.c.started.desc())
        if cond:
            q = q.where(and_(*cond))
        if limit is not None:
            q = q.limit(limit)

        def run(conn: Connection) -> tuple[list[Any], list[Any], list[Any]]:
            runs = [_with_declaration(dict(r)) for r in conn.execute(q).mappings()]
            if not runs:
                return runs, [], []
            if cond or limit is not None:
                sub = q.with_only_columns(S.runs.c.run_id).subquery()
                pq = select(S.params).where(S.params.c.run_id.in_(select(sub.c.run_id)))
                mq = select(S.metrics.c.run_id, S.metrics.c.name, S.metrics.c.value, S.metrics.c.special).where(
                    S.metrics.c.run_id.in_(select(sub.c.run_id))
                )
            else:
                pq = select(S.params)
                mq = select(S.metrics.c.run_id, S.metrics.c.name, S.metrics.c.value, S.metrics.c.special)
            params = [dict(r) for r in conn.execute(pq).mappings()]
            metrics = [dict(r) for r in conn.execute(mq).mappings()]
            return runs, params, metrics

        return self._read(run)


#: Tables whose rows belong to one run, read with it into a full record.
_CHILD_TABLES = (
    ("params", S.params),
    ("metrics", S.metrics),
    ("tags", S.tags),
    ("artifacts", S.artifacts),
    ("datasets", S.datasets),
    ("approvals", S.approvals),
)


def _fetch_rows(conn: Connection, ids: list[str]) -> dict[str, list[Any]]:
    """The run rows and every child row of ``ids``, 500 ids per query."""
    data: dict[str, list[Any]] = {"runs": [], **{name: [] for name, _ in _CHILD_TABLES}}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        data["runs"].extend(conn.execute(select(S.runs).where(S.runs.c.run_id.in_(chunk))).mappings().all())
        for name, table in _CHILD_TABLES:
            data[name].extend(conn.execute(select(table).where(table.c.run_id.in_(chunk))).mappings().all())
    return data


def _group_rows(data: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Fold child rows under their run: decoded params and metrics, typed refs (oldest first)."""
    by_id: dict[str, dict[str, Any]] = {}
    for r in data["runs"]:
        by_id[r["run_id"]] = {
            "row": r, "params": {}, "metrics": {}, "steps": {}, "tags": {}, "artifacts": [], "data": [], "approvals": [],
        }
    for p in data["params"]:
        by_id[p["run_id"]]["params"][p["name"]] = _json.loads(p["value"])
    for m in data["metrics"]:
        by_id[m["run_id"]]["metrics"][m["name"]] = _json.from_special(m["value"], m["special"])
        by_id[m["run_id"]]["steps"][m["name"]] = m["step"]
    for t in data["tags"]:
        by_id[t["run_id"]]["tags"][t["key"]] = t["value"]
    for a in sorted(data["artifacts"], key=lambda a: a["created"]):
        by_id[a["run_id"]]["artifacts"].append(
            ArtifactRef(a["name"], a["kind"], a["digest"], a["size"], a["media_type"], _json.loads(a["meta"], {}))
        )
    for d in data["datasets"]:
        by_id[d["run_id"]]["data"].append(DataRef(d["path"], d["source"], d["digest"], d["algo"], d["size"]))
    for a in sorted(data["approvals"], key=lambda a: a["created"]):
        by_id[a["run_id"]]["approvals"].append(Approval(a["run_id"], a["by"], a["note"], a["created"]))
    return by_id


def _with_declaration(row: dict[str, Any]) -> dict[str, Any]:
    """A run row with its stored declaration JSON read into a :class:`Declaration`."""
    stored = _json.loads(row["declaration"], {})
    row["declaration"] = Declaration.from_stored(stored, experiment=row["experiment"])
    return row


def _to_record(b: dict[str, Any], store: Store) -> RunRecord:
    """One :class:`RunRecord` from a run row and its grouped children."""
    r = b["row"]
    return RunRecord(
        run_id=r["run_id"],
        experiment=r["experiment"],
        status=r["status"],
        kind=r["kind"],
        source=r["source"],
        started=r["started"],
        ended=r["ended"],
        notebook_path=r["notebook_path"],
        notebook_hash=r["notebook_hash"],
        declaration=Declaration.from_stored(_json.loads(r["declaration"], {}), experiment=r["experiment"]),
        baseline_ref=r["baseline_ref"],
        baseline_run_id=r["baseline_run_id"],
        verdict=r["verdict"],
        verdict_detail=Verdict.from_stored(_json.loads(r["verdict_detail"])),
        lock_hash=r["lock_hash"],
        parent_id=r["parent_id"],
        origin_run_id=r["origin_run_id"],
        error=r["error"],
        extra=_json.loads(r["extra"], {}),
        params=b["params"],
        metrics=b["metrics"],
        metric_steps=b["steps"],
        tags=b["tags"],
        artifacts=tuple(b["artifacts"]),
        data=tuple(b["data"]),
        approvals=tuple(b["approvals"]),
        host=r["host"],
        pid=r["pid"],
        cache_key=r["cache_key"],
        store=store,
    )
