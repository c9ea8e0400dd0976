"""Per-example predictions of one run: the task they belong to, checks and pairing.

A run logs ``y_true`` and one of: predicted labels, binary scores (or probabilities of the
positive class), an ``(n, k)`` probability matrix (``model.predict_proba(X)``) or regression
values. The *task* (``binary``, ``multiclass`` or ``regression``) is inferred from the data or
declared, and decides which metrics mean something (see :mod:`nbtoolkit.stats.metrics`).

:func:`check_predictions` is what :func:`nbtoolkit.log_predictions` calls: anything that could
only crash later (shape mismatches, NaN, probabilities that do not sum to one, duplicated ids, a
declared task the data contradicts) is refused there, with the fix in the message.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from nbtoolkit.errors import InputError

Array = Any  # numpy arrays; numpy is imported inside functions to keep imports cheap
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
#: how far a row of an (n, k) probability matrix may sum away from 1 (float32 softmax noise)
PROB_SUM_TOLERANCE = 1e-4


def _is_float(a: Array) -> bool:
    import numpy as np

    return bool(np.issubdtype(a.dtype, np.floating))


def _is_numeric(a: Array) -> bool:
    import numpy as np

    return bool(np.issubdtype(a.dtype, np.number) or a.dtype == bool)


def _integral(a: Array) -> bool:
    import numpy as np

    return not _is_float(a) or bool(np.all(np.mod(a, 1) == 0))


def infer_task(y_true: Array, y_pred: Array) -> Task:
    """The task a pair of arrays belongs to.

    An ``(n, k)`` matrix is class probabilities (binary for ``k == 2``); non-integral true values
    are regression; predictions that are labels (non-float, or integral floats over integral
    truth) are binary or multiclass by the number of classes; continuous predictions are binary
    scores over two classes and regression values otherwise.
    """
    import numpy as np

    if y_pred.ndim == 2:
        return "binary" if y_pred.shape[1] == 2 else "multiclass"
    if _is_float(y_true) and not _integral(y_true):
        return "regression"
    if not _is_float(y_pred) or (_integral(y_pred) and _integral(y_true)):
        numeric = _is_numeric(y_true) and _is_numeric(y_pred)
        both = np.concatenate([y_true, y_pred] if numeric else [y_true.astype(str), y_pred.astype(str)])
        return "binary" if len(np.unique(both)) <= 2 else "multiclass"
    return "binary" if len(np.unique(y_true)) <= 2 and _is_numeric(y_true) else "regression"


@dataclass(frozen=True)
class Predictions:
    """Per-example labels and predictions of one run (the ``predictions`` artifact).

    Attributes:
        y_true: true labels or values, shape ``(n,)``.
        y_pred: predicted labels, scores or values ``(n,)``, or probabilities ``(n, k)``.
        ids: example ids (paired comparisons match on them).
        groups: a group label per example.
        task: ``binary``, ``multiclass`` or ``regression`` (inferred when not given).
        labels: the class of each probability column (``model.classes_``), for ``(n, k)``.
    """

    y_true: Array
    y_pred: Array
    ids: Array | None = None
    groups: Array | None = None
    task: Task = field(default=cast(Task, ""))
    labels: Array | None = None

    def __post_init__(self) -> None:
        if not self.task:
            object.__setattr__(self, "task", infer_task(self.y_true, self.y_pred))
        if self.y_pred.ndim == 2 and self.labels is None:
            object.__setattr__(self, "labels", default_labels(self.y_true, self.y_pred.shape[1]))

    def __len__(self) -> int:
        return int(len(self.y_true))

    @functools.cached_property
    def classes(self) -> list[Any]:
        """Sorted distinct classes: true labels, predicted labels and probability columns."""
        import numpy as np

        if self.task == "regression":
            return []
        parts = [self.y_true]
        if self.y_pred.ndim == 2:
            parts.append(np.asarray(self.labels))
        elif not self.has_scores:
            parts.append(self.y_pred)
        if not all(_is_numeric(p) for p in parts):
            parts = [p.astype(str) for p in parts]
        return list(np.unique(np.concatenate(parts)))

    @property
    def has_scores(self) -> bool:
        """Whether ``y_pred`` holds binary scores (one column, or two probability columns)."""
        if self.task != "binary":
            return False
        if self.y_pred.ndim == 2:
            return True
        return _is_float(self.y_pred) and not (_integral(self.y_pred) and _integral(self.y_true))

    @functools.cached_property
    def positive(self) -> Any:
        """The positive class of a binary problem (``1`` for 0/1 labels, else the larger label)."""
        classes = self.classes
        if self.y_pred.ndim == 2:
            import numpy as np

            return np.asarray(self.labels)[1]
        if _is_numeric(self.y_true) and set(classes) <= {0, 1}:
            return 1
        return classes[-1] if classes else 1

    def _codes(self, values: Array) -> Array:
        import numpy as np

        classes = np.asarray(self.classes)
        if classes.dtype.kind in "US" and values.dtype.kind not in "US":
            values = values.astype(str)
        return np.searchsorted(classes, values)

    def _predicted_labels(self) -> Array:
        import numpy as np

        if self.y_pred.ndim == 2:
            return np.asarray(self.labels)[np.argmax(self.y_pred, axis=1)]
        return self.y_pred

    def _binary_view(self, needs: str) -> tuple[Array, Array] | None:
        import numpy as np

        truth = self.y_true == self.positive
        if self.y_pred.ndim == 2:
            score = self.y_pred[:, 1].astype(float)
        elif self.has_scores:
            score = self.y_pred.astype(float)
        else:
            return (truth, self.y_pred == self.positive) if needs == "labels" else None
        if needs == "labels":
            cut = 0.5 if np.all((score >= 0) & (score <= 1)) else 0.0
            return truth, score >= cut
        if needs == "probs" and not np.all((score >= 0) & (score <= 1)):
            return None
        return truth, score

    def view(self, needs: str) -> tuple[Array, Array] | None:
        """``(truth, pred)`` arrays in the form a metric of kind ``needs`` reads, or ``None``.

        ``needs`` is ``"labels"`` (binary: booleans of the positive class; multiclass: class
        codes), ``"scores"``/``"probs"`` (binary: positive-class score; multiclass ``"probs"``:
        class codes and the ``(n, k)`` matrix, columns in code order) or ``"values"``.
        """
        if self.task == "regression":
            ok = needs == "values" and _is_numeric(self.y_true) and _is_numeric(self.y_pred)
            return (self.y_true.astype(float), self.y_pred.astype(float)) if ok else None
        if needs == "values":
            return None
        if self.task == "binary":
            return self._binary_view(needs)
        truth = self._codes(self.y_true)
        if needs == "labels":
            return truth, self._codes(self._predicted_labels())
        if needs != "probs" or self.y_pred.ndim != 2:
            return None
        import numpy as np

        matrix = np.zeros((len(self), len(self.classes)))
        matrix[:, self._codes(np.asarray(self.labels))] = self.y_pred
        return truth, matrix


def default_labels(y_true: Array, k: int) -> Array:
    """The class of each of ``k`` probability columns when not given: ``0..k-1`` for integer
    labels inside that range, else the sorted distinct true labels when there are ``k``."""
    import numpy as np

    if _is_numeric(y_true) and _integral(y_true) and len(y_true) and y_true.min() >= 0 and y_true.max() < k:
        return np.arange(k)
    classes = np.unique(y_true)
    if len(classes) == k:
        return classes
    raise InputError(
        f"log_predictions: the probability matrix has {k} columns but the true labels are "
        f"{len(classes)} classes that are not 0..{k - 1}; pass labels=model.classes_.")


def _fail(problem: str) -> InputError:
    return InputError(f"log_predictions: {problem}")


def _check_probabilities(yp: Array, yt: Array, labels: Array | None) -> Array:
    import numpy as np

    k = yp.shape[1]
    if k < 2:
        raise _fail(f"a probability matrix needs at least 2 columns, got {k}; pass the "
                    "positive-class column (proba[:, 1]) as a 1-D array instead.")
    if not _is_numeric(yp):
        raise _fail("a probability matrix must be numeric.")
    if np.any(np.isnan(yp)):
        raise _fail("the probability matrix holds NaN; drop or fix those rows.")
    if np.any((yp < 0) | (yp > 1)):
        raise _fail("probabilities must lie in [0, 1]; pass model.predict_proba(X), not scores.")
    sums = yp.sum(axis=1)
    bad = np.nonzero(np.abs(sums - 1) > PROB_SUM_TOLERANCE)[0]
    if len(bad):
        raise _fail(f"probability rows must sum to 1; row {int(bad[0])} sums to "
                    f"{float(sums[bad[0]]):.6g} ({len(bad)} such rows); normalise them or pass "
                    "predicted labels.")
    cols = default_labels(yt, k) if labels is None else np.asarray(labels)
    if cols.ndim != 1 or len(cols) != k:
        raise _fail(f"labels must name the {k} probability columns, got {cols.shape}.")
    if len(np.unique(cols)) != k:
        raise _fail("labels must be distinct (one per probability column).")
    as_str = not (_is_numeric(cols) and _is_numeric(yt))
    unknown = np.setdiff1d(yt.astype(str) if as_str else yt, cols.astype(str) if as_str else cols)
    if len(unknown):
        raise _fail(f"true labels {unknown[:5].tolist()} are not among the probability columns "
                    f"{cols.tolist()[:10]}; pass labels=model.classes_.")
    return cols


def _check_task(task: Task, yt: Array, yp: Array) -> None:
    import numpy as np

    if task == "regression":
        if yp.ndim != 1 or not (_is_numeric(yt) and _is_numeric(yp)):
            raise _fail("task='regression' needs numeric 1-D true values and predictions.")
        return
    n_true = len(np.unique(yt))
    if task == "binary" and n_true > 2:
        raise _fail(f"task='binary' but y_true holds {n_true} classes; use task='multiclass'.")
    if task == "binary" and yp.ndim == 2 and yp.shape[1] != 2:
        raise _fail(f"task='binary' needs 2 probability columns, got {yp.shape[1]}.")
    if task == "multiclass" and yp.ndim == 1 and _is_float(yp) and not _integral(yp):
        raise _fail("task='multiclass' needs predicted labels or an (n, k) probability matrix, "
                    "got continuous 1-D values.")


def check_predictions(y_true: Any, y_pred: Any, *, task: str | None = None,
                      labels: Any = None) -> Predictions:
    """Validate what a user passes to :func:`nbtoolkit.log_predictions`.

    Args:
        y_true: true labels or values.
        y_pred: predicted labels, binary scores, an ``(n, k)`` probability matrix or values.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; inferred when ``None``.
        labels: the class of each probability column (``model.classes_``).

    Returns:
        The :class:`Predictions` (no ids or groups yet).

    Raises:
        InputError: the arrays cannot be used, with what to pass instead.
    """
    import numpy as np

    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if task is not None and task not in TASKS:
        raise _fail(f"task must be one of {', '.join(TASKS)}, got {task!r}.")
    if yt.dtype == object or yp.dtype == object:
        raise _fail("labels and predictions must be numeric or string arrays, not objects.")
    if yt.ndim == 2 and yt.shape[1] == 1:
        yt = yt[:, 0]
    if yp.ndim == 2 and yp.shape[1] == 1:
        yp = yp[:, 0]
    if yt.ndim != 1:
        raise _fail(f"y_true must be 1-D (one label or value per example), got shape {yt.shape}; "
                    "log one prediction set per output.")
    if yp.ndim not in (1, 2):
        raise _fail(f"predictions must be 1-D or an (n, k) probability matrix, got shape {yp.shape}.")
    if len(yt) == 0:
        raise _fail("no examples; pass at least one prediction.")
    if yp.shape[0] != len(yt):
        raise _fail(f"y_true has {len(yt)} rows but predictions have {yp.shape[0]}; pass aligned arrays.")
    if _is_float(yt) and np.any(np.isnan(yt)):
        raise _fail("y_true holds NaN; drop the unlabelled examples first.")
    if yp.ndim == 1 and _is_float(yp) and np.any(np.isnan(yp)):
        raise _fail("predictions hold NaN; drop or impute those rows first.")
    cols = _check_probabilities(yp, yt, labels) if yp.ndim == 2 else None
    if labels is not None and yp.ndim != 2:
        raise _fail("labels= names probability columns; it needs an (n, k) probability matrix.")
    resolved: Task = task if task is not None else infer_task(yt, yp)
    _check_task(resolved, yt, yp)
    return Predictions(yt, yp, task=resolved, labels=cols)


def take(p: Predictions, idx: Array) -> Predictions:
    """The examples ``idx`` of ``p`` (same task and probability columns)."""
    return Predictions(
        y_true=p.y_true[idx], y_pred=p.y_pred[idx], task=p.task, labels=p.labels,
        ids=None if p.ids is None else p.ids[idx], groups=None if p.groups is None else p.groups[idx],
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
    pa, pb = take(a, ia), take(b, ib)
    if pa.y_true.dtype.kind != pb.y_true.dtype.kind or not np.array_equal(pa.y_true, pb.y_true):
        return None
    return pa, pb
