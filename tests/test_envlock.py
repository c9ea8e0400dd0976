"""Environment locks: real git repositories, real DVC, real (fake-installed) distributions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbtoolkit.config import DEFAULT_ENV_ALLOWLIST, Settings
from nbtoolkit.envlock import LOCK_SCHEMA, EnvLock, LockDiff, capture_lock
from nbtoolkit.errors import StoreError

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
REMOTE_TOKEN = "ghp_SECRET123token"

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "DVC_NO_ANALYTICS": "1",
}


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run(args, cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def dvc(cwd: Path, *args: str) -> str:
    return run(cwd, sys.executable, "-m", "dvc", *args)


def make_settings(root: Path, **changes: Any) -> Settings:
    return Settings(root=root, store_path=root / ".nbtoolkit", **changes)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    run(root, "git", "init", "-q", "-b", "main")
    (root / "train.py").write_text("LR = 0.1\n")
    run(root, "git", "add", "train.py")
    run(root, "git", "commit", "-q", "-m", "first")
    run(
        root,
        "git",
        "remote",
        "add",
        "origin",
        f"https://user:{REMOTE_TOKEN}@github.com/org/repo.git",
    )
    return root


def lock_from(**sections: Any) -> EnvLock:
    return EnvLock.from_dict({"schema": LOCK_SCHEMA, **sections})


# --------------------------------------------------------------------------- git


def test_git_state_clean_repository(repo: Path) -> None:
    lock = capture_lock(make_settings(repo), environ={})
    git = lock.data["git"]
    assert git["commit"] == run(repo, "git", "rev-parse", "HEAD").strip()
    assert git["branch"] == "main"
    assert git["dirty"] is False
    assert git["diff_sha256"] is None and lock.git_diff is None
    assert git["remotes"] == {"origin": "https://github.com/org/repo.git"}
    assert Path(git["root"]) == repo.resolve()


def test_dirty_repository_diff_is_captured_without_secrets(repo: Path) -> None:
    (repo / "train.py").write_text(
        f"LR = 0.2\nAWS_SECRET_ACCESS_KEY = '{AWS_SECRET}'\n"
        f"URL = 'https://user:{REMOTE_TOKEN}@github.com/org/repo.git'\n"
    )
    notebook = repo / "analysis.ipynb"
    notebook.write_text('{"cells": []}')
    lock = capture_lock(
        make_settings(repo),
        notebook_path=notebook,
        seeds={"numpy": 7},
        environ={"AWS_SECRET_ACCESS_KEY": AWS_SECRET},
    )

    git = lock.data["git"]
    assert git["dirty"] is True
    assert [u["path"] for u in git["untracked"]] == ["analysis.ipynb"]
    assert lock.git_diff is not None
    assert "+LR = 0.2" in lock.git_diff and "-LR = 0.1" in lock.git_diff
    assert git["diff_sha256"] == hashlib.sha256(lock.git_diff.encode("utf-8")).hexdigest()
    assert lock.data["notebook"] == {
        "path": "analysis.ipynb",
        "sha256": hashlib.sha256(notebook.read_bytes()).hexdigest(),
    }
    assert lock.data["seeds"] == {"numpy": 7}

    dumped = json.dumps(lock.to_dict())
    for text in (dumped, lock.git_diff, repr(lock), lock._repr_html_()):
        assert AWS_SECRET not in text
        assert "wJalrXUtnFEMI" not in text
        assert REMOTE_TOKEN not in text


def test_untracked_file_alone_makes_tree_dirty_but_store_does_not(repo: Path) -> None:
    store = repo / ".nbtoolkit"
    store.mkdir()
    (store / "runs.db").write_text("x")
    assert capture_lock(make_settings(repo), environ={}).data["git"]["dirty"] is False

    (repo / "new_module.py").write_text("x = 1\n")
    lock = capture_lock(make_settings(repo), environ={})
    assert lock.data["git"]["dirty"] is True
    assert lock.data["git"]["untracked"] == [
        {"path": "new_module.py", "size": 6, "sha256": hashlib.sha256(b"x = 1\n").hexdigest()}]
    assert lock.git_diff is None


def test_outside_a_repository_git_is_none(tmp_path: Path) -> None:
    lock = capture_lock(
        make_settings(tmp_path), notebook_path=tmp_path / "missing.ipynb", environ={}
    )
    assert lock.data["git"] is None and lock.git_diff is None
    assert lock.data["notebook"] == {"path": "missing.ipynb", "sha256": None}


# --------------------------------------------------------------------------- packages


def test_vcs_distribution_with_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    info = site / "fakepkg-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: FakePkg\nVersion: 1.0\n\nLong text.\n"
    )
    (info / "direct_url.json").write_text(
        json.dumps(
            {
                "url": "git+https://user:s3cr3tpass@example.com/fake.git",
                "vcs_info": {"vcs": "git", "commit_id": "abc"},
            }
        )
    )
    before = capture_lock(make_settings(tmp_path), environ={})
    assert "fakepkg" not in before.packages

    monkeypatch.syspath_prepend(str(site))
    lock = capture_lock(make_settings(tmp_path), environ={})
    assert lock.data["packages"]["fakepkg"] == {
        "version": "1.0",
        "origin": "vcs",
        "url": "git+https://example.com/fake.git",
        "commit": "abc",
    }
    assert lock.packages["fakepkg"] == "1.0"
    assert "s3cr3tpass" not in json.dumps(lock.to_dict())
    assert before.diff(lock).packages_added == {"fakepkg": "1.0@abc"}


def test_installing_into_a_watched_folder_invalidates_the_package_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    settings = make_settings(tmp_path)
    assert "editpkg" not in capture_lock(settings, environ={}).packages

    info = site / "editpkg-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: editpkg\nVersion: 0.3\n")
    (info / "direct_url.json").write_text(
        json.dumps({"url": "file:///src/editpkg", "dir_info": {"editable": True}})
    )
    lock = capture_lock(settings, environ={})
    assert lock.data["packages"]["editpkg"]["origin"] == "editable"
    assert lock.packages["editpkg"] == "0.3"


def test_real_packages_are_recorded(tmp_path: Path) -> None:
    lock = capture_lock(make_settings(tmp_path), environ={})
    assert lock.packages["pytest"] == pytest.__version__
    assert lock.data["packages"]["pytest"]["origin"] in {"index", "url", "editable", "vcs"}
    assert lock.data["python"]["version"] == ".".join(map(str, sys.version_info[:3]))


# --------------------------------------------------------------------------- DVC


def _dvc_md5(dvc_file: Path) -> str:
    import yaml

    return yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]


def test_dvc_tracked_data_and_pipeline(repo: Path) -> None:
    dvc(repo, "init", "-q")
    (repo / "data.csv").write_text("a,b\n1,2\n")
    dvc(repo, "add", "-q", "data.csv")
    dvc(
        repo,
        "stage",
        "add",
        "-q",
        "-n",
        "copy",
        "-d",
        "data.csv",
        "-o",
        "out",
        "mkdir -p out && cp data.csv out/",
    )
    dvc(repo, "repro", "-q")
    settings = make_settings(repo)

    first = capture_lock(settings, environ={})
    entries = {(e["path"], e["source"]): e for e in first.data["data"]}
    md5 = _dvc_md5(repo / "data.csv.dvc")
    assert entries["data.csv", "dvc"]["md5"] == md5
    assert entries["data.csv", "dvc"]["size"] == len("a,b\n1,2\n")
    out = entries["out", "dvc.lock"]
    assert out["md5"].endswith(".dir") and out["nfiles"] == 1

    (repo / "data.csv").write_text("a,b\n1,2\n3,4\n")
    dvc(repo, "add", "-q", "data.csv")
    second = capture_lock(settings, environ={})
    new_md5 = _dvc_md5(repo / "data.csv.dvc")
    assert new_md5 != md5

    changes = first.diff(second)
    assert changes.data == {"data.csv": (md5, new_md5)}
    assert any(line.startswith("data ~ data.csv") for line in changes.summary_lines())


def test_dvc_files_parsed_without_dvc_in_nested_folders(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  size: 30\n  nfiles: 3\n  path: raw\n"
    )
    # inside a DVC-tracked output, a virtual environment and a hidden folder: never read
    (tmp_path / "data" / "raw").mkdir()
    (tmp_path / "data" / "raw" / "inner.dvc").write_text("outs:\n- md5: aa\n  path: inner\n")
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / "venv" / "x.dvc").write_text("outs:\n- md5: bb\n  path: x\n")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "y.dvc").write_text("outs:\n- md5: cc\n  path: y\n")
    (tmp_path / "broken.dvc").write_text("outs: [unclosed\n")

    lock = capture_lock(make_settings(tmp_path), environ={})
    assert lock.data["data"] == [
        {
            "path": "data/raw",
            "md5": "0123456789abcdef0123456789abcdef.dir",
            "size": 30,
            "nfiles": 3,
            "source": "dvc",
        }
    ]


# --------------------------------------------------------------------------- env, conda


def test_allow_list_records_only_listed_non_secret_variables(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, env_allowlist=(*DEFAULT_ENV_ALLOWLIST, "MY_VAR", "EXP_*", "MY_API_TOKEN")
    )
    environ = {
        "MY_VAR": "1",
        "EXP_NAME": "baseline",
        "EXP_MIRROR": "https://me:pa55word99@mirror.example/simple",
        "OTHER_VAR": "not listed",
        "MY_API_TOKEN": "tok-abcdef123",
        "OMP_NUM_THREADS": "4",
    }
    lock = capture_lock(settings, environ=environ)
    assert lock.data["env"] == {
        "EXP_MIRROR": "https://mirror.example/simple",
        "EXP_NAME": "baseline",
        "MY_VAR": "1",
        "OMP_NUM_THREADS": "4",
    }
    dumped = json.dumps(lock.to_dict())
    assert "tok-abcdef123" not in dumped and "pa55word99" not in dumped


def test_conda_environment_recorded_when_active(tmp_path: Path) -> None:
    assert capture_lock(make_settings(tmp_path), environ={}).data["conda"] is None
    lock = capture_lock(
        make_settings(tmp_path),
        environ={"CONDA_PREFIX": "/opt/conda/envs/ml", "CONDA_DEFAULT_ENV": "ml"},
    )
    assert lock.data["conda"] == {"name": "ml", "prefix": "/opt/conda/envs/ml"}


# --------------------------------------------------------------------------- lock object


def test_diff_reports_packages_python_and_code() -> None:
    old = lock_from(
        python={"version": "3.11.7", "implementation": "CPython"},
        packages={
            "numpy": {"version": "1.26.4", "origin": "index"},
            "pandas": {"version": "2.1.0", "origin": "index"},
            "mylib": {"version": "0.1", "origin": "vcs", "commit": "aaaaaaaaaaaaaaaa"},
        },
        git={"commit": "1" * 40, "branch": "main", "dirty": False, "diff_sha256": None},
        env={"OMP_NUM_THREADS": "4"},
    )
    new = lock_from(
        python={"version": "3.12.1", "implementation": "CPython"},
        packages={
            "numpy": {"version": "2.0.0", "origin": "index"},
            "scipy": {"version": "1.13.0", "origin": "index"},
            "mylib": {"version": "0.1", "origin": "vcs", "commit": "bbbbbbbbbbbbbbbb"},
        },
        git={"commit": "2" * 40, "branch": "main", "dirty": True, "diff_sha256": "f" * 64},
        env={"OMP_NUM_THREADS": "8"},
    )
    changes = old.diff(new)
    assert changes.packages_added == {"scipy": "1.13.0"}
    assert changes.packages_removed == {"pandas": "2.1.0"}
    assert changes.packages_changed == {
        "numpy": ("1.26.4", "2.0.0"),
        "mylib": ("0.1@aaaaaaaaaaaa", "0.1@bbbbbbbbbbbb"),
    }
    assert changes.python_changed == ("CPython 3.11.7", "CPython 3.12.1")
    assert changes.platform_changed is None
    assert changes.code == {
        "commit": ("1" * 40, "2" * 40),
        "dirty": (False, True),
        "diff_changed": True,
    }
    assert changes.env_vars == {"OMP_NUM_THREADS": ("4", "8")}
    assert not changes.empty

    lines = changes.summary_lines()
    assert "+ scipy 1.13.0" in lines
    assert "- pandas 2.1.0" in lines
    assert "~ numpy: 1.26.4 -> 2.0.0" in lines
    assert "~ python: CPython 3.11.7 -> CPython 3.12.1" in lines
    assert f"code ~ commit: {'1' * 12} -> {'2' * 12}" in lines
    assert len(lines) == 9
    assert json.loads(json.dumps(changes.to_dict()))["python_changed"] == [
        "CPython 3.11.7",
        "CPython 3.12.1",
    ]
    assert "scipy" in repr(changes)


def test_diff_of_identical_locks_is_empty() -> None:
    lock = lock_from(packages={"numpy": {"version": "1.26.4"}}, git=None, data=[])
    changes = lock.diff(EnvLock.from_dict(lock.to_dict()))
    assert changes.empty and changes == LockDiff()
    assert changes.summary_lines() == []
    assert repr(changes) == "LockDiff(no changes)"


def test_hashes_are_canonical_and_environment_hash_ignores_code(repo: Path) -> None:
    settings = make_settings(repo)
    clean = capture_lock(settings, environ={})
    assert (
        clean.hash
        == hashlib.sha256(
            json.dumps(clean.data, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )
    assert EnvLock.from_dict(clean.to_dict()).hash == clean.hash

    (repo / "train.py").write_text("LR = 0.3\n")
    dirty = capture_lock(settings, environ={})
    assert dirty.hash != clean.hash
    assert dirty.environment_hash == clean.environment_hash

    other_python = lock_from(**{**clean.to_dict(), "python": {"version": "3.99.0"}})
    assert other_python.environment_hash != clean.environment_hash


def test_from_dict_checks_the_schema() -> None:
    with pytest.raises(StoreError, match="Not an nbtoolkit environment lock"):
        EnvLock.from_dict({"packages": {}})
    with pytest.warns(UserWarning, match="newer"):
        lock = EnvLock.from_dict({"schema": "nbtoolkit.envlock.v2", "packages": {}})
    assert lock.packages == {}


def test_html_reprs_escape_text() -> None:
    evil = "<script>alert(1)</script>"
    old = lock_from(packages={"p": {"version": "1"}}, env={"X": "a"})
    new = lock_from(packages={"p": {"version": evil}}, env={"X": evil}, git={"branch": evil})
    for html in (new._repr_html_(), old.diff(new)._repr_html_()):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html


def test_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, nbtoolkit.envlock, nbtoolkit.redact\n"
        "heavy = {'IPython', 'pandas', 'sqlalchemy', 'dvc', 'yaml'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
