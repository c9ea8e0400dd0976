"""Paired bootstrap confidence intervals of metric differences between two runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbtoolkit.stats.interval import Interval
from nbtoolkit.stats.metrics import MetricFn, MetricSpec, resolve_metric
from nbtoolkit.stats.predictions import Predictions

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 20240601
#: at most this many weights are held in memory at once (resamples x examples per chunk)
_CHUNK_ELEMENTS = 4_000_000

Array = Any


@dataclass(frozen=True)
class PairedDifference:
    """``metric(a) - metric(b)`` on shared examples, with its paired bootstrap interval."""

    metric: str
    value_a: float
    value_b: float
    difference: float
    interval: Interval | None
    n: int
    higher_is_better: bool

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {"metric": self.metric, "value_a": self.value_a, "value_b": self.value_b,
                "difference": self.difference, "n": self.n,
                "interval": self.interval.to_dict() if self.interval else None}


def _resample_chunks(n: int, n_resamples: int, seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_resamples:
        size = min(per_chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(size, n))
        rows = np.repeat(np.arange(size) * n, n)
        yield np.bincount(rows + idx.ravel(), minlength=size * n).reshape(size, n).astype(float)
        done += size


def paired_bootstrap(
    a: Predictions,
    b: Predictions,
    metrics: Sequence[str | MetricSpec],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = DEFAULT_SEED,
) -> dict[str, PairedDifference]:
    """Paired bootstrap (percentile) intervals of ``metric(a) - metric(b)``.

    Both prediction sets must already be aligned (see :func:`align`). Each resample draws ``n``
    examples with replacement and evaluates both runs on the same draw, so the interval reflects
    the difference between models, not the noise of the test set shared by both.

    Args:
        a: the candidate's predictions.
        b: the baseline's predictions, aligned with ``a``.
        metrics: metric names (or specs); names that cannot be computed are left out.
        n_resamples: number of bootstrap resamples (at least 1,000 recommended).
        level: confidence level of the interval.
        seed: random seed; the same seed gives the same interval.

    Returns:
        ``{metric name as given: PairedDifference}``.

    Raises:
        ValueError: the inputs are not aligned, or ``level``/``n_resamples`` are out of range.
    """
    import numpy as np

    if len(a) != len(b) or not np.array_equal(a.y_true, b.y_true):
        raise ValueError("paired_bootstrap needs aligned predictions; call stats.align(a, b) first")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    todo: list[tuple[str, MetricSpec, tuple[MetricFn, Array, Array], tuple[MetricFn, Array, Array]]] = []
    for m in metrics:
        spec = m if isinstance(m, MetricSpec) else resolve_metric(m)
        if spec is None:
            continue
        ra, rb = spec.prepare(a), spec.prepare(b)
        if ra is None or rb is None:
            continue
        todo.append((m if isinstance(m, str) else spec.name, spec, ra, rb))
    n = len(a)
    if not todo or n == 0:
        return {}
    diffs: dict[str, list[Array]] = {name: [] for name, *_ in todo}
    for w in _resample_chunks(n, n_resamples, seed):
        for name, _, (fa, ta, pa), (fb, tb, pb) in todo:
            diffs[name].append(fa(w, ta, pa) - fb(w, tb, pb))
    alpha = (1 - level) / 2
    result: dict[str, PairedDifference] = {}
    for name, spec, (fa, ta, pa), (fb, tb, pb) in todo:
        ones = np.ones((1, n))
        value_a = float(fa(ones, ta, pa)[0])
        value_b = float(fb(ones, tb, pb)[0])
        d = np.concatenate(diffs[name])
        d = d[~np.isnan(d)]
        interval = None
        if len(d) >= max(10, n_resamples // 2):
            low, high = (float(x) for x in np.quantile(d, [alpha, 1 - alpha]))
            interval = Interval(low=min(low, high), high=max(low, high), level=level,
                                method="paired bootstrap", n_resamples=int(len(d)))
        result[name] = PairedDifference(name, value_a, value_b, value_a - value_b, interval, n,
                                        spec.higher_is_better)
    return result


