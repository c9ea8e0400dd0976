"""Statistics that make a verdict honest: paired bootstrap intervals, McNemar, per-group metrics.

Everything starts from :class:`Predictions`: a run's per-example ``y_true``, ``y_pred`` and
optionally ``ids`` and ``groups`` (what :func:`nbtoolkit.log_predictions` records). Two runs are *paired* on the example ids they share (on positions when neither logged
ids and the rows match); the bootstrap resamples those examples, the same resample for both runs,
and recomputes each metric on it, fully vectorised with numpy.

Pure numbers on :class:`Predictions`: nothing here reads a store. Loading a run's predictions
and pairing two stored runs live one layer up, in :mod:`nbtoolkit.evidence`.
"""

from __future__ import annotations

from collections.abc import Sequence

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
)
from nbtoolkit.stats.significance import GroupMetrics, McNemarResult, group_metrics, mcnemar

__all__ = [
    "ALIASES", "DEFAULT_LEVEL", "DEFAULT_RESAMPLES", "DEFAULT_SEED", "METRICS", "TASKS",
    "TASK_METRICS", "GroupMetrics", "Interval", "McNemarResult", "MetricSpec", "PairedDifference",
    "Predictions", "align", "check_predictions", "computable_metrics", "group_metrics",
    "infer_task", "mcnemar", "metric_value", "paired_bootstrap", "paired_differences",
    "resolve_metric", "why_not",
]



def paired_differences(
    run: Predictions,
    baseline: Predictions,
    metrics: Sequence[str] | None = None,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> tuple[dict[str, PairedDifference], McNemarResult | None, int]:
    """Paired differences ``run - baseline`` for ``metrics`` (default: all computable).

    Returns:
        ``(differences by metric, McNemar result or None, number of shared examples)``;
        empty when the two share no examples (see :func:`align`).
    """
    pair = align(run, baseline)
    if pair is None:
        return {}, None, 0
    a, b = pair
    names = list(metrics) if metrics is not None else computable_metrics(a)
    diffs = paired_bootstrap(a, b, names, n_resamples=n_resamples, level=level, seed=seed)
    return diffs, mcnemar(a, b), len(a)
