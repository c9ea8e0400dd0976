"""Turn a run's metrics, its declared criteria and its baseline into a :class:`Verdict`.

The ``%%experiment`` cell, ``start_run`` and the reports all go through :func:`evaluate_run`, so
the verdict shown in the notebook is the one a reviewer reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbtoolkit.criteria import Criterion, Interval, Verdict
    from nbtoolkit.store import Store
    from nbtoolkit.tracking import ActiveRun


def difference_intervals(
    store: Store, run_id: str, baseline_run_id: str | None, criteria: Sequence[Criterion]
) -> dict[str, Interval]:
    """Confidence intervals of ``metric(run) - metric(baseline)`` for baseline criteria.

    Available where both runs logged predictions on the same ids (paired bootstrap, see
    :mod:`nbtoolkit.stats`); empty otherwise, and the criteria are judged on point values.
    """
    if baseline_run_id is None or not any(c.uses_baseline for c in criteria):
        return {}
    try:
        from nbtoolkit import stats
    except ImportError:
        return {}
    compute = getattr(stats, "criteria_intervals", None)
    if compute is None:
        return {}
    result: dict[str, Interval] = compute(store, run_id, baseline_run_id, criteria)
    return result


def evaluate_run(
    store: Store,
    criteria: Sequence[Criterion],
    metrics: Mapping[str, float],
    *,
    run_id: str,
    baseline_run_id: str | None,
    baseline_reason: str | None = None,
) -> Verdict:
    """Evaluate ``criteria`` for one run against its baseline run (if any)."""
    from nbtoolkit.criteria import evaluate

    baseline: dict[str, Any] | None = None
    if baseline_run_id is not None:
        baseline = dict(store.get_runs([baseline_run_id])[0].metrics)
    return evaluate(
        criteria,
        metrics,
        baseline=baseline,
        baseline_missing_reason=baseline_reason,
        intervals=difference_intervals(store, run_id, baseline_run_id, criteria),
    )


def compute_verdict(run: ActiveRun) -> Verdict:
    """The verdict of an active run at the moment it closes."""
    return evaluate_run(
        run.store,
        run.declaration.criteria,
        run.metrics,
        run_id=run.run_id,
        baseline_run_id=run.baseline_run_id,
        baseline_reason=run.baseline_reason or ("no baseline declared" if run.declaration.baseline is None else None),
    )
