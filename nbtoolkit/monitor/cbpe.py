"""Estimated quality before labels arrive: confidence-based performance estimation (CBPE).

The method NannyML publishes as CBPE: when a classifier's probabilities are calibrated, a row
predicted positive with probability ``p`` is a true positive with probability ``p`` and a false
positive with probability ``1 - p`` (and the mirror image for a negative prediction). Summing
these expectations gives the expected confusion matrix, hence the expected accuracy; sweeping
the threshold over the scores gives the expected ROC curve, hence the expected ROC AUC.

Probabilities are first calibrated on a labelled reference (isotonic regression, as NannyML
does) when one is given; without it the model's own probabilities are taken as calibrated.
Multi-class: each class's probability is calibrated one-vs-rest on the reference and every row
renormalised to sum to 1 (NannyML's scheme); the expected accuracy is the mean calibrated
probability of the predicted class, and the expected ROC AUC the macro mean of the one-vs-rest
estimates (rows ranked by the model's own probability of the class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Array = Any


def expected_accuracy(scores: Array, predicted: Array) -> float:
    """Expected accuracy of binary predictions (``predicted`` in {0, 1}) given calibrated ``scores``."""
    import numpy as np

    p = np.asarray(scores, dtype=float)
    yhat = np.asarray(predicted).astype(bool)
    return float(np.mean(np.where(yhat, p, 1.0 - p)))


def expected_roc_auc(calibrated: Array, scores: Array | None = None) -> float:
    """Expected ROC AUC: rows ranked by the model's ``scores``, each a positive with probability ``calibrated``.

    Walking the ranking from the highest score down, the expected true positives are the running
    sum of ``calibrated`` and the expected false positives the running sum of ``1 - calibrated``;
    tied scores move together. The area under the expected (FPR, TPR) curve is the estimate
    (NaN when the expected positives or negatives are zero).

    Args:
        calibrated: calibrated probabilities of the positive class.
        scores: the model's own scores that rank the rows (default: ``calibrated``).
    """
    import numpy as np

    p = np.asarray(calibrated, dtype=float)
    s = p if scores is None else np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    p, s = p[order], s[order]
    tp = np.cumsum(p)
    fp = np.cumsum(1.0 - p)
    last_of_tie = np.append(s[1:] != s[:-1], True)
    tp = np.concatenate(([0.0], tp[last_of_tie]))
    fp = np.concatenate(([0.0], fp[last_of_tie]))
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


@dataclass(frozen=True)
class Calibrator:
    """Isotonic calibration of binary scores fitted on labelled reference rows."""

    model: Any

    @classmethod
    def fit(cls, scores: Array, labels: Array) -> Calibrator:
        """Fit on reference ``scores`` and 0/1 ``labels``."""
        import numpy as np
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(scores, dtype=float), np.asarray(labels, dtype=float))
        return cls(iso)

    def __call__(self, scores: Array) -> Array:
        import numpy as np

        return np.asarray(self.model.predict(np.asarray(scores, dtype=float)), dtype=float)


def estimate_binary(scores: Array, predicted: Array, *, calibrator: Calibrator | None = None) -> dict[str, float]:
    """CBPE estimates ``{"accuracy": ..., "roc_auc": ...}`` for binary rows (``roc_auc`` left out when undefined)."""
    import math

    p = calibrator(scores) if calibrator is not None else scores
    out = {"accuracy": expected_accuracy(p, predicted)}
    auc = expected_roc_auc(p, scores)
    if not math.isnan(auc):
        out["roc_auc"] = auc
    return out


@dataclass(frozen=True)
class MulticlassCalibrator:
    """One-vs-rest isotonic calibration of class probabilities, renormalised per row.

    Attributes:
        classes: the classes, in the order of the probability columns.
        per_class: one binary :class:`Calibrator` per class.
    """

    classes: tuple[Any, ...]
    per_class: tuple[Calibrator, ...]

    @classmethod
    def fit(cls, proba: Array, labels: Sequence[Any], classes: Sequence[Any]) -> MulticlassCalibrator:
        """Fit on reference ``proba`` (n, k) in the order of ``classes`` and their true ``labels``."""
        import numpy as np

        p = np.asarray(proba, dtype=float)
        truth = list(labels)
        return cls(tuple(classes), tuple(Calibrator.fit(p[:, k], [1.0 if y == c else 0.0 for y in truth])
                                         for k, c in enumerate(classes)))

    def __call__(self, proba: Array) -> Array:
        import numpy as np

        p = np.asarray(proba, dtype=float)
        out = np.column_stack([cal(p[:, k]) for k, cal in enumerate(self.per_class)])
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / out.shape[1])
        return np.divide(out, total, out=uniform, where=total != 0)  # a row calibrated to all zeros: uniform


def estimate_multiclass(proba: Array, predicted: Array, classes: Sequence[Any], *,
                        calibrator: MulticlassCalibrator | None = None) -> dict[str, float]:
    """CBPE estimates for multi-class rows: ``proba`` is (n, k) in the order of ``classes``.

    ``calibrator`` applies when it was fitted on the same classes (else the probabilities are
    taken as calibrated).
    """
    import math

    import numpy as np

    raw = np.asarray(proba, dtype=float)
    p = calibrator(raw) if calibrator is not None and list(calibrator.classes) == list(classes) else raw
    index = {c: i for i, c in enumerate(classes)}
    cols = np.array([index.get(c, -1) for c in predicted])
    if (cols < 0).any():
        return {}
    out = {"accuracy": float(np.mean(p[np.arange(len(p)), cols]))}
    aucs = [expected_roc_auc(p[:, k], raw[:, k]) for k in range(p.shape[1])]
    if aucs and not any(math.isnan(a) for a in aucs):
        out["roc_auc"] = float(np.mean(aucs))
    return out
