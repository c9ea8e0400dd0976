"""``%%experiment``: in an in-process IPython shell, and in real kernels (nbclient, papermill)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import execute_notebook, make_notebook

RUN_MIME = "application/vnd.nbtoolkit.run.v1+json"


@pytest.fixture
def shell(project: Path) -> Iterator[Any]:
    import sys

    from IPython.core.interactiveshell import InteractiveShell

    main = sys.modules["__main__"]  # the shell swaps it; multiprocessing (spawn) needs the real one
    sh = InteractiveShell.instance()
    sh.reset(new_session=True)
    sh.run_cell("%load_ext nbtoolkit").raise_error()
    sh.run_cell("import nbtoolkit as nbtk").raise_error()
    yield sh
    sh.reset(new_session=True)
    sys.modules["__main__"] = main


def run_cell(shell: Any, source: str) -> tuple[Any, list[dict[str, Any]]]:
    """Run a cell, return (result, rich outputs as mime bundles)."""
    from IPython.utils.capture import capture_output

    with capture_output(display=True) as cap:
        result = shell.run_cell(source)
    return result, [o.data for o in cap.outputs]


def only_run(store: Any) -> Any:
    rows = store.query_runs()[0]
    assert len(rows) == 1, rows
    return store.get_run(rows[0]["run_id"])


def test_cell_records_params_metrics_declaration_and_shows_a_card(shell: Any, store: Any) -> None:
    cell = '''%%experiment churn --owner cli-owner --tag team=growth --success "fit_seconds <= 30"
"""
Free text describing the run.

Hypothesis: boosting beats <b>the</b> baseline
Success: roc_auc >= 0.9; accuracy >= 0.5
Scope: feature set v3
Until: 2030-01-31
"""
learning_rate = 0.1
n_estimators = 200
label = "gbm"
roc_auc = 0.93 + learning_rate * 0
accuracy = 0.7
fit_seconds = 2
not_a_metric = 123
nbtk.log(extra_metric=1.5)
'''
    result, outputs = run_cell(shell, cell)
    result.raise_error()
    rec = only_run(store)
    assert rec.status == "finished" and rec.verdict == "supported"
    assert rec.params == {"learning_rate": 0.1, "n_estimators": 200, "label": "gbm"}
    assert rec.metrics == {"roc_auc": 0.93, "accuracy": 0.7, "fit_seconds": 2.0, "extra_metric": 1.5}
    d = rec.declaration
    assert d.hypothesis == "boosting beats <b>the</b> baseline"
    assert d.scope == "feature set v3" and d.owner == "cli-owner" and str(d.until) == "2030-01-31"
    assert d.success[-1].replace(" ", "") == "fit_seconds<=30"
    assert rec.tags == {"team": "growth"}
    assert rec.source == "kernel"
    # the namespace keeps the cell's variables
    assert shell.user_ns["n_estimators"] == 200 and shell.user_ns["not_a_metric"] == 123
    cards = [o for o in outputs if RUN_MIME in o]
    assert len(cards) == 1
    card = cards[0]
    assert card[RUN_MIME]["run_id"] == rec.run_id and card[RUN_MIME]["verdict"] == "supported"
    html, text = card["text/html"], card["text/plain"]
    for part in ("supported", "roc_auc &gt;= 0.9", rec.run_id[:12]):
        assert part in html
    assert "<b>the</b>" not in html and "&lt;b&gt;the&lt;/b&gt;" in html  # escaped
    for part in ("supported", "roc_auc >= 0.9", "accuracy >= 0.5", rec.run_id[:12]):
        assert part in text


def test_rejected_verdict_and_trailing_expression(shell: Any, store: Any) -> None:
    result, outputs = run_cell(shell, '%%experiment low --success "auc >= 0.9"\nauc = 0.5\nauc * 2\n')
    result.raise_error()
    assert result.result == 1.0
    rec = only_run(store)
    assert rec.verdict == "rejected"
    assert "rejected" in [o for o in outputs if RUN_MIME in o][0]["text/plain"]


@pytest.mark.parametrize(
    "cell",
    [
        '%%experiment bad --success "auc >="\nside_effect = 1\n',
        '%%experiment bad\n"""\nSuccess: auc >> 3\n"""\nside_effect = 1\n',
        '%%experiment bad --baseline nobody-ran-this\nside_effect = 1\n',
        '%%experiment bad --until not-a-date\nside_effect = 1\n',
        '%%experiment ../bad\nside_effect = 1\n',
    ],
)
def test_usage_errors_stop_before_the_body(shell: Any, store: Any, cell: str) -> None:
    from IPython.core.error import UsageError

    result, _ = run_cell(shell, cell)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    assert str(result.error_in_exec)
    assert "side_effect" not in shell.user_ns
    assert store.query_runs()[0] == []


def test_failing_cell_records_failed_run_and_reraises(shell: Any, store: Any) -> None:
    result, outputs = run_cell(shell, "%%experiment boom\nx = 1\nraise ValueError('kaput')\n")
    assert isinstance(result.error_in_exec, ValueError)
    rec = only_run(store)
    assert rec.status == "failed" and "ValueError: kaput" in rec.error
    assert rec.params == {"x": 1}
    assert "failed" in [o for o in outputs if RUN_MIME in o][0]["text/plain"]


def test_baseline_by_prefix_in_magic(shell: Any, store: Any) -> None:
    run_cell(shell, '%%experiment base --success "auc >= 0.5"\nauc = 0.8\n')[0].raise_error()
    base = only_run(store).run_id
    run_cell(shell, f'%%experiment ch --baseline {base[:6]} --success "auc >= baseline.auc + 0.1"\nauc = 0.95\n')[0].raise_error()
    ch = [r for r in store.query_runs()[0] if r["experiment"] == "ch"][0]
    rec = store.get_run(ch["run_id"])
    assert rec.baseline_run_id == base and rec.verdict == "supported"


# ----------------------------------------------------------------------------- real kernels
EXPERIMENT_CELL = '''%%experiment kernel-exp --success "score >= 0.5"
"""
Hypothesis: a real kernel records the run
"""
lr = 0.01
depth = 2
score = 0.75 + alpha * 0
'''


def test_real_kernel_records_parameters_cell_and_card(project: Path, store: Any) -> None:
    nb_path = make_notebook(
        project / "exp.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk",
        EXPERIMENT_CELL,
        parameters="alpha = 3\nname = 'first'",
    )
    nb = execute_notebook(nb_path, cwd=project)
    rec = only_run(store)
    assert rec.status == "finished" and rec.verdict == "supported"
    assert rec.params == {"alpha": 3, "name": "first", "lr": 0.01, "depth": 2}
    assert rec.metrics == {"score": 0.75}
    # nbclient tells the kernel nothing about the file: found by its executed parameters cell
    assert Path(rec.notebook_path or "").name == "exp.ipynb" and rec.notebook_hash
    outputs = nb.cells[-1].outputs
    bundles = [o["data"] for o in outputs if o.get("output_type") == "display_data"]
    assert len(bundles) == 1
    assert bundles[0][RUN_MIME]["run_id"] == rec.run_id
    assert "supported" in bundles[0]["text/html"] and "score &gt;= 0.5" in bundles[0]["text/html"]
    # the saved notebook keeps the card
    nbformat.write(nb, project / "out.ipynb")
    saved = json.loads((project / "out.ipynb").read_text(encoding="utf-8"))
    assert rec.run_id in json.dumps(saved["cells"][-1]["outputs"])


def test_papermill_injected_values_override_cell_literals(project: Path, store: Any) -> None:
    import papermill as pm

    nb_path = make_notebook(
        project / "pm.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk",
        EXPERIMENT_CELL,
        parameters="alpha = 3\nname = 'first'",
    )
    pm.execute_notebook(
        str(nb_path), str(project / "pm_out.ipynb"), parameters={"alpha": 0, "lr": 0.5, "name": "injected"},
        kernel_name="python3", progress_bar=False, cwd=str(project),
    )
    rec = only_run(store)
    assert rec.params == {"alpha": 0, "name": "injected", "lr": 0.5, "depth": 2}
    assert rec.metrics == {"score": 0.75}
    out = nbformat.read(project / "pm_out.ipynb", as_version=4)
    assert any(RUN_MIME in o.get("data", {}) for c in out.cells for o in c.get("outputs", []))
