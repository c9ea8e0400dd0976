"""``start_run`` and the ``log_*`` API against a real SQLite store."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nbtoolkit as nbtk


def _finished(store: Any, experiment: str, metrics: dict[str, float], success: str = "") -> str:
    with nbtk.start_run(experiment, success=success) as run:
        nbtk.log(**metrics)
    return run.run_id


def test_start_run_records_everything(project: Path, store: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.linear_model import LogisticRegression

    (project / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (project / "notes.txt").write_text("hello artifact", encoding="utf-8")
    X = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.4], [0.9, 0.1]])
    y = np.array([0, 1, 0, 1])
    model = LogisticRegression().fit(X, y)
    nbtk.seed(7)  # before the run: pending, recorded when it opens
    with nbtk.start_run("full", hypothesis="it records", success="auc >= 0.5", params={"lr": 0.1}, owner="me") as run:
        assert nbtk.current_run() is run
        nbtk.log_params({"depth": 3}, name="x")
        nbtk.log(auc=0.8, fit_seconds=1.5)
        for i in range(5):
            nbtk.log_metric("loss", 1.0 / (i + 1), step=i)
        nbtk.log_artifact(project / "notes.txt")
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3])
        nbtk.log_figure(fig, "curve")
        plt.close(fig)
        nbtk.log_model(model, "model", sample_input=X[:2])
        nbtk.log_predictions(y, model.predict_proba(X)[:, 1], ids=["a", "b", "c", "d"], groups=["g", "g", "h", "h"])
        ref = nbtk.track_data(project / "data.csv")
        nbtk.set_tags(team="ml")
    assert nbtk.current_run() is None
    rec = nbtk.get_run(run.run_id)
    assert rec.status == "finished" and rec.verdict == "supported"
    assert rec.params == {"lr": 0.1, "depth": 3, "name": "x"}
    assert rec.metrics["auc"] == 0.8 and rec.metrics["loss"] == 0.2
    assert rec.metric_history("loss") == [(i, 1.0 / (i + 1)) for i in range(5)]
    assert rec.tags == {"team": "ml"}
    assert rec.declaration["hypothesis"] == "it records" and rec.declaration["owner"] == "me"
    assert rec.extra["seeds"]["seed"] == 7
    assert rec.lock_hash and rec.lock() is not None
    arts = {a.name: a for a in rec.artifacts}
    assert store.artifacts.read_bytes(arts["notes.txt"].digest) == b"hello artifact"
    png = store.artifacts.read_bytes(arts["curve.png"].digest)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and arts["curve.png"].kind == "figure"
    m = arts["model"]
    assert m.kind == "model" and m.meta["serializer"] == "skops" and m.meta["safe"] is True
    assert m.meta["class"].endswith("LogisticRegression") and m.meta["signature"]
    preds = np.load(io.BytesIO(store.artifacts.read_bytes(arts["predictions"].digest)))
    assert preds["y_true"].tolist() == [0, 1, 0, 1] and preds["ids"].tolist() == ["a", "b", "c", "d"]
    assert preds["groups"].tolist() == ["g", "g", "h", "h"] and arts["predictions"].meta["rows"] == 4
    assert ref.path == "data.csv" and ref.algo == "sha256"
    assert [(d.path, d.source) for d in rec.data] == [("data.csv", "track_data")]


def test_joblib_model_is_flagged_unsafe(project: Path) -> None:
    from nbtoolkit.tracking import NbToolkitWarning

    with nbtk.start_run("unsafe") as run:
        with pytest.warns(NbToolkitWarning, match="unsafe"):
            nbtk.log_model({"weights": [1, 2]}, "m", serializer="joblib")
    art = nbtk.get_run(run.run_id).artifact("m")
    assert art.meta["serializer"] == "joblib" and art.meta["safe"] is False


def test_seed_inside_a_run_is_applied_and_recorded(project: Path) -> None:
    with nbtk.start_run("seeded") as run:
        nbtk.seed(11)
        a = random.random(), float(np.random.rand())
    random.seed(11)
    np.random.seed(11)
    assert a == (random.random(), float(np.random.rand()))
    rec = nbtk.get_run(run.run_id)
    assert rec.params["seed"] == 11 and rec.extra["seeds"] == {"seed": 11}


def test_verdicts_absolute_and_against_baselines(project: Path, store: Any) -> None:
    base_old = _finished(store, "base", {"auc": 0.70}, "auc >= 0.5")
    base_new = _finished(store, "base", {"auc": 0.80}, "auc >= 0.5")
    _finished(store, "base", {"auc": 0.10}, "auc >= 0.5")  # latest but rejected: not the baseline
    with nbtk.start_run("abs", success="auc >= 0.9") as r:
        nbtk.log(auc=0.85)
    assert r.verdict.status == "rejected"
    # experiment name -> its latest *supported* run
    with nbtk.start_run("ch", success="auc >= baseline.auc + 0.05", baseline="base") as r:
        nbtk.log(auc=0.86)
    assert r.baseline_run_id == base_new and r.verdict.status == "supported"
    # full id and unique prefix
    with nbtk.start_run("ch", success="auc >= baseline.auc + 0.05", baseline=base_old) as r:
        nbtk.log(auc=0.74)
    assert r.baseline_run_id == base_old and r.verdict.status == "rejected"
    with nbtk.start_run("ch", success="auc >= baseline.auc + 0.05", baseline=base_old[:7]) as r:
        nbtk.log(auc=0.76)
    assert r.baseline_run_id == base_old and r.verdict.status == "supported"
    rec = nbtk.get_run(r.run_id)
    assert rec.baseline_run_id == base_old and rec.baseline_ref == base_old[:7]
    assert rec.verdict_detail["status"] == "supported"
    # a metric that was never logged -> inconclusive
    with nbtk.start_run("ch", success="auc >= baseline.auc") as r:
        pass
    assert r.verdict.status == "inconclusive"


def test_unknown_baseline_fails_before_the_block(project: Path, store: Any) -> None:
    from nbtoolkit.errors import RunNotFoundError

    ran = []
    with pytest.raises(RunNotFoundError) as info:
        with nbtk.start_run("x", baseline="no-such-experiment"):
            ran.append(1)
    assert ran == [] and "no-such-experiment" in str(info.value)
    assert store.query_runs()[0] == []
    assert nbtk.current_run() is None


def test_malformed_criteria_fail_before_the_block(project: Path, store: Any) -> None:
    from nbtoolkit.errors import CriteriaError, InputError

    for bad in ("auc >=", "auc >= __import__('os')", "auc ~ 3", "baseline.auc >= auc"):
        with pytest.raises((CriteriaError, InputError)):
            with nbtk.start_run("x", success=bad):
                raise AssertionError("block must not run")
    assert store.query_runs()[0] == []


def test_failing_block_is_recorded_and_reraised(project: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with nbtk.start_run("boom") as run:
            nbtk.log(partial=1.0)
            1 / 0  # noqa: B018
    rec = nbtk.get_run(run.run_id)
    assert rec.status == "failed" and rec.ended is not None
    assert "ZeroDivisionError" in rec.error and "Traceback" in rec.error
    assert rec.metrics == {"partial": 1.0}
    assert nbtk.current_run() is None


def test_keyboard_interrupt_marks_interrupted(project: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with nbtk.start_run("stop") as run:
            raise KeyboardInterrupt
    assert nbtk.get_run(run.run_id).status == "interrupted"


def test_non_json_params_are_recorded_as_repr_with_a_warning(project: Path) -> None:
    from nbtoolkit.tracking import NbToolkitWarning

    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque 42>"

    with nbtk.start_run("params") as run:
        with pytest.warns(NbToolkitWarning, match="repr"):
            nbtk.log_params(obj=Opaque())
        nbtk.log_params(arr=np.arange(3), f=np.float32(0.5), nested={"a": (1, 2)}, big="x" * 5_998)
    rec = nbtk.get_run(run.run_id)
    assert rec.params["obj"] == "<Opaque 42>"
    assert rec.params["arr"] == [0, 1, 2] and rec.params["f"] == 0.5 and rec.params["nested"] == {"a": [1, 2]}
    assert rec.params["big"] == "x" * 5_998  # 6,000 characters of JSON: the limit (see tests/test_json_emit.py)


def test_special_and_numpy_metrics_are_stored_faithfully(project: Path) -> None:
    with nbtk.start_run("special") as run:
        nbtk.log(nan=float("nan"), pinf=float("inf"), ninf=-math.inf, f32=np.float32(0.25), i64=np.int64(7))
        nbtk.log_metric("npstep", np.float64(1.5), step=np.int64(3))
        with pytest.raises(nbtk.NbToolkitError):
            nbtk.log(text="high")
        with pytest.raises(nbtk.NbToolkitError):
            nbtk.log(vec=np.array([1.0, 2.0]))
    rec = nbtk.get_run(run.run_id)
    m = rec.metrics
    assert math.isnan(m["nan"]) and m["pinf"] == math.inf and m["ninf"] == -math.inf
    assert m["f32"] == 0.25 and m["i64"] == 7.0 and m["npstep"] == 1.5
    assert rec.metric_history("npstep") == [(3, 1.5)]
    assert "text" not in m and "vec" not in m
    frame = nbtk.runs(experiment="special")
    assert frame.loc[0, "metrics.pinf"] == math.inf and math.isnan(frame.loc[0, "metrics.nan"])


@pytest.mark.parametrize("name", ["../escape", "a\x00b", "tab\there", "line\nbreak", "/abs", ""])
def test_hostile_names_are_refused_or_stored_faithfully(project: Path, store: Any, name: str) -> None:
    from nbtoolkit.errors import InputError

    earlier = _finished(store, "earlier", {"auc": 0.5})
    before = nbtk.get_run(earlier).to_dict()
    with nbtk.start_run("hostile") as run:
        for call in (
            lambda: nbtk.log_metric(name, 1.0),
            lambda: nbtk.log_params({name: 1}),
            lambda: nbtk.log_figure(object(), name),
        ):
            try:
                call()
            except InputError as exc:
                assert str(exc)  # a message, not a crash
            else:  # accepted: must come back exactly as given
                run.flush()
                rec = nbtk.get_run(run.run_id)
                assert name in rec.params or name in rec.metrics
    # nothing escaped the store folder and earlier runs are untouched
    assert not (project.parent / "escape").exists() and not (project / "escape").exists()
    assert nbtk.get_run(earlier).to_dict() == before
    with pytest.raises(InputError):
        with nbtk.start_run("../etc"):
            pass
    assert [r["experiment"] for r in store.query_runs()[0]].count("../etc") == 0


def test_artifact_name_traversal_refused(project: Path) -> None:
    from nbtoolkit.errors import InputError

    with nbtk.start_run("arts") as run:
        for bad in ("../x", "a/../../x", "/etc/passwd", "a\\b", ".hidden"):
            with pytest.raises(InputError):
                nbtk.log_artifact(project / "pyproject.toml", bad)
        nbtk.log_artifact(project / "pyproject.toml", "cfg/pyproject.toml")
    assert [a.name for a in nbtk.get_run(run.run_id).artifacts] == ["cfg/pyproject.toml"]


def test_log_outside_a_run_is_a_clear_error(project: Path) -> None:
    from nbtoolkit.errors import NoActiveRunError

    with pytest.raises(NoActiveRunError) as info:
        nbtk.log(auc=1.0)
    assert "start_run" in str(info.value) or "%%experiment" in str(info.value)


def test_ten_thousand_step_metrics_are_all_stored(project: Path) -> None:
    with nbtk.start_run("steps") as run:
        for i in range(10_000):
            nbtk.log_metric("loss", 1.0 / (i + 1), step=i)
    rec = nbtk.get_run(run.run_id)
    hist = rec.metric_history("loss")
    assert len(hist) == 10_000
    assert hist[0] == (0, 1.0) and hist[-1] == (9_999, 1.0 / 10_000)
    assert [s for s, _ in hist] == list(range(10_000))
    assert rec.metrics["loss"] == 1.0 / 10_000 and rec.metric_steps["loss"] == 9_999


def test_nested_runs_and_listener(project: Path) -> None:
    seen: list[tuple[str, float, int | None]] = []
    with nbtk.start_run("outer") as outer:
        outer.add_listener(lambda *a: seen.append(a))
        nbtk.log_metric("m", 1.0, step=0)
        with nbtk.start_run("inner") as inner:
            nbtk.log(x=2.0)
            assert nbtk.current_run() is inner
        assert nbtk.current_run() is outer
    assert seen == [("m", 1.0, 0)]
    assert nbtk.get_run(inner.run_id).metrics == {"x": 2.0}
    assert nbtk.get_run(outer.run_id).metrics == {"m": 1.0}


def test_runs_frame_columns_filters_and_value_types(project: Path, store: Any) -> None:
    with nbtk.start_run("frame-a", success="auc >= 0.5", params={"lr": 0.1, "layers": [1, 2], "name": "x"}) as a:
        nbtk.log(auc=0.9)
    with nbtk.start_run("frame-a", success="auc >= 0.5", params={"lr": 0.2, "nanp": float("nan")}) as b:
        nbtk.log(auc=0.1, other=1 / 3)
    with pytest.raises(ValueError):
        with nbtk.start_run("frame-b") as c:
            raise ValueError
    frame = nbtk.runs()
    assert list(frame.columns[:6]) == ["run_id", "experiment", "status", "verdict", "started", "ended"]
    assert list(frame["run_id"]) == [c.run_id, b.run_id, a.run_id]
    assert {"params.lr", "params.layers", "params.name", "params.nanp", "metrics.auc", "metrics.other"} <= set(frame.columns)
    row = frame.set_index("run_id").loc[a.run_id]
    assert row["params.layers"] == "[1, 2]" and row["params.name"] == "x" and row["params.lr"] == 0.1
    assert math.isnan(row["metrics.other"])
    assert frame.set_index("run_id").loc[b.run_id, "metrics.other"] == 1 / 3  # full float precision
    assert math.isnan(frame.set_index("run_id").loc[b.run_id, "params.nanp"])
    assert str(frame["started"].dtype).startswith("datetime64") and frame["ended"].notna().all()
    assert list(nbtk.runs("frame-a")["run_id"]) == [b.run_id, a.run_id]
    assert list(nbtk.runs(status="failed")["run_id"]) == [c.run_id]
    assert list(nbtk.runs(verdict="supported")["run_id"]) == [a.run_id]
    assert list(nbtk.runs(limit=1)["run_id"]) == [c.run_id]
    assert list(nbtk.runs(where="metrics.auc < 0.5")["run_id"]) == [b.run_id]
    assert list(nbtk.runs(["frame-a", "frame-b"], limit=2)["run_id"]) == [c.run_id, b.run_id]
    assert nbtk.runs("nothing-here").empty


def test_runs_listing_sees_every_commit(project: Path, store: Any) -> None:
    """runs() may reuse a listing while nothing changed: any commit, from any process, shows."""
    import subprocess
    import sys

    with nbtk.start_run("fresh") as a:
        nbtk.log(auc=0.5)
    assert list(nbtk.runs()["run_id"]) == [a.run_id]
    assert list(nbtk.runs()["run_id"]) == [a.run_id]  # reused
    code = "import nbtoolkit as nbtk\nwith nbtk.start_run('other-process') as r:\n    nbtk.log(auc=0.75)\nprint(r.run_id)"
    other = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()[-1]
    frame = nbtk.runs()
    assert list(frame["run_id"]) == [other, a.run_id] and frame.loc[0, "metrics.auc"] == 0.75
    store.log_metrics(a.run_id, [("auc", 0.25, None, 1.0)])
    assert nbtk.runs().set_index("run_id").loc[a.run_id, "metrics.auc"] == 0.25
    store.log_params(a.run_id, {"late": 3})
    assert nbtk.runs().set_index("run_id").loc[a.run_id, "params.late"] == 3
    store.finish_run(a.run_id, status="crashed")
    assert nbtk.runs(status="crashed")["run_id"].tolist() == [a.run_id]
    frame = nbtk.runs()
    frame.loc[0, "status"] = "mutated"  # callers get a copy
    assert "mutated" not in nbtk.runs()["status"].tolist()
