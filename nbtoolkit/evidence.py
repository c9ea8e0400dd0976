"""The recorded evidence of runs, read from a store and judged: predictions, paired intervals, verdicts.

One layer above the store and below every stage: it reads a run's ``predictions`` artifact and
its baseline's metrics from a :class:`~nbtoolkit.store.Store`, hands the plain values to
:mod:`nbtoolkit.stats` (numbers on :class:`~nbtoolkit.stats.Predictions`) and to
:func:`nbtoolkit.verdict.evaluate` (criteria on plain values). :func:`evaluate_run` is what the
``%%experiment`` cell, ``start_run`` and the reports all call, so the verdict shown in the
notebook is the one a reviewer reads; ``stats`` and ``verdict`` themselves never see a store.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from nbtoolkit.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    TASKS,
    Interval,
    McNemarResult,
    PairedDifference,
    Predictions,
    paired_differences,
    resolve_metric,
)
from nbtoolkit.stats.predictions import Task
from nbtoolkit.verdict import Verdict, evaluate

if TYPE_CHECKING:
    from nbtoolkit.criteria import Criterion
    from nbtoolkit.store import RunRecord, Store


def load_predictions(store: Store, record: RunRecord, *, name: str | None = None) -> Predictions | None:
    """Load a run's predictions artifact (``name``, else ``predictions``, else the first one).

    Returns:
        The :class:`~nbtoolkit.stats.Predictions` written by :func:`nbtoolkit.log_predictions`,
        or ``None`` when the run logged none (or none called ``name``).
    """
    import numpy as np

    refs = record.artifacts_of("predictions")
    if not refs:
        return None
    ref = next((a for a in refs if a.name == (name or "predictions")), None)
    if ref is None:
        if name is not None:
            return None
        ref = refs[0]
    with np.load(io.BytesIO(store.artifacts.read_bytes(ref.digest)), allow_pickle=False) as z:
        files = set(z.files)
        task = str(z["task"]) if "task" in files else ""
        return Predictions(
            y_true=z["y_true"], y_pred=z["y_pred"],
            ids=z["ids"] if "ids" in files else None,
            groups=z["groups"] if "groups" in files else None,
            task=cast(Task, task if task in TASKS else ""),
            labels=z["labels"] if "labels" in files else None,
        )


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
    return paired_differences(pa, pb, metrics, n_resamples=n_resamples, level=level, seed=seed)


def criteria_intervals(
    store: Store,
    run_id: str,
    baseline_run_id: str | None,
    criteria: Sequence[Criterion],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval]:
    """Intervals of ``metric(run) - metric(baseline)`` for the baseline criteria.

    A criterion ``m OP baseline.m2 + k`` gets an interval when ``m`` and ``m2`` name the same
    computable metric and both runs logged predictions on shared examples (paired bootstrap);
    without a baseline run, or without such criteria, there is none and the criteria are judged
    on point values.

    Returns:
        ``{criterion.metric: Interval}`` (what :func:`nbtoolkit.verdict.evaluate` reads).
    """
    if baseline_run_id is None:
        return {}
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


def evaluate_run(
    store: Store,
    criteria: Sequence[Criterion],
    metrics: Mapping[str, float],
    *,
    run_id: str,
    baseline_run_id: str | None,
    baseline_reason: str | None = None,
) -> Verdict:
    """Evaluate ``criteria`` for one run against its baseline run (if any).

    Args:
        store: the store holding both runs.
        criteria: the run's parsed criteria.
        metrics: the run's metrics (passed in: a run being closed has not flushed them all).
        run_id: the run, for its predictions.
        baseline_run_id: the baseline run, or ``None`` when there is none.
        baseline_reason: why there is no baseline (shown on the undecided criteria).

    Returns:
        The :class:`~nbtoolkit.verdict.Verdict`, judged on intervals where both runs logged
        predictions on shared examples, on point values otherwise.
    """
    baseline: dict[str, Any] | None = None
    if baseline_run_id is not None:
        baseline = dict(store.get_runs([baseline_run_id])[0].metrics)
    return evaluate(
        criteria,
        metrics,
        baseline=baseline,
        baseline_missing_reason=baseline_reason,
        intervals=criteria_intervals(store, run_id, baseline_run_id, criteria),
    )
