"""Which run a ``--baseline`` means, and which child of a sweep is its best.

A baseline reference is one of:

* a run id or a unique prefix (at least 4 hex characters): that run;
* an experiment name: the run pinned with ``nbtk baseline set``, else the experiment's latest
  finished, *supported*, *original* run -- never a reproduction, a cached copy, a sweep child,
  an ``nbtk test`` run or a monitor run;
* ``sweep:SWEEP_ID:best``: the finished child of that sweep with the best value of the target
  metric (the first success criterion the children declared);
* a registry alias (``production``, ``MODEL@ALIAS``): the run its model version was exported from.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtoolkit.criteria import parse_criteria
from nbtoolkit.declaration import SWEEP_REF
from nbtoolkit.errors import InputError, RunNotFoundError

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord, Store
    from nbtoolkit.store.lineage import BaselinePin

__all__ = ["SWEEP_REF", "SweepBest", "pin_baseline", "resolve_baseline", "sweep_best", "target_metric", "unpin_baseline"]



@dataclass(frozen=True)
class SweepBest:
    """The best child of a sweep: its run id, the metric, its value and the direction."""

    run_id: str
    metric: str
    value: float
    higher_is_better: bool


def target_metric(record: RunRecord) -> tuple[str, bool] | None:
    """``(metric, higher_is_better)`` of a run's first success criterion, or ``None``."""
    try:
        criteria = parse_criteria(list(record.declaration.success))
    except InputError:
        return None
    if not criteria:
        return None
    first = criteria[0]
    return first.metric, first.op in (">=", ">", "==")


def sweep_best(store: Store, sweep_id: str) -> SweepBest | None:
    """The finished child of ``sweep_id`` with the best target metric (the earliest on a tie).

    ``None`` when no finished child declared a success criterion or logged its metric.
    """
    children = [r for r in store.get_runs(store.sweep_child_ids(sweep_id)) if r.status == "finished"]
    target = next((t for r in children if (t := target_metric(r)) is not None), None)
    if target is None:
        return None
    metric, higher = target
    best: SweepBest | None = None
    for child in children:
        value = child.metrics.get(metric)
        if value is None or math.isnan(value):
            continue
        if best is None or (value > best.value if higher else value < best.value):
            best = SweepBest(child.run_id, metric, float(value), higher)
    return best


def _find_sweep_id(store: Store, prefix: str) -> str:
    rows = store.find_sweeps(prefix, limit=2)
    if len(rows) != 1:
        raise RunNotFoundError(f"sweep:{prefix}:best", "No single sweep matches that id; list them with `nbtk sweeps`.")
    return rows[0].sweep_id


def _experiment_baseline(store: Store, experiment: str) -> tuple[str | None, str | None]:
    pin = store.baseline_pin(experiment)
    if pin is not None:
        return pin.run_id, None
    run_id = store.latest_original_run(experiment)
    if run_id is None:
        return None, (f"experiment {experiment!r} has no supported finished original run to compare with "
                      "(reproductions, cached copies, sweep children and tests never count)")
    return run_id, None


def resolve_baseline(store: Store, ref: str | None) -> tuple[str | None, str | None]:
    """Resolve ``--baseline`` to a run id.

    Args:
        store: the project store.
        ref: a run id or prefix, an experiment name, ``sweep:ID:best`` or a registry alias.

    Returns:
        ``(run_id, None)``, or ``(None, reason)`` when the experiment (or sweep) has no run
        that qualifies yet.

    Raises:
        RunNotFoundError: nothing of that name or id exists.
    """
    if not ref:
        return None, None
    match = SWEEP_REF.match(ref)
    if match:
        sweep_id = _find_sweep_id(store, match["sweep"].lower())
        best = sweep_best(store, sweep_id)
        if best is None:
            return None, f"sweep {sweep_id[:8]} has no finished child with a value of its target metric"
        return best.run_id, None
    if all(c in "0123456789abcdef" for c in ref.lower()) and len(ref) >= 4:
        with contextlib.suppress(RunNotFoundError):
            return store.resolve_run_id(ref), None
    if ref in store.experiment_names():
        return _experiment_baseline(store, ref)
    run_id = store.resolve_alias(ref)
    if run_id is not None:
        return run_id, None
    raise RunNotFoundError(
        ref,
        "Use a run id (or a unique prefix), the name of an experiment that has runs, "
        "sweep:SWEEP_ID:best or a registry alias; list them with `nbtk runs` and `nbtk sweeps`.",
    )


def baseline_exists(store: Store, ref: str) -> bool:
    """Whether ``ref`` names something a baseline can resolve to (used to warn early)."""
    try:
        resolve_baseline(store, ref)
    except RunNotFoundError:
        return False
    return True


def describe_sweep_best(best: SweepBest | None) -> dict[str, Any] | None:
    """JSON form of :class:`SweepBest` (``None`` stays ``None``)."""
    if best is None:
        return None
    return {"run_id": best.run_id, "metric": best.metric, "value": best.value,
            "goal": "max" if best.higher_is_better else "min"}


def pin_baseline(store: Store, experiment: str, run: str, *, by: str, note: str = "") -> BaselinePin:
    """Pin ``run`` as the baseline that the name ``experiment`` resolves to.

    Args:
        store: the project store.
        experiment: the experiment whose baseline is pinned.
        run: a finished run of that experiment (id or unique prefix).
        by: who pins it (recorded with the time).
        note: why (optional; secrets are redacted).

    Raises:
        InputError: no such experiment, an empty ``by``, or the run is not a finished run of it.
        RunNotFoundError: no run matches ``run``.
    """
    who = (by or "").strip()
    if not who or len(who) > 255:
        raise InputError("A baseline pin needs who pins it (1-255 characters): pass --by NAME.")
    if experiment not in store.experiment_names():
        raise InputError(f"No experiment is called {experiment!r}; list them with `nbtk runs`.")
    record = store.get_run(run)
    if record.experiment != experiment:
        raise InputError(f"Run {record.run_id[:8]} belongs to experiment {record.experiment!r}, not {experiment!r}; "
                         f"pin one of {experiment!r}'s runs (`nbtk runs -e {experiment}`).")
    if record.status != "finished":
        raise InputError(f"Run {record.run_id[:8]} is {record.status}; only a finished run can be a baseline.")
    return store.pin_baseline(experiment, record.run_id, by=who, note=note)


def unpin_baseline(store: Store, experiment: str) -> bool:
    """Remove the pin of ``experiment``; False when it had none."""
    return store.unpin_baseline(experiment)
