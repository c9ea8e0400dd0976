# ruff: noqa: F811  (pytest fixtures imported from _gcs are redefined as parameters)
"""Artifacts on Google Cloud Storage: the same blob layer through gcsfs, against a real GCS JSON
API (``gcp-storage-emulator`` on 127.0.0.1).

The S3 tests (``test_artifacts_s3.py``) cover the behaviour in depth; these check that nothing
in it is S3-specific: multi-part uploads, hash-checked reads, a tampered and a missing object,
an upload that fails half-way, and ``nbtk run`` / ``report`` with ``gs://``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from _gcs import GcsLocation, gcs_location, gcs_server  # noqa: F401 (fixtures)
from conftest import TEST_NOTEBOOKS, nbtk_cli

from nbtoolkit.errors import ArtifactIntegrityError, InputError


def _key(loc: GcsLocation, digest: str) -> str:
    return f"{loc.prefix}/sha256/{digest[:2]}/{digest[2:]}"


def test_blob_contract_on_gcs(project: Path, gcs_location: GcsLocation) -> None:
    from nbtoolkit.store.artifacts import FsspecBlobStore, open_blob_store

    blobs = open_blob_store(gcs_location.url)
    assert isinstance(blobs, FsspecBlobStore)
    data = os.urandom(9 << 20)  # two 8 MiB parts: a resumable multi-part upload
    src = project / "big.bin"
    src.write_bytes(data)
    digest, size = blobs.put_file(src)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert gcs_location.objects() == {_key(gcs_location, digest): len(data)}
    assert blobs.fetch_to(digest, project / "back" / "big.bin").read_bytes() == data
    assert list(open_blob_store(gcs_location.url).digests()) == [digest]
    assert open_blob_store(gcs_location.url).put_file(src)[0] == digest  # stored once
    assert len(gcs_location.objects()) == 1

    # a file that changes while it is uploaded: refused, and no object becomes visible (one
    # part: the emulator does not implement cancelling a resumable session, which GCS does)
    grows = project / "grows.bin"
    grows.write_bytes(os.urandom(1 << 20))
    fresh = open_blob_store(gcs_location.url)
    assert isinstance(fresh, FsspecBlobStore)
    original = fresh._copy_checked

    def append_then_copy(source, out, expected):  # type: ignore[no-untyped-def]
        with open(grows, "ab") as fh:
            fh.write(b"late bytes")
        return original(source, out, expected)

    fresh._copy_checked = append_then_copy  # type: ignore[method-assign]
    with pytest.raises(InputError, match="changed while it was being stored"):
        fresh.put_file(grows)
    assert len(gcs_location.objects()) == 1

    # a tampered object is refused by every read, a missing one is the same typed error
    small, _ = blobs.put_bytes(b"model bytes " * 1000)
    key = _key(gcs_location, small)
    gcs_location.fs().pipe(f"{gcs_location.bucket}/{key}", b"tampered bytes " * 800)
    tampered = open_blob_store(gcs_location.url)
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256") as info:
        tampered.read_bytes(small)
    assert key in str(info.value)
    with pytest.raises(ArtifactIntegrityError):
        tampered.fetch_to(small, project / "bad" / "model.bin")
    assert not (project / "bad").exists() or list((project / "bad").iterdir()) == []
    gcs_location.fs().rm(f"{gcs_location.bucket}/{key}")
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        open_blob_store(gcs_location.url).verify(small)


def test_nbtk_run_and_report_through_gcs(project: Path, gcs_location: GcsLocation, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", gcs_location.url)
    small = project / "small_experiment.ipynb"
    small.write_bytes((TEST_NOTEBOOKS / "small_experiment.ipynb").read_bytes())
    res = nbtk_cli("run", str(small), "-p", "x", "3", cwd=project)
    assert res.returncode == 0, res.stderr

    from nbtoolkit.store import open_store

    store = open_store()
    assert store.artifacts.location == gcs_location.url
    run = store.get_run(store.latest_run("small") or "")
    objects = gcs_location.objects()
    assert run.artifacts and all(objects[_key(gcs_location, ref.digest)] == ref.size for ref in run.artifacts)
    local = store.path / "artifacts" / "sha256"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    res = nbtk_cli("report", run.run_id[:10], "-o", "small.html", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "executed notebook (output.ipynb)" in (project / "small.html").read_text(encoding="utf-8")
