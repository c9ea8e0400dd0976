"""The sidebar's "Production" panel in a real browser: JupyterLab + the nbtoolkit extension + Chromium.

A project with a registered model promoted to production and a real ``nbtk monitor`` run over a
prediction log with failures (an SLA breach), a slice column and a drifted reference. The panel
must show the numbers of the monitor's JSON (``GET /nbtoolkit/api/monitor/<model>``) formatted
as the dashboard formats them, and untrusted text (a run description, an alias-move reason) as
text. ``NBTK_SCREENSHOTS=1`` also writes ``extensions/screenshots/production-panel.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from _lab import JupyterServer
from _predlog import log_frame, write_log
from _stability import demo_models, make_run, register, set_config
from conftest import CHROMIUM_ARGS, nbtk_cli
from test_browser_ui import screenshot, shot_on_failure
from test_monitor_cli import _served_log

import nbtoolkit as nbtk
from nbtoolkit.html import fmt_number
from nbtoolkit.stability.promotion import promote

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_DESCRIPTION = '<img src=x onerror="window.__nbtkPwned=1"> gbm for the cancer screen'
XSS_REASON = '<img src=y onerror="window.__nbtkPwned=2">'
XSS_COMMENT = '<img src=z onerror="window.__nbtkPwned=3"> looks good on the large tumours'


def comment(root: Path, ref: str, by: str, text: str, rating: int) -> None:
    """``nbtk comment REF --by --text --rating`` in a subprocess, as a reviewer would."""
    out = nbtk_cli("comment", ref, "--by", by, "--text", text, "--rating", str(rating), cwd=root)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture
def monitored(project: Path, store: Any, tmp_path: Path) -> dict[str, Any]:
    """cancer 1.0.0 then 1.0.1 (a run with a hostile description) in production, and a monitor run."""
    m = demo_models()
    first = make_run("cancer-logreg", roc_auc=0.96)
    with nbtk.start_run("cancer-gbm", hypothesis="a small GBM beats the baseline", success="roc_auc >= 0.9",
                        description=XSS_DESCRIPTION) as handle:
        nbtk.log(roc_auc=0.97)
    run = handle.run_id
    register(store, tmp_path / "b", m["lr"], model="cancer", version="1.0.0", run_id=first)
    register(store, tmp_path / "b", m["gb"], model="cancer", version="1.0.1", run_id=run)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    promote("cancer", "1.0.1", to="production", by="ana", reason=XSS_REASON, store=store)
    set_config(project, "\n[tool.nbtoolkit.sla]\nmax.error_rate = 0.05\nmax.latency_p95_ms = 500\n")
    log = write_log(_served_log(0.3), tmp_path / "log.jsonl")
    reference = m["frame"][["mean radius"]].copy()
    reference["mean radius"] += 6.0  # the training data the log drifted away from
    reference.to_csv(tmp_path / "train.csv", index=False)
    out = nbtk_cli("monitor", "cancer", "--log", str(log), "--window", "1h", "--slice", "size",
                   "--reference", str(tmp_path / "train.csv"), cwd=project)
    assert out.returncode == 1, out.stdout + out.stderr  # the planted failures breach the SLA
    comment(project, "cancer@1.0.1", "bo", XSS_COMMENT, 4)
    comment(project, run, "cy", "the interval is wide, rerun with more data", 2)
    comment(project, "cancer-gbm", "di", "<b>ship it</b>", 5)
    return {"root": project, "run": run}


def _expected(version: dict[str, Any]) -> dict[str, str]:
    """What the panel must say for one version, from the monitor JSON, formatted like the dashboard."""
    t = version["traffic"]
    metric = next(m for m in ("roc_auc", "accuracy") if m in version["measured"])
    measured, estimated = version["measured"][metric], version["estimated"][metric]
    worst = max(version["slices"], key=lambda s: s["gap"])
    return {
        "rows": f"{t['rows']} rows, {fmt_number(t['throughput_rps'])} rows/s",
        "error_rate": fmt_number(t["error_rate"]),
        "latency_p95_ms": fmt_number(t["latency_p95_ms"]),
        "latency_p99_ms": fmt_number(t["latency_p99_ms"]),
        f"measured.{metric}": f"{fmt_number(measured['value'])} [{fmt_number(measured['low'])}, "
                              f"{fmt_number(measured['high'])}]",
        f"estimated.{metric}": fmt_number(estimated["value"]),
        "slice_gap": f"{worst['metric']} {worst['column']}={worst['worst']}, gap {fmt_number(worst['gap'])}",
    }


def test_production_panel_shows_the_monitor_numbers_and_escapes_text(
        monitored: dict[str, Any], store: Any, chromium: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    root = monitored["root"]
    srv = JupyterServer(root, tmp_path / "jupyter", env={"NBTOOLKIT_STORE": str(root / ".nbtoolkit")}).start()
    try:
        result = srv.get("/nbtoolkit/api/monitor/cancer")
        production = srv.get("/nbtoolkit/api/production")
        (model,) = production["models"]
        assert model["aliases"] == {"production": "1.0.1"} and model["monitor"]["run_id"] == result["run_id"]
        assert model["production"]["description"] == XSS_DESCRIPTION
        drifted = [f["feature"] for f in result["drift_overall"] if f["drifted"]]
        assert drifted == ["mean radius"] and result["ok"] is False
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                with shot_on_failure(page, "production"):
                    page.goto(f"{srv.url}/lab?token={srv.token}&reset")
                    page.locator('.jp-SideBar [data-id="nbtoolkit-production"]').click()
                    card = page.locator('.nbtk-prod-model[data-model="cancer"]')
                    card.wait_for()
                    badge = card.locator(".nbtk-prod-sla")
                    assert badge.get_attribute("data-state") == "breach"
                    assert badge.inner_text() == f"SLA breach ({len(result['breaches'])})"
                    assert card.locator(".nbtk-prod-alias-list").inner_text() == "production → 1.0.1"
                    for version in result["overall"]:
                        box = card.locator(f'.nbtk-prod-version[data-version="{version["version"]}"]')
                        for metric, text in _expected(version).items():
                            shown = box.locator(f'.nbtk-prod-stat[data-metric="{metric}"] .nbtk-prod-value')
                            assert shown.inner_text() == text, metric
                        est = box.locator('.nbtk-prod-stat[data-metric^="estimated."] .nbtk-prod-est')
                        assert est.inner_text() == "est."
                    assert card.locator('.nbtk-prod-stat[data-metric="drift"] .nbtk-prod-value').inner_text() == \
                        ", ".join(drifted)
                    breaches = card.locator(".nbtk-prod-breaches li").all_inner_texts()
                    assert breaches == [b["text"] for b in result["breaches"]]
                    # hostile text is shown as text: no element made of it, no script ran
                    assert XSS_DESCRIPTION in card.locator(".nbtk-prod-description").inner_text()
                    assert XSS_REASON in card.locator(".nbtk-prod-move").inner_text()
                    version_comment = card.locator(".nbtk-prod-comments .nbtk-comment")
                    assert version_comment.locator(".nbtk-comment-text").inner_text() == XSS_COMMENT
                    assert version_comment.locator(".nbtk-comment-by").inner_text() == "bo"
                    assert version_comment.locator(".nbtk-comment-rating").inner_text() == "★★★★☆"
                    assert page.locator(".nbtk-production img").count() == 0
                    assert page.evaluate("() => window.__nbtkPwned") is None
                    screenshot(page.locator(".nbtk-production"), "production-panel")

                    # comments and ratings under the run and its experiment in the Experiments panel
                    page.locator('.jp-SideBar [data-id="nbtoolkit-experiments"]').click()
                    run = monitored["run"]
                    under_run = page.locator(f'.nbtk-comments[data-run-id="{run}"] .nbtk-comment')
                    under_run.wait_for()
                    assert under_run.inner_text().split("\n")[0].startswith("★★☆☆☆")
                    assert under_run.locator(".nbtk-comment-text").inner_text() == \
                        "the interval is wide, rerun with more data"
                    under_exp = page.locator('.nbtk-comments[data-experiment="cancer-gbm"] .nbtk-comment-text')
                    assert under_exp.inner_text() == "<b>ship it</b>"
                    assert page.locator("#nbtoolkit-experiments b").count() == 0
                    comment(root, run[:10], "ed", XSS_COMMENT, 1)  # a new comment shows up by polling
                    expect_two = page.locator(f'.nbtk-comments[data-run-id="{run}"] .nbtk-comment')
                    page.wait_for_function(
                        f"() => document.querySelectorAll('.nbtk-comments[data-run-id=\"{run}\"] .nbtk-comment').length == 2",
                        timeout=20_000)
                    assert expect_two.nth(1).locator(".nbtk-comment-text").inner_text() == XSS_COMMENT
                    assert page.locator(".nbtk-comments img").count() == 0
                    assert page.evaluate("() => window.__nbtkPwned") is None
                    screenshot(page.locator("#nbtoolkit-experiments"), "experiments-comments")
                    page.locator('.jp-SideBar [data-id="nbtoolkit-production"]').click()

                    # a new monitor run shows up by polling (the panel re-renders on a new signature)
                    healthy = write_log(_served_log(0.0), tmp_path / "healthy.jsonl")
                    out = nbtk_cli("monitor", "cancer", "--log", str(healthy), "--window", "1h", cwd=root)
                    assert out.returncode == 0, out.stdout + out.stderr
                    card.locator('.nbtk-prod-sla[data-state="ok"]').wait_for(timeout=20_000)
                    fresh = json.loads(srv.request("/nbtoolkit/api/monitor/cancer")[2])
                    shown = card.locator('.nbtk-prod-stat[data-metric="error_rate"] .nbtk-prod-value').first
                    assert shown.inner_text() == fmt_number(fresh["overall"][0]["traffic"]["error_rate"])
                    assert card.locator(".nbtk-prod-run").inner_text() == f"monitor run {fresh['run_id'][:8]}"

                    # live traffic: rows answered in the last hour replace the recorded run with numbers
                    # computed now from the store's prediction log (one in four failed: a breach)
                    now = time.time()
                    served = log_frame([{"ts": now - 100 + i, "version": "1.0.1", "prediction": 1, "score": 0.8,
                                         "ok": i % 4 != 0, "latency_ms": 3 + i} for i in range(40)], model="cancer")
                    store.log_predictions(served.drop(columns=["label", "label_ts"]).to_dict(orient="records"))
                    live_line = card.locator(".nbtk-prod-live")
                    live_line.wait_for(timeout=20_000)
                    assert live_line.inner_text() == "live: last 60 min of the prediction log"
                    assert card.locator(".nbtk-prod-run").count() == 0
                    live = srv.get("/nbtoolkit/api/production?live=1")["models"][0]["monitor"]
                    assert live["live"] is True and [v["version"] for v in live["overall"]] == ["1.0.1"]
                    box = card.locator('.nbtk-prod-version[data-version="1.0.1"]')
                    for metric in ("error_rate", "latency_p95_ms", "latency_p99_ms"):
                        shown = box.locator(f'.nbtk-prod-stat[data-metric="{metric}"] .nbtk-prod-value')
                        assert shown.inner_text() == fmt_number(live["overall"][0]["traffic"][metric]), metric
                    assert box.locator('.nbtk-prod-stat[data-metric="rows"] .nbtk-prod-value').inner_text().startswith("40 rows")
                    assert card.locator(".nbtk-prod-sla").get_attribute("data-state") == "breach"
            finally:
                browser.close()
    finally:
        srv.stop()


def test_production_screenshots_are_committed_pngs() -> None:
    """The README's Production and comments screenshots exist and are PNG files."""
    for name in ("production-panel", "experiments-comments"):
        data = (Path(__file__).resolve().parent.parent / "extensions" / "screenshots" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
