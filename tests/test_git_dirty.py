"""Dirty means dirty: files nbtoolkit wrote itself never make the git tree dirty (real git, real kernels)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_NOTEBOOKS, git, nbtk_cli

from nbtoolkit.config import Settings
from nbtoolkit.envlock import capture_lock
from nbtoolkit.envlock.written import ledger_path, record_written, written_paths


def _git_lock(root: Path) -> dict[str, Any]:
    lock = capture_lock(Settings(root=root, store_path=root / ".nbtoolkit"), environ={})
    return {**lock.data["git"], "diff": lock.git_diff}


def test_written_files_are_not_dirty_until_edited(project: Path) -> None:
    out = project / "out.ipynb"
    out.write_text('{"cells": []}\n', encoding="utf-8")
    assert _git_lock(project)["dirty"] is True  # any other writer's file is a change
    record_written(out)
    assert written_paths(project) == ["out.ipynb"]
    state = _git_lock(project)
    assert state["dirty"] is False and state["untracked"] == []
    out.write_text('{"cells": [1]}\n', encoding="utf-8")  # the user edits it afterwards: a change again
    state = _git_lock(project)
    assert state["dirty"] is True and [u["path"] for u in state["untracked"]] == ["out.ipynb"]
    ledger = ledger_path(project)
    assert ledger is not None and ledger.parent == project / ".git"  # never inside the work tree


def test_report_folder_and_tracked_rewrite_are_not_dirty(project: Path) -> None:
    reports = project / "reports"
    reports.mkdir()
    for name in ("sweep.html", "run-1.html"):
        (reports / name).write_text(f"<p>{name}</p>", encoding="utf-8")
        record_written(reports / name)
    tracked = project / "result.ipynb"
    tracked.write_text("old\n", encoding="utf-8")
    git(project, "add", "result.ipynb")
    git(project, "commit", "-q", "-m", "tracked output")
    tracked.write_text("new\n", encoding="utf-8")
    record_written(tracked)
    state = _git_lock(project)
    assert state["dirty"] is False and state["changed"] == 0 and state["diff"] is None
    (reports / "notes.txt").write_text("mine\n", encoding="utf-8")  # a user file in the same folder
    (project / "pyproject.toml").write_text("# edited\n", encoding="utf-8")
    state = _git_lock(project)
    assert state["dirty"] is True and state["changed"] == 1
    assert [u["path"] for u in state["untracked"]] == ["reports/"]
    assert "pyproject.toml" in state["diff"] and "result.ipynb" not in state["diff"]


def test_untracked_files_recorded_by_name_size_and_hash(project: Path) -> None:
    (project / "helper.py").write_text("K = 2\n", encoding="utf-8")
    (project / "blob.bin").write_bytes(b"\0" * 10)
    state = _git_lock(project)
    assert state["untracked"] == [
        {"path": "blob.bin", "size": 10, "sha256": None},  # not text: named and sized only
        {"path": "helper.py", "size": 6, "sha256": hashlib.sha256(b"K = 2\n").hexdigest()},
    ]
    assert state["diff"] is None  # untracked files are not in the tracked diff


def test_lock_diff_names_untracked_changes(project: Path) -> None:
    settings = Settings(root=project, store_path=project / ".nbtoolkit")
    (project / "helper.py").write_text("K = 2\n", encoding="utf-8")
    a = capture_lock(settings, environ={})
    (project / "helper.py").write_text("K = 3\n", encoding="utf-8")
    (project / "extra.py").write_text("\n", encoding="utf-8")
    diff = a.diff(capture_lock(settings, environ={}))
    assert diff.code == {"untracked": ["+ extra.py", "~ helper.py"]}
    assert "code ~ untracked files: + extra.py, ~ helper.py" in diff.summary_lines()


@pytest.mark.slow
def test_run_with_output_then_reproduce_is_clean(project: Path, store: Any) -> None:
    nb = Path(shutil.copy(TEST_NOTEBOOKS / "small_experiment.ipynb", project / "small_experiment.ipynb"))
    git(project, "add", "small_experiment.ipynb")
    git(project, "commit", "-q", "-m", "notebook")
    first = nbtk_cli("run", str(nb), "-o", str(project / "out.ipynb"), cwd=project)
    assert first.returncode == 0, first.stderr
    assert (project / "out.ipynb").is_file()
    report = nbtk_cli("report", "--index", "-o", str(project / "index.html"), cwd=project)
    assert report.returncode == 0, report.stderr
    assert git(project, "status", "--porcelain").split() == ["??", "index.html", "??", "out.ipynb"]
    second = nbtk_cli("run", str(nb), "-p", "x", "2", cwd=project)  # new parameters: never served from a cache
    assert second.returncode == 0, second.stderr
    runs, _, _ = store.query_runs()
    latest = store.get_run(runs[0]["run_id"])
    assert latest.lock().data["git"]["dirty"] is False and latest.artifact("git.diff") is None
    rep = nbtk_cli("reproduce", latest.run_id, "--json", cwd=project)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    result = json.loads(rep.stdout)
    assert result["result"] == "reproduced", result
    assert not [line for line in result["drift"] if line.startswith("code ")]


def test_canary_plot_is_not_dirty(project: Path, store: Any, tmp_path: Path) -> None:
    """``nbtk canary --plot FILE`` inside the tree notes the PNG in the ledger like a report."""
    from _stability import demo_models, make_run, register

    from nbtoolkit.stability.promotion import promote

    m = demo_models()
    r1, r2 = make_run("cancer-logreg", roc_auc=0.96), make_run("cancer-gbm", roc_auc=0.97)
    register(store, tmp_path / "b", m["lr"], model="cancer", version="1.0.0", run_id=r1)
    register(store, tmp_path / "b", m["gb"], model="cancer", version="1.0.1", run_id=r2)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store)
    csv = tmp_path / "traffic.csv"  # outside the tree: only the plot is written inside it
    m["frame"].to_csv(csv, index=False)
    assert _git_lock(project)["dirty"] is False
    plot = project / "plots" / "canary.png"
    plot.parent.mkdir()
    out = nbtk_cli("canary", "cancer@1.0.0", "cancer@1.0.1", str(csv), "--key", "uid", "--label", "label",
                   "--sla", "max.error_rate=0.5", "--plot", str(plot), cwd=project)
    assert out.returncode == 0, out.stdout + out.stderr
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "plots/canary.png" in written_paths(project)
    state = _git_lock(project)
    assert state["dirty"] is False and state["untracked"] == [], state
    plot.write_bytes(plot.read_bytes() + b"edited")  # a changed plot is the user's change again
    assert _git_lock(project)["dirty"] is True
