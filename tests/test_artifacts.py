"""The artifact blob layer on local folders: links never followed out of bounds, containment of
the store's ``artifacts/`` folder on real paths, the artifact location setting, verified reads,
and a full disk (a real, small tmpfs) failing the write cleanly.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_notebook, nbtk_cli

import nbtoolkit as nbtk
from nbtoolkit.errors import (
    ArtifactIntegrityError,
    ArtifactLinkError,
    ArtifactLocationError,
    ConfigError,
    DiskFullError,
    InputError,
    StoreError,
)
from nbtoolkit.store.artifacts import (
    LocalBlobStore,
    artifact_location,
    open_blob_store,
    safe_location,
)


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---------------------------------------------------------------- links (issue 11.5)
def test_folder_with_a_link_outside_is_refused_and_nothing_recorded(project: Path, store: Any, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY BYTES")
    folder = project / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "key").symlink_to(secret)
    with nbtk.start_run("links") as run, pytest.raises(ArtifactLinkError) as info:
        nbtk.log_artifact(folder)
    message = str(info.value)
    assert str(folder / "sub" / "key") in message and str(secret) in message and "outside" in message
    assert isinstance(info.value, InputError)  # a user mistake: exit 2 / UsageError
    assert store.get_run(run.run_id).artifacts == ()
    assert not any(b"PRIVATE KEY BYTES" in p.read_bytes() for p in _files(store.path))

    # a link to a folder outside is refused the same way
    (folder / "sub" / "key").unlink()
    (folder / "data").symlink_to(secret.parent, target_is_directory=True)
    with nbtk.start_run("links-dir"), pytest.raises(ArtifactLinkError, match="data"):
        nbtk.log_artifact(folder)


def test_links_inside_the_folder_are_followed_once(project: Path, store: Any) -> None:
    folder = project / "results"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "real.txt").write_text("real")
    (folder / "alias.txt").symlink_to(folder / "sub" / "real.txt")
    (folder / "sub" / "loop").symlink_to(folder, target_is_directory=True)  # must not recurse forever
    with nbtk.start_run("inside") as run:
        nbtk.log_artifact(folder, "res")
    names = sorted(r.name for r in store.get_run(run.run_id).artifacts)
    assert names == ["res/alias.txt", "res/sub/real.txt"]
    rec = store.get_run(run.run_id)
    assert store.artifacts.read_bytes(rec.artifact("res/alias.txt").digest) == b"real"


def test_symlinked_artifacts_folder_outside_the_store_is_refused(project: Path, store: Any, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    artifacts = store.path / "artifacts"
    if artifacts.exists():
        import shutil

        shutil.rmtree(artifacts)
    artifacts.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ArtifactLocationError) as info:
        store.artifacts.put_bytes(b"would escape")
    assert str(artifacts) in str(info.value) and str(elsewhere) in str(info.value)
    assert isinstance(info.value, StoreError)
    assert list(elsewhere.iterdir()) == []  # not even a folder was created there

    # a symlinked sha256/ inside a real artifacts/ folder is refused too
    artifacts.unlink()
    artifacts.mkdir()
    (artifacts / "sha256").symlink_to(elsewhere, target_is_directory=True)
    with nbtk.start_run("escape") as run, pytest.raises(ArtifactLocationError, match="sha256"):
        nbtk.log_artifact(project / "pyproject.toml")
    assert list(elsewhere.iterdir()) == []
    assert store.get_run(run.run_id).artifacts == ()


def test_configured_location_may_be_anywhere(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbtoolkit.store import open_store

    shared = tmp_path / "shared-drive" / "nbtk"
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", str(shared))
    store = open_store()
    assert store.artifacts.location == str(shared)
    with nbtk.start_run("shared") as run:
        nbtk.log_artifact(project / "pyproject.toml", "cfg")
    digest = store.get_run(run.run_id).artifact("cfg").digest
    assert _files(shared) == [shared / "sha256" / digest[:2] / digest[2:]]
    assert _files(store.path / "artifacts") == []


def test_artifacts_setting_from_config_and_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nbtoolkit.config import load_settings

    assert load_settings().artifacts is None
    (project / "pyproject.toml").write_text('[tool.nbtoolkit]\nartifacts = "blobs"\n', encoding="utf-8")
    assert load_settings().artifacts == str(project / "blobs")
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", "s3://team-bucket/nbtk")
    assert load_settings().artifacts == "s3://team-bucket/nbtk"
    (project / "pyproject.toml").write_text("[tool.nbtoolkit]\nartifacts = 3\n", encoding="utf-8")
    monkeypatch.delenv("NBTOOLKIT_ARTIFACTS")
    with pytest.raises(ConfigError, match="artifacts must be a string"):
        load_settings()


def test_server_database_needs_an_artifact_location(tmp_path: Path) -> None:
    from nbtoolkit.store import Store

    url = "postgresql://nbtk:pw-never-shown@db.internal:5432/experiments"
    with pytest.raises(ConfigError) as info:
        artifact_location(None, store_path=tmp_path, store_url=url)
    assert "NBTOOLKIT_ARTIFACTS" in str(info.value) and "pw-never-shown" not in str(info.value)
    # the store opens its blob store on first use (listing needs none); starting a run without
    # one is refused before any row (tests/test_store_backends.py, with a real server)
    store = Store.__new__(Store)
    store.path, store.url, store._artifacts_setting, store._blobs = tmp_path / "s", url, None, None
    with pytest.raises(ConfigError, match="NBTOOLKIT_ARTIFACTS"):
        store.artifacts  # noqa: B018
    assert not (tmp_path / "s" / "artifacts").exists()
    assert artifact_location("s3://b/p", store_path=tmp_path, store_url=url) == "s3://b/p"
    assert artifact_location(None, store_path=tmp_path, store_url=f"sqlite:///{tmp_path}/x.db") == str(tmp_path / "artifacts")


def test_credentials_in_a_location_are_never_shown() -> None:
    assert safe_location("s3://AKIAEXAMPLE:s3cr3t@bucket/prefix?token=abc") == "s3://bucket/prefix"
    assert safe_location("sftp://me:pw@files.internal:2222/nbtk") == "sftp://files.internal:2222/nbtk"
    assert safe_location("/mnt/team/nbtk") == "/mnt/team/nbtk"
    with pytest.raises(ConfigError) as info:
        open_blob_store("nosuchprotocol://me:hunter2@host/x")
    assert "hunter2" not in str(info.value) and "nosuchprotocol://host/x" in str(info.value)


# ---------------------------------------------------------------- verified reads
def test_reads_are_verified_and_fetch_leaves_no_partial_file(tmp_path: Path) -> None:
    blobs = open_blob_store(str(tmp_path / "blobs"))
    assert isinstance(blobs, LocalBlobStore)
    data = os.urandom(3 << 20)
    digest, size = blobs.put_bytes(data)
    assert blobs.put_bytes(data) == (digest, size)  # idempotent
    assert list(blobs.digests()) == [digest]
    with blobs.open_blob(digest) as fh:
        assert fh.read() == data
    fetched = blobs.fetch_to(digest, tmp_path / "out" / "x.bin")
    assert fetched.read_bytes() == data
    umask = os.umask(0o022)
    os.umask(umask)
    assert fetched.stat().st_mode & 0o777 == 0o666 & ~umask  # the user's usual mode, not 0600

    path = blobs.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(data[:-1] + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256"):
        blobs.read_bytes(digest)
    with pytest.raises(ArtifactIntegrityError):
        blobs.fetch_to(digest, tmp_path / "bad" / "x.bin")
    assert _files(tmp_path / "bad") == []
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        blobs.verify(digest)
    with pytest.raises(InputError, match="not a sha256"):
        blobs.open_blob("../../etc/passwd")


def test_a_file_changing_while_stored_is_refused(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "blobs")
    src = tmp_path / "growing.log"
    src.write_bytes(b"x" * (3 << 20))
    real_copy = LocalBlobStore._copy_checked

    def append_then_copy(source: Any, sink: Any, digest: str) -> None:
        with open(src, "ab") as fh:  # another process appends between hashing and copying
            fh.write(b"more")
        real_copy(source, sink, digest)

    blobs._copy_checked = append_then_copy  # type: ignore[method-assign]
    with pytest.raises(InputError, match="changed while it was being stored"):
        blobs.put_file(src)
    assert list(blobs.digests()) == [] and _files(tmp_path / "blobs" / "tmp") == []


def test_a_row_cannot_point_at_a_missing_blob(store: Any) -> None:
    run_id = store.create_run(experiment="rows")
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(StoreError, match="store its bytes first"):
        store.add_artifact(run_id, name="ghost", kind="artifact", digest=missing, size=12)
    assert store.get_run(run_id).artifacts == ()
    digest, size = store.artifacts.put_bytes(b"stored")
    assert store.add_artifact(run_id, name="real", kind="artifact", digest=digest, size=size).digest == digest


# ---------------------------------------------------------------- disk full (issue 11.4, write side)
@pytest.fixture
def full_disk(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The project's store folder on a 4 MiB tmpfs (root only; skipped with the reason otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill the disk needs root; disk-full test not run")
    folder = project / ".nbtoolkit"
    folder.mkdir(exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); disk-full test not run")
    try:
        yield folder
    finally:
        from nbtoolkit import store as store_module

        for cached in list(store_module._cache.values()):
            cached.dispose()  # closes pooled connections, so the tmpfs can be unmounted
        store_module._cache.clear()
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _every_row_has_its_blob(store: Any) -> int:
    """Check through the store API that every recorded artifact's blob is there and intact."""
    runs, _, _ = store.query_runs()
    count = 0
    for record in store.get_runs([r["run_id"] for r in runs]):
        for ref in record.artifacts:
            store.artifacts.verify(ref.digest)
            count += 1
    return count


def test_disk_full_fails_the_write_cleanly(full_disk: Path, project: Path) -> None:
    from nbtoolkit.store import open_store

    store = open_store()
    big = project / "big.bin"
    big.write_bytes(os.urandom(6 << 20))  # larger than the whole disk
    with pytest.raises(DiskFullError) as info, nbtk.start_run("full") as run:
        nbtk.log_artifact(project / "pyproject.toml", "small")
        nbtk.log_artifact(big, "big")
    message = str(info.value)
    assert "full" in message and "no space left" in message and isinstance(info.value, StoreError)
    assert _files(full_disk / "artifacts" / "tmp") == []  # the partial copy was removed
    record = store.get_run(run.run_id)
    assert record.status == "failed"
    assert [a.name for a in record.artifacts] == ["small"]  # no row for the blob that was not written
    assert _every_row_has_its_blob(store) == 1
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert not store.artifacts.exists(digest)


def test_disk_full_fails_a_notebook_run_with_a_clear_message(full_disk: Path, project: Path) -> None:
    (project / "big.bin").write_bytes(os.urandom(6 << 20))
    nb = make_notebook(
        project / "full.ipynb",
        "%load_ext nbtoolkit",
        '%%experiment full-nb\n"""\nHypothesis: it fits.\n"""\nimport nbtoolkit as nbtk\nnbtk.log_artifact("big.bin")',
    )
    res = nbtk_cli("run", str(nb), cwd=project)
    assert res.returncode != 0
    assert "is full or failing" in res.stderr + res.stdout
    from nbtoolkit.store import open_store

    store = open_store()
    record = store.get_run(store.latest_run("full-nb", status=None) or "")
    assert record.status == "failed"
    assert "big.bin" not in {a.name for a in record.artifacts}
    assert _every_row_has_its_blob(store) >= 1  # the executed notebook was stored once space was back
    assert _files(full_disk / "artifacts" / "tmp") == []


def test_fetch_onto_a_full_disk_leaves_no_partial_file(full_disk: Path, tmp_path: Path) -> None:
    blobs = open_blob_store(str(tmp_path / "blobs"))  # on the roomy disk
    digest, _ = blobs.put_bytes(os.urandom(6 << 20))
    with pytest.raises(DiskFullError, match="no space left"):
        blobs.fetch_to(digest, full_disk / "export" / "model.bin")
    assert _files(full_disk / "export") == []


def test_a_folder_is_recorded_in_one_transaction(project: Path, store: Any) -> None:
    """The rows of a folder artifact land together: a row refused mid-folder leaves none of them."""
    import sqlite3

    folder = project / "results"
    folder.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (folder / name).write_text(name)
    db = sqlite3.connect(store.db_path)
    db.execute(  # the planted fault: the database refuses the folder's last row
        "CREATE TRIGGER refuse_c BEFORE INSERT ON artifacts WHEN NEW.name = 'results/c.txt' "
        "BEGIN SELECT RAISE(ABORT, 'planted refusal'); END"
    )
    db.commit()
    db.close()
    with nbtk.start_run("folder-tx") as run, pytest.raises(Exception, match="planted refusal"):
        nbtk.log_artifact(folder)
    assert store.get_run(run.run_id).artifacts == ()  # not a.txt and b.txt without c.txt

    db = sqlite3.connect(store.db_path)
    db.execute("DROP TRIGGER refuse_c")
    db.commit()
    db.close()
    with nbtk.start_run("folder-tx") as run:
        nbtk.log_artifact(folder)
    names = sorted(a.name for a in store.get_run(run.run_id).artifacts)
    assert names == ["results/a.txt", "results/b.txt", "results/c.txt"]
