"""The one metric registry: metrics computable from logged predictions, per task.

Every metric reads a ``(resamples, n)`` matrix of example weights (how often each example was
drawn), so one call evaluates all resamples with matrix products; the point value is the same
call with a single row of ones. Values equal scikit-learn's (``tests/test_stats.py`` and
``tests/test_multiclass.py`` check each one against it).

A metric only exists for the tasks where it means something: ``roc_auc`` is the binary AUC or,
for multiclass, the macro one-vs-rest AUC; ``mae``/``rmse``/``r2`` are regression only, so a
class label is never treated as a number. Experiments (verdicts, reports) and the shadow and
canary checks of :mod:`nbtoolkit.stability` all compute metrics here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nbtoolkit.stats.predictions import Predictions, Task

Array = Any  # numpy arrays; numpy is imported inside functions to keep imports cheap
MetricFn = Callable[[Array, Array, Array], Array]
#: probabilities are clipped to [eps, 1 - eps] before the log, as scikit-learn does
_EPS = 2.220446049250313e-16


@dataclass(frozen=True)
class MetricSpec:
    """A metric computable from predictions.

    Attributes:
        name: canonical name (``roc_auc``).
        higher_is_better: the direction used for "worst group" and sorting.
        impl: per task, ``(needs, fn)``: ``needs`` is the view the metric reads (``"labels"``,
            ``"scores"``, ``"probs"`` or ``"values"``, see :meth:`Predictions.view`) and
            ``fn(weights, truth, pred) -> values`` one metric value per row of ``weights``.
    """

    name: str
    higher_is_better: bool
    impl: Mapping[Task, tuple[str, MetricFn]]

    @property
    def needs(self) -> str:
        """The view of the first task (kept for callers that only know binary metrics)."""
        return next(iter(self.impl.values()))[0]

    @property
    def fn(self) -> MetricFn:
        """The function of the first task (kept for callers that only know binary metrics)."""
        return next(iter(self.impl.values()))[1]

    def prepare(self, pred: Predictions) -> tuple[MetricFn, Array, Array] | None:
        """``(fn, truth, pred)`` for ``pred``'s task, or ``None`` when it does not apply."""
        if pred.task not in self.impl:
            return None
        needs, fn = self.impl[pred.task]
        view = pred.view(needs)
        return None if view is None else (fn, view[0], view[1])


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

    Examples are sorted by score once and their weights summed per distinct score (``G``
    groups); each row then costs one pass over ``n`` and a cumulative sum over ``G``, which for
    probabilities of tree ensembles (few distinct values) is much smaller than ``n``.
    """
    import numpy as np

    order = np.argsort(s)  # any order of equal scores will do: they are summed per score
    ss, ts = s[order], t[order].astype(bool)
    first = np.flatnonzero(np.concatenate(([True], ss[1:] != ss[:-1])))
    ws = w.take(order, axis=1)  # take: several times faster than fancy indexing here
    if len(first) == len(ss):  # no ties: negatives below a positive = all below - positives below
        wp = ws[:, ts]
        all_below = np.cumsum(ws, axis=1)[:, ts] - wp
        num = np.einsum("ij,ij->i", wp, all_below - (np.cumsum(wp, axis=1) - wp))
        n_pos = wp.sum(axis=1)
        n_neg = ws.sum(axis=1) - n_pos
    else:  # ties: weights summed per distinct score, a tie counts one half
        pos = ws * ts
        neg = np.add.reduceat(ws - pos, first, axis=1)
        pos = np.add.reduceat(pos, first, axis=1)
        num = np.einsum("ij,ij->i", pos, np.cumsum(neg, axis=1) - 0.5 * neg)
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = num / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _log_loss(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    q = np.clip(p, _EPS, 1 - _EPS)
    return _wmean(w, -np.where(t, np.log(q), np.log1p(-q)))


def _onehot(codes: Array, k: int) -> Array:
    import numpy as np

    out = np.zeros((len(codes), k))
    out[np.arange(len(codes)), codes.astype(int)] = 1.0
    return out


def _class_counts(w: Array, t: Array, p: Array) -> tuple[Array, Array, Array]:
    """Per-class weighted ``(tp, fp, fn)``, each ``(resamples, classes)``; labels are codes."""
    k = int(max(t.max(), p.max())) + 1
    tt, pp = _onehot(t, k), _onehot(p, k)
    tp = w @ (tt * pp)
    return tp, w @ pp - tp, w @ tt - tp


def _balanced_accuracy(w: Array, t: Array, p: Array) -> Array:
    """Mean recall over the classes present in each resample's truth."""
    import numpy as np

    tp, _, fn = _class_counts(w, t, p)
    support = tp + fn
    present = support > 0
    recall = np.where(present, tp / np.where(present, support, 1.0), 0.0)
    return recall.sum(axis=1) / present.sum(axis=1)


def _f1_per_class(w: Array, t: Array, p: Array) -> tuple[Array, Array, Array]:
    tp, fp, fn = _class_counts(w, t, p)
    den = 2 * tp + fp + fn
    return _ratio(2 * tp, den), den > 0, tp + fn


def _f1_macro(w: Array, t: Array, p: Array) -> Array:
    """Mean F1 over the classes seen (true or predicted) in each resample."""
    f1, seen, _ = _f1_per_class(w, t, p)
    return (f1 * seen).sum(axis=1) / seen.sum(axis=1)


def _f1_weighted(w: Array, t: Array, p: Array) -> Array:
    """F1 per class weighted by its support (number of true examples)."""
    f1, _, support = _f1_per_class(w, t, p)
    return (f1 * support).sum(axis=1) / support.sum(axis=1)


def _log_loss_multi(w: Array, t: Array, prob: Array) -> Array:
    import numpy as np

    q = np.clip(prob[np.arange(len(t)), t], _EPS, 1 - _EPS)
    return _wmean(w, -np.log(q))


def _roc_auc_ovr(w: Array, t: Array, prob: Array) -> Array:
    """Macro one-vs-rest AUC over the classes of the truth (scikit-learn ``multi_class='ovr'``)."""
    import numpy as np

    classes = np.unique(t)
    aucs = [_roc_auc(w, t == c, prob[:, c]) for c in classes]
    return np.mean(np.stack(aucs), axis=0)


def _mse(w: Array, t: Array, p: Array) -> Array:
    return _wmean(w, (t - p) ** 2)


def _mae(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    return _wmean(w, np.abs(t - p))


def _rmse(w: Array, t: Array, p: Array) -> Array:
    import numpy as np

    return np.sqrt(_mse(w, t, p))


def _r2(w: Array, t: Array, p: Array) -> Array:
    """Weighted R² = 1 - SS_res / SS_tot; NaN where the true values are constant."""
    import numpy as np

    mean = _wmean(w, t)
    ss_tot = w @ (t**2) - w.sum(axis=1) * mean**2
    ss_res = w @ ((t - p) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 1e-12 * np.maximum(w @ (t**2), 1.0), 1 - ss_res / ss_tot, np.nan)


_BIN: Task = "binary"
_MULTI: Task = "multiclass"
_REG: Task = "regression"

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("roc_auc", True, {_BIN: ("scores", _roc_auc), _MULTI: ("probs", _roc_auc_ovr)}),
        MetricSpec("accuracy", True, {_BIN: ("labels", _accuracy), _MULTI: ("labels", _accuracy)}),
        MetricSpec("balanced_accuracy", True, {_BIN: ("labels", _balanced_accuracy),
                                               _MULTI: ("labels", _balanced_accuracy)}),
        MetricSpec("precision", True, {_BIN: ("labels", _precision)}),
        MetricSpec("recall", True, {_BIN: ("labels", _recall)}),
        MetricSpec("f1", True, {_BIN: ("labels", _f1)}),
        MetricSpec("f1_macro", True, {_BIN: ("labels", _f1_macro), _MULTI: ("labels", _f1_macro)}),
        MetricSpec("f1_weighted", True, {_BIN: ("labels", _f1_weighted),
                                         _MULTI: ("labels", _f1_weighted)}),
        MetricSpec("log_loss", False, {_BIN: ("probs", _log_loss), _MULTI: ("probs", _log_loss_multi)}),
        MetricSpec("mae", False, {_REG: ("values", _mae)}),
        MetricSpec("rmse", False, {_REG: ("values", _rmse)}),
        MetricSpec("mse", False, {_REG: ("values", _mse)}),
        MetricSpec("r2", True, {_REG: ("values", _r2)}),
    )
}
ALIASES: dict[str, str] = {
    "auc": "roc_auc", "rocauc": "roc_auc", "roc_auc_score": "roc_auc", "roc_auc_ovr": "roc_auc",
    "acc": "accuracy", "accuracy_score": "accuracy", "balanced_accuracy_score": "balanced_accuracy",
    "bal_acc": "balanced_accuracy", "f1_score": "f1", "macro_f1": "f1_macro",
    "weighted_f1": "f1_weighted", "logloss": "log_loss", "cross_entropy": "log_loss",
    "mean_squared_error": "mse", "mean_absolute_error": "mae", "r2_score": "r2",
    "root_mean_squared_error": "rmse",
}
_PREFIXES = ("val_", "valid_", "test_", "eval_", "holdout_")
#: what each task reports by default, in this order (the report's first columns)
TASK_METRICS: dict[Task, tuple[str, ...]] = {
    _BIN: ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "f1", "precision", "recall",
           "f1_macro", "f1_weighted"),
    _MULTI: ("accuracy", "balanced_accuracy", "log_loss", "f1_macro", "f1_weighted", "roc_auc"),
    _REG: ("mae", "rmse", "r2", "mse"),
}


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


def metric_value(pred: Predictions, metric: str | MetricSpec) -> float | None:
    """One metric computed on all of ``pred``; ``None`` when it does not apply to it."""
    spec = metric if isinstance(metric, MetricSpec) else resolve_metric(metric)
    if spec is None or len(pred) == 0:
        return None
    prepared = spec.prepare(pred)
    if prepared is None:
        return None
    import numpy as np

    fn, truth, values = prepared
    value = float(fn(np.ones((1, len(pred))), truth, values)[0])
    return None if math.isnan(value) else value


def computable_metrics(pred: Predictions) -> list[str]:
    """Names of the metrics that mean something for ``pred``'s task and can be computed."""
    return [name for name in TASK_METRICS[pred.task] if METRICS[name].prepare(pred) is not None]


def why_not(pred: Predictions, metric: str) -> str | None:
    """Why ``metric`` cannot be computed from ``pred`` (one sentence), ``None`` when it can."""
    spec = resolve_metric(metric)
    if spec is None:
        return f"{metric!r} is not a metric nbtoolkit computes from predictions"
    if pred.task not in spec.impl:
        tasks = " and ".join(spec.impl)
        return f"{spec.name} is defined for {tasks} predictions, these are {pred.task}"
    if spec.prepare(pred) is None:
        needs = spec.impl[pred.task][0]
        return {"probs": f"{spec.name} needs probabilities; the run logged labels",
                "scores": f"{spec.name} needs scores; the run logged labels"}.get(
                    needs, f"{spec.name} cannot be computed from these predictions")
    return None
