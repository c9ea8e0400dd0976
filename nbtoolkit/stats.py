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

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from nbtoolkit.criteria import Criterion, Interval
    from nbtoolkit.store import RunRecord, Store

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 20240601
#: at most this many resampled values are held in memory at once (B x n elements per chunk)
_CHUNK_ELEMENTS = 4_000_000
_EPS = 1e-15

Array = Any  # numpy arrays; kept loose so the module imports without numpy at type-check time


@dataclass(frozen=True)
class MetricSpec:
    """A metric computable from predictions.

    Attributes:
        name: canonical name (``roc_auc``).
        needs: what it reads: ``"labels"`` (predicted classes), ``"scores"`` (binary scores),
            ``"probs"`` (binary probabilities in [0, 1]) or ``"values"`` (regression).
        higher_is_better: the direction used for "worst group" and sorting.
        fn: ``fn(weights, truth, pred) -> values``: ``weights`` is a ``(resamples, n)`` matrix
            of how often each example was drawn, one metric value per row.
    """

    name: str
    needs: str
    higher_is_better: bool
    fn: Callable[[Array, Array, Array], Array]


def _wmean(w: Array, x: Array) -> Array:
    """Row-wise weighted mean: ``w`` is (resamples, n) example counts, ``x`` is (n,)."""
    return (w @ x.astype(float)) / w.sum(axis=1)


def _accuracy(w: Array, t: Array, p: Array) -> Array:
    return _wmean(w, t == p)


def _counts(w: Array, t: Array, p: Array) -> tuple[Array, Array, Array]:
    return w @ (t & p).astype(float), w @ (~t & p).astype(float), w @ (t & ~p).astype(float)


def _ratio(num: Array, den: Array) -> Array:
    import numpy as np

    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _precision(w: Array, t: Array, p: Array) -> Array:
    tp, fp, _ = _counts(w, t, p)
    return _ratio(tp, tp + fp)


def _recall(w: Array, t: Array, p: Array) -> Array:
    tp, _, fn = _counts(w, t, p)
    return _ratio(tp, tp + fn)


def _f1(w: Array, t: Array, p: Array) -> Array:
    tp, fp, fn = _counts(w, t, p)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def _roc_auc(w: Array, t: Array, s: Array) -> Array:
    """Weighted Mann-Whitney AUC per row (ties count one half); NaN where a row has one class.

    Examples are sorted by score once; each resample only changes the weights, so a row costs
    two cumulative sums instead of a sort.
    """
    import numpy as np

    order = np.argsort(s, kind="mergesort")
    ss, ts = s[order], t[order]
    ws = w[:, order]
    start = np.concatenate(([True], ss[1:] != ss[:-1]))
    group = np.cumsum(start) - 1
    first = np.nonzero(start)[0]
    last = np.concatenate((first[1:], [len(ss)])) - 1
    neg = ws * (~ts)
    pos = ws * ts
    cum = np.cumsum(neg, axis=1)
    zero = np.zeros((w.shape[0], 1))
    before = np.concatenate((zero, cum), axis=1)[:, first][:, group]
    ties = cum[:, last][:, group] - before
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (before + 0.5 * ties)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _log_loss(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    q = np.clip(p, _EPS, 1 - _EPS)
    return _wmean(w, -np.where(t, np.log(q), np.log1p(-q)))


def _mse(w: Array, t: Array, p: Array) -> Array:
    return _wmean(w, (t - p) ** 2)


def _mae(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    return _wmean(w, np.abs(t - p))


def _rmse(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    return np.sqrt(_mse(w, t, p))


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("roc_auc", "scores", True, _roc_auc),
        MetricSpec("accuracy", "labels", True, _accuracy),
        MetricSpec("precision", "labels", True, _precision),
        MetricSpec("recall", "labels", True, _recall),
        MetricSpec("f1", "labels", True, _f1),
        MetricSpec("log_loss", "probs", False, _log_loss),
        MetricSpec("mse", "values", False, _mse),
        MetricSpec("mae", "values", False, _mae),
        MetricSpec("rmse", "values", False, _rmse),
    )
}
ALIASES: dict[str, str] = {
    "auc": "roc_auc", "rocauc": "roc_auc", "roc_auc_score": "roc_auc", "acc": "accuracy",
    "accuracy_score": "accuracy", "f1_score": "f1", "logloss": "log_loss",
    "cross_entropy": "log_loss", "mean_squared_error": "mse", "mean_absolute_error": "mae",
}
_PREFIXES = ("val_", "valid_", "test_", "eval_", "holdout_")


def resolve_metric(name: str) -> MetricSpec | None:
    """Map a logged metric name to a computable metric.

    ``roc_auc``, ``auc``, ``val.roc_auc``, ``test_accuracy`` all resolve; unknown names give
    ``None`` (no interval can be computed for them).
    """
    key = name.strip().lower()
    for candidate in (key, key.rsplit(".", 1)[-1]):
        for variant in (candidate, *(candidate[len(p):] for p in _PREFIXES if candidate.startswith(p))):
            variant = ALIASES.get(variant, variant)
            if variant in METRICS:
                return METRICS[variant]
    return None


# --------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Predictions:
    """Per-example labels and predictions of one run (the ``predictions`` artifact)."""

    y_true: Array
    y_pred: Array
    ids: Array | None = None
    groups: Array | None = None

    def __len__(self) -> int:
        return int(len(self.y_true))

    @property
    def classes(self) -> list[Any]:
        """Sorted distinct true labels."""
        import numpy as np

        return list(np.unique(self.y_true))

    @property
    def has_scores(self) -> bool:
        """Whether ``y_pred`` holds continuous scores rather than class labels."""
        import numpy as np

        yp = self.y_pred
        if yp.ndim != 1 or not np.issubdtype(yp.dtype, np.floating):
            return False
        if not self._numeric_truth:
            return True
        return not bool(np.all(np.isin(yp, np.unique(self.y_true))))

    @property
    def _numeric_truth(self) -> bool:
        import numpy as np

        return bool(np.issubdtype(self.y_true.dtype, np.number) or self.y_true.dtype == bool)

    @property
    def positive(self) -> Any:
        """The positive class of a binary problem (``1`` for 0/1 labels, else the larger label)."""
        classes = self.classes
        if self._numeric_truth and set(classes) <= {0, 1}:
            return 1
        return classes[-1] if classes else 1

    def view(self, needs: str) -> tuple[Array, Array] | None:
        """``(truth, pred)`` arrays in the form a metric of kind ``needs`` reads, or ``None``."""
        import numpy as np

        yt, yp = self.y_true, self.y_pred
        if needs == "values":
            if not (self._numeric_truth and np.issubdtype(yp.dtype, np.number)) or yp.ndim != 1:
                return None
            return yt.astype(float), yp.astype(float)
        classes = self.classes
        if needs == "labels":
            if self.has_scores:
                if len(classes) > 2 or not self._numeric_truth:
                    return None
                cut = 0.5 if np.all((yp >= 0) & (yp <= 1)) else 0.0
                return yt == self.positive, yp >= cut
            if len(classes) <= 2 and set(np.unique(yp)) <= set(classes) | {self.positive}:
                return yt == self.positive, yp == self.positive
            return yt, yp
        # scores / probs: binary truth only
        if len(classes) > 2 or yp.ndim != 1 or not np.issubdtype(yp.dtype, np.number):
            return None
        score = yp.astype(float)
        if needs == "probs" and not np.all((score >= 0) & (score <= 1)):
            return None
        return yt == self.positive, score


def load_predictions(store: Store, record: RunRecord, *, name: str | None = None) -> Predictions | None:
    """Load a run's predictions artifact (``name``, else ``predictions``, else the first one)."""
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
        return Predictions(
            y_true=z["y_true"], y_pred=z["y_pred"],
            ids=z["ids"] if "ids" in files else None,
            groups=z["groups"] if "groups" in files else None,
        )


def align(a: Predictions, b: Predictions) -> tuple[Predictions, Predictions] | None:
    """Restrict two runs' predictions to the examples they share, in the same order.

    Pairs on ``ids`` when both logged them, on positions when neither did and the labels match;
    otherwise (or when the shared examples disagree on their true label) returns ``None``.
    """
    import numpy as np

    if a.ids is not None and b.ids is not None:
        shared, ia, ib = np.intersect1d(a.ids, b.ids, assume_unique=True, return_indices=True)
        if len(shared) == 0:
            return None
    elif a.ids is None and b.ids is None and len(a) == len(b):
        ia = ib = np.arange(len(a))
    else:
        return None
    pa, pb = _take(a, ia), _take(b, ib)
    if pa.y_true.dtype.kind != pb.y_true.dtype.kind or not np.array_equal(pa.y_true, pb.y_true):
        return None
    return pa, pb


def _take(p: Predictions, idx: Array) -> Predictions:
    return Predictions(
        y_true=p.y_true[idx], y_pred=p.y_pred[idx],
        ids=None if p.ids is None else p.ids[idx], groups=None if p.groups is None else p.groups[idx],
    )


def metric_value(pred: Predictions, metric: str | MetricSpec) -> float | None:
    """One metric computed on all of ``pred``; ``None`` when it cannot be computed from it."""
    spec = metric if isinstance(metric, MetricSpec) else resolve_metric(metric)
    if spec is None:
        return None
    view = pred.view(spec.needs)
    if view is None or len(pred) == 0:
        return None
    import numpy as np

    value = float(spec.fn(np.ones((1, len(pred))), view[0], view[1])[0])
    return None if math.isnan(value) else value


def computable_metrics(pred: Predictions) -> list[str]:
    """Names of the metrics that can be computed from ``pred``."""
    return [name for name, spec in METRICS.items() if pred.view(spec.needs) is not None]


# --------------------------------------------------------------------------- bootstrap
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

    from nbtoolkit.criteria import Interval

    if len(a) != len(b) or not np.array_equal(a.y_true, b.y_true):
        raise ValueError("paired_bootstrap needs aligned predictions; call stats.align(a, b) first")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    todo: list[tuple[str, MetricSpec, tuple[Array, Array], tuple[Array, Array]]] = []
    for m in metrics:
        spec = m if isinstance(m, MetricSpec) else resolve_metric(m)
        if spec is None:
            continue
        va, vb = a.view(spec.needs), b.view(spec.needs)
        if va is None or vb is None:
            continue
        todo.append((m if isinstance(m, str) else spec.name, spec, va, vb))
    n = len(a)
    if not todo or n == 0:
        return {}
    diffs: dict[str, list[Array]] = {name: [] for name, *_ in todo}
    for w in _resample_chunks(n, n_resamples, seed):
        for name, spec, (ta, pa), (_, pb) in todo:
            diffs[name].append(spec.fn(w, ta, pa) - spec.fn(w, ta, pb))
    alpha = (1 - level) / 2
    result: dict[str, PairedDifference] = {}
    for name, spec, (ta, pa), (_, pb) in todo:
        ones = np.ones((1, n))
        value_a = float(spec.fn(ones, ta, pa)[0])
        value_b = float(spec.fn(ones, ta, pb)[0])
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


# --------------------------------------------------------------------------- McNemar
@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness of two classifiers.

    Attributes:
        only_a: examples that only ``a`` classified correctly.
        only_b: examples that only ``b`` classified correctly.
        statistic: the test statistic (chi-square with continuity correction, or the smaller
            count for the exact test).
        pvalue: two-sided p-value.
        method: ``"exact"`` (binomial, fewer than 25 discordant pairs) or ``"chi2"``.
        n: the number of paired examples.
    """

    only_a: int
    only_b: int
    statistic: float
    pvalue: float
    method: str
    n: int

    def describe(self) -> str:
        """Return e.g. ``"McNemar p=0.012 (exact; 14 vs 3 discordant of 500)"``."""
        return (f"McNemar p={self.pvalue:.3g} ({self.method}; {self.only_a} vs {self.only_b} "
                f"discordant of {self.n})")


def mcnemar(a: Predictions, b: Predictions) -> McNemarResult | None:
    """McNemar's test of whether two aligned runs differ in accuracy; ``None`` if not labels."""
    from scipy import stats as sps

    va, vb = a.view("labels"), b.view("labels")
    if va is None or vb is None:
        return None
    right_a, right_b = va[0] == va[1], vb[0] == vb[1]
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    k = only_a + only_b
    if k == 0:
        return McNemarResult(only_a, only_b, 0.0, 1.0, "exact", len(a))
    if k < 25:
        p = float(sps.binomtest(min(only_a, only_b), k, 0.5).pvalue)
        return McNemarResult(only_a, only_b, float(min(only_a, only_b)), min(p, 1.0), "exact", len(a))
    stat = (abs(only_a - only_b) - 1) ** 2 / k
    return McNemarResult(only_a, only_b, float(stat), float(sps.chi2.sf(stat, 1)), "chi2", len(a))


# --------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class GroupMetrics:
    """One metric per group of examples.

    Attributes:
        metric: the metric name.
        overall: the metric on all examples.
        groups: ``(group, n, value)`` per group, worst first (``value`` ``None`` if undefined).
        worst: the worst group's name.
        gap: the worst-group gap: best group minus worst group (absolute, >= 0).
    """

    metric: str
    overall: float | None
    groups: tuple[tuple[str, int, float | None], ...]
    worst: str | None
    gap: float | None


def group_metrics(pred: Predictions, metric: str) -> GroupMetrics | None:
    """Per-group values of ``metric`` and the worst-group gap; ``None`` when no groups."""
    import numpy as np

    spec = resolve_metric(metric)
    if spec is None or pred.groups is None or pred.view(spec.needs) is None:
        return None
    rows = []
    for g in np.unique(pred.groups):
        idx = np.nonzero(pred.groups == g)[0]
        rows.append((str(g), len(idx), metric_value(_take(pred, idx), spec)))
    defined = [r for r in rows if r[2] is not None]
    sign = 1 if spec.higher_is_better else -1
    rows.sort(key=lambda r: (r[2] is None, sign * (r[2] if r[2] is not None else 0.0)))
    worst = defined and min(defined, key=lambda r: sign * float(r[2]))  # type: ignore[arg-type]
    best = defined and max(defined, key=lambda r: sign * float(r[2]))  # type: ignore[arg-type]
    gap = abs(float(best[2]) - float(worst[2])) if worst and best else None  # type: ignore[index,arg-type]
    return GroupMetrics(metric, metric_value(pred, spec), tuple(rows),
                        worst[0] if worst else None, gap)  # type: ignore[index]


# --------------------------------------------------------------------------- verdict hook
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
        ``{criterion.metric: Interval}`` (what :func:`nbtoolkit.criteria.evaluate` reads).
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
