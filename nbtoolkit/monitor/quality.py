"""Measured quality of labelled log rows: the experiments' metric code, bootstrap intervals, fairness.

Metrics come from :mod:`nbtoolkit.stats` (the same functions a notebook experiment's verdict
uses), so ``accuracy`` in production means what it means in the report of the run that trained
the model. Intervals are percentile bootstrap intervals over the labelled rows. Fairness is
Fairlearn's ``MetricFrame`` over a slice column: the metric per slice and the gap between the
best and the worst slice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit.stats import (
    DEFAULT_LEVEL,
    DEFAULT_SEED,
    METRICS,
    MetricSpec,
    Predictions,
    computable_metrics,
)

if TYPE_CHECKING:
    import pandas as pd

#: bootstrap resamples of the intervals (the whole period; windows use WINDOW_RESAMPLES)
RESAMPLES = 500
#: resamples per window: many windows, each a rough interval; 200 keeps the monitor fast
WINDOW_RESAMPLES = 200
#: at most this many bootstrap weights in memory at once
_CHUNK_ELEMENTS = 2_000_000
Array = Any


@dataclass(frozen=True)
class MetricValue:
    """One quality number of a window.

    Attributes:
        value: the point value.
        low / high: the bootstrap interval (None when there are too few rows).
        n: rows it was computed on.
        estimated: ``True`` for a confidence-based estimate (no labels), ``False`` when measured.
    """

    value: float
    low: float | None
    high: float | None
    n: int
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (non-finite numbers become None)."""
        return {"value": _finite(self.value), "low": _finite(self.low), "high": _finite(self.high), "n": self.n,
                "estimated": self.estimated}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _as_truth(values: Sequence[Any]) -> Array:
    """Labels as a numpy array, numeric when every label is a number (0/1 stays 0/1)."""
    import numpy as np
    import pandas as pd

    series = pd.Series(list(values))
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        arr = numeric.to_numpy()
        return arr.astype(int) if np.all(arr == np.round(arr)) else arr.astype(float)
    return series.astype(str).to_numpy()


@dataclass(frozen=True)
class Labelled:
    """Labelled rows in the two forms the metrics read: predicted labels and binary scores."""

    labels: Predictions
    scores: Predictions | None
    groups: Array | None = field(default=None)

    def __len__(self) -> int:
        return len(self.labels)

    def view(self, spec: MetricSpec) -> tuple[Array, Array] | None:
        """``(truth, prediction)`` as ``spec`` reads them, or None when not computable."""
        source = self.scores if spec.needs in ("scores", "probs") else self.labels
        return None if source is None else source.view(spec.needs)

    def metric_names(self) -> list[str]:
        """Metrics computable on these rows (accuracy only for more than two classes)."""
        names = computable_metrics(self.labels)
        if self.scores is not None:
            names += [n for n in computable_metrics(self.scores) if METRICS[n].needs in ("scores", "probs")]
        import numpy as np

        if len(np.union1d(self.labels.y_true, self.labels.y_pred)) > 2:
            names = [n for n in names if n == "accuracy"]
        return list(dict.fromkeys(n for n in METRICS if n in names))


def labelled_rows(rows: pd.DataFrame, *, slice_column: str | None = None) -> Labelled | None:
    """The labelled, answered rows of a log frame as metric inputs (None when there are none)."""
    import numpy as np

    done = rows[rows["ok"] & rows["label"].notna()]
    if done.empty:
        return None
    truth = _as_truth(done["label"].tolist())
    pred = _as_truth(done["prediction"].tolist())
    groups = None
    if slice_column is not None:
        groups = np.array([str((i or {}).get(slice_column)) for i in done["inputs"]], dtype=object)
    scores = None
    if done["score"].notna().all():
        scores = Predictions(y_true=truth, y_pred=done["score"].astype(float).to_numpy())
    return Labelled(Predictions(y_true=truth, y_pred=pred), scores, groups)


def _bootstrap(spec: MetricSpec, truth: Array, pred: Array, *, resamples: int, level: float, seed: int) -> tuple[float | None, float | None]:
    import numpy as np

    n = len(truth)
    if n < 10:
        return None, None
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    parts = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(float)
        parts.append(spec.fn(weights, truth, pred))
    values = np.concatenate(parts)
    values = values[~np.isnan(values)]
    if len(values) < resamples // 2:
        return None, None
    alpha = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(values, [alpha, 1 - alpha]))
    return low, high


def measured_quality(
    data: Labelled, *, metrics: Sequence[str] | None = None, resamples: int = RESAMPLES,
    level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED,
) -> dict[str, MetricValue]:
    """Each metric on the labelled rows with its percentile bootstrap interval.

    Args:
        data: the labelled rows (see :func:`labelled_rows`).
        metrics: metric names (default: every metric computable on them).
        resamples: bootstrap resamples; level: interval level; seed: random seed.

    Returns:
        ``{metric: MetricValue}``; metrics that cannot be computed are left out.
    """
    import numpy as np

    out: dict[str, MetricValue] = {}
    for name in metrics if metrics is not None else data.metric_names():
        spec = METRICS.get(name)
        view = data.view(spec) if spec is not None else None
        if spec is None or view is None:
            continue
        value = float(spec.fn(np.ones((1, len(data))), view[0], view[1])[0])
        if math.isnan(value):
            continue
        low, high = _bootstrap(spec, view[0], view[1], resamples=resamples, level=level, seed=seed)
        out[name] = MetricValue(value, low, high, len(data))
    return out


@dataclass(frozen=True)
class SliceMetrics:
    """One metric per slice of a column (Fairlearn ``MetricFrame``) and the worst-slice gap.

    Attributes:
        column: the slice column.
        metric: the metric name.
        by_slice: ``{slice value: metric value}``.
        counts: ``{slice value: labelled rows}``.
        worst: the slice with the worst value (lowest when higher is better).
        gap: best minus worst value (``MetricFrame.difference()``).
    """

    column: str
    metric: str
    by_slice: dict[str, float]
    counts: dict[str, int]
    worst: str
    gap: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"column": self.column, "metric": self.metric, "by_slice": {k: _finite(v) for k, v in self.by_slice.items()},
                "counts": dict(self.counts), "worst": self.worst, "gap": _finite(self.gap)}


def slice_metrics(data: Labelled, column: str, *, metrics: Sequence[str] | None = None) -> list[SliceMetrics]:
    """Per-slice metrics and the worst-slice gap through Fairlearn's ``MetricFrame``.

    One ``MetricFrame`` holds every metric: it groups row positions, and each metric reads its
    own view of those rows (predicted labels or scores). Slices with a single class make
    ``roc_auc`` undefined there; such a metric is left out.
    """
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    if data.groups is None:
        return []
    views: dict[str, tuple[MetricSpec, tuple[Array, Array]]] = {}
    for name in metrics if metrics is not None else data.metric_names():
        spec = METRICS.get(name)
        view = data.view(spec) if spec is not None else None
        if spec is not None and view is not None:
            views[name] = (spec, view)
    if not views:
        return []

    def scorer(spec: MetricSpec, view: tuple[Array, Array]) -> Any:
        def score(rows: Array, _same_rows: Array) -> float:
            idx = np.asarray(rows, dtype=int)
            return float(spec.fn(np.ones((1, len(idx))), view[0][idx], view[1][idx])[0])
        return score

    rows = np.arange(len(data))
    # a named Series: Fairlearn squeezes plain arrays, which breaks on a single row
    frame = MetricFrame(metrics={n: scorer(*v) for n, v in views.items()}, y_true=rows, y_pred=rows,
                        sensitive_features=pd.Series(data.groups, name=column))
    gaps = frame.difference()
    counts = {str(g): int(c) for g, c in zip(*np.unique(data.groups, return_counts=True), strict=True)}
    out: list[SliceMetrics] = []
    for name, (spec, _) in views.items():
        by_group = {str(k): float(v) for k, v in frame.by_group[name].items()}
        if not by_group or any(math.isnan(v) for v in by_group.values()):
            continue
        worst = (min if spec.higher_is_better else max)(by_group, key=lambda k: by_group[k])
        out.append(SliceMetrics(column, name, by_group, counts, worst, float(gaps[name])))
    return out
