"""Metrics computable from logged predictions, vectorised over bootstrap resamples.

Every metric reads a ``(resamples, n)`` matrix of example weights (how often each example was
drawn), so one call evaluates all resamples with matrix products; the point value is the same
call with a single row of ones.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord, Store

_EPS = 1e-15

Array = Any  # numpy arrays; numpy is imported inside functions to keep imports cheap


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
    classification = len(pred.classes) <= 2 and pred.view("labels") is not None
    return [name for name, spec in METRICS.items()
            if pred.view(spec.needs) is not None and not (classification and spec.needs == "values")]


