"""Produce tests/data/cbpe_data.csv and the NannyML CBPE numbers in tests/data/cbpe_nannyml.json.

The data set is synthetic (fixed seed): two features, labels drawn from a known logistic model,
and a model whose scores rank well but are mis-calibrated (so calibration on the reference
matters). A reference period of 3,000 labelled rows, then four analysis chunks of 750 rows with
the first feature shifted by 0, +0.8, -0.8 and +1.6.

NannyML must not go into the project's environment (it pins old libraries); run this in its own
virtual environment::

    python3 -m venv /tmp/nannyml-venv
    /tmp/nannyml-venv/bin/pip install nannyml statsmodels
    /tmp/nannyml-venv/bin/python tests/data/make_cbpe_reference.py

Numbers produced with nannyml 0.13.1 (CBPE, isotonic calibration, chunk_size=750).

Multi-class (``cbpe_multiclass.csv``, the analysis chunks only): three classes whose
probabilities are the true class probabilities of the generating model, labels drawn from them,
prediction = argmax; chunks with the first feature shifted by 0, +1 and -1. NannyML runs with
``NoopCalibrator`` there, so the check is of the estimation itself (expected accuracy = mean
probability of the predicted class, expected ROC AUC = macro one-vs-rest); calibration is
checked by the binary set.

Multi-class with calibration (``cbpe_multiclass_calibrated.csv``, reference and analysis): the
same generating model, but the model's probabilities are over-confident (a softmax of the
logits times 2.5) and biased towards class 0, so NannyML's default isotonic calibration is
needed for every class (``needs_calibration`` is recorded per class): each class is calibrated
one-vs-rest on the reference, then each row renormalised to sum to 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
SHIFTS = (0.0, 0.8, -0.8, 1.6)
CHUNK = 750


def make_data() -> pd.DataFrame:
    rng = np.random.default_rng(20261201)
    parts = []
    for period, shift, n in [("reference", 0.0, 3000)] + [(f"chunk{i}", s, CHUNK) for i, s in enumerate(SHIFTS)]:
        x1 = rng.normal(shift, 1.0, n)
        x2 = rng.normal(0.0, 1.0, n)
        logit = 1.5 * x1 - 1.0 * x2
        y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        score = 1 / (1 + np.exp(-(0.5 * (logit + rng.normal(0, 0.7, n)) + 0.4)))
        parts.append(pd.DataFrame({"period": period,
                                   "score": score.round(6), "y_pred": (score.round(6) >= 0.5).astype(int), "y_true": y}))
    return pd.concat(parts, ignore_index=True)


def make_multiclass() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    parts = []
    for period, shift, n in [("reference", 0.0, 3000), ("chunk0", 0.0, CHUNK), ("chunk1", 1.0, CHUNK), ("chunk2", -1.0, CHUNK)]:
        x = rng.normal(shift, 1, (n, 2))
        logits = np.stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]], axis=1) * 1.2
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        p = p.round(6)
        p[:, 2] = 1 - p[:, 0] - p[:, 1]
        y = np.array([rng.choice(3, p=pi) for pi in p])
        parts.append(pd.DataFrame({"period": period, "p0": p[:, 0], "p1": p[:, 1], "p2": p[:, 2], "y_pred": p.argmax(1), "y_true": y}))
    return pd.concat(parts, ignore_index=True)


def make_multiclass_calibrated() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    parts = []
    for period, shift, n in [("reference", 0.0, 3000), ("chunk0", 0.0, CHUNK), ("chunk1", 1.0, CHUNK), ("chunk2", -1.0, CHUNK)]:
        x = rng.normal(shift, 1, (n, 2))
        logits = np.stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]], axis=1) * 1.2
        truth = np.exp(logits)
        truth /= truth.sum(1, keepdims=True)
        y = np.array([rng.choice(3, p=pi) for pi in truth])
        model = np.exp(2.5 * logits + np.array([0.6, 0.0, 0.0]))  # over-confident, biased to class 0
        p = model / model.sum(1, keepdims=True)
        p = p.round(6)
        p[:, 2] = (1 - p[:, 0] - p[:, 1]).round(6)
        parts.append(pd.DataFrame({"period": period, "p0": p[:, 0], "p1": p[:, 1], "p2": p[:, 2], "y_pred": p.argmax(1), "y_true": y}))
    return pd.concat(parts, ignore_index=True)


def multiclass_calibrated_expected() -> dict[str, object]:
    import nannyml as nml
    from nannyml.calibration import NoopCalibrator

    make_multiclass_calibrated().to_csv(HERE / "cbpe_multiclass_calibrated.csv", index=False)
    data = pd.read_csv(HERE / "cbpe_multiclass_calibrated.csv")
    reference = data[data.period == "reference"].reset_index(drop=True)
    analysis = data[data.period != "reference"].reset_index(drop=True)
    est = nml.CBPE(y_pred_proba={0: "p0", 1: "p1", 2: "p2"}, y_pred="y_pred", y_true="y_true",
                   metrics=["roc_auc", "accuracy"], chunk_size=CHUNK, problem_type="classification_multiclass")
    est.fit(reference)
    result = est.estimate(analysis.drop(columns=["y_true"])).filter(period="analysis").to_df()
    return {
        "calibrated_classes": sorted(int(k) for k, c in est._calibrators.items() if not isinstance(c, NoopCalibrator)),
        "chunks": [{"period": f"chunk{i}", "roc_auc": float(result[("roc_auc", "value")].iloc[i]),
                    "accuracy": float(result[("accuracy", "value")].iloc[i])} for i in range(3)],
    }


def multiclass_expected() -> list[dict[str, object]]:
    import nannyml as nml
    from nannyml.calibration import NoopCalibrator

    data = make_multiclass()
    data.to_csv(HERE / "cbpe_multiclass_all.csv", index=False)
    data = pd.read_csv(HERE / "cbpe_multiclass_all.csv")
    (HERE / "cbpe_multiclass_all.csv").unlink()
    data[data.period != "reference"].to_csv(HERE / "cbpe_multiclass.csv", index=False)
    reference = data[data.period == "reference"].reset_index(drop=True)
    analysis = data[data.period != "reference"].reset_index(drop=True)
    est = nml.CBPE(y_pred_proba={0: "p0", 1: "p1", 2: "p2"}, y_pred="y_pred", y_true="y_true", calibrator=NoopCalibrator(),
                   metrics=["roc_auc", "accuracy"], chunk_size=CHUNK, problem_type="classification_multiclass")
    est.fit(reference)
    result = est.estimate(analysis.drop(columns=["y_true"])).filter(period="analysis").to_df()
    return [{"period": f"chunk{i}", "roc_auc": float(result[("roc_auc", "value")].iloc[i]),
             "accuracy": float(result[("accuracy", "value")].iloc[i])} for i in range(3)]


def main() -> None:
    import nannyml as nml

    data = make_data()
    data.to_csv(HERE / "cbpe_data.csv", index=False)
    data = pd.read_csv(HERE / "cbpe_data.csv")  # estimate on exactly the rounded numbers the test reads
    reference = data[data.period == "reference"].reset_index(drop=True)
    analysis = data[data.period != "reference"].reset_index(drop=True)
    est = nml.CBPE(y_pred_proba="score", y_pred="y_pred", y_true="y_true", metrics=["roc_auc", "accuracy"],
                   chunk_size=CHUNK, problem_type="classification_binary")
    est.fit(reference)
    result = est.estimate(analysis.drop(columns=["y_true"])).filter(period="analysis").to_df()
    expected = {
        "nannyml_version": nml.__version__,
        "needs_calibration": bool(est.needs_calibration),
        "chunks": [
            {"period": f"chunk{i}", "roc_auc": float(result[("roc_auc", "value")].iloc[i]),
             "accuracy": float(result[("accuracy", "value")].iloc[i])}
            for i in range(len(SHIFTS))
        ],
        "multiclass_chunks": multiclass_expected(),
        "multiclass_calibrated": multiclass_calibrated_expected(),
    }
    (HERE / "cbpe_nannyml.json").write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(expected, indent=2))


if __name__ == "__main__":
    main()
