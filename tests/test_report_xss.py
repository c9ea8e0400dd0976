"""Untrusted text in every user field and notebook output never runs in a report (real Chromium)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">click</a>',
    "</script><script>alert(1)</script>",
    '<svg onload="alert(1)"></svg>',
    "'-alert(1)-'\u2028\u2029",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
]
P = " ".join(PAYLOADS)

#: JavaScript evaluated in the page: every trace an injection would leave
PROBE = """() => ({
  imgX: document.querySelectorAll('img[src="x"]').length,
  scripts: [...document.scripts].filter(s => (!s.type || /javascript/i.test(s.type)) && /alert/.test(s.textContent)).length,
  handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => /^on/i.test(a.name))).length,
  jsLinks: [...document.querySelectorAll('[href],[src],[action],[formaction]')].filter(e =>
      /^\\s*javascript:/i.test(e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || e.getAttribute('formaction') || '')).length,
  svg: document.querySelectorAll('svg').length,
  frames: document.querySelectorAll('iframe,object,embed').length,
  text: document.body.innerText,
})"""


def payload_notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(f"print({P!r})")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": P, "text/plain": "html"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"}),
        nbformat.v4.new_output("display_data", data={
            "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'}),
        nbformat.v4.new_output("execute_result", execution_count=1, data={"text/markdown": P, "text/plain": P}),
        nbformat.v4.new_output("stream", name="stdout", text=P),
        nbformat.v4.new_output("error", ename="ValueError", evalue=P, traceback=[P]),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Notes {P}\n\n[link](javascript:alert(1))"), cell]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"x": P}}}
    return nb


def payload_runs(project: Path) -> dict[str, Any]:
    import nbtoolkit as nbtk
    from nbtoolkit.store import open_store

    store = open_store()
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    ids = [f"{P}{i}" for i in range(120)]
    with nbtk.start_run("xss-base", hypothesis=P, owner=P, scope=P, description=P,
                        success="roc_auc >= 0.5") as base:
        nbtk.log_params({P: P, "lr": P})
        nbtk.log(roc_auc=0.7)
        nbtk.log_predictions(y, rng.random(120), ids=ids, groups=[P if i % 2 else "g" for i in range(120)])
    with nbtk.start_run("xss-cand", hypothesis=P, owner=P, scope=P, description=P,
                        tags={"team": P}, baseline=base.run_id, until="2031-01-01",
                        success=["roc_auc >= baseline.roc_auc", "accuracy >= 0.1"]) as cand:
        nbtk.log_params({P: "changed", "lr": 0.1, "nested": {P: [P]}})
        nbtk.set_tags({P: P})
        for step in range(3):
            nbtk.log_metric(P, step / 3, step=step)
        nbtk.log(roc_auc=0.8, accuracy=0.7)
        nbtk.log_predictions(y, np.clip(y * 0.5 + rng.random(120) * 0.5, 0, 1), ids=ids,
                             groups=[P if i % 2 else "g" for i in range(120)])
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(1, 1))
        nbtk.log_figure(fig, "fig-<script>alert(1)<")
        plt.close(fig)
    store.add_approval(cand.run_id, by=P, note=P)
    store.merge_extra(cand.run_id, {"reproduction": {"result": P, "run_id": P, "note": P}})
    digest, size = store.artifacts.put_bytes(nbformat.writes(payload_notebook()).encode())
    store.add_artifact(cand.run_id, name="output.ipynb", kind="notebook", digest=digest, size=size)
    with pytest.raises(RuntimeError), nbtk.start_run("xss-failed", hypothesis=P):
        raise RuntimeError(P)
    store.create_sweep("xsssweep0001", notebook=P, spec={"grid": {P: [P]}}, status=P)
    for i in range(3):
        rid = store.create_run(experiment="xss-sweep", declaration={"success": ["roc_auc >= 0.5"], "hypothesis": P},
                               kind="papermill", source="papermill", parent_id="xsssweep0001")
        store.log_params(rid, {P: f"{P}{i % 2}", "seed": i})
        store.log_metrics(rid, [("roc_auc", 0.5 + i / 10, None, time.time()), (P, 1.0, None, time.time())])
        store.finish_run(rid, status="finished", verdict="supported")
    return {"base": base.run_id, "cand": cand.run_id, "store": store}


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.wait_for_timeout(300)  # give any injected handler (onerror, onload) the chance to fire
    return page, dialogs + [f"request {u}" for u in requests]


def test_payloads_in_every_field_never_execute(project: Path, tmp_path: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    from nbtoolkit import report

    runs = payload_runs(project)
    store = runs["store"]
    failed = store.query_runs(experiment="xss-failed")[0][0]["run_id"]
    pages = {
        "run": report.write_run_report(runs["cand"], tmp_path / "run.html", store=store),
        "failed": report.write_run_report(failed, tmp_path / "failed.html", store=store),
        "comparison": report.write_comparison_report(runs["base"], runs["cand"], tmp_path / "cmp.html", store=store),
        "sweep": report.write_sweep_report("xsssweep0001", tmp_path / "sweep.html", store=store),
        "index": report.write_index_report(tmp_path / "index.html", store=store),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for name, path in pages.items():
                page, events = open_page(browser, path)
                probe = page.evaluate(PROBE)
                text = probe.pop("text")
                assert events == [], f"{name}: {events}"
                assert probe == {"imgX": 0, "scripts": 0, "handlers": 0, "jsLinks": 0, "svg": 0, "frames": 0}, name
                # the payloads are shown as text, not dropped
                assert "<script>alert(1)</script>" in text, name
                if name == "run":
                    assert '"><img src=x onerror=alert(1)>' in text
                    page.click("details.notebook > summary")
                    page.wait_for_timeout(200)
                    assert page.evaluate(PROBE)["imgX"] == 0
                    assert "[application/javascript output, not run in the report]" in page.inner_text("details.notebook")
                page.close()
        finally:
            browser.close()
    index_html = pages["index"].read_text(encoding="utf-8")
    data_block = index_html.split('id="nbtk-search-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block and "\u2028" not in data_block
    assert P.lower() in json.loads(data_block)[0] or any(P.lower() in d for d in json.loads(data_block))


def test_index_search_box_works_offline(project: Path, tmp_path: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    import nbtoolkit as nbtk
    from nbtoolkit.report import write_index_report

    for name, hyp, owner in (("churn-a", "calibration helps", "ana"), ("churn-b", "more trees help", "bo"),
                             ("fraud-c", "graph features help", "ana")):
        with nbtk.start_run(name, hypothesis=hyp, owner=owner):
            nbtk.log(x=1.0)
    path = write_index_report(tmp_path / "index.html")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page, events = open_page(browser, path)
            visible = "() => [...document.querySelectorAll('section.experiment')].filter(s => !s.hidden).map(s => s.id)"
            assert sorted(page.evaluate(visible)) == ["exp-churn-a", "exp-churn-b", "exp-fraud-c"]
            page.fill("#nbtk-search", "TREES")
            assert page.evaluate(visible) == ["exp-churn-b"]
            assert page.inner_text("#nbtk-count") == "1"
            page.fill("#nbtk-search", "ana")
            assert sorted(page.evaluate(visible)) == ["exp-churn-a", "exp-fraud-c"]
            page.fill("#nbtk-search", "")
            assert len(page.evaluate(visible)) == 3
            assert events == []
        finally:
            browser.close()
