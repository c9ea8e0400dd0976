"""The demo experiment, end to end, in a fresh project folder.

``nbtk demo`` copies the two demo notebooks (a logistic-regression baseline and a gradient
boosting challenger on scikit-learn's breast-cancer data) into a new git repository, executes
them, and lists the runs they recorded. Later pipeline stages add their steps here.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from nbtoolkit.errors import InputError

DEMO_NOTEBOOKS = ("baseline_logreg.ipynb", "challenger_gbm.ipynb")


def demo_notebooks_dir() -> Path:
    """Where the demo notebooks live: inside the wheel, or ``notebooks/`` in a source checkout."""
    packaged = Path(str(resources.files("nbtoolkit"))) / "demo_notebooks"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "notebooks"


@dataclass
class DemoResult:
    """What the demo produced."""

    folder: Path
    runs: dict[str, str] = field(default_factory=dict)  # notebook -> run id
    outputs: dict[str, Path] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


def prepare_project(folder: Path, *, force: bool = False) -> Path:
    """Create a demo project: the notebooks, a pyproject with [tool.nbtoolkit], a git commit."""
    if folder.exists() and any(folder.iterdir()):
        if not force:
            raise InputError(f"{folder} exists and is not empty; pass --force to replace it or choose another -o folder.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
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


def execute_notebook(folder: Path, name: str, output: Path, parameters: dict[str, Any] | None = None) -> None:
    """Run one notebook with papermill in ``folder`` (its own fresh kernel)."""
    import os

    import papermill as pm

    saved = {k: os.environ.get(k) for k in ("NBTOOLKIT_STORE", "NBTOOLKIT_NOTEBOOK")}
    os.environ["NBTOOLKIT_STORE"] = str(folder / ".nbtoolkit")
    os.environ["NBTOOLKIT_NOTEBOOK"] = str(folder / name)
    try:
        pm.execute_notebook(str(folder / name), str(output), parameters=parameters or {}, cwd=str(folder), progress_bar=False)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(folder: Path, *, force: bool = False, echo: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo pipeline in ``folder`` and return what it produced."""
    from nbtoolkit.config import load_settings
    from nbtoolkit.store import open_store

    folder = prepare_project(Path(folder).resolve(), force=force)
    result = DemoResult(folder=folder)
    outputs = folder / "outputs"
    outputs.mkdir(exist_ok=True)
    store = open_store(load_settings(folder, store=folder / ".nbtoolkit"))
    for name in DEMO_NOTEBOOKS:
        echo(f"• executing {name} ...")
        before = {r["run_id"] for r in store.query_runs()[0]}
        out = outputs / name
        execute_notebook(folder, name, out)
        new = [r["run_id"] for r in store.query_runs()[0] if r["run_id"] not in before]
        if new:
            result.runs[name] = new[0]
        result.outputs[name] = out
    return result
