"""The model registry: exported versions, aliases (``staging``, ``production``, custom), moves.

Versions are the bundles recorded by the export stage in the store's ``exports`` table. An alias
points at one version of one model; every move of an alias (promote or rollback) is appended to
``alias_history`` with who, when and why. The read-modify-write of an alias and its history row
happens in one write transaction (``BEGIN IMMEDIATE`` on SQLite), so concurrent promotions
serialise and the history stays one consistent chain: each move's ``from_version`` is the
previous move's ``to_version``.

Promotion gates (all must pass): the bundle verifies (hashes), the run's metrics meet the SLA
(``[tool.nbtoolkit.sla]``), the cadence policy allows a move (``min_days_between_promotions``,
overridable with a recorded reason), and a promotion to ``production`` refuses bundles exported
from a dirty git tree. Rollback restores the version the alias pointed to before (a stack: two
rollbacks in a row go back two promotions), or ``to=VERSION`` from the alias's history.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit import _json
from nbtoolkit.errors import InputError, PromotionRefused

PRODUCTION = "production"
STAGING = "staging"


@dataclass(frozen=True)
class ModelVersion:
    """One exported bundle of a model (a row of ``exports``)."""

    model: str
    version: str
    run_id: str
    path: str
    created: float
    manifest_sha256: str
    forced: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from nbtoolkit.store.records import iso

        return {
            "model": self.model, "version": self.version, "run_id": self.run_id, "path": self.path,
            "created": iso(self.created), "manifest_sha256": self.manifest_sha256, "forced": self.forced,
            "reason": self.reason,
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
        from nbtoolkit.store.records import iso

        return {
            "id": self.id, "model": self.model, "alias": self.alias, "from_version": self.from_version,
            "to_version": self.to_version, "action": self.action, "by": self.by, "reason": self.reason,
            "created": iso(self.created), "forced_cadence": self.forced_cadence, "extra": self.extra,
        }

    def __repr__(self) -> str:
        return f"<Move {self.action} {self.model}@{self.alias}: {self.from_version} -> {self.to_version} by {self.by}>"


@dataclass(frozen=True)
class ModelEntry:
    """A model in the registry: its versions (oldest first) and aliases."""

    model: str
    versions: tuple[ModelVersion, ...]
    aliases: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "versions": [v.to_dict() for v in self.versions], "aliases": dict(self.aliases)}

    def _repr_html_(self) -> str:
        from nbtoolkit.html import esc

        by_version: dict[str, list[str]] = {}
        for a, v in self.aliases.items():
            by_version.setdefault(v, []).append(a)
        rows = "".join(
            f"<tr><td>{esc(v.version)}</td><td>{esc(v.run_id[:8])}</td><td>{esc(', '.join(sorted(by_version.get(v.version, []))))}</td></tr>"
            for v in self.versions
        )
        return f"<h4>{esc(self.model)}</h4><table><tr><th>version</th><th>run</th><th>aliases</th></tr>{rows}</table>"


def _store(store: Any, settings: Any) -> Any:
    if store is not None:
        return store
    from nbtoolkit.store import open_store

    return open_store(settings)


def _version_row(row: Any) -> ModelVersion:
    return ModelVersion(row.model, row.version, row.run_id, row.path, row.created, row.manifest_sha256, bool(row.forced), row.reason)


def _move_row(row: Any) -> Move:
    return Move(
        row.id, row.model, row.alias, row.from_version, row.to_version, row.action, row.by, row.reason or "",
        row.created, bool(row.forced_cadence), _json.loads(row.extra, {}),
    )


def models(name: str | None = None, *, store: Any = None, settings: Any = None) -> list[ModelEntry]:
    """List registered models (those with exported bundles) with their versions and aliases.

    Args:
        name: only this model.
    """
    from sqlalchemy import select

    from nbtoolkit.store import schema as S

    st = _store(store, settings)
    vq = select(S.exports).order_by(S.exports.c.model, S.exports.c.created, S.exports.c.id)
    aq = select(S.aliases)
    if name is not None:
        vq, aq = vq.where(S.exports.c.model == name), aq.where(S.aliases.c.model == name)
    versions, aliases = st.read(lambda conn: (conn.execute(vq).all(), conn.execute(aq).all()))
    out: dict[str, dict[str, Any]] = {}
    for r in versions:
        entry = out.setdefault(r.model, {"versions": {}, "aliases": {}})
        entry["versions"][r.version] = _version_row(r)  # a re-export of a version replaces it
    for a in aliases:
        out.setdefault(a.model, {"versions": {}, "aliases": {}})["aliases"][a.alias] = a.version
    return [ModelEntry(m, tuple(e["versions"].values()), dict(sorted(e["aliases"].items()))) for m, e in sorted(out.items())]


def get_version(model: str, version: str, *, store: Any = None, settings: Any = None) -> ModelVersion:
    """The latest export of ``model`` ``version``.

    Raises:
        InputError: no such export.
    """
    from sqlalchemy import and_, select

    from nbtoolkit.store import schema as S

    st = _store(store, settings)
    q = select(S.exports).where(and_(S.exports.c.model == model, S.exports.c.version == version)).order_by(S.exports.c.created.desc(), S.exports.c.id.desc()).limit(1)
    row = st.read(lambda conn: conn.execute(q).first())
    if row is None:
        known = [v.version for e in models(model, store=st) for v in e.versions]
        hint = f"known versions: {', '.join(known)}" if known else "export it first with `nbtk export RUN --model NAME`"
        raise InputError(f"Model {model!r} has no exported version {version!r}; {hint}.")
    return _version_row(row)


def current(model: str, alias: str = PRODUCTION, *, store: Any = None, settings: Any = None) -> str | None:
    """The version ``alias`` of ``model`` points to, or ``None``."""
    from sqlalchemy import and_, select

    from nbtoolkit.store import schema as S

    st = _store(store, settings)
    q = select(S.aliases.c.version).where(and_(S.aliases.c.model == model, S.aliases.c.alias == alias))
    return st.read(lambda conn: conn.execute(q).scalar())


def resolve(ref: str, *, store: Any = None, settings: Any = None) -> ModelVersion:
    """Resolve ``MODEL@ALIAS`` or ``MODEL@VERSION`` to an exported version."""
    model, sep, tail = ref.rpartition("@")
    if not sep or not model or not tail:
        raise InputError(f"{ref!r} is not MODEL@ALIAS or MODEL@VERSION (e.g. churn@production, churn@1.2.0).")
    st = _store(store, settings)
    version = current(model, tail, store=st) or tail
    return get_version(model, version, store=st)


def history(model: str, *, alias: str | None = None, store: Any = None, settings: Any = None) -> list[Move]:
    """Every move of ``model``'s aliases, oldest first."""
    from sqlalchemy import and_, select

    from nbtoolkit.store import schema as S

    st = _store(store, settings)
    cond = S.alias_history.c.model == model
    if alias is not None:
        cond = and_(cond, S.alias_history.c.alias == alias)
    q = select(S.alias_history).where(cond).order_by(S.alias_history.c.id)
    return [_move_row(r) for r in st.read(lambda conn: conn.execute(q).all())]


def _alias_stack(moves: list[Any]) -> list[str]:
    """Versions an alias pointed to, as a stack: promote pushes, rollback pops back to its target."""
    stack: list[str] = []
    for m in moves:
        if m.action == "promote" or m.to_version not in stack:
            stack.append(m.to_version)
        else:
            while stack and stack[-1] != m.to_version:
                stack.pop()
    return stack


def _check_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 64 or any(c.isspace() or c == "@" for c in value):
        raise InputError(f"{what} {value!r} is invalid; use a short name without spaces or '@' (e.g. production).")
    return value


def _gates(st: Any, settings: Any, mv: ModelVersion, alias: str, *, skip_sla: bool = False) -> tuple[list[str], dict[str, Any]]:
    from nbtoolkit.errors import HandoffError, RunNotFoundError
    from nbtoolkit.stability import _bundles
    from nbtoolkit.stability.sla import load_sla

    unmet: list[str] = []
    detail: dict[str, Any] = {}
    try:
        _bundles.verify(mv.path)
        detail["verified"] = True
    except HandoffError as exc:
        detail["verified"] = False
        unmet.append(f"bundle {mv.path} does not verify: {'; '.join(getattr(exc, 'problems', None) or [str(exc)])}; re-export it")
    try:
        record = st.get_run(mv.run_id)
    except RunNotFoundError:
        unmet.append(f"run {mv.run_id[:12]} of this export is not in the store; promote from the store that exported it")
        return unmet, detail
    if not skip_sla:
        report = load_sla(settings).check(dict(record.metrics))
        detail["sla"] = report.to_dict()
        unmet += [f"{p} (set in [tool.nbtoolkit.sla]; improve the model or change the SLA)" for p in report.problems()]
    if alias in _protected(settings):
        lock = record.lock()
        git = (lock.data.get("git") if lock is not None else None) or {}
        detail["git_dirty"] = git.get("dirty")
        if lock is None or not git:
            unmet.append(f"{alias} needs a bundle exported from a clean git tree, but run {mv.run_id[:12]} has no git state in its lock")
        elif git.get("dirty"):
            unmet.append(
                f"{alias} refuses bundles exported from a dirty git tree (run {mv.run_id[:12]} had uncommitted changes); "
                "commit, re-run and re-export"
            )
    return unmet, detail


def _intact(st: Any, model: str, version: str) -> bool:
    from nbtoolkit.errors import NbToolkitError
    from nbtoolkit.stability import _bundles

    try:
        _bundles.verify(get_version(model, version, store=st).path)
    except NbToolkitError:
        return False
    return True


def _protected(settings: Any) -> tuple[str, ...]:
    from nbtoolkit.stability.cadence import load_policy

    return load_policy(settings).clean_git_aliases


def promote(
    model: str,
    version: str,
    *,
    to: str,
    by: str,
    reason: str,
    override_cadence: str | None = None,
    store: Any = None,
    settings: Any = None,
    now: float | None = None,
) -> Move:
    """Point alias ``to`` of ``model`` at ``version`` after the gates pass; record the move.

    Args:
        model: model name (as exported).
        version: exported version.
        to: alias (``staging``, ``production`` or any name).
        by: who promotes (recorded).
        reason: why (recorded).
        override_cadence: promote although the cadence policy blocks it; the reason is recorded.
        now: the time of the move (tests and simulations).

    Returns:
        The recorded :class:`Move`.

    Raises:
        PromotionRefused: a gate failed (bundle, SLA, dirty git for production, cadence).
        InputError: unknown version, empty ``by``/``reason``, or the alias already points there.
    """
    from nbtoolkit.config import load_settings
    from nbtoolkit.stability.cadence import cadence_block, load_policy

    alias = _check_name(to, "Alias")
    if not by or not by.strip():
        raise InputError("promote needs --by NAME (who promotes).")
    if not reason or not reason.strip():
        raise InputError("promote needs --reason TEXT (why this version).")
    settings = settings or load_settings()
    st = _store(store, settings)
    mv = get_version(model, version, store=st)
    unmet, detail = _gates(st, settings, mv, alias)
    if unmet:
        raise PromotionRefused(mv.run_id, unmet, model=model, version=version, alias=alias)
    previous = current(model, alias, store=st)
    if previous is not None and previous != version:
        # the version being replaced is the rollback target: record whether its bundle is intact
        detail["rollback_target"] = {"version": previous, "verified": _intact(st, model, previous)}
    policy = load_policy(settings)
    if override_cadence is not None and not override_cadence.strip():
        raise InputError("--override-cadence needs a reason (it is recorded).")
    if override_cadence:
        detail["cadence_override"] = override_cadence.strip()
    return _apply(st, model, alias, version, "promote", by.strip(), reason.strip(), detail, now=now,
                  check=lambda moves, t: cadence_block(moves, policy, t), override=bool(override_cadence), run_id=mv.run_id)


def rollback(
    model: str,
    *,
    alias: str = PRODUCTION,
    to: str | None = None,
    by: str | None = None,
    reason: str = "",
    store: Any = None,
    settings: Any = None,
    now: float | None = None,
) -> Move:
    """Move ``alias`` back to the version it pointed to before (or to ``to`` from its history).

    Rollbacks skip the SLA and cadence gates (they restore a version that already served) but
    still verify the target bundle.

    Raises:
        InputError: nothing to roll back to, or ``to`` never was this alias's version.
        PromotionRefused: the target bundle no longer verifies.
    """
    from nbtoolkit.config import load_settings

    alias = _check_name(alias, "Alias")
    settings = settings or load_settings()
    st = _store(store, settings)
    who = (by or "").strip() or _user()
    moves = history(model, alias=alias, store=st)
    target = _rollback_target(model, alias, moves, to)
    mv = get_version(model, target, store=st)
    unmet, detail = _gates(st, settings, mv, "", skip_sla=True)
    if unmet:
        raise PromotionRefused(mv.run_id, unmet, model=model, version=target, alias=alias)

    def check(moves_now: list[Any], _t: float) -> str | None:
        # recompute inside the transaction: a concurrent move may have changed the stack
        if _rollback_target(model, alias, moves_now, to) != target:
            raise InputError(f"{model}@{alias} moved while rolling back; run the rollback again.")
        return None

    return _apply(st, model, alias, target, "rollback", who, reason.strip() or "rollback", detail, now=now, check=check, override=False, run_id=mv.run_id)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _rollback_target(model: str, alias: str, moves: list[Any], to: str | None) -> str:
    stack = _alias_stack(moves)
    if not stack:
        raise InputError(f"{model}@{alias} was never promoted; nothing to roll back.")
    if to is None:
        if len(stack) < 2:
            raise InputError(
                f"{model}@{alias} has no earlier version to roll back to (it only ever pointed to {stack[-1]}); "
                "promote another version instead, or pass --to VERSION."
            )
        return stack[-2]
    seen = {m.to_version for m in moves} | {m.from_version for m in moves if m.from_version}
    if to not in seen:
        raise InputError(f"{model}@{alias} never pointed to {to!r}; versions in its history: {', '.join(sorted(seen))}.")
    if to == stack[-1]:
        raise InputError(f"{model}@{alias} already points to {to!r}.")
    return to


def _apply(
    st: Any, model: str, alias: str, version: str, action: str, by: str, reason: str, detail: dict[str, Any], *,
    now: float | None, check: Any, override: bool, run_id: str,
) -> Move:
    from sqlalchemy import and_, delete, insert, select

    from nbtoolkit.store import schema as S

    def run(conn: Any) -> Move:
        t = time.time() if now is None else now
        moves = [
            _move_row(r)
            for r in conn.execute(
                select(S.alias_history).where(and_(S.alias_history.c.model == model, S.alias_history.c.alias == alias)).order_by(S.alias_history.c.id)
            ).all()
        ]
        current_v = conn.execute(
            select(S.aliases.c.version).where(and_(S.aliases.c.model == model, S.aliases.c.alias == alias)).with_for_update()
        ).scalar()
        if current_v == version:
            raise InputError(f"{model}@{alias} already points to {version!r}.")
        blocked = check(moves, t)
        forced = False
        if blocked:
            if not override:
                raise PromotionRefused(run_id, [f"{blocked}; wait, or pass --override-cadence REASON (recorded)"], model=model, version=version, alias=alias)
            forced = True
            detail["cadence_blocked"] = blocked
        conn.execute(delete(S.aliases).where(and_(S.aliases.c.model == model, S.aliases.c.alias == alias)))
        conn.execute(insert(S.aliases).values(model=model, alias=alias, version=version, updated=t))
        row = dict(model=model, alias=alias, from_version=current_v, to_version=version, action=action, by=by,
                   reason=st._redact_text(reason) or "", created=t, forced_cadence=int(forced), extra=_json.dumps(detail))
        new_id = conn.execute(insert(S.alias_history).values(**row)).inserted_primary_key[0]
        return Move(int(new_id), model, alias, current_v, version, action, by, row["reason"], t, forced, detail)

    return st.write(run)
