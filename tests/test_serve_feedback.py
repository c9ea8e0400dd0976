"""The prediction-log contract, feedback joins (CLI and store), comments (CLI, report section)."""

from __future__ import annotations

import pickle
import time

import pandas as pd
import pytest
from bs4 import BeautifulSoup
from conftest import nbtk_cli

import nbtoolkit as nbtk
from nbtoolkit.errors import BadScoringRequest, InputError
from nbtoolkit.serve.feedback import comments_section
from nbtoolkit.store import open_store
from nbtoolkit.store.predictions import LOG_COLUMNS
from nbtoolkit.store.version import SCHEMA_VERSION


def row(i: int, *, key: str | None = None, version: str = "1.0.0", ts: float | None = None, **extra) -> dict:
    base = {
        "request_id": "r" * 31 + str(i % 10), "row_id": f"row{i}", "key": key, "model": "cancer", "version": version,
        "arm": "champion", "ts": ts if ts is not None else 1000.0 + i, "latency_ms": 0.5, "ok": True, "error": None,
        "input_hash": "0" * 64, "inputs": None, "prediction": i % 2, "score": 0.25, "proba": None,
    }
    return {**base, **extra}


def test_prediction_log_frame_is_the_contract_and_feedback_joins(backend):
    store = backend  # SQLite and PostgreSQL
    rows = [row(0, key="a"), row(1, key="a"), row(2, key="b", version="1.0.1", arm="challenger"),
            row(3, key="b", ok=False, prediction=None, score=None, arm="challenger", version="1.0.1",
                error="RuntimeError: cannot reach https://svc?token=tok-1234567890-secret"),
            row(4, key="c", proba=[0.1, 0.2, 0.7], score=None, prediction="x", inputs={"f": 1.5})]
    assert store.log_predictions(rows) == 5
    log = store.prediction_log("cancer")
    assert list(log.columns) == list(LOG_COLUMNS) and len(log) == 5
    assert log["ok"].dtype == bool and log["ok"].tolist() == [True, True, True, False, True]
    assert log["row_id"].tolist() == [f"row{i}" for i in range(5)]
    assert log["proba"].iloc[4] == [0.1, 0.2, 0.7] and log["inputs"].iloc[4] == {"f": 1.5}
    assert log["prediction"].tolist()[:3] == [0, 1, 0] and log["prediction"].iloc[4] == "x"
    assert log["score"].iloc[0] == 0.25 and log["score"].iloc[4] is None and log["label"].iloc[0] is None
    assert "tok-1234567890-secret" not in log["error"].iloc[3] and "RuntimeError" in log["error"].iloc[3]
    assert len(store.prediction_log("cancer", version="1.0.1")) == 2
    assert store.prediction_log("cancer", since=1002.0, until=1004.0)["row_id"].tolist() == ["row2", "row3"]
    assert store.prediction_log("other").empty and list(store.prediction_log("other").columns) == list(LOG_COLUMNS)

    # by row id first; by key: every row of the key that has no label yet; late labels allowed
    assert store.add_feedback("cancer", [{"row_id": "row0", "label": 1, "ts": 2000.0}]) == 1
    assert store.add_feedback("cancer", [{"key": "a", "label": 0}]) == 1  # row0 already labelled
    assert store.add_feedback("cancer", [{"key": "b", "label": "yes"}]) == 2
    assert store.add_feedback("other", [{"key": "a", "label": 1}]) == 0
    log = store.prediction_log("cancer")
    assert log["label"].tolist() == [1, 0, "yes", "yes", None]
    assert log["label_ts"].iloc[0] == 2000.0 and abs(log["label_ts"].iloc[1] - time.time()) < 60
    with pytest.raises(InputError, match="neither row_id nor key"):
        store.add_feedback("cancer", [{"label": 1}])
    with pytest.raises(InputError, match="no label"):
        store.add_feedback("cancer", [{"row_id": "row4"}])


def test_feedback_cli_reads_csv_and_parquet(backend, tmp_path):
    store = backend  # SQLite and PostgreSQL (the CLI subprocess gets the same NBTOOLKIT_STORE)
    store.log_predictions([row(i, key=f"u{i % 3}") for i in range(6)])
    (tmp_path / "outcomes.csv").write_text("user_id,malignant\nu0,1\nu1,0\nu9,1\nu2,\n", encoding="utf-8")
    out = nbtk_cli("feedback", "cancer", str(tmp_path / "outcomes.csv"), "--key", "user_id", "--label", "malignant")
    assert out.returncode == 0, out.stderr
    assert "4 logged predictions of cancer labelled from 3 outcomes" in out.stdout
    pd.DataFrame({"rid": ["row2"], "y": [1], "when": [1234.0]}).to_parquet(tmp_path / "late.parquet")
    out = nbtk_cli("feedback", "cancer", str(tmp_path / "late.parquet"), "--id", "rid", "--label", "y", "--ts", "when")
    assert out.returncode == 0 and "1 logged" in out.stdout
    log = open_store().prediction_log("cancer")
    assert log["label"].tolist() == [1, 0, 1, 1, 0, None] and log["label_ts"].iloc[2] == 1234.0
    bad = nbtk_cli("feedback", "cancer", str(tmp_path / "outcomes.csv"), "--key", "nope", "--label", "malignant")
    assert bad.returncode == 2 and "'nope'" in bad.stderr
    both = nbtk_cli("feedback", "cancer", str(tmp_path / "outcomes.csv"), "--label", "malignant")
    assert both.returncode == 2 and "--key COLUMN or --id COLUMN" in both.stderr


def test_comments_on_runs_versions_and_experiments(project, store, tmp_path):
    from _serve import export_model
    from _stability import demo_models

    from nbtoolkit.stability.promotion import promote

    path = export_model(tmp_path / "bundles", demo_models()["lr"], model="cancer", version="1.0.0")
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    run_id = nbtk.load_bundle(path).run_id
    ok = nbtk_cli("comment", run_id[:8], "--by", "rita", "--text", "Looks <b>solid</b>", "--rating", "4")
    assert ok.returncode == 0 and f"on run {run_id}" in ok.stdout
    assert nbtk_cli("comment", "cancer@production", "--by", "sam", "--text", "ship it").returncode == 0
    assert nbtk_cli("comment", "cancer-1.0.0", "--by", "lee", "--text", "<script>alert(1)</script>").returncode == 0
    listed = nbtk_cli("comment", "--list", "cancer@1.0.0")
    assert listed.returncode == 0 and "sam: ship it" in listed.stdout
    listed = nbtk_cli("comment", "--list", run_id, "--json")
    assert [c["rating"] for c in __import__("json").loads(listed.stdout)] == [4]
    assert nbtk_cli("comment", run_id, "--by", "x", "--text", "t", "--rating", "6").returncode == 2
    missing = nbtk_cli("comment", "nothing-here", "--by", "x", "--text", "t")
    assert missing.returncode == 2 and "neither a run id" in missing.stderr
    assert nbtk_cli("comment", run_id).returncode == 2

    title, html = comments_section(store.get_run(run_id), open_store())
    soup = BeautifulSoup(html, "html.parser")
    assert title == "Comments" and soup.find("script") is None and soup.find("b") is None
    cells = [td.get_text() for td in soup.find_all("td")]
    assert "Looks <b>solid</b>" in cells and "<script>alert(1)</script>" in cells and "4/5" in cells
    assert comments_section(store.get_run(make_other_run()), open_store()) is None


def make_other_run() -> str:
    with nbtk.start_run("other-exp") as run:
        nbtk.log(x=1.0)
    return run.run_id


def test_bad_scoring_request_pickles_with_its_message():
    err = pickle.loads(pickle.dumps(BadScoringRequest("missing columns: 'a'")))
    assert str(err) == "missing columns: 'a'" and err.body() == {"error_code": "BAD_REQUEST", "message": "missing columns: 'a'"}


def test_a_v3_store_is_upgraded_in_place(tmp_path):
    import sqlite3

    from nbtoolkit.store import Store

    folder = tmp_path / "old"
    Store(folder).dispose()
    con = sqlite3.connect(folder / "store.db")
    con.execute("drop table predictions")
    con.execute("drop table comments")
    con.execute("update meta set value='3' where key='schema_version'")
    con.commit()
    con.close()
    store = Store(folder)
    assert store.schema_version == SCHEMA_VERSION >= 4
    assert store.log_predictions([row(0, key="a")]) == 1 and len(store.prediction_log("cancer")) == 1
    assert store.add_comment("experiment", "x", by="a", text="t").id == 1
    store.dispose()


def test_comments_appear_in_the_run_report(project, store):
    """The ``comments`` report section (entry point ``nbtoolkit.report_sections``) in a rendered report."""
    from nbtoolkit.report import render_run_report
    from nbtoolkit.report.sections import SECTIONS

    # the same function its pyproject entry point loads once the package is (re)installed
    SECTIONS.register("comments", comments_section)
    run_id = make_other_run()
    store.add_comment("run", run_id, by="rita", text="<img src=x onerror=alert(1)> check the slices", rating=2)
    soup = BeautifulSoup(render_run_report(run_id, store=store), "html.parser")
    assert soup.find("img", attrs={"onerror": True}) is None
    text = soup.get_text(" ")
    assert "Comments" in text and "rita" in text and "<img src=x onerror=alert(1)> check the slices" in text and "2/5" in text
