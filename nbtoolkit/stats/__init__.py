"""Statistics that make a verdict honest: paired bootstrap intervals, McNemar, per-group metrics.

Everything starts from a run's ``predictions`` artifact (an ``.npz`` written by
:func:`nbtoolkit.log_predictions` holding ``y_true``, ``y_pred`` and optionally ``ids`` and
``groups``). Two runs are *paired* on the example ids they share (on positions when neither logged
ids and the rows match); the bootstrap resamples those examples, the same resample for both runs,
and recomputes each metric on it, fully vectorised with numpy.

:func:`criteria_intervals` is what :mod:`nbtoolkit.verdict` calls: the verdict shown under the
``%%experiment`` cell and the one in the report come from the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from nbtoolkit.stats.bootstrap import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedDifference,
    paired_bootstrap,
)
from nbtoolkit.stats.interval import Interval
from nbtoolkit.stats.metrics import (
    ALIASES,
    METRICS,
    TASK_METRICS,
    MetricSpec,
    computable_metrics,
    metric_value,
    resolve_metric,
    why_not,
)
from nbtoolkit.stats.predictions import (
    TASKS,
    Predictions,
    align,
    check_predictions,
    infer_task,
    load_predictions,
)
from nbtoolkit.stats.significance import GroupMetrics, McNemarResult, group_metrics, mcnemar

if TYPE_CHECKING:
    from nbtoolkit.criteria import Criterion
    from nbtoolkit.store import RunRecord, Store

__all__ = [
    "ALIASES", "DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "METRICS", "TASKS",
    "TASK_METRICS", "GroupMetrics", "Interval", "McNemarResult", "MetricSpec", "PairedDifference",
    "Predictions", "align", "check_predictions", "computable_metrics", "criteria_intervals",
    "group_metrics", "infer_task", "load_predictions", "mcnemar", "metric_value",
    "paired_bootstrap", "paired_stats", "resolve_metric", "why_not",
]


def paired_stats(
    store: Store,
    run: RunRecord,
    baseline: RunRecord,
    metrics: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> tuple[dict[str, PairedDifference], McNemarResult | None, int]:
    """Paired differences ``run - baseline`` for ``metrics`` (default: all computable).

    Returns:
        ``(differences by metric, McNemar result or None, number of shared examples)``;
        empty when either run has no predictions or they share no examples.
    """
    pa, pb = load_predictions(store, run), load_predictions(store, baseline)
    if pa is None or pb is None:
        return {}, None, 0
    pair = align(pa, pb)
    if pair is None:
        return {}, None, 0
    a, b = pair
    names = list(metrics) if metrics is not None else computable_metrics(a)
    diffs = paired_bootstrap(a, b, names, n_resamples=n_resamples, level=level, seed=seed)
    return diffs, mcnemar(a, b), len(a)


def criteria_intervals(
    store: Store,
    run_id: str,
    baseline_run_id: str,
    criteria: Sequence[Criterion],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """Intervals of ``metric(run) - metric(baseline)`` for the baseline criteria.

    A criterion ``m OP baseline.m2 + k`` gets an interval when ``m`` and ``m2`` name the same
    computable metric and both runs logged predictions on shared examples.

    Returns:
        ``{criterion.metric: Interval}`` (what :func:`nbtoolkit.verdict.evaluate` reads).
    """
    wanted: dict[str, str] = {}
    for c in criteria:
        if not c.uses_baseline:
            continue
        spec, base = resolve_metric(c.metric), resolve_metric(str(c.baseline_metric))
        if spec is not None and base is not None and spec.name == base.name:
            wanted[c.metric] = spec.name
    if not wanted:
        return {}
    records = store.get_runs([run_id, baseline_run_id])
    if run_id == baseline_run_id:
        records = records * 2
    if len(records) < 2:
        return {}
    run, baseline = records[0], records[1]
    diffs, _, _ = paired_stats(store, run, baseline, sorted(set(wanted.values())),
                               n_resamples=n_resamples, level=level, seed=seed)
    return {m: diffs[name].interval for m, name in wanted.items()  # type: ignore[misc]
            if name in diffs and diffs[name].interval is not None}


def intervals_note(has_predictions: Mapping[str, bool]) -> str:
    """A plain sentence on why there is (no) interval, for reports."""
    missing = [k for k, v in has_predictions.items() if not v]
    if not missing:
        return "Intervals are paired bootstrap intervals over the examples both runs predicted."
    return ("No interval: only single metric values exist (no predictions logged by the "
            + " and ".join(missing) + "); differences are point values.")
