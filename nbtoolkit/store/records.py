"""Read-side record objects returned by the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit._format import iso
from nbtoolkit.declaration import Declaration
from nbtoolkit.store.card import run_card_html
from nbtoolkit.verdict import Verdict

if TYPE_CHECKING:
    from nbtoolkit.store.store import Store

#: Run statuses (DESIGN.md vocabulary).
STATUSES = ("running", "finished", "failed", "interrupted", "crashed", "timed_out")
TERMINAL_STATUSES = frozenset(STATUSES) - {"running"}
VERDICTS = ("supported", "rejected", "inconclusive")


@dataclass(frozen=True)
class ArtifactRef:
    """One artifact recorded for a run (the bytes live in the content-addressed store)."""

    name: str
    kind: str
    digest: str
    size: int
    media_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "sha256": self.digest,
            "size": self.size,
            "media_type": self.media_type,
            "meta": self.meta,
        }


@dataclass(frozen=True)
class DataRef:
    """A data file version used by a run (from DVC or ``track_data``)."""

    path: str
    source: str
    digest: str
    algo: str
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "source": self.source,
            "digest": self.digest,
            "algo": self.algo,
            "size": self.size,
        }


@dataclass(frozen=True)
class Approval:
    """A reviewer's sign-off."""

    run_id: str
    by: str
    note: str
    created: float

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "by": self.by, "note": self.note, "created": iso(self.created)}


@dataclass(frozen=True)
class RunRecord:
    """Everything recorded about one run.

    Obtained from :func:`nbtoolkit.get_run` or :meth:`Store.get_run`. Metric values are the last
    value of each series; :meth:`metric_history` returns a whole step series. ``declaration`` is
    a :class:`~nbtoolkit.declaration.Declaration` (the empty one when the run declared nothing,
    see :meth:`Declaration.from_stored`) and ``verdict_detail`` a
    :class:`~nbtoolkit.verdict.Verdict` (``None`` when none was stored or it is unreadable).
    """

    run_id: str
    experiment: str
    status: str
    kind: str
    source: str
    started: float
    ended: float | None
    notebook_path: str | None
    notebook_hash: str | None
    declaration: Declaration
    baseline_ref: str | None
    baseline_run_id: str | None
    verdict: str | None
    verdict_detail: Verdict | None
    lock_hash: str | None
    parent_id: str | None
    origin_run_id: str | None
    error: str | None
    extra: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, float]
    metric_steps: dict[str, int | None]
    tags: dict[str, str]
    artifacts: tuple[ArtifactRef, ...]
    data: tuple[DataRef, ...]
    approvals: tuple[Approval, ...]
    host: str | None = None
    pid: int | None = None
    cache_key: str | None = None
    store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def short_id(self) -> str:
        return self.run_id[:8]

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def hypothesis(self) -> str:
        return self.declaration.hypothesis

    def artifact(self, name: str) -> ArtifactRef | None:
        """Return the artifact called ``name``, or ``None``."""
        return next((a for a in self.artifacts if a.name == name), None)

    def artifacts_of(self, kind: str) -> list[ArtifactRef]:
        return [a for a in self.artifacts if a.kind == kind]

    def metric_history(self, name: str) -> list[tuple[int, float]]:
        """Return the ``(step, value)`` series of a metric logged with steps."""
        if self.store is None:
            return []
        return self.store.metric_history(self.run_id, name)

    def lock(self) -> Any:
        """Return this run's :class:`~nbtoolkit.envlock.EnvLock` (``None`` when absent)."""
        if self.store is None or self.lock_hash is None:
            return None
        return self.store.get_lock(self.lock_hash)

    def to_dict(self, *, lineage: bool = True) -> dict[str, Any]:
        """JSON-compatible dict; ``run_id``, ``experiment``, ``status``, ``verdict``, ``started``,
        ``ended``, ``params`` and ``metrics`` are the keys of ``nbtk runs --json``.

        ``code`` (git commit, branch, dirty flag, diff artifact) and ``lineage`` (kind, sweep,
        the run it was cached from or reproduces, its reproductions) read the store;
        ``lineage=False`` leaves them ``None`` (listings of many runs).
        """
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "status": self.status,
            "verdict": self.verdict,
            "started": iso(self.started),
            "ended": iso(self.ended),
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "kind": self.kind,
            "source": self.source,
            "declaration": self.declaration.to_dict(),
            "baseline": {"ref": self.baseline_ref, "run_id": self.baseline_run_id},
            "code": self.store.code_version(self) if lineage and self.store is not None else None,
            "lineage": self.store.run_lineage(self) if lineage and self.store is not None else None,
            "verdict_detail": self.verdict_detail.to_dict() if self.verdict_detail else None,
            "notebook": {"path": self.notebook_path, "sha256": self.notebook_hash},
            "lock_hash": self.lock_hash,
            "parent_id": self.parent_id,
            "origin_run_id": self.origin_run_id,
            "cache_key": self.cache_key,
            "error": self.error,
            "tags": dict(self.tags),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "data": [d.to_dict() for d in self.data],
            "approvals": [a.to_dict() for a in self.approvals],
            "extra": dict(self.extra),
        }

    def __repr__(self) -> str:
        verdict = f", verdict={self.verdict!r}" if self.verdict else ""
        return (
            f"<RunRecord {self.short_id} experiment={self.experiment!r} "
            f"status={self.status!r}{verdict}>"
        )

    def _repr_html_(self) -> str:
        return run_card_html(self)

    def __str__(self) -> str:
        return repr(self)

