"""Multi-class and regression predictions, refused input, McNemar's wording, failed runs, numbers.

Metric values are checked against scikit-learn (the reference); the digits notebooks run in real
kernels and ``nbtk report`` renders their per-task metrics and intervals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT, execute_notebook, nbtk_cli, outputs_text
from sklearn import metrics as skm

from nbtoolkit import evidence, stats
from nbtoolkit._format import fmt_interval, fmt_number
from nbtoolkit.errors import InputError
from nbtoolkit.verdict import CriterionResult, criterion_cells

RNG = np.random.default_rng(11)
N, K = 300, 5
Y = RNG.integers(0, K, N)
IDS = np.array([f"ex{i}" for i in range(N)])


def _probs(y: Any, strength: float, seed: int) -> Any:
    """A row-stochastic (n, k) matrix leaning towards the true class by ``strength``."""
    rng = np.random.default_rng(seed)
    raw = rng.random((len(y), K)) + strength * np.eye(K)[y]
    return raw / raw.sum(axis=1, keepdims=True)


STRONG, WEAK = _probs(Y, 1.5, 1), _probs(Y, 0.4, 2)


def test_multiclass_metrics_equal_scikit_learn() -> None:
    p = stats.check_predictions(Y, STRONG)
    assert p.task == "multiclass"
    labels = STRONG.argmax(axis=1)
    expected = {
        "accuracy": skm.accuracy_score(Y, labels),
        "balanced_accuracy": skm.balanced_accuracy_score(Y, labels),
        "f1_macro": skm.f1_score(Y, labels, average="macro"),
        "f1_weighted": skm.f1_score(Y, labels, average="weighted"),
        "log_loss": skm.log_loss(Y, STRONG),
        "roc_auc": skm.roc_auc_score(Y, STRONG, multi_class="ovr"),
    }
    assert sorted(stats.computable_metrics(p)) == sorted(expected)
    for name, value in expected.items():
        assert stats.metric_value(p, name) == pytest.approx(value, rel=1e-9), name
    # labels only: the label metrics, and no log loss or AUC (they need probabilities)
    lab = stats.check_predictions(Y, labels)
    assert lab.task == "multiclass"
    assert stats.computable_metrics(lab) == ["accuracy", "balanced_accuracy", "f1_macro", "f1_weighted"]
    assert stats.metric_value(lab, "f1_macro") == pytest.approx(expected["f1_macro"], rel=1e-12)
    assert "needs probabilities" in str(stats.why_not(lab, "log_loss"))
    # never regression numbers on class labels, nor binary-only F1
    for name in ("mse", "mae", "rmse", "r2", "f1", "precision"):
        assert stats.metric_value(p, name) is None and stats.why_not(p, name), name


def test_string_classes_with_their_columns_and_a_missing_predicted_class() -> None:
    names = np.array(["cat", "dog", "eel", "fox", "gnu"])
    p = stats.check_predictions(names[Y], STRONG, labels=names)
    assert stats.metric_value(p, "roc_auc") == pytest.approx(
        skm.roc_auc_score(names[Y], STRONG, multi_class="ovr", labels=names), rel=1e-9)
    # a class nobody predicts still counts in macro F1, as in scikit-learn
    pred = np.where(Y == 4, 0, Y)
    lab = stats.check_predictions(Y, pred)
    assert stats.metric_value(lab, "f1_macro") == pytest.approx(skm.f1_score(Y, pred, average="macro"))
    assert stats.metric_value(lab, "balanced_accuracy") == pytest.approx(skm.balanced_accuracy_score(Y, pred))


def test_binary_and_regression_tasks() -> None:
    yb = RNG.integers(0, 2, 200)
    score = np.clip(yb * 0.3 + RNG.random(200) * 0.7, 0, 1)
    b = stats.check_predictions(yb, score)
    assert b.task == "binary" and "roc_auc" in stats.computable_metrics(b)
    assert stats.metric_value(b, "balanced_accuracy") == pytest.approx(
        skm.balanced_accuracy_score(yb, score >= 0.5))
    assert stats.metric_value(b, "f1_macro") == pytest.approx(skm.f1_score(yb, score >= 0.5, average="macro"))
    two = stats.check_predictions(yb, np.c_[1 - score, score])  # predict_proba of a binary model
    assert two.task == "binary"
    assert stats.metric_value(two, "roc_auc") == pytest.approx(skm.roc_auc_score(yb, score))
    y = RNG.normal(size=80)
    r = stats.check_predictions(y, y + RNG.normal(scale=0.5, size=80))
    assert r.task == "regression" and stats.computable_metrics(r) == ["mae", "rmse", "r2", "mse"]
    assert stats.metric_value(r, "r2") == pytest.approx(skm.r2_score(r.y_true, r.y_pred), rel=1e-9)
    assert stats.metric_value(r, "accuracy") is None
    counts = stats.check_predictions(RNG.integers(0, 9, 50), RNG.integers(0, 9, 50), task="regression")
    assert counts.task == "regression" and stats.metric_value(counts, "mae") is not None


@pytest.mark.parametrize("y_true, y_pred, kwargs, message", [
    (Y, STRONG[:-1], {}, "300 rows but predictions have 299"),
    (np.where(np.arange(N) == 3, np.nan, Y), STRONG, {}, "y_true holds NaN"),
    (Y, np.where(np.eye(N, K, dtype=bool), np.nan, STRONG), {}, "NaN"),
    (Y, STRONG * 0.9, {}, "sum to 1; row 0"),
    (Y, STRONG - 0.5, {}, "lie in [0, 1]"),
    (Y, STRONG, {"task": "binary"}, "task='binary' but y_true holds 5 classes"),
    (Y, STRONG, {"task": "ordinal"}, "task must be one of"),
    (Y, STRONG[:, :3] / STRONG[:, :3].sum(axis=1, keepdims=True), {}, "pass labels=model.classes_"),
    (Y, STRONG, {"labels": ["a", "b", "c", "d", "e"]}, "not among the probability columns"),
    (Y, STRONG[:, :, None], {}, "1-D or an (n, k) probability matrix"),
    (np.c_[Y, Y], Y, {}, "y_true must be 1-D"),
    (Y[:0], Y[:0], {}, "no examples"),
    (Y, RNG.random(N), {"task": "multiclass"}, "task='multiclass' needs predicted labels"),
])
def test_unusable_input_is_refused_early(y_true: Any, y_pred: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match="log_predictions") as info:
        stats.check_predictions(y_true, y_pred, **kwargs)
    assert message in str(info.value)


def test_log_predictions_refuses_duplicated_ids_and_stores_the_task(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk

    with nbtk.start_run("mc") as run:
        with pytest.raises(InputError, match="ids must be unique"):
            nbtk.log_predictions(Y, STRONG, ids=["same"] * N)
        with pytest.raises(InputError, match="sum to 1"):
            nbtk.log_predictions(Y, STRONG * 0.5)
        nbtk.log_predictions(Y, STRONG, ids=IDS)  # returns None; the reference is on the run
    ref = store.get_run(run.run_id).artifact("predictions")
    assert ref is not None and ref.meta["task"] == "multiclass" and ref.meta["classes"] == K
    loaded = evidence.load_predictions(store, store.get_run(run.run_id))
    assert loaded is not None and loaded.task == "multiclass" and loaded.y_pred.shape == (N, K)
    assert list(loaded.labels) == list(range(K))


def test_multiclass_verdict_uses_paired_intervals(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk

    with nbtk.start_run("mc-base", success="accuracy >= 0.2") as base:
        nbtk.log(accuracy=skm.accuracy_score(Y, WEAK.argmax(1)), log_loss=skm.log_loss(Y, WEAK))
        nbtk.log_predictions(Y, WEAK, ids=IDS)
    with nbtk.start_run("mc-cand", baseline=base.run_id,
                        success=["accuracy >= baseline.accuracy + 0.05",
                                 "log_loss <= baseline.log_loss"]) as cand:
        nbtk.log(accuracy=skm.accuracy_score(Y, STRONG.argmax(1)), log_loss=skm.log_loss(Y, STRONG))
        nbtk.log_predictions(Y, STRONG, ids=IDS)
    verdict = cand.verdict
    assert verdict is not None and verdict.status == "supported", verdict
    for result in verdict.results:
        assert result.interval is not None and result.interval.method == "paired bootstrap"
    acc = verdict.results[0]
    assert acc.interval.low > 0.05 and acc.difference == pytest.approx(  # type: ignore[union-attr]
        skm.accuracy_score(Y, STRONG.argmax(1)) - skm.accuracy_score(Y, WEAK.argmax(1)))


def _soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def test_mcnemar_sentence_names_the_right_run(project: Path, store: Any) -> None:
    """Counts computed by hand: the candidate alone is right on 3 examples, the reference on 7."""
    import nbtoolkit as nbtk
    from nbtoolkit.report import render_comparison_report

    y = np.array([0, 1, 2] * 10)
    ref_pred, cand_pred = y.copy(), y.copy()
    ref_pred[:3] = (y[:3] + 1) % 3          # reference wrong, candidate right: 3 examples
    cand_pred[10:17] = (y[10:17] + 1) % 3   # candidate wrong, reference right: 7 examples
    ref_pred[20:22] = cand_pred[20:22] = (y[20:22] + 2) % 3  # both wrong: not discordant
    ids = [f"e{i}" for i in range(len(y))]
    with nbtk.start_run("ref") as ref:
        nbtk.log_predictions(y, ref_pred, ids=ids)
    with nbtk.start_run("cand") as cand:
        nbtk.log_predictions(y, cand_pred, ids=ids)
    doc = _soup(render_comparison_report(ref.run_id, cand.run_id))
    sentence = doc.select_one(".mcnemar").get_text(" ", strip=True)
    assert "the candidate alone is right on 3 examples, the reference alone on 7" in sentence
    assert "exact; 3 vs 7 discordant of 30" in sentence
    recommendation = doc.select_one(".recommendation").get_text(" ", strip=True)
    assert "candidate" in recommendation and "not sure" in recommendation
    # regression predictions: the report says why there is no McNemar test
    with nbtk.start_run("reg-a") as ra:
        nbtk.log_predictions(RNG.normal(size=40).round(3) + 0.001, RNG.normal(size=40), task="regression")
    with nbtk.start_run("reg-b") as rb:
        nbtk.log_predictions(evidence.load_predictions(store, ra.record()).y_true,  # type: ignore[union-attr]
                             RNG.normal(size=40), task="regression")
    doc = _soup(render_comparison_report(ra.run_id, rb.run_id))
    assert "McNemar's test does not apply: these are regression predictions" in doc.get_text(" ")
    assert "Predictions: regression" in doc.get_text(" ")


def test_failed_run_has_no_verdict_anywhere(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.display import run_card_html, run_card_text
    from nbtoolkit.report import render_run_report

    with pytest.raises(RuntimeError), nbtk.start_run("boom", success="accuracy >= 0.5") as run:
        nbtk.log(accuracy=0.9)  # would pass: a failed run must still not be 'supported'
        raise RuntimeError("the cell raised")
    rec = store.get_run(run.run_id)
    assert rec.status == "failed" and rec.verdict is None and rec.verdict_detail is None
    text = run_card_text(rec)
    assert "[failed]" in text.splitlines()[0] and "supported" not in text and "No verdict" in text
    card = _soup(run_card_html(rec)).get_text(" ")
    assert "failed" in card and "supported" not in card and "inconclusive" not in card
    report = _soup(render_run_report(run.run_id))
    assert "Run failed — no verdict" in report.select_one(".verdict-banner").get_text(" ", strip=True)
    assert report.select_one(".no-verdict") is not None and not report.select("table.criteria")
    # a runner marking a finished run failed afterwards (a later cell raised) drops its verdict
    with nbtk.start_run("later", success="accuracy >= 0.5") as later:
        nbtk.log(accuracy=0.9)
    assert store.get_run(later.run_id).verdict == "supported"
    store.finish_run(later.run_id, status="failed", error="ValueError in cell 5")
    assert store.get_run(later.run_id).verdict is None
    listing = nbtk_cli("runs", "--json", cwd=project)
    assert listing.returncode == 0, listing.stderr
    rows = {r["run_id"]: r for r in json.loads(listing.stdout)}
    for rid in (run.run_id, later.run_id):
        assert rows[rid]["status"] == "failed" and rows[rid]["verdict"] is None


def test_numbers_are_formatted_for_people() -> None:
    assert fmt_interval(-0.02304, 3.521e-06, 4) == "[-0.0230, +0.0000]"
    assert fmt_interval(-0.02304, -3.5e-07, 4) == "[-0.0230, -0.0000]"  # still below zero
    assert fmt_interval(-0.02304, 3.521e-06) == "[-0.0230, +0.0000]"  # decimals from the bounds
    assert fmt_number(12345.6) == "12346" and fmt_number(0.000123456) == "0.0001235"
    assert fmt_number(0.5) == "0.5" and fmt_number(3) == "3" and fmt_number(float("nan")) == "NaN"
    assert fmt_number(None) == "—" and fmt_number(2.5e-7) == "2.5e-07"
    cells = criterion_cells(CriterionResult.from_dict({
        "criterion": {"text": "accuracy >= baseline.accuracy - 0.01"}, "status": "pass", "passed": True,
        "observed": 0.96888, "baseline": 0.97111, "bar": 0.96111, "difference": -0.00222,
        "interval": {"low": -0.02304, "high": 3.521e-06, "level": 0.95},
    }))
    assert cells == {"observed": "0.9689", "target": ">= 0.9611", "baseline": "0.9711",
                     "difference": "-0.0022", "interval": "[-0.0230, +0.0000] 95%"}
    wide = criterion_cells(CriterionResult.from_dict({"criterion": {"text": "fit_seconds <= 1500"},
                                                      "status": "pass", "observed": 1234.6, "bar": 1500}))
    assert wide["observed"] == "1235" and wide["target"] == "<= 1500" and wide["interval"] == "—"


def test_verdict_html_and_reasons_use_the_helper() -> None:
    """The notebook's verdict table and its reason text: shared decimals, no exponents."""
    from nbtoolkit.criteria import parse_criteria
    from nbtoolkit.stats.interval import Interval
    from nbtoolkit.verdict import evaluate

    v = evaluate(parse_criteria(["accuracy >= baseline.accuracy - 0.01", "drift <= 0.00005"]),
                 {"accuracy": 0.968888, "drift": 0.0000123}, baseline={"accuracy": 0.971111},
                 intervals={"accuracy": Interval(-0.02304, 3.521e-06)})
    paired, tiny = v.results
    assert tiny.reason == "observed 0.0000123 meets <= 0.00005"  # not 1.23e-05 / 5e-05
    assert paired.reason.startswith("95% interval [-0.0230, +0.0000] of the difference")
    soup = BeautifulSoup(v._repr_html_(), "html.parser")
    heads = [th.get_text() for th in soup.select("table.nbtk-criteria th")]
    rows = [dict(zip(heads, (td.get_text() for td in tr.select("td")), strict=True)) for tr in soup.select("tbody tr")]
    assert [rows[0][h] for h in ("observed", "baseline", "target", "difference")] == [
        "0.9689", "0.9711", ">= 0.9611", "-0.0022 [-0.0230, +0.0000] 95%"]  # not 0.968888 / -0.00222
    assert rows[1]["observed"] == "0.00001230" and rows[1]["target"] == "<= 0.00005000"
    assert not [c for r in rows for h, c in r.items() if h != "criterion" and "e-0" in c]


def test_cli_card_shows_target_baseline_difference_and_interval(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk

    with nbtk.start_run("b0", success="accuracy >= 0.1") as base:
        nbtk.log(accuracy=skm.accuracy_score(Y, WEAK.argmax(1)))
        nbtk.log_predictions(Y, WEAK, ids=IDS)
    with nbtk.start_run("c0", baseline=base.run_id, success="accuracy >= baseline.accuracy") as cand:
        nbtk.log(accuracy=skm.accuracy_score(Y, STRONG.argmax(1)))
        nbtk.log_predictions(Y, STRONG, ids=IDS)
    r = cand.verdict.results[0]  # type: ignore[union-attr]
    out = nbtk_cli("show", cand.run_id, cwd=project)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if "observed" in ln)
    assert f"observed {r.observed:.4f}" in line and f"target >= {r.bar:.4f}" in line
    assert f"baseline {r.baseline:.4f}" in line and f"difference {r.difference:+.4f}" in line
    assert f"interval [{r.interval.low:+.4f}, {r.interval.high:+.4f}] 95%" in line
    assert "e-0" not in out.stdout  # no scientific notation in an ordinary card


@pytest.mark.slow
def test_digits_notebooks_in_real_kernels_and_nbtk_report(project: Path, store: Any, tmp_path: Path) -> None:
    for name in ("digits_tree.ipynb", "digits_forest.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, project / name)
    nb = execute_notebook(project / "digits_tree.ipynb", cwd=project, timeout=300)
    tree = store.get_run(store.latest_run("digits-tree"))
    assert tree.status == "finished" and tree.verdict == "supported", outputs_text(nb)
    nb = execute_notebook(project / "digits_forest.ipynb", cwd=project, timeout=300)
    forest = store.get_run(store.latest_run("digits-forest"))
    assert forest.status == "finished", outputs_text(nb)
    assert forest.baseline_run_id == tree.run_id
    assert forest.artifact("predictions").meta["task"] == "multiclass"
    detail = forest.verdict_detail
    assert forest.verdict == "supported", detail
    assert detail is not None
    by_text = {r.criterion.text: r for r in detail.results}
    for text in ("accuracy >= baseline.accuracy + 0.05", "log_loss <= baseline.log_loss"):
        interval = by_text[text].interval
        assert interval is not None and interval.method == "paired bootstrap", by_text[text]
    # the logged values are scikit-learn's; the report recomputes the same from the predictions
    pred = evidence.load_predictions(store, forest)
    assert pred is not None and pred.y_pred.shape[1] == 10
    assert stats.metric_value(pred, "accuracy") == pytest.approx(forest.metrics["accuracy"], rel=1e-12)
    assert stats.metric_value(pred, "roc_auc") == pytest.approx(forest.metrics["roc_auc"], rel=1e-9)
    out = tmp_path / "forest.html"
    done = nbtk_cli("report", forest.run_id, "-o", str(out), cwd=project)
    assert done.returncode == 0, done.stderr
    doc = _soup(out.read_text(encoding="utf-8"))
    assert "Traceback" not in doc.get_text()
    rows = {r.find("code").get_text(): r for r in doc.select("table.metrics-diff tbody tr")}
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"):
        interval = rows[name].select_one(".interval").get_text(" ", strip=True)
        assert interval.startswith("[") and "95%" in interval and "e-0" not in interval, (name, interval)
    assert "f1_weighted" in rows  # computed from the predictions, for the task
    assert not {"mse", "mae", "rmse", "r2"} & set(rows)  # no regression numbers on class labels
    text = doc.get_text(" ")
    assert "Predictions: multiclass" in text and "McNemar p=" in text
    assert "(multiclass, 10 classes)" in doc.select_one(".predictions-task").get_text()
    computed = {r.find("code").get_text(): r.find_all("td")[1].get_text()
                for r in doc.select("table.prediction-metrics tbody tr")}
    assert set(computed) == {"accuracy", "balanced_accuracy", "log_loss", "f1_macro", "f1_weighted", "roc_auc"}
    assert computed["accuracy"] == f"{forest.metrics['accuracy']:.4f}"
    criteria = doc.select("table.criteria tbody tr")
    assert all("95%" in r.select_one(".interval").get_text() for r in criteria[:2])
    compare = tmp_path / "cmp.html"
    done = nbtk_cli("report", tree.run_id, forest.run_id, "-o", str(compare), cwd=project)
    assert done.returncode == 0, done.stderr
    rec = _soup(compare.read_text(encoding="utf-8")).select_one(".recommendation").get_text(" ", strip=True)
    assert rec.startswith("Recommendation: Adopt the candidate") and "sure:" in rec


def _colours(uri: str) -> set[tuple[int, int, int]]:
    import base64
    import io

    from matplotlib.image import imread

    img = imread(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), format="png")
    return {tuple(int(round(c * 255)) for c in px[:3]) for px in img.reshape(-1, img.shape[-1])}


def _near(colour: tuple[int, int, int], colours: set[tuple[int, int, int]], tol: int = 12) -> bool:
    return any(all(abs(a - b) <= tol for a, b in zip(colour, c, strict=True)) for c in colours)


def test_comparison_overlays_both_runs_curves_and_recommends(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.report import render_comparison_report

    yb = RNG.integers(0, 2, 400)
    ids = [f"b{i}" for i in range(400)]
    with nbtk.start_run("bin-ref", success="roc_auc >= 0.5") as ref:
        for step in range(5):
            nbtk.log_metric("loss", 1.0 / (step + 2), step=step)
        weak = np.clip(yb * 0.1 + RNG.random(400) * 0.9, 0, 1)
        nbtk.log(roc_auc=skm.roc_auc_score(yb, weak))
        nbtk.log_predictions(yb, weak, ids=ids)
    with nbtk.start_run("bin-cand", baseline=ref.run_id, success="roc_auc >= baseline.roc_auc") as cand:
        for step in range(5):
            nbtk.log_metric("loss", 1.0 / (step + 4), step=step)
        strong = np.clip(yb * 0.6 + RNG.random(400) * 0.4, 0, 1)
        nbtk.log(roc_auc=skm.roc_auc_score(yb, strong))
        nbtk.log_predictions(yb, strong, ids=ids)
    doc = _soup(render_comparison_report(ref.run_id, cand.run_id))
    body = doc.select_one(".nbtk-comparison")
    steps, curves = body.select_one("img.step-curves"), body.select_one("img.roc-pr")
    assert steps is not None and curves is not None
    for uri, other in ((steps["src"], (87, 96, 106)), (curves["src"], (207, 34, 46))):
        colours = _colours(uri)
        assert _near((9, 105, 218), colours), "the candidate's curve is missing"
        assert _near(other, colours), "the reference's curve is missing"
    rec = doc.select_one(".recommendation").get_text(" ", strip=True)
    assert rec.startswith(f"Recommendation: Adopt the candidate {cand.run_id[:8]}")
    assert "roc_auc +" in rec and "sure: the paired 95% interval excludes zero" in rec
    # the run report embeds the comparison without drawing the curves twice
    from nbtoolkit.report import render_run_report

    run_doc = _soup(render_run_report(cand.run_id))
    assert len(run_doc.select("img.step-curves")) == 1


def test_shadow_and_canary_use_the_experiments_metric_registry() -> None:
    from nbtoolkit.stability import _common

    assert not any(hasattr(_common, f) for f in ("_accuracy", "_roc_auc", "_mae", "_rmse", "METRICS"))
    fns = _common.metric_fns(["accuracy", "roc_auc", "balanced_accuracy", "f1_macro", "auc"])
    yb = RNG.integers(0, 2, 500)
    score = np.round(np.clip(yb * 0.3 + RNG.random(500) * 0.7, 0, 1), 2)  # ties included
    labels = (score >= 0.5).astype(int)
    got = _common.compute_metrics(fns, yb, labels, score)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yb, labels), rel=1e-12)
    assert got["roc_auc"] == got["auc"] == pytest.approx(skm.roc_auc_score(yb, score), rel=1e-12)
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yb, labels), rel=1e-12)
    assert got["roc_auc"] == stats.metric_value(stats.check_predictions(yb, score), "roc_auc")
    # string labels given as objects, no scores (predict): the AUC is left out, not invented
    names = np.array(["no", "yes"], dtype=object)
    got = _common.compute_metrics(fns, names[yb], names[labels].astype(str), None)
    assert "roc_auc" not in got and got["accuracy"] == pytest.approx(skm.accuracy_score(yb, labels))
    # multiclass labels (a 10-column predict_proba reduced to labels by the caller)
    got = _common.compute_metrics(fns, Y, STRONG.argmax(1), None)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(Y, STRONG.argmax(1), average="macro"))
    y = RNG.normal(size=60)
    p = y + RNG.normal(scale=0.2, size=60)
    reg = _common.compute_metrics(_common.metric_fns(["mae", "rmse", "r2"]), y, p, None)
    assert reg == pytest.approx({"mae": skm.mean_absolute_error(y, p),
                                 "rmse": skm.root_mean_squared_error(y, p), "r2": skm.r2_score(y, p)})
    with pytest.raises(InputError, match="Unknown metric 'nope'.*balanced_accuracy"):
        _common.metric_fns(["nope"])
