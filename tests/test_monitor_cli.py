"""``nbtk monitor`` and ``nbtk abtest`` end to end: real store, real registry, real subprocesses, real Chromium."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _predlog import log_frame, write_log
from _stability import demo_models, register, release_gbm_over_logreg, set_config
from conftest import nbtk_cli

from nbtoolkit import registry
from nbtoolkit.stability.promotion import promote

T0 = 1_796_000_400.0  # 2026-11-30 01:00 UTC, a whole hour


@pytest.fixture
def released(project, store, tmp_path):
    """cancer 1.0.0 then 1.0.1 promoted to production: 1.0.1 serves."""
    return release_gbm_over_logreg(store, tmp_path / "b")


def _served_log(failing_share: float, *, seed: int = 5) -> pd.DataFrame:
    """Two hours of 1.0.1 traffic on the demo test rows; in the second hour ``failing_share`` of rows fail."""
    m = demo_models()
    frame = m["frame"]
    features = [c for c in frame.columns if c not in ("label", "uid", "size")]
    scores = m["gb"].predict_proba(frame[features])[:, 1]
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(len(frame)):
        hour = 0 if i < len(frame) // 2 else 1
        ok = not (hour == 1 and rng.random() < failing_share)
        inputs = {"mean radius": float(frame["mean radius"].iloc[i]), "size": frame["size"].iloc[i]}
        rows.append({"ts": T0 + hour * 3600 + i, "version": "1.0.1", "row_id": frame["uid"].iloc[i],
                     "latency_ms": float(rng.gamma(4, 2)), "ok": ok, "error": None if ok else "RuntimeError: down",
                     "inputs": inputs, "prediction": int(scores[i] >= 0.5) if ok else None,
                     "score": float(scores[i]) if ok else None, "label": int(frame["label"].iloc[i]) if ok else None})
    return log_frame(rows, model="cancer")


def test_breach_exits_1_records_a_monitor_run_and_rolls_back(released, project, store, tmp_path):
    set_config(project, "\n[tool.nbtoolkit.sla]\nmax.error_rate = 0.05\nmax.latency_p95_ms = 500\n")
    frame = _served_log(0.3)
    log = write_log(frame, tmp_path / "log.jsonl")
    dash = tmp_path / "dash.html"
    out = nbtk_cli("monitor", "cancer", "--log", str(log), "--window", "1h", "--slice", "size",
                   "--rollback-on-breach", "-o", str(dash), cwd=project)
    assert out.returncode == 1, out.stderr
    assert "SLA breach: 1.0.1 in window 2026-11-30 02:00 UTC: error_rate = 0." in out.stdout
    assert "Rolled back cancer@production: 1.0.1 -> 1.0.0" in out.stdout
    assert registry.current("cancer", "production", store=store) == "1.0.0"
    last = registry.history("cancer", alias="production", store=store)[-1]
    assert last.action == "rollback" and last.by == "nbtk monitor"
    assert "SLA breach of 1.0.1: error_rate" in last.reason
    hist = nbtk_cli("history", "cancer", cwd=project)
    assert "SLA breach of 1.0.1" in hist.stdout
    # the monitor run: kind monitor, experiment monitor:cancer, metrics per version and window
    run_id = out.stdout.split("monitor run ")[1].split()[0]
    record = store.get_run(run_id)
    assert record.kind == "monitor" and record.experiment == "monitor:cancer" and record.status == "finished"
    assert record.metrics["sla_ok"] == 0.0
    assert record.metrics["1.0.1.error_rate"] == pytest.approx(float((~frame["ok"]).mean()))
    second = frame[frame["ts"] >= T0 + 3600]
    assert record.metrics["1.0.1.window.error_rate"] == pytest.approx(float((~second["ok"]).mean()))  # last step
    assert record.extra["monitor"]["breaches"][0]["metric"] == "error_rate"
    assert dash.read_text(encoding="utf-8").count("breach-row") == 1
    # the finding starts the next experiment
    made = nbtk_cli("new", "cancer-fix", "--from-monitor", run_id[:10], cwd=project)
    assert made.returncode == 0, made.stderr
    nb = json.loads((project / "cancer-fix.ipynb").read_text(encoding="utf-8"))
    cell = next("".join(c["source"]) for c in nb["cells"] if "".join(c["source"]).startswith("%%experiment"))
    assert cell.startswith("%%experiment cancer-fix --baseline cancer@production\n")
    assert "Hypothesis: A new version of cancer keeps error_rate <= 0.05 (the SLA)" in cell
    assert "for version 1.0.1 in the window of 2026-11-30 02:00 UTC" in cell
    assert "Scope: prediction log of cancer from 2026-11-30 01:00 UTC to 2026-11-30 03:00 UTC" in cell
    not_monitor = nbtk_cli("new", "other", "--from-monitor", registry.get_version("cancer", "1.0.0", store=store).run_id,
                           cwd=project)
    assert not_monitor.returncode == 2 and "not a monitor run" in not_monitor.stderr


def test_healthy_log_exits_0_and_keeps_the_alias(released, project, store, tmp_path):
    set_config(project, "\n[tool.nbtoolkit.sla]\nmax.error_rate = 0.05\nmin.accuracy = 0.8\n")
    log = write_log(_served_log(0.0), tmp_path / "log.jsonl")
    out = nbtk_cli("monitor", "cancer", "--log", str(log), "--rollback-on-breach", "--json", cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is True and data["rollback"] is None and data["breaches"] == []
    (overall,) = data["overall"]
    frame = demo_models()["frame"]
    features = [c for c in frame.columns if c not in ("label", "uid", "size")]
    truth = frame["label"].to_numpy()
    pred = demo_models()["gb"].predict(frame[features])
    assert overall["measured"]["accuracy"]["value"] == pytest.approx(float(np.mean(pred == truth)))
    assert overall["quality"]["accuracy"]["estimated"] is False
    assert registry.current("cancer", "production", store=store) == "1.0.1"


def test_drift_from_reference_file(project, tmp_path):
    rng = np.random.default_rng(2)
    reference = pd.DataFrame({"age": rng.normal(40, 10, 1000), "income": rng.normal(50, 5, 1000)})
    reference.to_csv(tmp_path / "train.csv", index=False)
    log = write_log(log_frame([{"ts": T0 + i, "prediction": 1, "inputs": {"age": float(rng.normal(55, 10)),
                                                                        "income": float(rng.normal(50, 5))}}
                               for i in range(400)], model="churn"), tmp_path / "log.jsonl")
    out = nbtk_cli("monitor", "churn", "--log", str(log), "--reference", str(tmp_path / "train.csv"), "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    drift = {f["feature"]: f for f in json.loads(out.stdout)["drift_overall"]}
    assert drift["age"]["drifted"] is True and drift["income"]["drifted"] is False


def test_usage_errors_exit_2(project, tmp_path):
    log = write_log(log_frame([{"ts": T0, "prediction": 1}]), tmp_path / "log.jsonl")
    bad_window = nbtk_cli("monitor", "cancer-gbm", "--log", str(log), "--window", "soon", cwd=project)
    assert bad_window.returncode == 2 and "is not a duration" in bad_window.stderr
    bad_metric = nbtk_cli("monitor", "cancer-gbm", "--log", str(log), "--metric", "vibes", cwd=project)
    assert bad_metric.returncode == 2 and "Unknown metric(s) vibes" in bad_metric.stderr
    empty = nbtk_cli("monitor", "other-model", "--log", str(log), cwd=project)
    assert empty.returncode == 0 and "no logged rows for other-model" in empty.stdout
    missing = nbtk_cli("monitor", "cancer-gbm", "--log", str(tmp_path / "nope.jsonl"), cwd=project)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_dashboard_opens_in_chromium_without_script_errors(chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    from nbtoolkit.monitor import monitor
    from nbtoolkit.monitor.dashboard import render_dashboard

    frame = _served_log(0.3)
    frame.loc[0, "version"] = "<img src=x onerror=alert(1)>"
    result = monitor(frame, model="cancer<script>", window="1h", slices=["size"], sla={"max.error_rate": 0.05},
                     reference=pd.DataFrame({"mean radius": np.random.default_rng(0).normal(14, 3, 500)}))
    path = tmp_path / "dash.html"
    path.write_text(render_dashboard(result, run_id="r1"), encoding="utf-8")
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=[
            "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
        page = browser.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("dialog", lambda d: errors.append("dialog " + d.message))
        page.goto(path.as_uri())
        text = page.inner_text("body")
        images = page.eval_on_selector_all("img.monitor-timeseries", "els => els.map(e => e.naturalWidth)")
        injected = page.eval_on_selector_all("main img:not(.monitor-timeseries), main script", "els => els.length")
        browser.close()
    assert errors == []
    assert images and images[0] > 500
    assert injected == 0
    assert "Monitor: cancer<script>" in text and "<img src=x onerror=alert(1)>" in text
    second_hour = [w for w in result.windows if w.version == "1.0.1" and w.start == T0 + 3600][0]
    from nbtoolkit.html import fmt_number

    assert fmt_number(second_hour.traffic.error_rate) in text
    assert "SLA breach" in text and "mean radius" in text and "size" in text


def test_monitor_reads_the_store_log_and_abtests_it(project, backend):
    """Through the store's own prediction log (written as ``nbtk serve`` writes it), no --log file; SQLite and PostgreSQL."""
    store = backend
    frame, rows = _served_log(0.0), []
    for version in ("1.0.0", "1.0.1"):
        rows += [{**r, "version": version, "arm": "champion" if version == "1.0.0" else "challenger",
                  "prediction": r["prediction"] if version == "1.0.1" else 1, "label": None}
                 for r in frame.to_dict(orient="records")]
    store.log_predictions(rows)
    labels = [{"row_id": r["row_id"], "label": r["label"], "ts": T0 + 7200} for r in frame.to_dict(orient="records")]
    assert store.add_feedback("cancer", labels) == 2 * len(frame)
    out = nbtk_cli("monitor", "cancer", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {w["version"]: w["traffic"]["rows"] for w in data["overall"]} == {"1.0.0": len(frame), "1.0.1": len(frame)}
    ab = nbtk_cli("abtest", "cancer", "--a", "1.0.0", "--b", "1.0.1", "--success", "accuracy >= a.accuracy + 0.1", cwd=project)
    assert ab.returncode == 0, ab.stdout + ab.stderr
    assert f"paired on {len(frame)} shared rows" in ab.stdout


def test_drift_reference_defaults_to_the_data_the_serving_run_tracked(project, store, tmp_path):
    from conftest import git

    import nbtoolkit as nbtk

    m = demo_models()
    train = m["X"].iloc[:300][["mean radius", "mean texture"]]
    train.to_csv(project / "train.csv", index=False)
    git(project, "add", "train.csv")
    git(project, "commit", "-q", "-m", "training data")
    with nbtk.start_run("cancer-gbm", success="roc_auc >= 0.9") as run:
        nbtk.track_data("train.csv")
        nbtk.log(roc_auc=0.97)
    register(store, tmp_path / "b", m["gb"], model="cancer", version="1.0.0", run_id=run.run_id)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    rng = np.random.default_rng(9)
    log = write_log(log_frame([{"ts": T0 + i, "version": "1.0.0", "prediction": 1,
                                "inputs": {"mean radius": float(rng.normal(25, 3)), "mean texture": float(t)}}
                               for i, t in enumerate(train["mean texture"].iloc[:200])], model="cancer"), tmp_path / "log.jsonl")
    out = nbtk_cli("monitor", "cancer", "--log", str(log), "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    drift = {f["feature"]: f for f in json.loads(out.stdout)["drift_overall"]}
    assert drift["mean radius"]["drifted"] is True and drift["mean texture"]["drifted"] is False
    text = nbtk_cli("monitor", "cancer", "--log", str(log), cwd=project)
    assert "drift reference: train.csv" in text.stdout
    # the file changed since the run recorded it: not the training data any more, so no reference
    (project / "train.csv").write_text("mean radius\n1\n", encoding="utf-8")
    changed = nbtk_cli("monitor", "cancer", "--log", str(log), "--json", cwd=project)
    assert changed.returncode == 0 and json.loads(changed.stdout)["drift_overall"] == []
