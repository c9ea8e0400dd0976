"""``nbtk reproduce``: recorded commit + diff + params in a fresh kernel; agreement and drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import git, make_notebook, nbtk_cli

pytestmark = pytest.mark.slow


def _setup(project: Path) -> Path:
    (project / ".gitignore").write_text(".nbtoolkit/\ndata/\n", encoding="utf-8")
    (project / "data").mkdir()
    (project / "data" / "values.txt").write_text("1 2 3\n", encoding="utf-8")
    (project / "offset_mod.py").write_text("OFFSET = 1\n", encoding="utf-8")
    nb = make_notebook(
        project / "exp.ipynb",
        "%load_ext nbtoolkit\nimport nbtoolkit as nbtk\nimport time",
        '%%experiment repro\n"""\nSuccess: total >= 0; fit_seconds >= 0\n"""\n'
        "start = time.perf_counter()\n"
        'nbtk.track_data("data/values.txt")\n'
        "import offset_mod\n"
        'values = [float(v) for v in open("data/values.txt").read().split()]\n'
        "total = sum(values) * scale + offset_mod.OFFSET\n"
        "fit_seconds = time.perf_counter() - start",
        parameters="scale = 2",
    )
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "experiment")
    return nb


def _run(project: Path, nb: Path, store: Any, *args: str) -> Any:
    res = nbtk_cli("run", str(nb), *args, cwd=project)
    assert res.returncode == 0, res.stderr
    return store.get_run(store.query_runs(limit=1)[0][0]["run_id"])


def test_reproduce_identical_environment(project: Path, store: Any) -> None:
    nb = _setup(project)
    original = _run(project, nb, store, "-p", "scale", "3")
    assert original.metrics["total"] == 19.0
    res = nbtk_cli("reproduce", original.run_id[:8], "--strict", cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.startswith("reproduced:")
    assert "metric total: 19.0 -> 19.0  ok" in res.stdout
    assert "fit_seconds" in res.stdout and "ignored (timing)" in res.stdout
    assert "drift" not in res.stdout
    again = store.get_run(original.run_id)
    rep_id = again.extra["reproduction"]["run_id"]
    assert again.extra["reproduction"]["result"] == "reproduced"
    rep = store.get_run(rep_id)
    assert rep.kind == "reproduction" and rep.origin_run_id == original.run_id and rep.status == "finished"
    assert rep.experiment == "repro" and rep.params["scale"] == 3
    assert rep.extra["reproduction"]["result"] == "reproduced"
    assert rep.lock().data["git"]["commit"] == original.lock().data["git"]["commit"]
    assert git(project, "worktree", "list").count("\n") == 1  # the temporary worktree is gone


def test_reproduce_uses_recorded_commit_and_diff_after_a_code_change(project: Path, store: Any) -> None:
    nb = _setup(project)
    (project / "offset_mod.py").write_text("OFFSET = 5\n", encoding="utf-8")  # uncommitted change
    original = _run(project, nb, store)
    assert original.metrics["total"] == 17.0 and original.artifact("git.diff") is not None
    (project / "offset_mod.py").write_text("OFFSET = 100\n", encoding="utf-8")
    git(project, "commit", "-q", "-am", "change the offset")
    res = nbtk_cli("reproduce", original.run_id, "--json", cwd=project)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    assert out["result"] == "reproduced", out
    assert [m for m in out["metrics"] if m["name"] == "total"][0]["reproduced"] == 17.0


def test_reproduce_after_changing_tracked_data_diverges(project: Path, store: Any) -> None:
    nb = _setup(project)
    original = _run(project, nb, store)
    (project / "data" / "values.txt").write_text("1 2 30\n", encoding="utf-8")
    res = nbtk_cli("reproduce", original.run_id, cwd=project)
    assert res.returncode == 1
    assert res.stdout.startswith("diverged:")
    assert "metric total: 13.0 -> 67.0  DIFFERS" in res.stdout
    assert "drift: data ~ data/values.txt" in res.stdout
    assert store.get_run(original.run_id).extra["reproduction"]["result"] == "diverged"


def test_reproduce_refuses_a_run_without_commit(project: Path, store: Any) -> None:
    run_id = store.create_run(experiment="x")
    res = nbtk_cli("reproduce", run_id, cwd=project)
    assert res.returncode == 2 and "git commit" in res.stderr


def test_reproduce_restores_dvc_tracked_data_from_the_cache(project: Path, store: Any) -> None:
    import subprocess
    import sys

    def dvc(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, check=True, capture_output=True, text=True)

    nb = _setup(project)
    (project / ".gitignore").write_text(".nbtoolkit/\n", encoding="utf-8")
    dvc("init", "-q")
    dvc("config", "core.analytics", "false")
    dvc("add", "-q", "data/values.txt")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "track data with dvc")
    original = _run(project, nb, store)
    assert {d.source for d in original.data if d.path == "data/values.txt"} == {"dvc", "track_data"}
    (project / "data" / "values.txt").write_text("5 5 5\n", encoding="utf-8")
    dvc("add", "-q", "data/values.txt")  # new version, not committed; the old one stays in .dvc/cache
    res = nbtk_cli("reproduce", original.run_id, "--json", cwd=project)
    out = json.loads(res.stdout)
    assert res.returncode == 0 and out["result"] == "reproduced", out
    assert [m for m in out["metrics"] if m["name"] == "total"][0]["reproduced"] == original.metrics["total"]
