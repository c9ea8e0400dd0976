"""The store's sweep records: one row per sweep, its children are runs with ``parent_id``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit.store import schema as S


@dataclass(frozen=True)
class Sweep:
    """One sweep: the notebook, its spec (grid, seeds, budget) and its status."""

    sweep_id: str
    notebook: str
    spec: dict[str, Any]
    status: str
    created: float
    ended: float | None = None


@dataclass(frozen=True)
class SweepCounts:
    """How a sweep's children ended: ``done`` includes ``cached``; ``running`` are still going."""

    total: int
    done: int
    failed: int
    cached: int
    running: int


def _sweep(row: Any) -> Sweep:
    return Sweep(
        str(row["sweep_id"]), str(row["notebook"]), _json.loads(row["spec"], {}) or {}, str(row["status"]),
        float(row["created"]), row["ended"],
    )


class SweepRecords:
    """Sweep operations of :class:`~nbtoolkit.store.Store`, each one transaction."""

    # provided by Store: transactions (``fn(conn)`` in a read / write transaction) and redaction
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]
    _redact: Callable[[Any], Any]
    _redact_text: Callable[[str | None], str | None]

    def create_sweep(self, sweep_id: str, *, notebook: str, spec: Mapping[str, Any], status: str = "running",
                     created: float | None = None) -> None:
        """Record a new sweep of ``notebook`` with its ``spec`` (JSON-compatible; resume re-reads it)."""
        values = {
            "sweep_id": sweep_id, "notebook": notebook, "spec": _json.dumps(dict(spec)),
            "status": status, "created": time.time() if created is None else created,
        }
        self._write(lambda conn: conn.execute(insert(S.sweeps).values(**values)))

    def find_sweeps(self, prefix: str, *, limit: int | None = None) -> list[Sweep]:
        """Sweeps whose id starts with ``prefix`` (case-insensitive), at most ``limit``."""
        q = select(S.sweeps).where(S.sweeps.c.sweep_id.like(f"{prefix.lower()}%")).order_by(S.sweeps.c.created)
        if limit is not None:
            q = q.limit(limit)

        def run(conn: Connection) -> list[Sweep]:
            return [_sweep(r) for r in conn.execute(q).mappings().all()]

        return list(self._read(run))

    def set_sweep_status(self, sweep_id: str, status: str, *, ended: bool) -> None:
        """Set a sweep's status; ``ended`` stamps the end time (else clears it, for a resumed sweep)."""
        values: dict[str, Any] = {"status": status, "ended": time.time() if ended else None}
        self._write(lambda conn: conn.execute(update(S.sweeps).where(S.sweeps.c.sweep_id == sweep_id).values(**values)))

    def finished_sweep_indices(self, sweep_id: str) -> set[int]:
        """The ``sweep_index`` of every finished child run of ``sweep_id``."""
        q = select(S.runs.c.extra).where(and_(S.runs.c.parent_id == sweep_id, S.runs.c.status == "finished"))
        texts = self._read(lambda conn: conn.execute(q).scalars().all())
        out: set[int] = set()
        for text in texts:
            index = (_json.loads(text, {}) or {}).get("sweep_index")
            if isinstance(index, int):
                out.add(index)
        return out

    def sweep_counts(self, sweep_ids: Iterable[str]) -> dict[str, SweepCounts]:
        """Children of each sweep counted by how they ended, in one query."""
        ids = list(sweep_ids)
        if not ids:
            return {}
        q = (
            select(S.runs.c.parent_id, S.runs.c.status, S.runs.c.kind, func.count())
            .where(S.runs.c.parent_id.in_(ids))
            .group_by(S.runs.c.parent_id, S.runs.c.status, S.runs.c.kind)
        )
        rows = self._read(lambda conn: conn.execute(q).all())
        tally: dict[str, dict[str, int]] = {sid: {"total": 0, "done": 0, "failed": 0, "cached": 0, "running": 0} for sid in ids}
        for parent, status, kind, n in rows:
            t = tally[parent]
            t["total"] += n
            if status == "finished":
                t["done"] += n
                t["cached"] += n if kind == "cached" else 0
            elif status == "running":
                t["running"] += n
            else:
                t["failed"] += n
        return {sid: SweepCounts(**t) for sid, t in tally.items()}

    def list_sweeps(self, *, limit: int | None = None) -> list[Sweep]:
        """Every sweep, newest first (at most ``limit``)."""
        q = select(S.sweeps).order_by(S.sweeps.c.created.desc())
        if limit is not None:
            q = q.limit(limit)
        return [_sweep(r) for r in self._read(lambda conn: conn.execute(q).mappings().all())]

    def sweep_child_ids(self, sweep_id: str) -> list[str]:
        """Ids of the children of ``sweep_id``, oldest first."""
        q = select(S.runs.c.run_id).where(S.runs.c.parent_id == sweep_id).order_by(S.runs.c.started)
        return [str(r) for r in self._read(lambda conn: conn.execute(q).scalars().all())]
