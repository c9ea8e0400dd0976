# ruff: noqa: F811  (pytest fixtures imported from _gcs / _azure are redefined as parameters)
"""Artifacts on Google Cloud Storage and Azure Blob Storage: the same blob layer through gcsfs
and adlfs, against real APIs on 127.0.0.1 (``gcp-storage-emulator``; Microsoft's Azurite).

The S3 tests (``test_artifacts_s3.py``) cover the behaviour in depth; these check that nothing
in it is S3-specific: multi-part uploads, hash-checked reads, a tampered and a missing object,
an upload that fails half-way, and ``nbtk run`` / ``report`` with ``gs://`` and ``az://``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from _azure import ACCOUNT_KEY, azure_location, azure_server  # noqa: F401 (fixtures)
from _gcs import gcs_location, gcs_server  # noqa: F401 (fixtures)
from conftest import TEST_NOTEBOOKS, nbtk_cli

from nbtoolkit.errors import ArtifactIntegrityError, InputError


def _key(loc: Any, digest: str) -> str:
    return f"{loc.prefix}/sha256/{digest[:2]}/{digest[2:]}"


@pytest.fixture(params=["gs", "az"])
def cloud(request: pytest.FixtureRequest) -> Any:
    """A fresh bucket (GCS) or container (Azure) with the client's settings in the environment."""
    return request.getfixturevalue({"gs": "gcs_location", "az": "azure_location"}[request.param])


def test_blob_contract(project: Path, cloud: Any) -> None:
    from nbtoolkit.store.artifacts import FsspecBlobStore, open_blob_store

    blobs = open_blob_store(cloud.url)
    assert isinstance(blobs, FsspecBlobStore)
    data = os.urandom(9 << 20)  # two 8 MiB parts: a resumable multi-part upload
    src = project / "big.bin"
    src.write_bytes(data)
    digest, size = blobs.put_file(src)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert cloud.objects() == {_key(cloud, digest): len(data)}
    assert blobs.fetch_to(digest, project / "back" / "big.bin").read_bytes() == data
    assert list(open_blob_store(cloud.url).digests()) == [digest]
    assert open_blob_store(cloud.url).put_file(src)[0] == digest  # stored once
    assert len(cloud.objects()) == 1

    # a file that changes while it is uploaded: refused, and no object becomes visible (one
    # part: the GCS emulator does not implement cancelling a resumable session, which GCS does)
    grows = project / "grows.bin"
    grows.write_bytes(os.urandom(1 << 20))
    fresh = open_blob_store(cloud.url)
    assert isinstance(fresh, FsspecBlobStore)
    original = fresh._copy_checked

    def append_then_copy(source, out, expected):  # type: ignore[no-untyped-def]
        with open(grows, "ab") as fh:
            fh.write(b"late bytes")
        return original(source, out, expected)

    fresh._copy_checked = append_then_copy  # type: ignore[method-assign]
    with pytest.raises(InputError, match="changed while it was being stored"):
        fresh.put_file(grows)
    assert len(cloud.objects()) == 1

    # a tampered object is refused by every read, a missing one is the same typed error
    small, _ = blobs.put_bytes(b"model bytes " * 1000)
    key = _key(cloud, small)
    cloud.fs().pipe(f"{cloud.bucket}/{key}", b"tampered bytes " * 800)
    tampered = open_blob_store(cloud.url)
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256") as info:
        tampered.read_bytes(small)
    assert key in str(info.value)
    with pytest.raises(ArtifactIntegrityError):
        tampered.fetch_to(small, project / "bad" / "model.bin")
    assert not (project / "bad").exists() or list((project / "bad").iterdir()) == []
    cloud.fs().rm(f"{cloud.bucket}/{key}")
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        open_blob_store(cloud.url).verify(small)


def test_nbtk_run_and_report(project: Path, cloud: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", cloud.url)
    small = project / "small_experiment.ipynb"
    small.write_bytes((TEST_NOTEBOOKS / "small_experiment.ipynb").read_bytes())
    res = nbtk_cli("run", str(small), "-p", "x", "3", cwd=project)
    assert res.returncode == 0, res.stderr

    from nbtoolkit.store import open_store

    store = open_store()
    assert store.artifacts.location == cloud.url
    run = store.get_run(store.latest_run("small") or "")
    objects = cloud.objects()
    assert run.artifacts and all(objects[_key(cloud, ref.digest)] == ref.size for ref in run.artifacts)
    local = store.path / "artifacts" / "sha256"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    res = nbtk_cli("report", run.run_id[:10], "-o", "small.html", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "executed notebook (output.ipynb)" in (project / "small.html").read_text(encoding="utf-8")
    everything = b"".join(p.read_bytes() for p in sorted(store.path.rglob("*")) if p.is_file())
    assert ACCOUNT_KEY.encode() not in everything  # the connection string's key is never recorded
