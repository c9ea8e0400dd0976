"""Lineage in the store: pinned baselines, reproductions, code versions.

Run kinds and their labels are in :mod:`nbtoolkit.store.kinds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit._format import iso
from nbtoolkit.store import schema as S
from nbtoolkit.store.kinds import KIND_LABELS, ORIGINAL_KINDS, lineage_kind

if TYPE_CHECKING:
    from nbtoolkit.store.records import RunRecord

@dataclass(frozen=True)
class BaselinePin:
    """The run pinned as an experiment's baseline, with who pinned it and when."""

    experiment: str
    run_id: str
    by: str
    note: str
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "run_id": self.run_id, "by": self.by, "note": self.note,
                "created": iso(self.created)}


class LineageRecords:
    """Lineage operations of :class:`~nbtoolkit.store.Store`, each one transaction."""

    # provided by Store: transactions (``fn(conn)`` in a read / write transaction) and redaction
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]
    _redact_text: Callable[[str | None], str | None]
    get_lock_body: Callable[[str], dict[str, Any] | None]

    def pin_baseline(self, experiment: str, run_id: str, *, by: str, note: str = "") -> BaselinePin:
        """Pin ``run_id`` as the baseline of ``experiment`` (replacing an earlier pin)."""
        pin = BaselinePin(experiment, run_id, by, self._redact_text(note) or "", time.time())

        def run(conn: Connection) -> None:
            conn.execute(delete(S.baseline_pins).where(S.baseline_pins.c.experiment == experiment))
            conn.execute(insert(S.baseline_pins).values(
                experiment=experiment, run_id=run_id, by=pin.by, note=pin.note, created=pin.created))

        self._write(run)
        return pin

    def baseline_pin(self, experiment: str) -> BaselinePin | None:
        """The pin of ``experiment``, or ``None``."""
        q = select(S.baseline_pins).where(S.baseline_pins.c.experiment == experiment)
        row = self._read(lambda conn: conn.execute(q).mappings().first())
        if row is None:
            return None
        return BaselinePin(row["experiment"], row["run_id"], row["by"], row["note"], float(row["created"]))

    def unpin_baseline(self, experiment: str) -> bool:
        """Remove the pin of ``experiment``; False when there was none."""
        cond = S.baseline_pins.c.experiment == experiment
        result = self._write(lambda conn: conn.execute(delete(S.baseline_pins).where(cond)))
        return bool(result.rowcount)

    def latest_original_run(self, experiment: str, *, verdict: str | None = "supported") -> str | None:
        """The newest finished *original* run of ``experiment`` (with ``verdict``), or ``None``.

        Reproductions, cached copies, sweep children, tests and monitor runs never count.
        """
        cond = [S.runs.c.experiment == experiment, S.runs.c.kind.in_(ORIGINAL_KINDS), S.runs.c.status == "finished"]
        if verdict is not None:
            cond.append(S.runs.c.verdict == verdict)
        q = select(S.runs.c.run_id).where(and_(*cond)).order_by(S.runs.c.started.desc()).limit(1)
        found = self._read(lambda conn: conn.execute(q).scalar())
        return None if found is None else str(found)

    def reproductions_of(self, run_id: str) -> list[dict[str, Any]]:
        """Every ``nbtk reproduce`` of ``run_id``, oldest first: run id, status, result, started."""
        q = (
            select(S.runs.c.run_id, S.runs.c.status, S.runs.c.started, S.runs.c.extra)
            .where(and_(S.runs.c.origin_run_id == run_id, S.runs.c.kind == "reproduction"))
            .order_by(S.runs.c.started)
        )
        rows = self._read(lambda conn: conn.execute(q).all())
        out = []
        for rid, status, started, extra in rows:
            result = ((_json.loads(extra, {}) or {}).get("reproduction") or {}).get("result")
            out.append({"run_id": rid, "status": status, "result": result, "started": started})
        return out

    def code_version(self, record: RunRecord) -> dict[str, Any]:
        """The code a run executed: git commit, branch, dirty flag and the diff artifact."""
        body = self.get_lock_body(record.lock_hash) if record.lock_hash else None
        git = (body or {}).get("git") or {}
        diff = record.artifact("git.diff")
        return {
            "commit": git.get("commit"),
            "branch": git.get("branch"),
            "dirty": bool(git.get("dirty")) if git else None,
            "diff_artifact": {"name": diff.name, "sha256": diff.digest, "size": diff.size} if diff else None,
        }

    def run_lineage(self, record: RunRecord) -> dict[str, Any]:
        """Where a run came from and what came of it (the ``lineage`` of ``to_dict()``).

        Keys: ``kind`` (see :data:`LINEAGE_KINDS`) and its ``label``; ``sweep_id`` and
        ``sweep_index`` of a sweep child; ``cached_from`` of a cached copy; ``reproduces`` of a
        reproduction; ``reproduced_by``: every reproduction of this run with its outcome.
        """
        kind = lineage_kind(record.kind)
        index = record.extra.get("sweep_index")
        origin = record.origin_run_id
        reproduced = [
            {"run_id": r["run_id"], "status": r["status"], "result": r["result"], "started": iso(r["started"])}
            for r in self.reproductions_of(record.run_id)
        ]
        return {
            "kind": kind,
            "label": KIND_LABELS.get(kind, kind),
            "sweep_id": record.parent_id,
            "sweep_index": index if isinstance(index, int) and record.parent_id else None,
            "cached_from": origin if kind == "cached" else None,
            "reproduces": origin if kind == "reproduction" else None,
            "reproduced_by": reproduced,
        }
