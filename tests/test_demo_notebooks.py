"""The demo notebooks run end to end in real kernels and record comparable runs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, execute_notebook, outputs_text

RUN_MIME = "application/vnd.nbtoolkit.run.v1+json"


def _card(nb: Any) -> dict[str, Any]:
    cards = [o["data"][RUN_MIME] for c in nb.cells for o in c.get("outputs", []) if RUN_MIME in o.get("data", {})]
    assert len(cards) == 1
    return cards[0]


@pytest.mark.slow
def test_baseline_then_challenger(project: Path, store: Any) -> None:
    for name in ("baseline_logreg.ipynb", "challenger_gbm.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, project / name)

    nb = execute_notebook(project / "baseline_logreg.ipynb", cwd=project, timeout=300)
    card = _card(nb)
    base = store.get_run(card["run_id"])
    assert base.experiment == "cancer-logreg" and base.status == "finished"
    assert base.verdict == "supported", outputs_text(nb)
    assert base.params["C"] == 1.0 and base.params["test_size"] == 0.3
    assert base.metrics["roc_auc"] >= 0.95 and "fit_seconds" in base.metrics
    assert Path(base.notebook_path or "").name == "baseline_logreg.ipynb"
    assert base.artifact("predictions").meta["rows"] == 171 and base.artifact("model").meta["safe"] is True

    nb = execute_notebook(project / "challenger_gbm.ipynb", cwd=project, timeout=300)
    card = _card(nb)
    ch = store.get_run(card["run_id"])
    assert ch.experiment == "cancer-gbm" and ch.status == "finished", ch.error
    assert ch.baseline_ref == "cancer-logreg" and ch.baseline_run_id == base.run_id
    detail = ch.verdict_detail
    assert detail is not None and ch.verdict in ("supported", "rejected", "inconclusive")
    assert detail.status == ch.verdict
    texts = [r.criterion.text for r in detail.results]
    assert any("baseline.roc_auc" in t for t in texts)
    against_base = next(r for r in detail.results if "baseline.roc_auc" in r.criterion.text)
    # the bar is the baseline run's value shifted by the criterion's margin
    assert against_base.baseline == pytest.approx(base.metrics["roc_auc"])
    margin = float(against_base.criterion.text.replace(" ", "").split("baseline.roc_auc")[1] or 0)
    assert against_base.bar == pytest.approx(base.metrics["roc_auc"] + margin)
    assert against_base.observed == pytest.approx(ch.metrics["roc_auc"])
    n = ch.params["n_estimators"]
    assert n == 100 and len(ch.metric_history("staged_roc_auc")) == n
    kinds = {a.kind for a in ch.artifacts}
    assert {"predictions", "model", "figure"} <= kinds
    assert ch.artifact("feature_importance.png").media_type == "image/png"
    assert store.artifacts.read_bytes(ch.artifact("feature_importance.png").digest)[:4] == b"\x89PNG"
    assert ch.artifact("model").meta["signature"]
    assert ch.lock_hash and ch.lock() is not None
