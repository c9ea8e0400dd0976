"""Promotion and rollback: move a registry alias after its gates pass, and record the move.

Promotion gates (all must pass): the bundle verifies (hashes; on a machine other than the
exporter's, the copy fetched from the store's artifact location), the run's metrics meet the SLA
(``[tool.nbtoolkit.sla]``), the cadence policy allows a move (``min_days_between_promotions``,
overridable with a recorded reason), and a promotion to an alias in ``clean_git_aliases``
(default ``production``) refuses bundles exported from a dirty git tree. Rollback restores the
version the alias pointed to before (a stack: two rollbacks in a row go back two promotions),
or ``to=VERSION`` from the alias's history.

The alias and its history are read and written in one store transaction
(:meth:`~nbtoolkit.store.Store.move_alias`), so concurrent promotions serialise and the
history stays one chain.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from nbtoolkit import registry
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.errors import (
    ArtifactIntegrityError,
    BundleIntegrityError,
    HandoffError,
    InputError,
    NbToolkitError,
    PromotionRefused,
    RunNotFoundError,
)
from nbtoolkit.export.verify import verify_bundle
from nbtoolkit.policy import cadence_block, load_policy, load_sla
from nbtoolkit.registry import PRODUCTION, ModelVersion, Move
from nbtoolkit.store import RunRecord, Store, open_store

__all__ = ["promote", "rollback"]


def _alias_stack(moves: Sequence[Move]) -> list[str]:
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


def _git_problem(record: RunRecord, alias: str, run_id: str, detail: dict[str, Any]) -> str | None:
    lock = record.lock()
    git = (lock.data.get("git") if lock is not None else None) or {}
    detail["git_dirty"] = git.get("dirty")
    if lock is None or not git:
        return f"{alias} needs a bundle exported from a clean git tree, but run {run_id[:12]} has no git state in its lock"
    if git.get("dirty"):
        return (
            f"{alias} refuses bundles exported from a dirty git tree (run {run_id[:12]} had uncommitted changes); "
            "commit, re-run and re-export"
        )
    return None


def _gates(st: Store, settings: Settings, mv: ModelVersion, alias: str, *, skip_sla: bool = False) -> tuple[list[str], dict[str, Any]]:
    unmet: list[str] = []
    detail: dict[str, Any] = {}
    try:
        verify_bundle(registry.with_local_path(mv, store=st).path)  # fetched from the store when exported elsewhere
        detail["verified"] = True
    except BundleIntegrityError as exc:
        detail["verified"] = False
        unmet.append(f"bundle {exc.path} does not verify: {'; '.join(exc.problems)}; re-export it")
    except (HandoffError, ArtifactIntegrityError) as exc:
        detail["verified"] = False
        unmet.append(f"bundle of {mv.model} {mv.version} does not verify: {exc}; re-export it")
    try:
        record = st.get_run(mv.run_id)
    except RunNotFoundError:
        unmet.append(f"run {mv.run_id[:12]} of this export is not in the store; promote from the store that exported it")
        return unmet, detail
    if not skip_sla:
        report = load_sla(settings).check(dict(record.metrics))
        detail["sla"] = report.to_dict()
        unmet += [f"{p} (set in [tool.nbtoolkit.sla]; improve the model or change the SLA)" for p in report.problems()]
    if alias in load_policy(settings).clean_git_aliases:
        problem = _git_problem(record, alias, mv.run_id, detail)
        if problem:
            unmet.append(problem)
    return unmet, detail


def _intact(st: Store, model: str, version: str) -> bool:
    try:
        verify_bundle(registry.with_local_path(registry.get_version(model, version, store=st), store=st).path)
    except NbToolkitError:
        return False
    return True


def promote(
    model: str,
    version: str,
    *,
    to: str,
    by: str,
    reason: str,
    override_cadence: str | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
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
        The recorded :class:`~nbtoolkit.registry.Move`.

    Raises:
        PromotionRefused: a gate failed (bundle, SLA, dirty git for production, cadence).
        InputError: unknown version, empty ``by``/``reason``, or the alias already points there.
    """
    alias = _check_name(to, "Alias")
    if not by or not by.strip():
        raise InputError("promote needs --by NAME (who promotes).")
    if not reason or not reason.strip():
        raise InputError("promote needs --reason TEXT (why this version).")
    if override_cadence is not None and not override_cadence.strip():
        raise InputError("--override-cadence needs a reason (it is recorded).")
    settings = settings or load_settings()
    st = store if store is not None else open_store(settings)
    mv = registry.get_version(model, version, store=st)
    unmet, detail = _gates(st, settings, mv, alias)
    if unmet:
        raise PromotionRefused(mv.run_id, unmet, model=model, version=version, alias=alias)
    previous = registry.current(model, alias, store=st)
    if previous is not None and previous != version:
        # the version being replaced is the rollback target: record whether its bundle is intact
        detail["rollback_target"] = {"version": previous, "verified": _intact(st, model, previous)}
    policy = load_policy(settings)
    if override_cadence:
        detail["cadence_override"] = override_cadence.strip()

    def check(moves: list[Move], t: float) -> str | None:
        blocked = cadence_block(moves, policy, t)
        if blocked and not override_cadence:
            raise PromotionRefused(mv.run_id, [f"{blocked}; wait, or pass --override-cadence REASON (recorded)"],
                                   model=model, version=version, alias=alias)
        return blocked

    return st.move_alias(model, alias, version, action="promote", by=by.strip(), reason=reason.strip(), detail=detail,
                         check=check, now=now)


def rollback(
    model: str,
    *,
    alias: str = PRODUCTION,
    to: str | None = None,
    by: str | None = None,
    reason: str = "",
    store: Store | None = None,
    settings: Settings | None = None,
    now: float | None = None,
) -> Move:
    """Move ``alias`` back to the version it pointed to before (or to ``to`` from its history).

    Rollbacks skip the SLA and cadence gates (they restore a version that already served) but
    still verify the target bundle.

    Raises:
        InputError: nothing to roll back to, or ``to`` never was this alias's version.
        PromotionRefused: the target bundle no longer verifies.
    """
    alias = _check_name(alias, "Alias")
    settings = settings or load_settings()
    st = store if store is not None else open_store(settings)
    who = (by or "").strip() or _user()
    target = _rollback_target(model, alias, registry.history(model, alias=alias, store=st), to)
    mv = registry.get_version(model, target, store=st)
    unmet, detail = _gates(st, settings, mv, "", skip_sla=True)
    if unmet:
        raise PromotionRefused(mv.run_id, unmet, model=model, version=target, alias=alias)

    def check(moves_now: list[Move], _t: float) -> str | None:
        # recompute inside the transaction: a concurrent move may have changed the stack
        if _rollback_target(model, alias, moves_now, to) != target:
            raise InputError(f"{model}@{alias} moved while rolling back; run the rollback again.")
        return None

    return st.move_alias(model, alias, target, action="rollback", by=who, reason=reason.strip() or "rollback",
                         detail=detail, check=check, now=now)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _rollback_target(model: str, alias: str, moves: Sequence[Move], to: str | None) -> str:
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
