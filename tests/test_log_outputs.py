"""``nbtk.log_*`` calls that end a cell print nothing (a real notebook in a real kernel)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import execute_notebook, make_notebook

pytestmark = pytest.mark.slow

LOG_CALLS = {
    "model": 'nbtk.log_model(model, "model", sample_input=X[:2])',
    "predictions": "nbtk.log_predictions(y, model.predict_proba(X)[:, 1])",
    "artifact": 'nbtk.log_artifact("notes.txt")',
    "figure": 'nbtk.log_figure(fig, "curve")',
    "metric": 'nbtk.log_metric("loss", 0.5)',
    "params": "nbtk.log_params(depth=3)",
}


def test_log_calls_ending_a_cell_have_no_output(project: Path) -> None:
    (project / "notes.txt").write_text("hello\n", encoding="utf-8")
    nb = make_notebook(
        project / "logs.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk\nimport matplotlib\nmatplotlib.use('Agg')\n"
        "import matplotlib.pyplot as plt\nfrom sklearn.linear_model import LogisticRegression\n"
        "X = [[0.0], [1.0], [2.0], [3.0]]\ny = [0, 0, 1, 1]\nmodel = LogisticRegression().fit(X, y)\n"
        "fig, ax = plt.subplots()\nctx = nbtk.start_run('log-outputs')\nrun = ctx.__enter__()",
        *LOG_CALLS.values(),
        "run.run_id",  # an expression that does return something: it must show
        "ctx.__exit__(None, None, None)",
    )
    executed = execute_notebook(nb, cwd=project)
    cells = executed.cells[1:1 + len(LOG_CALLS)]
    for name, cell in zip(LOG_CALLS, cells, strict=True):
        assert cell.source == LOG_CALLS[name]
        assert cell.outputs == [], f"log_{name} printed {cell.outputs}"
    shown = executed.cells[1 + len(LOG_CALLS)].outputs
    assert [o["output_type"] for o in shown] == ["execute_result"]  # the check can see output
    from nbtoolkit.store import open_store

    store = open_store()
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert {a.name for a in rec.artifacts} >= {"model", "predictions", "notes.txt", "curve.png"}
