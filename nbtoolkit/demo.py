"""The demo experiment, end to end, in a fresh project folder.

``nbtk demo`` copies the two demo notebooks (a logistic-regression baseline and a gradient
boosting challenger on scikit-learn's breast-cancer data) into a new git repository, executes
them with papermill, sweeps and reproduces the challenger, approves, exports, verifies and
promotes the challenger's model, and writes the reports last (so they show the approval).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtoolkit._resources import demo_notebooks_dir
from nbtoolkit.errors import ExecutionError, InputError

DEMO_NOTEBOOKS = ("baseline_logreg.ipynb", "challenger_gbm.ipynb")


@dataclass
class DemoResult:
    """What the demo produced."""

    folder: Path
    runs: dict[str, str] = field(default_factory=dict)  # notebook -> run id
    outputs: dict[str, Path] = field(default_factory=dict)
    reports: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


MARKER = ".nbtk-demo"


def prepare_project(folder: Path, *, force: bool = False) -> Path:
    """Create a demo project: the notebooks, a pyproject with [tool.nbtoolkit], a git commit.

    A folder made by an earlier demo (it holds the ``.nbtk-demo`` marker) is replaced; any other
    non-empty folder is refused unless ``force``.
    """
    if folder.exists() and any(folder.iterdir()):
        if not (force or (folder / MARKER).is_file()):
            raise InputError(f"{folder} exists and is not empty; pass --force to replace it or choose another -o folder.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by `nbtk demo`; the next `nbtk demo` replaces this folder\n", encoding="utf-8")
    for name in DEMO_NOTEBOOKS:
        shutil.copy(demo_notebooks_dir() / name, folder / name)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "nbtk-demo"\nversion = "0.0.0"\n\n[tool.nbtoolkit]\n\n'
        "[tool.nbtoolkit.export]\nrequire_reproduced = false\n",
        encoding="utf-8",
    )
    (folder / ".gitignore").write_text(".nbtoolkit/\noutputs/\n", encoding="utf-8")
    _git(folder, "init", "-q", "-b", "main")
    _git(folder, "-c", "user.name=nbtk demo", "-c", "user.email=demo@example.invalid", "add", "-A")
    _git(folder, "-c", "user.name=nbtk demo", "-c", "user.email=demo@example.invalid", "commit", "-q", "-m", "demo experiments")
    return folder


def run_demo(folder: Path, *, force: bool = False, jobs: int = 2, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo pipeline in a new project ``folder`` and return what it produced.

    Steps: baseline and challenger notebooks (papermill), a parallel sweep of the challenger,
    a reproduction of the challenger run, approval, export of a verified bundle, a prediction
    through the bundle, promotion to ``production``, and last the HTML reports (run,
    comparison, sweep with one page per child, experiment log), so they show the final state.
    """
    from nbtoolkit.config import load_settings
    from nbtoolkit.execute import reproduce, run_notebook, sweep
    from nbtoolkit.export import approve, export_bundle, load_bundle, verify_bundle
    from nbtoolkit.report import (
        write_comparison_report,
        write_index_report,
        write_run_report,
        write_sweep_report,
    )
    from nbtoolkit.stability.promotion import promote
    from nbtoolkit.store import open_store

    folder = prepare_project(Path(folder).resolve(), force=force)
    result = DemoResult(folder=folder)
    settings = load_settings(folder, store=folder / ".nbtoolkit")
    store = open_store(settings)
    outputs = folder / "outputs"
    reports = folder / "reports"

    for name in DEMO_NOTEBOOKS:
        echo(f"• nbtk run {name}")
        outcome = run_notebook(folder / name, output=outputs / name, cwd=folder, store=store, settings=settings)
        if not outcome.ok:
            raise ExecutionError(f"demo notebook {name} did not finish: {outcome.describe_failure()}")
        result.runs[name] = outcome.run_id
        result.outputs[name] = outputs / name
        echo(f"  run {outcome.run_id[:8]}: {outcome.status}, verdict {outcome.verdict}")
    baseline_id, challenger_id = (result.runs[n] for n in DEMO_NOTEBOOKS)

    echo(f"• nbtk sweep {DEMO_NOTEBOOKS[1]} --grid learning_rate=0.05,0.2 --grid n_estimators=50,100 --jobs {jobs}")
    swept = sweep(
        folder / DEMO_NOTEBOOKS[1], grid=["learning_rate=0.05,0.2", "n_estimators=50,100"], jobs=jobs,
        cwd=folder, store=store, settings=settings,
    )
    result.extra["sweep_id"] = swept.sweep_id
    echo(f"  sweep {str(swept.sweep_id)[:8]}: {swept.status}, {len(swept.runs)} children")

    echo(f"• nbtk reproduce {challenger_id[:8]}")
    rep = reproduce(challenger_id, store=store, settings=settings)
    result.extra["reproduction"] = rep.result
    echo(f"  {rep.result}" + "".join(f"\n    {line}" for line in rep.drift[:5]))

    echo(f"• nbtk approve {challenger_id[:8]} --by demo-reviewer; nbtk export --model cancer-gbm")
    approve(challenger_id, by="demo-reviewer", note="Criteria met with intervals; reproduced.", store=store)
    exported = export_bundle(challenger_id, model="cancer-gbm", out_dir=folder / "bundles", store=store)
    verified = verify_bundle(exported.path)
    bundle = load_bundle(exported.path)
    sample = _sample_rows(bundle.signature)
    result.extra["bundle"] = exported.path
    result.extra["verified_files"] = len(verified.files)
    result.extra["predictions"] = [int(p) for p in bundle.predict(sample)]
    echo(f"  bundle {exported.path} verified; predictions on 3 rows: {result.extra['predictions']}")

    echo(f"• nbtk promote cancer-gbm {exported.version} --to production")
    promote("cancer-gbm", exported.version, to="production", by="demo-reviewer", reason="demo handoff", store=store, settings=settings)

    # Reports last, so they show the approval and the reproduction instead of a stale state.
    echo("• nbtk report (run, comparison, sweep, experiment log)")
    result.reports = {
        "run": write_run_report(challenger_id, reports / "challenger.html", store=store),
        "comparison": write_comparison_report(baseline_id, challenger_id, reports / "comparison.html", store=store),
        # a folder: the sweep page plus one linked report per child, which the log links to too
        "sweep": write_sweep_report(str(swept.sweep_id), f"{reports}/", store=store),
        "index": write_index_report(reports / "index.html", store=store),
    }
    return result


def _sample_rows(signature: Any) -> Any:
    """Three rows of the demo data, in the columns the bundle's signature names."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).data
    columns = [c["name"] for c in signature.get("columns", [])] or list(frame.columns)
    return frame[columns].head(3)
