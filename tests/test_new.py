"""``nbtk new``: the new-experiment notebook is valid, runs, and records its declaration."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import nbtk_cli


def test_new_notebook_runs_and_records_its_declaration(project: Path, store: object) -> None:
    res = nbtk_cli("new", "churn-gbm", "--hypothesis", "GBM beats the bar", "--owner", "ana",
                   "--scope", "feature set v3", "--until", "2030-01-31", cwd=project)
    assert res.returncode == 0, res.stderr
    nb = json.loads((project / "churn-gbm.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "seed = 0" in "".join(tagged[0]["source"])

    run = nbtk_cli("run", "churn-gbm.ipynb", "-p", "seed", "3", cwd=project)
    assert run.returncode == 0, run.stderr + run.stdout
    from nbtoolkit import get_run, runs

    frame = runs(experiment="churn-gbm", store=store)  # type: ignore[arg-type]
    assert len(frame) == 1
    record = get_run(frame["run_id"][0], store=store)  # type: ignore[arg-type]
    assert record.declaration.hypothesis == "GBM beats the bar"
    assert record.declaration.owner == "ana" and record.declaration.scope == "feature set v3"
    assert str(record.declaration.until) == "2030-01-31"
    assert record.params["seed"] == 3
    assert record.metrics["score"] == 0.0 and record.verdict == "rejected"


def test_new_refuses_bad_names_text_and_overwrites(project: Path) -> None:
    assert nbtk_cli("new", "ok-name", cwd=project).returncode == 0
    again = nbtk_cli("new", "ok-name", cwd=project)
    assert again.returncode == 2 and "exists" in again.stderr and "Traceback" not in again.stderr
    assert nbtk_cli("new", "ok-name", "--force", cwd=project).returncode == 0
    bad = nbtk_cli("new", "../escape", cwd=project)
    assert bad.returncode == 2 and "path separators" in bad.stderr
    assert not (project.parent / "escape.ipynb").exists()
    quote = nbtk_cli("new", "x", "--hypothesis", 'breaks """ out', cwd=project)
    assert quote.returncode == 2 and "triple quotes" in quote.stderr
