"""Statistics checked against known cases, scikit-learn and scipy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nbtoolkit import evidence, stats
from nbtoolkit.criteria import parse_criteria

RNG = np.random.default_rng(7)
N = 400
Y = RNG.integers(0, 2, N)
IDS = np.array([f"ex{i}" for i in range(N)])
WEAK = np.clip(Y * 0.15 + RNG.random(N) * 0.85, 0, 1)
STRONG = np.clip(Y * 0.6 + RNG.random(N) * 0.4, 0, 1)


def pred(scores: Any, *, ids: Any = IDS, y: Any = Y, groups: Any = None) -> stats.Predictions:
    return stats.Predictions(np.asarray(y), np.asarray(scores), ids=ids, groups=groups)


@pytest.mark.parametrize("name, sk", [
    ("roc_auc", lambda y, s: __import__("sklearn.metrics").metrics.roc_auc_score(y, s)),
    ("accuracy", lambda y, s: __import__("sklearn.metrics").metrics.accuracy_score(y, s >= 0.5)),
    ("precision", lambda y, s: __import__("sklearn.metrics").metrics.precision_score(y, s >= 0.5)),
    ("recall", lambda y, s: __import__("sklearn.metrics").metrics.recall_score(y, s >= 0.5)),
    ("f1", lambda y, s: __import__("sklearn.metrics").metrics.f1_score(y, s >= 0.5)),
    ("log_loss", lambda y, s: __import__("sklearn.metrics").metrics.log_loss(y, s)),
])
def test_metrics_match_scikit_learn(name: str, sk: Any) -> None:
    scores = np.round(WEAK, 2)  # ties exercise the average-rank handling of the AUC
    assert stats.metric_value(pred(scores), name) == pytest.approx(sk(Y, scores), rel=1e-9)


def test_regression_metrics_and_name_resolution() -> None:
    y = RNG.normal(size=50)
    p = y + RNG.normal(scale=0.3, size=50)
    reg = stats.Predictions(y, p)
    assert stats.metric_value(reg, "mse") == pytest.approx(np.mean((y - p) ** 2))
    assert stats.metric_value(reg, "val.mae") == pytest.approx(np.mean(np.abs(y - p)))
    assert stats.metric_value(reg, "test_rmse") == pytest.approx(np.sqrt(np.mean((y - p) ** 2)))
    assert stats.metric_value(reg, "roc_auc") is None  # continuous truth: no AUC
    assert stats.resolve_metric("auc").name == "roc_auc"  # type: ignore[union-attr]
    assert stats.resolve_metric("fit_seconds") is None


def test_identical_predictions_give_an_interval_containing_zero() -> None:
    a = pred(WEAK)
    diffs = stats.paired_bootstrap(a, a, ["roc_auc", "accuracy", "log_loss"])
    for d in diffs.values():
        assert d.interval is not None and d.interval.low <= 0 <= d.interval.high
        assert d.difference == 0


def test_clearly_better_model_gives_an_interval_excluding_zero() -> None:
    diffs = stats.paired_bootstrap(pred(STRONG), pred(WEAK), ["roc_auc", "accuracy", "log_loss"])
    assert diffs["roc_auc"].interval.low > 0.1  # type: ignore[union-attr]
    assert diffs["accuracy"].interval.low > 0  # type: ignore[union-attr]
    assert diffs["log_loss"].interval.high < 0  # lower is better: strong model's loss is smaller
    assert diffs["roc_auc"].interval.n_resamples == 1000  # type: ignore[union-attr]
    assert diffs["roc_auc"].interval.level == 0.95  # type: ignore[union-attr]


def test_similar_models_straddle_zero() -> None:
    noise = np.clip(WEAK + RNG.normal(scale=0.02, size=N), 0, 1)
    d = stats.paired_bootstrap(pred(noise), pred(WEAK), ["roc_auc"])["roc_auc"]
    assert d.interval is not None and d.interval.low < 0 < d.interval.high


def test_fixed_seed_gives_the_same_interval_and_level_widens_it() -> None:
    a, b = pred(STRONG), pred(WEAK)
    one = stats.paired_bootstrap(a, b, ["roc_auc"], seed=3)["roc_auc"].interval
    two = stats.paired_bootstrap(a, b, ["roc_auc"], seed=3)["roc_auc"].interval
    other = stats.paired_bootstrap(a, b, ["roc_auc"], seed=4)["roc_auc"].interval
    wide = stats.paired_bootstrap(a, b, ["roc_auc"], seed=3, level=0.99)["roc_auc"].interval
    assert one == two
    assert other != one
    assert wide.low < one.low and wide.high > one.high  # type: ignore[union-attr]


def test_align_pairs_on_ids_in_any_order_and_refuses_mismatches() -> None:
    order = RNG.permutation(N)[:300]
    shuffled = stats.Predictions(Y[order], WEAK[order], ids=IDS[order])
    pair = stats.align(pred(STRONG), shuffled)
    assert pair is not None
    a, b = pair
    assert len(a) == 300 and list(a.ids) == list(b.ids)
    assert np.array_equal(a.y_true, b.y_true)
    assert stats.align(pred(STRONG), pred(WEAK, ids=np.array([f"other{i}" for i in range(N)]))) is None
    assert stats.align(pred(STRONG), pred(WEAK, y=1 - Y)) is None  # same ids, different labels
    assert stats.align(pred(STRONG), pred(WEAK, ids=None)) is None  # ids on one side only


def test_paired_differences_pairs_shared_examples_then_bootstraps() -> None:
    order = RNG.permutation(N)[:300]
    shuffled = stats.Predictions(Y[order], WEAK[order], ids=IDS[order])
    diffs, test, n = stats.paired_differences(pred(STRONG), shuffled, ["roc_auc"], seed=5)
    a, b = stats.align(pred(STRONG), shuffled)  # type: ignore[misc]
    assert n == 300 and set(diffs) == {"roc_auc"}
    assert diffs["roc_auc"].interval == stats.paired_bootstrap(a, b, ["roc_auc"], seed=5)["roc_auc"].interval
    assert test == stats.mcnemar(a, b)
    everything, _, _ = stats.paired_differences(pred(STRONG), shuffled)
    assert set(everything) == set(stats.computable_metrics(a)) and "roc_auc" in everything
    unpaired = pred(WEAK, ids=np.array([f"other{i}" for i in range(N)]))
    assert stats.paired_differences(pred(STRONG), unpaired) == ({}, None, 0)


def test_mcnemar_matches_scipy() -> None:
    from scipy import stats as sps

    for strong, weak in ((STRONG, WEAK), (WEAK, np.clip(WEAK + 0.03, 0, 1))):
        r = stats.mcnemar(pred(strong), pred(weak))
        assert r is not None
        k = r.only_a + r.only_b
        if r.method == "exact":
            expected = sps.binomtest(min(r.only_a, r.only_b), k, 0.5).pvalue
        else:
            expected = sps.chi2.sf((abs(r.only_a - r.only_b) - 1) ** 2 / k, 1)
        assert r.pvalue == pytest.approx(expected, rel=1e-9, abs=1e-300)
    same = stats.mcnemar(pred(WEAK), pred(WEAK))
    assert same is not None and same.pvalue == 1.0 and same.only_a == same.only_b == 0
    assert stats.mcnemar(pred(STRONG), pred(WEAK)).pvalue < 1e-6  # type: ignore[union-attr]


def test_group_metrics_and_worst_group_gap() -> None:
    groups = np.where(np.arange(N) < 200, "north", "south")
    scores = np.where(groups == "north", STRONG, WEAK)
    gm = stats.group_metrics(pred(scores, groups=groups), "accuracy")
    assert gm is not None
    values = {g: v for g, _, v in gm.groups}
    north = float(((STRONG[:200] >= 0.5) == Y[:200]).mean())
    south = float(((WEAK[200:] >= 0.5) == Y[200:]).mean())
    assert values == pytest.approx({"north": north, "south": south})
    assert gm.worst == "south" and gm.groups[0][0] == "south"
    assert gm.gap == pytest.approx(north - south)
    assert stats.group_metrics(pred(scores), "accuracy") is None  # no groups logged


def _run(project: Path, name: str, scores: Any, *, success: Any = (), baseline: str | None = None,
         log_predictions: bool = True) -> Any:
    from sklearn.metrics import roc_auc_score

    import nbtoolkit as nbtk

    with nbtk.start_run(name, success=success, baseline=baseline) as run:
        nbtk.log(roc_auc=float(roc_auc_score(Y, scores)))
        if log_predictions:
            nbtk.log_predictions(Y, scores, ids=IDS)
    return run


def test_criteria_intervals_drive_the_verdict(project: Path) -> None:
    from nbtoolkit.store import open_store

    base = _run(project, "base", WEAK)
    close = np.clip(WEAK + RNG.normal(scale=0.02, size=N), 0, 1)
    crit = "roc_auc >= baseline.roc_auc"
    similar = _run(project, "similar", close, success=crit, baseline=base.run_id)
    better = _run(project, "better", STRONG, success=crit, baseline=base.run_id)
    store = open_store()
    # the verdict under the cell went through criteria_intervals: straddling -> inconclusive
    assert similar.verdict.status == "inconclusive"
    assert "straddles" in similar.verdict.results[0].reason
    assert better.verdict.status == "supported"
    iv = better.verdict.results[0].interval
    assert iv is not None and iv.low > 0 and iv.method == "paired bootstrap"
    direct = evidence.criteria_intervals(store, better.run_id, base.run_id, parse_criteria(crit))
    assert direct["roc_auc"] == iv  # same seed, same numbers as the stored verdict
    assert evidence.criteria_intervals(store, better.run_id, base.run_id,
                                       parse_criteria("fit_seconds <= baseline.fit_seconds")) == {}
    assert evidence.criteria_intervals(store, better.run_id, None, parse_criteria(crit)) == {}


def test_single_values_give_no_interval(project: Path) -> None:
    base = _run(project, "base", WEAK, log_predictions=False)
    run = _run(project, "cand", STRONG, success="roc_auc >= baseline.roc_auc + 0.01", baseline=base.run_id)
    result = run.verdict.results[0]
    assert result.interval is None
    assert result.status == "pass" and "observed" in result.reason  # judged on point values
