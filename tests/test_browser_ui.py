"""End to end in a real browser: JupyterLab + the nbtoolkit extensions + Chromium (Playwright).

One JupyterLab server (127.0.0.1, token, temp Jupyter folders) and one browser page serve the
whole module; the tests run in file order and later ones use the runs of earlier ones. A failing
test saves a screenshot to ``test-artifacts/``. With ``NBTK_SCREENSHOTS=1`` the tests also write
the README screenshots to ``extensions/screenshots/``::

    NBTK_SCREENSHOTS=1 python -m pytest tests/test_browser_ui.py
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from _lab import JupyterServer
from conftest import CHROMIUM_ARGS, ROOT, git, make_notebook

try:
    from playwright.sync_api import expect
except ImportError:  # the fixture skips the tests
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "extensions" / "screenshots"
IDLE = "() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')"

SETUP = "%load_ext nbtoolkit\nimport nbtoolkit as nbtk"
GOOD = '''%%experiment ui-good
"""
Hypothesis: a tuned model clears the bar
Success: acc >= 0.9
"""
for step in range(200):
    nbtk.log_metric("loss", 1 / (step + 1), step=step)
acc = 0.95'''
BAD = '''%%experiment ui-bad
"""
Hypothesis: a tiny model is enough
Success: acc >= 0.9
"""
acc = 0.5'''


@pytest.fixture(scope="module")
def lab(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=30_000)
    root = tmp_path_factory.mktemp("ui") / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    (root / ".gitignore").write_text(".nbtoolkit/\n.ipynb_checkpoints/\n", encoding="utf-8")
    make_notebook(root / "verdict.ipynb", SETUP, GOOD, BAD)
    make_notebook(root / "form.ipynb", SETUP, "nbtk.widgets.ExperimentForm()")
    make_notebook(root / "browse.ipynb", SETUP, "nbtk.browse()")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    srv = JupyterServer(root, root.parent / "jupyter", env={
        "NBTOOLKIT_STORE": str(root / ".nbtoolkit"), "NBTOOLKIT_RUN_ID": "", "NBTOOLKIT_PARAMS": "",
        "NBTOOLKIT_NOTEBOOK": ""}).start()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(60_000)
        try:
            yield {"srv": srv, "page": page, "root": root}
        finally:
            browser.close()
            srv.stop()


@contextlib.contextmanager
def shot_on_failure(page: Any, name: str) -> Iterator[None]:
    """Save a screenshot of the page to test-artifacts/ when the block raises."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        raise


def screenshot(locator: Any, name: str) -> None:
    """README screenshots, only when NBTK_SCREENSHOTS=1."""
    if os.environ.get("NBTK_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def open_and_run_all(lab: dict[str, Any], notebook: str) -> Any:
    srv, page = lab["srv"], lab["page"]
    page.goto(f"{srv.url}/lab/tree/{notebook}?token={srv.token}&reset")
    page.wait_for_function(IDLE, timeout=90_000)  # the kernel exists (see notes: kernel-ready race)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    return page


def store(lab: dict[str, Any]) -> Any:
    from nbtoolkit.store import open_store

    return open_store(path=lab["root"] / ".nbtoolkit")


def card(page: Any, experiment: str) -> Any:
    return page.locator(".nbtk-run-card", has_text=experiment)


def test_run_all_shows_verdict_cards_and_live_progress(lab: dict[str, Any]) -> None:
    page = open_and_run_all(lab, "verdict.ipynb")
    with shot_on_failure(page, "verdict"):
        good, bad = card(page, "ui-good"), card(page, "ui-bad")
        good.wait_for()
        bad.wait_for()
        assert re.search(r"ui-good\s+supported", good.inner_text())
        assert re.search(r"ui-bad\s+rejected", bad.inner_text())
        progress = page.locator('.nbtk-progress[data-state="finished"]')
        assert progress.count() == 1
        assert "step 199" in progress.inner_text()
        assert page.locator(".nbtk-progress polyline").count() == 1
        runs = {r.experiment: r for r in store(lab).get_runs(
            [store(lab).latest_run("ui-good"), store(lab).latest_run("ui-bad")])}
        assert runs["ui-good"].verdict == "supported" and runs["ui-bad"].verdict == "rejected"
        assert runs["ui-good"].run_id[:12] in good.inner_text()
        cell = page.locator(".jp-Cell", has=page.locator(".nbtk-progress"))
        screenshot(cell, "verdict-card")


def test_experiment_form_marks_errors_and_inserts_a_cell_that_runs(lab: dict[str, Any]) -> None:
    page = open_and_run_all(lab, "form.ipynb")
    with shot_on_failure(page, "form"):
        form = page.locator(".nbtk-experiment-form")
        form.wait_for()
        insert = form.locator("button.nbtk-form-insert")
        form.locator(".nbtk-form-name input").fill("ui-form")
        form.locator(".nbtk-form-hypothesis textarea").fill("the form writes a valid cell")
        form.locator(".nbtk-crit-metric input").fill("acc")
        form.locator(".nbtk-crit-target input").fill("abc")
        expect(form.locator(".nbtk-crit-status .nbtk-invalid")).to_contain_text("'abc'")
        expect(insert).to_be_disabled()
        form.locator(".nbtk-crit-target input").fill("0.9")
        form.locator(".nbtk-crit-status .nbtk-valid").wait_for()
        form.locator(".nbtk-form-owner input").fill("ana")
        form.locator(".nbtk-form-body textarea").fill("acc = 0.97\n")
        expect(insert).to_be_enabled()
        screenshot(form, "experiment-form")
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        before = cells.count()
        insert.click()
        form.locator(".nbtk-inserted").wait_for()
        expect(cells).to_have_count(before + 1)
        new_cell = cells.nth(2)  # below the form's cell (the active one)
        text = new_cell.locator(".cm-content").inner_text()
        assert text.startswith("%%experiment ui-form") and "Success: acc >= 0.9" in text
        new_cell.locator(".cm-content").click()
        page.keyboard.press("Shift+Enter")
        result = card(page, "ui-form")
        result.wait_for()
        assert re.search(r"ui-form\s+supported", result.inner_text())
        run = store(lab).get_run(store(lab).latest_run("ui-form"))
        assert run.declaration.owner == "ana" and run.metrics["acc"] == 0.97


def test_run_browser_filters_and_compares_two_runs(lab: dict[str, Any]) -> None:
    page = open_and_run_all(lab, "browse.ipynb")
    with shot_on_failure(page, "browser"):
        browser = page.locator(".nbtk-run-browser")
        browser.wait_for()
        s = store(lab)
        good, bad = s.latest_run("ui-good"), s.latest_run("ui-bad")
        table = browser.locator(".nbtk-browser-table")
        assert good[:8] in table.inner_text() and bad[:8] in table.inner_text()
        browser.locator(".nbtk-browser-text input").fill("ui-")
        browser.locator(".nbtk-browser-verdict select").select_option("rejected")
        expect(table).not_to_contain_text(good[:8])
        expect(table).to_contain_text(bad[:8])
        browser.locator(".nbtk-browser-verdict select").select_option("(all)")
        expect(table).to_contain_text(good[:8])
        picker = browser.locator(".nbtk-browser-picker select")
        labels = picker.locator("option").all_inner_texts()
        picks = [lbl for lbl in labels if lbl.startswith((good[:8], bad[:8]))]
        assert len(picks) == 2
        picker.select_option(label=picks)
        expect(browser.locator("button.nbtk-browser-compare")).to_be_enabled()
        browser.locator("button.nbtk-browser-compare").click()
        comparison = browser.locator(".nbtk-browser-comparison")
        comparison.wait_for()
        text = comparison.inner_text()
        assert good[:8] in text and bad[:8] in text and "acc" in text
        screenshot(browser, "run-browser")
        browser.locator("button.nbtk-browser-report").click()
        link = browser.locator(".nbtk-report-link")
        link.wait_for()
        assert link.inner_text().endswith(".html")
        assert any(p.name.endswith(".html") for p in (lab["root"] / ".nbtoolkit" / "reports").iterdir())


def test_sidebar_lists_new_runs_and_opens_their_report(lab: dict[str, Any]) -> None:
    page = lab["page"]
    with shot_on_failure(page, "sidebar"):
        s = store(lab)
        good = s.latest_run("ui-good")
        assert good, "the verdict test did not create its run"
        page.locator('.jp-SideBar [data-id="nbtoolkit-experiments"]').click()
        row = page.locator(f'.nbtk-run[data-run-id="{good}"]')
        row.wait_for()
        assert row.locator(".nbtk-badge").inner_text() == "supported"
        assert page.locator('.nbtk-experiment[data-experiment="ui-bad"] .nbtk-badge-rejected').count() >= 1

        # a run recorded elsewhere (a script, another kernel) shows up by polling
        new = s.create_run(experiment="ui-script", declaration={"experiment": "ui-script"})
        s.finish_run(new, status="finished", verdict="inconclusive")
        page.locator(f'.nbtk-run[data-run-id="{new}"] .nbtk-badge-inconclusive').wait_for(timeout=20_000)

        row.click()
        report = page.locator(".nbtk-report")
        page.locator('.nbtk-report[data-loaded="true"]').wait_for()
        frame = report.locator("iframe")
        assert frame.get_attribute("sandbox") == ""  # no scripts, no same-origin access
        body = page.frame_locator(".nbtk-report iframe").locator("body")
        body.wait_for()
        assert "ui-good" in body.inner_text() and good[:8] in body.inner_text()
        assert (lab["root"] / ".nbtoolkit" / "reports" / f"{good}.html").is_file()
        screenshot(page, "sidebar-report")


def test_screenshots_are_committed_pngs() -> None:
    """The README's screenshots exist and are PNG files (regenerate: see the module docstring)."""
    names = ["verdict-card", "experiment-form", "run-browser", "sidebar-report"]
    for name in names:
        data = (SCREENSHOTS / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
