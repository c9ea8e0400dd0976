"""ExperimentForm, RunBrowser and live progress: pure logic, widgets on a real store, a real kernel."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import execute_notebook, make_notebook

from nbtoolkit.declaration import build_declaration
from nbtoolkit.widgets.form import (
    CriterionRow,
    ExperimentForm,
    check_form,
    criterion_text,
    experiment_cell,
)
from nbtoolkit.widgets.progress import MAX_POINTS, LiveProgress, sparkline_svg


def parse_cell(cell: str) -> Any:
    first, _, rest = cell.partition("\n")
    assert first.startswith("%%experiment ")
    declaration, _body = build_declaration(first[len("%%experiment"):], rest)
    return declaration


# ---------------------------------------------------------------- form: pure logic
def test_generated_cell_parses_back_to_the_same_declaration() -> None:
    hypothesis = 'Deeper trees help; "quoted", a back\\slash and """ triple quotes'
    check = check_form(
        "churn-gbm",
        [CriterionRow("roc_auc", ">=", "baseline", delta="0.02"),
         CriterionRow("latency_ms", "<", "value", target="50"),
         CriterionRow("", ">=", "value")],  # empty row: ignored
        hypothesis=hypothesis, scope="EU customers", owner="ana", until="2026-12-31",
        baseline="cancer-logreg", body="x = 1\n",
    )
    assert check.ok, check.errors
    decl = parse_cell(check.cell)
    assert decl.experiment == "churn-gbm"
    assert decl.hypothesis == hypothesis
    assert decl.success == ("roc_auc >= baseline.roc_auc + 0.02", "latency_ms < 50")
    assert (decl.scope, decl.owner, str(decl.until), decl.baseline) == ("EU customers", "ana", "2026-12-31", "cancer-logreg")
    assert check.cell.rstrip().endswith("x = 1")


@pytest.mark.parametrize(("row", "expected"), [
    (CriterionRow("acc", ">=", target="0.90"), "acc >= 0.9"),
    (CriterionRow("val.loss", "<=", "baseline"), "val.loss <= baseline.val.loss"),
    (CriterionRow("loss", "<=", "baseline", delta="-0.1"), "loss <= baseline.loss - 0.1"),
    (CriterionRow("auc", ">", "baseline", delta="+ 1e-3"), "auc > baseline.auc + 0.001"),
])
def test_criterion_rows_make_normalised_criteria(row: CriterionRow, expected: str) -> None:
    assert criterion_text(row) == expected


@pytest.mark.parametrize(("row", "reason"), [
    (CriterionRow("roc auc", ">=", target="0.9"), "not a valid expression"),
    (CriterionRow("acc", ">=", target="abc"), "abc"),
    (CriterionRow("acc", ">=", target="nan"), "NaN"),
    (CriterionRow("acc", ">=", target=""), "target value is empty"),
    (CriterionRow("", ">=", target="0.9"), "metric name is empty"),
])
def test_malformed_criterion_rows_are_marked_with_the_reason(row: CriterionRow, reason: str) -> None:
    check = check_form("ok-name", [CriterionRow("acc", ">=", target="0.9"), row])
    assert not check.ok and check.cell == ""
    assert check.row_errors[0] is None
    assert reason in (check.row_errors[1] or "")
    assert "criterion 2" in check.errors


def test_form_refuses_bad_name_date_and_baseline_rows_without_baseline() -> None:
    check = check_form("bad/name", [CriterionRow("acc", ">=", "baseline")], until="31.12.2026")
    assert set(check.errors) == {"name", "criterion 1", "until"}
    assert "path separators" in check.errors["name"]
    assert "no baseline is picked" in check.errors["criterion 1"]
    assert "YYYY-MM-DD" in check.errors["until"]


def test_experiment_cell_quotes_names_for_the_magic_line() -> None:
    cell = experiment_cell("a.b-c", baseline="0123abcd", criteria=["acc >= 0.9"], body="")
    assert cell.splitlines()[0] == "%%experiment a.b-c --baseline 0123abcd"
    assert parse_cell(cell).baseline == "0123abcd"


# ---------------------------------------------------------------- widgets on a real store
def add_run(store: Any, experiment: str, verdict: str | None, params: dict[str, Any], metrics: dict[str, float],
            *, status: str = "finished", hypothesis: str = "") -> str:
    run_id = store.create_run(experiment=experiment,
                              declaration={"experiment": experiment, "hypothesis": hypothesis})
    store.log_params(run_id, params)
    store.log_metrics(run_id, [(k, v, None, time.time()) for k, v in metrics.items()])
    store.finish_run(run_id, status=status, verdict=verdict)
    time.sleep(0.005)  # distinct start times keep the newest-first order deterministic
    return run_id


def test_experiment_form_widget_validates_live_and_fills_the_baseline_picker(store: Any) -> None:
    base = add_run(store, "cancer-logreg", "supported", {"C": 1}, {"roc_auc": 0.95})
    form = ExperimentForm(store=store)
    values = [v for _, v in form.baseline.options]
    assert values[:2] == ["", "cancer-logreg"] and base[:12] in values
    assert form.insert_button.disabled  # no name yet

    form.name.value = "cancer-gbm"
    row = form.rows[0]
    row["metric"].value = "roc_auc"
    row["mode"].value = "baseline"
    row["delta"].value = "0.01"
    assert form.insert_button.disabled
    assert "no baseline is picked" in row["status"].value
    assert row["target"].layout.display == "none" and row["delta"].layout.display is None
    form.baseline.value = "cancer-logreg"
    assert not form.insert_button.disabled and "✔" in row["status"].value
    decl = parse_cell(form.preview.value)
    assert decl.success == ("roc_auc >= baseline.roc_auc + 0.01",) and decl.baseline == "cancer-logreg"

    bad = form.add_row("acc", ">=", target="<script>")
    assert form.insert_button.disabled
    assert "&lt;script&gt;" in bad["status"].value and "<script>" not in bad["status"].value
    form.remove_row(bad)
    assert not form.insert_button.disabled
    assert form.insert() is True  # no frontend here: the comm is a no-op, status says pending
    assert "Inserting" in form.status.value


def test_insert_reports_the_frontend_answer_or_falls_back_to_copying(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import comm

    opened: list[Any] = []

    def create_comm(**kwargs: Any) -> Any:
        channel = comm.DummyComm(**kwargs)
        if kwargs.get("target_name") == "nbtoolkit.insert_cell":  # not the widgets' own comms
            opened.append((kwargs, channel))
        return channel

    monkeypatch.setattr(comm, "create_comm", create_comm)
    form = ExperimentForm(store=store, name="ins")
    form.rows[0]["metric"].value = "acc"
    form.rows[0]["target"].value = "0.9"
    assert form.insert()
    assert len(opened) == 1
    kwargs, channel = opened[-1]
    assert parse_cell(kwargs["data"]["source"]).success == ("acc >= 0.9",)
    channel.handle_msg({"content": {"data": {"inserted": True}}})
    assert "nbtk-inserted" in form.status.value
    channel.handle_close({})
    assert "nbtk-inserted" in form.status.value  # an answered comm closing changes nothing

    assert form.insert()
    opened[-1][1].handle_close({})  # JupyterLab without the extension closes unknown comms
    assert "nbtk-copy" in form.status.value and "copy it from the preview" in form.status.value

    form.rows[0]["target"].value = "oops"
    assert form.insert() is False and len(opened) == 2


def test_run_browser_filters_compares_and_writes_reports(store: Any, project: Path) -> None:
    a = add_run(store, "cancer-logreg", "supported", {"C": 1.0}, {"roc_auc": 0.95}, hypothesis="linear is enough")
    b = add_run(store, "cancer-gbm", "rejected", {"depth": 2}, {"roc_auc": 0.91})
    c = add_run(store, "cancer-gbm", "supported", {"depth": 4}, {"roc_auc": 0.97})
    d = add_run(store, "cancer-gbm", None, {"depth": 8}, {}, status="failed")
    import nbtoolkit as nbtk

    browser = nbtk.browse(store=store)
    ids = lambda: [r["run_id"] for r in browser.runs]  # noqa: E731
    assert ids() == [d, c, b, a]
    assert "cancer-logreg" in browser.experiment.options
    browser.experiment.value = "cancer-gbm"
    assert ids() == [d, c, b]
    browser.verdict.value = "supported"
    assert ids() == [c]
    browser.verdict.value = "(all)"
    browser.status_filter.value = "failed"
    assert ids() == [d]
    browser.status_filter.value = "(all)"
    browser.experiment.value = "(all)"
    browser.text.value = "LINEAR"
    assert ids() == [a]
    browser.text.value = "depth=2"
    assert ids() == [b]
    assert b[:8] in browser.table.value and c[:8] not in browser.table.value

    browser.text.value = ""
    browser.select(b[:8])
    assert browser.compare_button.disabled and not browser.report_button.disabled
    browser.select(b, c)
    assert not browser.compare_button.disabled
    html = browser.compare()
    assert b[:8] in html and c[:8] in html and "depth" in html
    assert "nbtk-browser-comparison" in browser.output.value

    path = browser.write_report()
    assert path == store.path / "reports" / f"{b}.html" and path.is_file()
    assert "cancer-gbm" in path.read_text(encoding="utf-8")
    assert "nbtk-report-link" in browser.message.value and f"{b}.html" in browser.message.value


# ---------------------------------------------------------------- live progress
def test_live_progress_displays_only_after_the_first_step_and_throttles(project: Path) -> None:
    import nbtoolkit as nbtk

    shown: list[str] = []

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(obj._repr_html_())

    def display(obj: Any, display_id: bool) -> Handle:
        assert display_id is True
        shown.append(obj._repr_html_())
        return Handle()

    with nbtk.start_run("progress-unit") as run:
        progress = LiveProgress("exp", run=run, display=display, interval=3600)
        run.add_listener(progress.listener)
        run.log_metric("acc", 0.5)  # a plain metric: nothing to show
        assert shown == []
        for step in range(10_000):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
            run.log_metric("lr", 0.1, step=step)
        assert len(shown) == 1 and progress.updates == 1  # the first one; the rest were throttled
        assert progress.latest() == {"loss": (9999, 1.0 / 10_000), "lr": (9999, 0.1)}  # exact
        for name in ("loss", "lr"):  # curves thinned to a bounded number of evenly spaced steps
            steps = [s for s, _ in progress.series[name]]
            assert MAX_POINTS <= len(steps) < 2 * MAX_POINTS and steps[0] == 0
            assert len({b - a for a, b in zip(steps, steps[1:], strict=False)}) == 1
        progress.finish()
        assert progress.listener not in run._listeners
    assert len(shown) == 2 and 'data-state="finished"' in shown[-1] and "step 9999" in shown[-1]


def test_live_progress_without_steps_never_displays() -> None:
    progress = LiveProgress("exp", display=lambda *a, **k: pytest.fail("displayed"))
    progress("acc", 1.0, None)
    progress.finish()
    assert progress.updates == 0


def test_sparkline_is_valid_svg_and_skips_non_finite_values() -> None:
    svg = sparkline_svg([(0, 1.0), (1, float("nan")), (2, 3.0), (3, float("inf")), (4, 2.0)])
    root = ET.fromstring(svg)
    points = root.find("{http://www.w3.org/2000/svg}polyline").get("points").split()
    assert len(points) == 3
    assert sparkline_svg([(0, 1.0)]).startswith("<svg")


def test_progress_and_form_cell_run_in_a_real_kernel(project: Path) -> None:
    cell = check_form("kernel-check", [CriterionRow("acc", ">=", target="0.9")],
                      body="import nbtoolkit as nbtk\nfor i in range(300):\n    nbtk.log_metric('loss', 1 / (i + 1), step=i)\nacc = 0.95\n").cell
    nb_path = make_notebook(project / "progress.ipynb", "%load_ext nbtoolkit", cell)
    nb = execute_notebook(nb_path, cwd=project)
    outputs = nb.cells[1].outputs
    htmls = [o.get("data", {}).get("text/html", "") for o in outputs]
    progress = [h for h in htmls if "nbtk-progress" in h]
    assert len(progress) == 1, htmls  # one display, updated in place
    assert 'data-state="finished"' in progress[0] and "step 299" in progress[0] and "<polyline" in progress[0]
    card = [h for h in htmls if "nbtk-run-card" in h]
    assert card and "supported" in card[0] and "kernel-check" in card[0]


def test_progress_module_does_not_import_ipywidgets() -> None:
    code = ("import sys, nbtoolkit.widgets.progress, nbtoolkit.magics; "
            "print('ipywidgets' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
