"""Shadow tests on the demo models: isolation, agreement, latency, metrics, SLA, recording, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _stability import demo_models, make_run, register
from bs4 import BeautifulSoup
from conftest import nbtk_cli

import nbtoolkit as nbtk


class FailsOnLarge:
    """The GBM, except that it raises on rows of the 'large' slice (mean radius > 15)."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_
        self.feature_names_in_ = model.feature_names_in_
        self.calls = 0

    def predict_proba(self, X):
        self.calls += 1
        if (X["mean radius"] > 15).any():
            raise RuntimeError("<script>alert(1)</script> cannot score large tumours")
        return self.model.predict_proba(X)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_challenger_errors_never_change_champion_outputs(project, store):
    m = demo_models()
    frame = m["frame"]
    challenger = FailsOnLarge(m["gb"])
    result = nbtk.shadow(m["lr"], challenger, frame, y="label", key="uid", slice_by="size",
                         sla={"max.error_rate": 0.01, "min.roc_auc": 0.8}, batch_size=50)
    X = frame[m["lr"].feature_names_in_]
    expected = m["lr"].predict_proba(X)
    # exactly what the champion returns for the same calls (batches of 50), despite the challenger
    direct = np.concatenate([m["lr"].predict_proba(X.iloc[i : i + 50]) for i in range(0, len(X), 50)])
    assert np.array_equal(result.champion_output, direct)
    assert np.allclose(result.champion_output, expected)
    large = (frame["mean radius"] > 15).to_numpy()
    assert result.error_count == int(large.sum()) > 0
    # each failure attributed to its own row (batch retried row by row), with the row's key
    assert [e.row for e in result.errors] == list(np.flatnonzero(large)[: len(result.errors)])
    assert result.errors[0].key == frame["uid"][result.errors[0].row] and result.errors[0].error == "RuntimeError"
    assert np.isnan(result.challenger_output[large]).all()
    assert np.allclose(result.challenger_output[~large], m["gb"].predict_proba(X[~large]))
    by_slice = {s.name: s for s in result.slices}
    assert by_slice["large"].errors == int(large.sum()) and by_slice["small"].errors == 0
    # agreement over rows both answered, computed independently
    lr_lab, gb_lab = m["lr"].predict(X), m["gb"].predict(X)
    assert result.agreement == pytest.approx(np.mean(lr_lab[~large] == gb_lab[~large]))
    assert by_slice["small"].disagreements == int(np.sum(lr_lab[~large] != gb_lab[~large]))
    # metrics on labelled rows; the challenger's only where it answered
    from sklearn.metrics import roc_auc_score

    assert result.metrics["champion"]["roc_auc"] == pytest.approx(roc_auc_score(frame["label"], expected[:, 1]))
    assert result.metrics["challenger"]["accuracy"] == pytest.approx(np.mean(gb_lab[~large] == frame["label"][~large]))
    assert set(result.latency["challenger"]) >= {"latency_p50_ms", "latency_p95_ms", "latency_p99_ms"}
    assert not result.sla.ok
    assert [b.metric for b in result.sla.breaches] == ["error_rate"]
    assert result.sla.breaches[0].observed == pytest.approx(large.mean()) and result.sla.breaches[0].allowed == 0.01

    rec = store.get_run(result.run_id)
    assert rec.kind == "shadow" and rec.status == "finished"
    assert rec.metrics["challenger.errors"] == result.error_count
    assert rec.metrics["agreement"] == pytest.approx(result.agreement)
    assert rec.extra["shadow"]["errors"]["by_type"] == {"RuntimeError": result.error_count}
    html = result._repr_html_()
    soup = BeautifulSoup(html, "html.parser")
    assert soup.find("script") is None and "&lt;script&gt;" in html
    assert "Shadow test" in soup.get_text() and "error_rate" in soup.get_text()

    # the run report carries the same section (contributed through nbtoolkit.report_sections)
    from nbtoolkit.report import render_run_report

    page = BeautifulSoup(render_run_report(result.run_id, store=store), "html.parser")
    section = page.select_one(".section-shadow")
    assert section is not None and "error_rate" in section.get_text()


def test_challenger_failing_everywhere_or_returning_garbage(project):
    m = demo_models()
    frame = m["frame"].iloc[:40]

    class Broken:
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            return np.zeros((len(X) + 1, 2))  # wrong length: treated as a failure

    res = nbtk.shadow(m["gb"], Broken(), frame.drop(columns=["uid", "size"]), y="label", sla={}, record=False, batch_size=16)
    assert res.error_count == 40 and res.agreement is None and res.run_id is None
    assert np.array_equal(res.champion_output, m["gb"].predict_proba(frame[m["gb"].feature_names_in_]))
    assert "returned 2 outputs for 1 row" in res.errors[0].message


def test_champion_errors_propagate(project):
    m = demo_models()

    class Down:
        def predict(self, X):
            raise ConnectionError("champion down")

    with pytest.raises(ConnectionError):
        nbtk.shadow(Down(), m["gb"], m["frame"][m["gb"].feature_names_in_], method="predict", record=False, sla={})


def test_key_buckets_slice_and_batch_size_one(project):
    m = demo_models()
    frame = m["frame"].iloc[:60]
    res = nbtk.shadow(m["lr"], m["gb"], frame, y="label", key="uid", batch_size=1, record=False, sla={"min.agreement": 0.5})
    assert res.summary["slices"]["by"].startswith("key bucket")
    assert sum(s.rows for s in res.slices) == 60 and all(s.name.startswith("bucket ") for s in res.slices)
    assert res.sla.ok and res.summary["batch_size"] == 1


def test_bundles_by_path_and_cli(project, store, tmp_path):
    m = demo_models()
    r1, r2 = make_run("cancer-logreg"), make_run("cancer-gbm")
    p1 = register(store, tmp_path / "b", m["lr"], model="cancer", version="1", run_id=r1)
    p2 = register(store, tmp_path / "b", m["gb"], model="cancer", version="2", run_id=r2)
    frame = m["frame"]
    csv = tmp_path / "traffic.csv"
    frame.to_csv(csv, index=False)
    res = nbtk.shadow(str(p1), "cancer@2", csv, y="label", key="uid", slice_by="size", sla={})
    assert res.summary["challenger"]["version"] == "2" and res.summary["champion"]["path"] == str(p1.resolve())
    assert np.allclose(res.champion_output, m["lr"].predict_proba(frame[m["lr"].feature_names_in_]))

    parquet = tmp_path / "traffic.parquet"
    frame.to_parquet(parquet)
    out = nbtk_cli("shadow", str(p1), str(p2), str(parquet), "--label", "label", "--key", "uid", "--slice", "size", cwd=project)
    assert out.returncode == 0, out.stderr
    assert f"{len(frame)} rows ({len(frame)} labelled)" in out.stdout and "SLA: ok" in out.stdout
    assert "slice large" in out.stdout
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text() + "\n[tool.nbtoolkit.sla]\nmin.agreement = 0.999\n")
    breach = nbtk_cli("shadow", str(p1), str(p2), str(csv), "--label", "label", "--key", "uid", "--json", cwd=project)
    assert breach.returncode == 1
    data = json.loads(breach.stdout)
    assert data["rows"] == len(frame) and data["sla"]["breaches"][0]["metric"] == "agreement"
    assert data["sla"]["breaches"][0]["allowed"] == 0.999 and store.get_run(data["run_id"]).kind == "shadow"
