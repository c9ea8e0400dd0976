"""``nbtk test`` and ``pytest --nbtk``: smoke parameters, fresh kernels, readable failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_NOTEBOOKS, nbtk_cli

pytestmark = pytest.mark.slow


def _copy(project: Path, *names: str) -> Path:
    folder = project / "nbs"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(TEST_NOTEBOOKS / name, folder / name)
    return folder


def test_nbtk_test_runs_smoke_params_and_fails_on_errors_and_rejections(project: Path, store: Any) -> None:
    folder = _copy(project, "small_experiment.ipynb", "rejected_verdict.ipynb", "fails_in_cell_2.ipynb")
    res = nbtk_cli("test", str(folder), "--jobs", "2", cwd=project)
    assert res.returncode == 1
    lines = {line.split()[1].rsplit("/", 1)[-1]: line.split()[0] for line in res.stdout.splitlines() if line.startswith(("PASS", "FAIL"))}
    assert lines == {"small_experiment.ipynb": "PASS", "rejected_verdict.ipynb": "FAIL", "fails_in_cell_2.ipynb": "FAIL"}
    assert "1 passed, 2 failed" in res.stdout
    assert "verdict is rejected" in res.stderr
    assert "failed in cell 2" in res.stderr and "raise ValueError('boom in cell 2')" in res.stderr
    runs, params, _ = store.query_runs(kind="test")
    assert len(runs) == 3
    smoke = {p["value"] for p in params if p["name"] == "x"}
    assert smoke == {"1", "2"}  # metadata.nbtoolkit.smoke values were injected
    # smoke runs never become baselines
    assert store.latest_run("small", verdict="supported") is None


def test_pytest_plugin_collects_notebooks_with_readable_failures(project: Path) -> None:
    folder = _copy(project, "small_experiment.ipynb", "fails_in_cell_2.ipynb")
    installed = any(ep.name == "nbtoolkit" for ep in entry_points(group="pytest11"))
    args = [sys.executable, "-m", "pytest", "--nbtk", str(folder), "-p", "no:cacheprovider", "-q", "--rootdir", str(project)]
    if not installed:
        args[3:3] = ["-p", "nbtoolkit.pytest_plugin"]
    res = subprocess.run(args, cwd=project, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "1 failed, 1 passed" in res.stdout
    assert "fails_in_cell_2.ipynb: failed in cell 2" in res.stdout
    assert "ValueError: boom in cell 2" in res.stdout and "cell source:" in res.stdout
    assert "Traceback (most recent call last)" in res.stdout


def test_plugin_is_inert_without_the_option(project: Path) -> None:
    folder = _copy(project, "fails_in_cell_2.ipynb")
    installed = any(ep.name == "nbtoolkit" for ep in entry_points(group="pytest11"))
    args = [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", "-q", "--rootdir", str(project)]
    if not installed:
        args[3:3] = ["-p", "nbtoolkit.pytest_plugin"]
    res = subprocess.run(args, cwd=project, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert res.returncode == 5, res.stdout  # no tests collected


def test_smoke_waves_run_baselines_first(tmp_path: Path) -> None:
    from conftest import make_notebook

    from nbtoolkit.execute.nbtest import _waves

    a = make_notebook(tmp_path / "a.ipynb", '%%experiment challenger --baseline base-exp\nx = 1')
    b = make_notebook(tmp_path / "b.ipynb", "%%experiment base-exp\nx = 1")
    c = make_notebook(tmp_path / "c.ipynb", "print(1)")
    assert _waves([a, b, c]) == [[1, 2], [0]]
    assert _waves([b, c]) == [[0, 1]]
