"""A damaged store is refused untouched; reading needs no free disk; network filesystems warn."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import nbtk_cli


def _fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file of the store except SQLite's side files (-wal/-shm)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def _populated_store(folder: Path) -> str:
    from nbtoolkit.store import Store

    store = Store(folder)
    rid = store.create_run(experiment="precious", params={"lr": 0.1})
    store.log_metrics(rid, [("auc", 0.9, None, time.time())])
    store.put_text_artifact(rid, name="notes.txt", kind="text", text="keep me " * 500)
    for i in range(200):  # a few pages beyond the schema, so the damage can hit data pages
        store.set_tags(rid, {f"tag{i}": "x" * 200})
    store.finish_run(rid, status="finished")
    store.dispose()
    assert not (folder / "store.db-wal").exists()
    return rid


def _empty(db: Path) -> None:
    db.write_bytes(b"")


def _truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _garbage_header(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[:16] = b"NOT A DATABASE!!"
    db.write_bytes(bytes(data))


def _corrupt_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page, len(data), page):  # every page but the first (the schema)
        data[offset : offset + page] = bytes((i * 37 + 11) % 256 for i in range(page))
    db.write_bytes(bytes(data))


DAMAGE = {"empty": _empty, "truncated": _truncate, "garbage-header": _garbage_header, "corrupt-pages": _corrupt_pages}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_store_is_refused_and_left_untouched(damage: str, project: Path) -> None:
    from nbtoolkit.errors import StoreCorruptError
    from nbtoolkit.store import open_store

    folder = project / ".nbtoolkit"
    _populated_store(folder)
    DAMAGE[damage](folder / "store.db")
    before = _fingerprint(folder)

    for args in (("runs",), ("show", "abcd"), ("store", "check")):
        result = nbtk_cli(*args, cwd=project)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        if args[0] == "store":
            assert "PROBLEM: database:" in result.stdout
        else:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, result.stderr
            assert str(folder / "store.db") in lines[0] and "damaged" in lines[0]
            assert "nbtk store check" in lines[0] and "nbtk store backup" in lines[0]
    with pytest.raises(StoreCorruptError) as err:
        open_store().query_runs()
    assert err.value.path == str(folder / "store.db")
    assert _fingerprint(folder) == before  # database and artifacts byte-identical


def test_a_folder_without_database_is_initialised(project: Path) -> None:
    from nbtoolkit.store import open_store

    folder = project / ".nbtoolkit"
    folder.mkdir()
    store = open_store()
    assert store.query_runs()[0] == [] and (folder / "store.db").stat().st_size > 0


def test_a_database_with_store_tables_but_no_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from nbtoolkit.errors import StoreCorruptError
    from nbtoolkit.store import Store

    folder = tmp_path / "s"
    Store(folder).dispose()
    con = sqlite3.connect(folder / "store.db")
    con.execute("DROP TABLE meta")
    con.commit()
    con.close()
    with pytest.raises(StoreCorruptError, match="no schema version"):
        Store(folder)
    con = sqlite3.connect(folder / "store.db")
    assert "runs" in {r[0] for r in con.execute("select name from sqlite_master")}
    con.close()


# ---------------------------------------------------------------------------------- disk full
@pytest.fixture
def full_disk(tmp_path: Path) -> object:
    """A 16 MiB tmpfs (root only), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        print("disk-full test skipped: mounting a tmpfs needs root")
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"disk-full test skipped: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as fh:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError:
                pass
    assert os.statvfs(folder).f_bavail == 0


def test_reading_works_on_a_full_disk(full_disk: Path, project: Path, tmp_path: Path) -> None:
    from nbtoolkit.config import load_settings
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.server.data import run_summaries
    from nbtoolkit.store import Store

    folder = full_disk / "proj" / ".nbtoolkit"
    rid = _populated_store(folder)
    # a run whose process is gone: recovery would have to write; it must not block reading
    store = Store(folder)
    dead = store.create_run(experiment="precious", pid=2**22 + 12345)
    lock = capture_lock(load_settings(project))
    store.put_lock(lock.hash, lock.to_dict())
    store.update_run(rid, lock_hash=lock.hash)
    store.dispose()
    _fill(full_disk)
    env = {"NBTOOLKIT_STORE": str(folder)}

    runs = nbtk_cli("runs", "--json", cwd=project, env=env)
    assert runs.returncode == 0, runs.stderr
    assert rid in runs.stdout and dead in runs.stdout
    shown = nbtk_cli("show", rid[:8], cwd=project, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "auc" in shown.stdout
    env_show = nbtk_cli("env", "show", rid[:8], cwd=project, env=env)
    assert env_show.returncode == 0, env_show.stderr
    assert f"lock {lock.hash[:12]}" in env_show.stdout
    report = tmp_path / "r.html"
    rep = nbtk_cli("report", rid[:8], "-o", str(report), cwd=project, env=env)
    assert rep.returncode == 0, rep.stderr
    assert "precious" in report.read_text(encoding="utf-8")
    # the REST API's data layer, in this process
    summaries = run_summaries(Store(folder))
    assert {s["run_id"] for s in summaries} == {rid, dead}

    # a write fails with a typed one-line error naming the full disk
    write = nbtk_cli("approve", rid[:8], "--by", "me", cwd=project, env=env)
    assert write.returncode == 1, write.stdout + write.stderr
    assert "Traceback" not in write.stderr
    assert len(write.stderr.strip().splitlines()) == 1 and "full" in write.stderr


@pytest.mark.slow
def test_rest_api_serves_runs_from_a_store_on_a_full_disk(full_disk: Path, tmp_path: Path) -> None:
    """The JupyterLab sidebar's REST API, a real ``jupyter server``, on a store whose disk is full."""
    import json

    from _lab import JupyterServer

    root = full_disk / "proj"
    rid = _populated_store(root / ".nbtoolkit")
    (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n', encoding="utf-8")
    _fill(full_disk)
    srv = JupyterServer(root, tmp_path / "jupyter", lab=False, env={"NBTOOLKIT_STORE": str(root / ".nbtoolkit")}).start()
    try:
        status, _, body = srv.request("/nbtoolkit/api/runs")
        assert status == 200, body
        assert [r["run_id"] for r in json.loads(body)["runs"]] == [rid]
        status, _, body = srv.request(f"/nbtoolkit/api/runs/{rid}")
        assert status == 200 and json.loads(body)["experiment"] == "precious"
    finally:
        srv.stop()


# ---------------------------------------------------------------------------------- network filesystems
MOUNTS = """\
sysfs /sys sysfs rw,nosuid 0 0
/dev/sda1 / ext4 rw,relatime 0 0
server:/export/home /home/team nfs4 rw,relatime,vers=4.2 0 0
//nas/share /mnt/nas cifs rw,vers=3.0 0 0
/dev/sdb1 /home/team/local ext4 rw 0 0
tmpfs /mnt/with\\040space tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/home/team/proj/.nbtoolkit", "nfs4"),
        ("/mnt/nas/proj", "cifs"),
        ("/home/team/local/proj", None),  # a local disk mounted inside the NFS tree
        ("/home/teammate", None),  # a prefix of a mount point is not inside it
        ("/srv/data", None),
        ("/mnt/with space/x", None),
    ],
)
def test_network_filesystem_detection(path: str, expected: str | None) -> None:
    from nbtoolkit.store.sqlite_file import filesystem_type, network_filesystem

    assert network_filesystem(path, MOUNTS) == expected
    assert filesystem_type("/mnt/with space/x", MOUNTS) == "tmpfs"


def test_store_on_a_network_filesystem_warns_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbtoolkit.errors import NbToolkitWarning, StoreLocationWarning
    from nbtoolkit.store import Store, sqlite_file

    folder = tmp_path / "store"
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nsrv:/x {tmp_path} nfs rw 0 0\n", encoding="utf-8")
    monkeypatch.setattr(sqlite_file, "MOUNTS_FILE", str(mounts))
    with pytest.warns(StoreLocationWarning, match="network filesystem \\(nfs\\).*WAL.*postgresql://") as caught:
        Store(folder).dispose()
    assert issubclass(caught[0].category, NbToolkitWarning)
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\n/dev/sdc {tmp_path} xfs rw 0 0\n", encoding="utf-8")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreLocationWarning)
        Store(folder).dispose()
