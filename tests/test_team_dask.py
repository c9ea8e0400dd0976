# ruff: noqa: F811  (pytest fixtures imported from _s3 are redefined as parameters)
"""Dask sweeps without a shared filesystem: workers on "another machine" record into PostgreSQL + S3.

The workers are real ``dask worker`` processes started in their own mount and UTS namespaces
(``unshare``, as root): the test's folder, which holds the project, is covered by an empty
tmpfs, so the notebook is not readable at its submitted path and the working folder does not
exist; their host name differs from this machine's. Their environment holds no ``NBTOOLKIT_*``
setting, only AWS's standard variables, and their working folder is not the project. A throw-away
PostgreSQL (with a password in the URL that must never be recorded) and moto's S3 server are the
team store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Location, s3_location, s3_server  # noqa: F401 (fixtures)
from _servers import PostgresServer
from conftest import git, make_notebook, nbtk_cli

pytestmark = pytest.mark.slow

#: Planted in the store URL; trust authentication never needs it, nothing may record it.
PASSWORD = "pg-pw-never-recorded-7d41c9e2"
WORKER_HOST = "nbtk-other-machine"

NOTEBOOK_CELLS = (
    "%load_ext nbtoolkit\nimport json, os, pathlib, socket, urllib.parse\nimport nbtoolkit as nbtk\n"
    "from helpers import double  # a project module: shipped with --ship",
    '%%experiment team_dask\n"""\nHypothesis: doubling x gives at least 2.\nSuccess: score >= 2\n"""\n'
    'score = double(x) * json.loads(pathlib.Path("conf/scale.json").read_text())["factor"]\n'
    'pathlib.Path("note.txt").write_text(f"note of x={x}")\n'
    'nbtk.log_artifact("note.txt")\n'
    "nbtk.set_tags(kernel_cwd=os.getcwd(), kernel_host=socket.gethostname())\n"
    'store_url = os.environ["NBTOOLKIT_STORE"]\n'
    'print("store:", store_url)\n'
    'print("pw:", urllib.parse.urlsplit(store_url).password)\n'
    'print("submitted path readable:", bool(submitted) and os.path.exists(submitted))',
)


@dataclass
class ForeignCluster:
    """A scheduler here and two workers that see neither the test's folder nor this host name."""

    address: str
    worker_pids: set[int]
    worker_dir: Path
    hidden: Path


def _can_unshare() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "--uts", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def foreign_cluster(tmp_path: Path, s3_server: str) -> Iterator[ForeignCluster]:
    """Two ``dask worker`` processes in namespaces hiding ``tmp_path`` (the project's parent)."""
    distributed = pytest.importorskip("distributed")
    if not _can_unshare():
        pytest.skip("needs root and unshare(1) to hide the project from the workers (CI runs as root)")
    worker_dir = Path(tempfile.mkdtemp(prefix="nbtk-worker-"))
    home = Path(tempfile.mkdtemp(prefix="nbtk-worker-home-"))
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8",
        # credentials come from the worker's own environment, as documented
        "AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1",
    }
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    script = ('mount -t tmpfs nbtk-hidden "$0" && hostname "$1" && exec "$2" -m distributed.cli.dask_worker "$3" '
              '--nthreads 1 --no-nanny --no-dashboard --host 127.0.0.1 --local-directory "$4"')
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0", host="127.0.0.1") as cluster:
        procs = [
            subprocess.Popen(
                ["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-c", script,
                 str(tmp_path), WORKER_HOST, sys.executable, cluster.scheduler_address, str(worker_dir / f"w{i}")],
                cwd=worker_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for i in range(2)
        ]
        try:
            with distributed.Client(cluster.scheduler_address) as client:
                client.wait_for_workers(2, timeout=120)
                seen = client.run(lambda: (os.getpid(), os.listdir(str(tmp_path)), os.getcwd()))
            assert [p[1] for p in seen.values()] == [[], []], "the workers must not see the project"
            assert {p[2] for p in seen.values()} == {str(worker_dir)}
            yield ForeignCluster(cluster.scheduler_address, {p[0] for p in seen.values()}, worker_dir, tmp_path)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            shutil.rmtree(worker_dir, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def team(project: Path, postgres: PostgresServer, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch) -> str:
    """The project points at a fresh PostgreSQL database (password in the URL) and an S3 bucket."""
    name = postgres.new_database().rsplit("/", 1)[1]
    url = postgres.url(name, password=PASSWORD)
    monkeypatch.setenv("NBTOOLKIT_STORE", url)
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    return url


SHIP = ("helpers.py", "conf")


def _notebook(folder: Path) -> Path:
    """The notebook and the project files it needs (a helper module, a configuration file)."""
    (folder / "helpers.py").write_text("def double(x):\n    return 2 * x\n", encoding="utf-8")
    (folder / "conf").mkdir()
    (folder / "conf" / "scale.json").write_text('{"factor": 1}', encoding="utf-8")
    return make_notebook(folder / "team_dask.ipynb", *NOTEBOOK_CELLS, parameters='x = 1\nsubmitted = ""')


def _dump(postgres: PostgresServer, url: str) -> str:
    """Every row of the store database, as ``pg_dump`` writes it."""
    database = url.rsplit("/", 1)[1]
    out = subprocess.run(
        [str(postgres.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres", database],
        check=True, capture_output=True, text=True,
    )
    return out.stdout


def _objects(location: S3Location) -> dict[str, bytes]:
    client = location.client()
    return {k: client.get_object(Bucket=location.bucket, Key=k)["Body"].read() for k in location.keys()}


def _children(store: Any, sweep_id: str) -> list[Any]:
    rows, _, _ = store.query_runs(parent_id=sweep_id)
    return sorted((store.get_run(r["run_id"]) for r in rows), key=lambda r: r.extra["sweep_index"])


def test_workers_without_the_project_record_into_postgres_and_s3(
    project: Path, team: str, postgres: PostgresServer, s3_location: S3Location, foreign_cluster: ForeignCluster,
) -> None:
    from nbtoolkit.config import load_settings
    from nbtoolkit.execute.sweeps import sweep
    from nbtoolkit.store import open_store

    nb = _notebook(project)
    settings = load_settings()
    out = sweep(nb, grid=["x=1,2"], base={"submitted": str(nb)},  # the kernels say whether they see it
                executor="dask", address=foreign_cluster.address, ship=SHIP, settings=settings)
    assert out.ok, [o.describe_failure() for o in out.failed]
    assert out.warnings == ()

    store = open_store(settings)
    kids = _children(store, out.sweep_id or "")
    assert [k.status for k in kids] == ["finished", "finished"]
    assert [k.metrics["score"] for k in kids] == [2.0, 4.0]
    assert [k.verdict for k in kids] == ["supported", "supported"]
    for kid in kids:
        runner = kid.extra["runner"]
        # executed by the workers, from the shipped copy, on the other "machine"
        assert runner["worker_pid"] in foreign_cluster.worker_pids and runner["worker_pid"] != os.getpid()
        assert runner["host"] == WORKER_HOST and kid.tags["kernel_host"] == WORKER_HOST
        assert runner["notebook_shipped"] is True
        assert set(kid.extra["shipped_files"]) == {"helpers.py", "conf/scale.json"}
        # the run records the submitted notebook; its code hash is the content that ran
        assert kid.notebook_path == str(nb)
        cwd = Path(kid.tags["kernel_cwd"])
        assert not cwd.is_relative_to(foreign_cluster.hidden) and not cwd.is_relative_to(foreign_cluster.worker_dir)
        # both blobs are in S3 under their sha256 and read back through nbtoolkit's checked layer
        note, output = kid.artifact("note.txt"), kid.artifact("output.ipynb")
        assert note is not None and output is not None
        keys = s3_location.keys()
        for ref in (note, output):
            assert f"{s3_location.prefix}/sha256/{ref.digest[:2]}/{ref.digest[2:]}" in keys
        x = int(kid.params["x"])
        assert store.artifacts.read_bytes(note.digest) == f"note of x={x}".encode()
        executed = store.artifacts.read_bytes(output.digest).decode()
        assert "submitted path readable: False" in executed
        assert "pw: ***" in executed and PASSWORD not in executed

    # nothing was written next to the project or the workers
    assert not (project / ".nbtoolkit").exists()
    assert not list(foreign_cluster.worker_dir.rglob(".nbtoolkit"))
    # no password (nor the S3 secret) anywhere in the database or the bucket
    dump = _dump(postgres, team)
    assert kids[0].run_id in dump and PASSWORD not in dump and SECRET_KEY not in dump
    for key, body in _objects(s3_location).items():
        assert PASSWORD.encode() not in body and SECRET_KEY.encode() not in body, key


def test_resume_and_run_cache_from_another_checkout(
    project: Path, team: str, postgres: PostgresServer, s3_location: S3Location, foreign_cluster: ForeignCluster,
) -> None:
    from nbtoolkit.config import load_settings
    from nbtoolkit.execute.sweeps import sweep
    from nbtoolkit.store import open_store

    nb = _notebook(project)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "notebook")
    other = project.parent / "checkout-b"
    git(project.parent, "clone", "-q", str(project), str(other))

    def stop_after_first(progress: Any) -> None:
        if progress.done >= 1:
            raise KeyboardInterrupt  # like Ctrl-C once the first point finished

    first = sweep(nb, grid=["x=1,2,3"], jobs=1, executor="dask", address=foreign_cluster.address, ship=SHIP,
                  progress=stop_after_first, settings=load_settings())
    assert first.status == "interrupted" and list(first.runs) == [0]
    sweep_id = first.sweep_id or ""
    first_run = first.runs[0].run_id
    project.rename(project.parent / "gone")  # the first checkout is not on the "machine" resuming

    resumed = nbtk_cli("sweep", "--resume", sweep_id[:8], cwd=other)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 point(s) already finished" in resumed.stdout
    assert PASSWORD not in resumed.stdout + resumed.stderr

    store = open_store(load_settings(other))
    kids = _children(store, sweep_id)
    assert [k.extra["sweep_index"] for k in kids] == [0, 1, 2]  # index 0 was not run again
    assert [k.status for k in kids] == ["finished"] * 3 and [k.metrics["score"] for k in kids] == [2.0, 4.0, 6.0]
    assert kids[0].run_id == first_run
    assert [k.notebook_path for k in kids[1:]] == [str(other / "team_dask.ipynb")] * 2
    assert {k.extra["runner"]["worker_pid"] for k in kids} <= foreign_cluster.worker_pids
    assert len({k.notebook_hash for k in kids}) == 1

    # the same notebook content in this checkout hits the run cache filled from both checkouts
    again = nbtk_cli("sweep", "team_dask.ipynb", "--grid", "x=1,2,3", "--executor", "dask", "--ship", "helpers.py",
                     "--ship", "conf", "--address", foreign_cluster.address, cwd=other)
    assert again.returncode == 0, again.stderr
    assert "3 cached" in again.stdout
    (row,) = [s for s in store.find_sweeps("") if s.sweep_id != sweep_id]
    cached = _children(store, row.sweep_id)
    assert [k.kind for k in cached] == ["cached"] * 3
    assert [k.origin_run_id for k in cached] == [k.run_id for k in kids]
    assert PASSWORD not in _dump(postgres, team)


def test_local_store_with_workers_on_other_machines(
    project: Path, postgres: PostgresServer, foreign_cluster: ForeignCluster,
) -> None:
    from nbtoolkit.store import open_store

    _notebook(project)
    res = nbtk_cli("sweep", "team_dask.ipynb", "--grid", "x=1", "--executor", "dask", "--ship", "helpers.py",
                   "--ship", "conf", "--address", foreign_cluster.address, cwd=project)
    assert res.returncode == 2, res.stderr
    assert "SQLite file on this machine" in res.stderr and WORKER_HOST in res.stderr
    assert "NBTOOLKIT_STORE=postgresql://" in res.stderr and "NBTOOLKIT_ARTIFACTS=s3://" in res.stderr
    assert open_store().find_sweeps("") == []  # refused before anything was recorded

    # a server store with a folder for artifacts runs, with a warning naming the fix
    url = postgres.new_database()
    res = nbtk_cli("sweep", "team_dask.ipynb", "--grid", "x=1", "--executor", "dask", "--ship", "helpers.py",
                   "--ship", "conf", "--address", foreign_cluster.address, cwd=project,
                   env={"NBTOOLKIT_STORE": url, "NBTOOLKIT_ARTIFACTS": str(project / "blobs")})
    assert "Warning: The artifact location" in res.stderr and WORKER_HOST in res.stderr
    assert "NBTOOLKIT_ARTIFACTS=s3://" in res.stderr


def test_ship_refuses_paths_outside_the_working_folder_and_large_files(project: Path) -> None:
    from nbtoolkit.execute.shipping import MAX_SHIPPED_BYTES
    from nbtoolkit.store import open_store

    (project / "nb").mkdir()
    _notebook(project / "nb")
    (project / "outside.txt").write_text("not next to the notebook", encoding="utf-8")
    res = nbtk_cli("sweep", "nb/team_dask.ipynb", "--grid", "x=1", "--ship", "outside.txt", "--dry-run", cwd=project)
    assert res.returncode == 2 and "not inside the kernels' working folder" in res.stderr, res.stderr
    res = nbtk_cli("sweep", "nb/team_dask.ipynb", "--grid", "x=1", "--ship", "nb/missing.py", "--dry-run", cwd=project)
    assert res.returncode == 2 and "no such file or folder" in res.stderr, res.stderr
    (project / "nb" / "conf" / "big.bin").write_bytes(b"0" * (MAX_SHIPPED_BYTES + 1))
    res = nbtk_cli("sweep", "nb/team_dask.ipynb", "--grid", "x=1", "--ship", "nb/conf", cwd=project)
    assert res.returncode == 2 and "object storage" in res.stderr, res.stderr
    assert open_store().find_sweeps("") == []  # refused before the sweep was recorded
