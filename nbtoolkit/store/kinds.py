"""Run kinds: where a run came from, as users see and filter it (``nbtk runs --kind``).

Every run row has a ``kind`` naming where it came from. The lineage kind users see and filter
on (``nbtk runs --kind``), and the stored ``runs.kind`` values it covers:

* ``experiment`` (experiment, papermill): an original run, from a kernel or ``nbtk run``;
* ``sweep`` (sweep): a child of ``nbtk sweep``;
* ``cached`` (cached): a run-cache hit, a copy of ``origin_run_id``;
* ``reproduction`` (reproduction): ``nbtk reproduce`` of ``origin_run_id``;
* ``test`` (test): an ``nbtk test`` smoke run;
* ``monitor`` (shadow, canary, monitor, abtest): an evaluation of a deployed model.

Only ``experiment`` runs are *original*: a baseline named by experiment resolves among them.
"""

from __future__ import annotations

from collections.abc import Iterable

from nbtoolkit.errors import InputError

#: lineage kind -> the stored kinds it covers
LINEAGE_KINDS: dict[str, tuple[str, ...]] = {
    "experiment": ("experiment", "papermill"),
    "sweep": ("sweep",),
    "cached": ("cached",),
    "reproduction": ("reproduction",),
    "test": ("test",),
    "monitor": ("shadow", "canary", "monitor", "abtest"),
}
#: stored kinds a baseline given by experiment name may resolve to
ORIGINAL_KINDS = LINEAGE_KINDS["experiment"]
#: readable label of each lineage kind (cards, ``nbtk show``)
KIND_LABELS = {
    "experiment": "experiment",
    "sweep": "sweep child",
    "cached": "cached copy",
    "reproduction": "reproduction",
    "test": "test",
    "monitor": "monitor",
}


def lineage_kind(stored: str | None) -> str:
    """The lineage kind of a stored ``runs.kind`` (an unknown kind is shown as itself)."""
    for name, kinds in LINEAGE_KINDS.items():
        if stored in kinds:
            return name
    return str(stored or "experiment")


def stored_kinds(kinds: str | Iterable[str]) -> list[str]:
    """The stored kinds matching lineage kinds (or stored kinds given as they are).

    Raises:
        InputError: a name that is neither a lineage kind nor a stored kind.
    """
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    known = {k for group in LINEAGE_KINDS.values() for k in group}
    out: list[str] = []
    for name in names:
        if name in LINEAGE_KINDS:
            out.extend(LINEAGE_KINDS[name])
        elif name in known:
            out.append(name)
        else:
            choices = ", ".join(LINEAGE_KINDS)
            raise InputError(f"Unknown run kind {name!r}; use one of: {choices}.")
    return out
