"""The store's model catalogue: exported versions, aliases and every move of an alias.

Versions are the bundles the export stage records (``exports``). An alias points at one version
of one model; every move of an alias is appended to ``alias_history``. :meth:`ModelRecords.move_alias`
reads the alias and its history and writes the move in one write transaction (``BEGIN
IMMEDIATE`` on SQLite), so concurrent moves serialise and the history stays one chain: each
move's ``from_version`` is the previous move's ``to_version``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit._format import iso
from nbtoolkit.errors import InputError
from nbtoolkit.store import schema as S

if TYPE_CHECKING:
    from nbtoolkit.store.blobstore import BlobStore


#: The key of ``exports.extra`` naming the bundle's archive blob: ``{"sha256": ..., "size": ...}``.
BLOB_KEY = "blob"


def blob_digest(extra: Any) -> str | None:
    """The sha256 of the bundle archive named by an export's ``extra`` (``None``: exported without one)."""
    blob = extra.get(BLOB_KEY) if isinstance(extra, Mapping) else None
    digest = blob.get("sha256") if isinstance(blob, Mapping) else None
    return digest if isinstance(digest, str) else None


@dataclass(frozen=True)
class ModelVersion:
    """One exported bundle of a model (a row of ``exports``).

    ``path`` is where the export wrote the bundle; the registry's resolution
    (:func:`nbtoolkit.registry.resolve`) returns the version with ``path`` replaced by a
    verified copy on this machine when that folder is not here.
    """

    model: str
    version: str
    run_id: str
    path: str
    created: float
    manifest_sha256: str
    forced: bool = False
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def blob(self) -> str | None:
        """The sha256 of the bundle's archive in the artifact location (``None`` for versions
        exported before bundles were stored there: their ``path`` is the only copy)."""
        return blob_digest(self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "version": self.version, "run_id": self.run_id, "path": self.path,
            "created": iso(self.created), "manifest_sha256": self.manifest_sha256, "forced": self.forced,
            "reason": self.reason, "blob": self.blob,
        }


@dataclass(frozen=True)
class Move:
    """One move of an alias: who moved it from which version to which, when and why."""

    id: int
    model: str
    alias: str
    from_version: str | None
    to_version: str
    action: str
    by: str
    reason: str
    created: float
    forced_cadence: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model": self.model, "alias": self.alias, "from_version": self.from_version,
            "to_version": self.to_version, "action": self.action, "by": self.by, "reason": self.reason,
            "created": iso(self.created), "forced_cadence": self.forced_cadence, "extra": self.extra,
        }

    def __repr__(self) -> str:
        return f"<Move {self.action} {self.model}@{self.alias}: {self.from_version} -> {self.to_version} by {self.by}>"


#: ``check(moves_so_far, now)`` runs inside the move's transaction; it may raise to refuse the
#: move, and returns why a policy was bypassed (recorded as a forced move) or ``None``.
MoveCheck = Callable[[list[Move], float], "str | None"]


def _version(row: Any) -> ModelVersion:
    return ModelVersion(
        row.model, row.version, row.run_id, row.path, row.created, row.manifest_sha256, bool(row.forced), row.reason,
        _json.loads(row.extra, {}) or {},
    )


def _move(row: Any) -> Move:
    return Move(
        row.id, row.model, row.alias, row.from_version, row.to_version, row.action, row.by, row.reason or "",
        row.created, bool(row.forced_cadence), _json.loads(row.extra, {}) or {},
    )


def _history_query(model: str, alias: str | None) -> Any:
    cond = S.alias_history.c.model == model
    if alias is not None:
        cond = and_(cond, S.alias_history.c.alias == alias)
    return select(S.alias_history).where(cond).order_by(S.alias_history.c.id)


def _alias_cond(model: str, alias: str) -> Any:
    return and_(S.aliases.c.model == model, S.aliases.c.alias == alias)


class ModelRecords:
    """Model-catalogue operations of :class:`~nbtoolkit.store.Store`, each one transaction."""

    # provided by Store: transactions (``fn(conn)`` in a read / write transaction) and redaction
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]
    _redact: Callable[[Any], Any]
    _redact_text: Callable[[str | None], str | None]

    if TYPE_CHECKING:  # a property of Store

        @property
        def artifacts(self) -> BlobStore: ...

    def model_catalog(self, model: str | None = None) -> tuple[list[ModelVersion], list[tuple[str, str, str]]]:
        """Every export (oldest first) and every ``(model, alias, version)``, read together."""
        vq = select(S.exports).order_by(S.exports.c.model, S.exports.c.created, S.exports.c.id)
        aq = select(S.aliases.c.model, S.aliases.c.alias, S.aliases.c.version)
        if model is not None:
            vq, aq = vq.where(S.exports.c.model == model), aq.where(S.aliases.c.model == model)

        def run(conn: Connection) -> tuple[list[ModelVersion], list[tuple[str, str, str]]]:
            versions = [_version(r) for r in conn.execute(vq).all()]
            return versions, [(str(m), str(a), str(v)) for m, a, v in conn.execute(aq).all()]

        versions, aliases = self._read(run)
        return versions, aliases

    def exports(self, model: str | None = None) -> list[ModelVersion]:
        """Every recorded export (of ``model``), oldest first."""
        q = select(S.exports).order_by(S.exports.c.created, S.exports.c.id)
        if model is not None:
            q = q.where(S.exports.c.model == model)
        return list(self._read(lambda conn: [_version(r) for r in conn.execute(q).all()]))

    def get_export(self, model: str, version: str) -> ModelVersion | None:
        """The latest export of ``model`` ``version``, or ``None``."""
        q = (
            select(S.exports).where(and_(S.exports.c.model == model, S.exports.c.version == version))
            .order_by(S.exports.c.created.desc(), S.exports.c.id.desc()).limit(1)
        )
        row = self._read(lambda conn: conn.execute(q).first())
        return None if row is None else _version(row)

    def record_export(self, version: ModelVersion) -> bool:
        """Record an export unless that model version is already recorded; return whether it was.

        Raises:
            StoreError: the version names a bundle blob that is not in the artifact location
                (store the archive first: the row never points at a missing blob).
        """
        if version.blob is not None:
            self.artifacts.require(version.blob)
        row = {
            "run_id": version.run_id, "model": version.model, "version": version.version, "path": version.path,
            "created": version.created, "manifest_sha256": version.manifest_sha256, "forced": int(version.forced),
            "reason": self._redact_text(version.reason), "extra": _json.dumps(self._redact(dict(version.extra))),
        }
        taken_q = select(S.exports.c.id).where(and_(S.exports.c.model == version.model, S.exports.c.version == version.version))

        def run(conn: Connection) -> bool:
            taken = conn.execute(taken_q).first() is not None
            if not taken:
                conn.execute(insert(S.exports).values(**row))
            return not taken

        return bool(self._write(run))

    def set_export_extra(self, model: str, version: str, extra: Mapping[str, Any]) -> None:
        """Replace the ``extra`` details of an export."""
        cond = and_(S.exports.c.model == model, S.exports.c.version == version)
        text = _json.dumps(self._redact(dict(extra)))
        self._write(lambda conn: conn.execute(update(S.exports).where(cond).values(extra=text)))

    def alias_version(self, model: str, alias: str) -> str | None:
        """The version ``alias`` of ``model`` points to, or ``None``."""
        q = select(S.aliases.c.version).where(_alias_cond(model, alias))
        found = self._read(lambda conn: conn.execute(q).scalar())
        return None if found is None else str(found)

    def alias_history(self, model: str, *, alias: str | None = None) -> list[Move]:
        """Every move of ``model``'s aliases (or of one ``alias``), oldest first."""
        q = _history_query(model, alias)
        return list(self._read(lambda conn: [_move(r) for r in conn.execute(q).all()]))

    def move_alias(
        self, model: str, alias: str, version: str, *, action: str, by: str, reason: str,
        detail: Mapping[str, Any], check: MoveCheck, now: float | None = None,
    ) -> Move:
        """Point ``alias`` at ``version`` and append the move to its history, in one transaction.

        Args:
            action: ``promote`` or ``rollback`` (recorded).
            detail: gate results and other details recorded with the move.
            check: called with the alias's moves so far and the time, inside the transaction.
            now: the time of the move (tests and simulations); default the current time.

        Raises:
            InputError: the alias already points to ``version``.
        """
        reason_text = self._redact_text(reason) or ""
        details = dict(detail)

        def run(conn: Connection) -> Move:
            t = time.time() if now is None else now
            moves = [_move(r) for r in conn.execute(_history_query(model, alias)).all()]
            current = conn.execute(select(S.aliases.c.version).where(_alias_cond(model, alias)).with_for_update()).scalar()
            if current == version:
                raise InputError(f"{model}@{alias} already points to {version!r}.")
            forced_by = check(moves, t)
            if forced_by:
                details["cadence_blocked"] = forced_by
            conn.execute(delete(S.aliases).where(_alias_cond(model, alias)))
            conn.execute(insert(S.aliases).values(model=model, alias=alias, version=version, updated=t))
            row = dict(model=model, alias=alias, from_version=current, to_version=version, action=action, by=by,
                       reason=reason_text, created=t, forced_cadence=int(bool(forced_by)), extra=_json.dumps(details))
            key = conn.execute(insert(S.alias_history).values(**row)).inserted_primary_key
            new_id = key[0] if key is not None else 0
            return Move(int(new_id), model, alias, current, version, action, by, reason_text, t, bool(forced_by), details)

        move: Move = self._write(run)
        return move
