"""Shared fixtures: a throw-away project (real git repo, real SQLite store) and notebook helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _servers import PostgresServer, postgres_bin, postgres_server

ROOT = Path(__file__).resolve().parent.parent
TEST_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "nbtk tests",
    "GIT_AUTHOR_EMAIL": "tests@example.invalid",
    "GIT_COMMITTER_NAME": "nbtk tests",
    "GIT_COMMITTER_EMAIL": "tests@example.invalid",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    ).stdout


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh project folder: git repo with one commit, pyproject.toml, cwd set to it.

    ``NBTOOLKIT_STORE`` points at ``<project>/.nbtoolkit`` so kernels started from here use it.
    """
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n\n[tool.nbtoolkit]\n', encoding="utf-8")
    (root / ".gitignore").write_text(".nbtoolkit/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    monkeypatch.chdir(root)
    monkeypatch.setenv("NBTOOLKIT_STORE", str(root / ".nbtoolkit"))
    for var in ("NBTOOLKIT_RUN_ID", "NBTOOLKIT_PARAMS", "NBTOOLKIT_NOTEBOOK"):
        monkeypatch.delenv(var, raising=False)
    from nbtoolkit import tracking

    tracking._stack.clear()
    tracking._adopted.clear()
    yield root
    tracking._stack.clear()


@pytest.fixture
def store(project: Path) -> Any:
    """The project's store."""
    from nbtoolkit.store import open_store

    return open_store()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on 127.0.0.1 for the whole session (skipped when not installed)."""
    if postgres_bin() is None:
        print("PostgreSQL tests skipped: initdb/pg_ctl not found (tests/run.sh installs postgresql)")
        pytest.skip("PostgreSQL is not installed (tests/run.sh installs Debian's postgresql)")
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fresh empty store of the project, once on SQLite and once on PostgreSQL.

    For PostgreSQL ``NBTOOLKIT_STORE`` is the database URL, so kernels and ``nbtk``
    subprocesses started by the test use the same database.
    """
    from nbtoolkit.store import open_store

    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        monkeypatch.setenv("NBTOOLKIT_STORE", server.new_database())
        # a server store keeps its blobs at an explicit artifact location (here: the project's)
        monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", str(project / ".nbtoolkit" / "artifacts"))
    store = open_store()
    yield store
    store.dispose()


def make_notebook(path: Path, *cells: str, parameters: str | None = None, metadata: dict[str, Any] | None = None) -> Path:
    """Write a notebook whose code cells are ``cells`` (a ``parameters``-tagged cell first if given)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if metadata:
        nb.metadata["nbtoolkit"] = metadata
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(c) for c in cells)
    nbformat.write(nb, path)
    return path


def execute_notebook(path: Path, *, cwd: Path | None = None, timeout: int = 120, allow_errors: bool = False) -> Any:
    """Execute a notebook in a real ipykernel with nbclient; return the executed notebook."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    client.execute()
    return nb


def outputs_text(nb: Any) -> str:
    """All text/plain, stream and error output of a notebook, joined."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif out.get("output_type") == "error":
                parts.append(f"{out.get('ename')}: {out.get('evalue')}")
            else:
                parts.append(out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def nbtk_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m nbtoolkit ARGS`` in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "nbtoolkit", *args], cwd=cwd, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of the system Chromium; skips the test when it is absent."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (the CI script installs it)")
    return exe


CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
