"""Reviewer sign-off: ``nbtk approve RUN --by NAME`` / ``nbtk.approve(run, by=...)``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import InputError

if TYPE_CHECKING:
    from nbtoolkit.store import Approval, Store

__all__ = ["approve", "run_ref"]


def run_ref(run: Any) -> str:
    """The id or prefix of ``run``: a string, a RunRecord / ActiveRun (``.run_id``)."""
    if isinstance(run, str):
        return run
    run_id = getattr(run, "run_id", None)
    if isinstance(run_id, str):
        return run_id
    raise InputError(f"Expected a run id, a prefix or a run object, got {type(run).__name__}.")


def approve(run: Any, *, by: str, note: str = "", store: Store | None = None) -> Approval:
    """Record a reviewer's approval of a run (with the time); reports and model cards show it.

    Args:
        run: run id, unique prefix, or a run object.
        by: who approves (required, non-empty).
        note: optional comment (secrets are redacted by the store).
        store: the store (default: the project's).

    Returns:
        The recorded :class:`~nbtoolkit.store.Approval`.

    Raises:
        InputError: ``by`` is empty, or the run is still running.
        RunNotFoundError: no run matches ``run``.
    """
    who = (by or "").strip()
    if not who:
        raise InputError("An approval needs a reviewer name: pass --by NAME (by='name').")
    if len(who) > 255:
        raise InputError("The reviewer name is longer than 255 characters; shorten --by.")
    if store is None:
        from nbtoolkit.store import open_store

        store = open_store()
    record = store.get_run(run_ref(run))
    if record.status == "running":
        raise InputError(f"Run {record.run_id[:8]} is still running; approve it after it has finished.")
    return store.add_approval(record.run_id, by=who, note=note or "")
