# ruff: noqa: F811  (pytest fixtures imported from _s3 are redefined as parameters)
"""Artifacts in object storage: a real S3 API (moto_server on 127.0.0.1) through s3fs.

Runs executed by ``nbtk run`` put their blobs in the bucket; ``nbtk report`` and ``nbtk export``
read them back through the same layer; a tampered object is refused; a 200 MB artifact streams
with bounded memory; no credential reaches the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Location, s3_location, s3_server  # noqa: F401 (fixtures)
from conftest import TEST_NOTEBOOKS, make_notebook, nbtk_cli

MODEL_CELL = '''%%experiment s3-tree
"""
Hypothesis: a shallow tree separates the classes.
Success: accuracy >= 0.5
"""
from pathlib import Path
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
import nbtoolkit as nbtk

X, y = load_iris(return_X_y=True, as_frame=True)
model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
accuracy = float(model.score(X, y))
Path("out").mkdir(exist_ok=True)
Path("out/notes.txt").write_text("notes from the s3 run")
Path("out/sub").mkdir(exist_ok=True)
Path("out/sub/table.csv").write_text("a,b\\n1,2\\n")
nbtk.log_artifact("out", "outputs")
nbtk.log_model(model, sample_input=X[:3])
'''


def _blob_key(loc: S3Location, digest: str) -> str:
    return f"{loc.prefix}/sha256/{digest[:2]}/{digest[2:]}"


def _store_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_nbtk_run_report_export_through_s3(project: Path, s3_location: S3Location, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    small = project / "small_experiment.ipynb"
    small.write_bytes((TEST_NOTEBOOKS / "small_experiment.ipynb").read_bytes())
    res = nbtk_cli("run", str(small), "-p", "x", "3", cwd=project)
    assert res.returncode == 0, res.stderr
    nb = make_notebook(project / "tree.ipynb", "%load_ext nbtoolkit", MODEL_CELL)
    res = nbtk_cli("run", str(nb), cwd=project)
    assert res.returncode == 0, res.stderr

    from nbtoolkit.store import open_store

    store = open_store()
    assert store.artifacts.location == s3_location.url
    small_run = store.get_run(store.latest_run("small") or "")
    tree_run = store.get_run(store.latest_run("s3-tree") or "")
    keys = s3_location.keys()
    refs = [*small_run.artifacts, *tree_run.artifacts]
    names = {a.name for a in tree_run.artifacts}
    assert {"outputs/notes.txt", "outputs/sub/table.csv", "model", "output.ipynb"} <= names
    for ref in refs:  # every recorded artifact is an object of the bucket, of the recorded size
        assert keys[_blob_key(s3_location, ref.digest)] == ref.size
    notes = s3_location.client().get_object(
        Bucket=s3_location.bucket, Key=_blob_key(s3_location, tree_run.artifact("outputs/notes.txt").digest)
    )["Body"].read()
    assert notes == b"notes from the s3 run"
    # nothing went to the local folder, and no credential reached the store
    local_blobs = store.path / "artifacts" / "sha256"
    assert not local_blobs.exists() or not any(p.is_file() for p in local_blobs.rglob("*"))
    everything = _store_bytes(store.path)
    assert SECRET_KEY.encode() not in everything and ACCESS_KEY.encode() not in everything

    # the report renders the executed notebook read back from S3
    res = nbtk_cli("report", small_run.run_id[:10], "-o", "small.html", cwd=project)
    assert res.returncode == 0, res.stderr
    html = (project / "small.html").read_text(encoding="utf-8")
    assert "executed notebook (output.ipynb)" in html and "asked to fail" in html

    # export streams the model from S3 into the bundle; verify passes
    assert nbtk_cli("approve", tree_run.run_id, "--by", "rita", cwd=project).returncode == 0
    res = nbtk_cli("export", tree_run.run_id, "--model", "iris-tree", "-o", "bundles", cwd=project)
    assert res.returncode == 0, res.stderr
    bundle = next((project / "bundles").iterdir())
    model_file = next((bundle / "model").iterdir())
    model_ref = tree_run.artifact("model")
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == model_ref.digest
    assert nbtk_cli("verify", str(bundle), cwd=project).returncode == 0

    # tamper with the model object in the bucket: export refuses with the typed error
    s3_location.client().put_object(
        Bucket=s3_location.bucket, Key=_blob_key(s3_location, model_ref.digest), Body=b"tampered"
    )
    res = nbtk_cli("export", tree_run.run_id, "--model", "iris-tree", "-o", "bundles2", "--new-version", cwd=project)
    assert res.returncode == 1
    assert "does not match its sha256" in res.stderr and "Traceback" not in res.stderr
    assert s3_location.url in res.stderr
    assert not (project / "bundles2").exists() or not any((project / "bundles2").rglob("*.skops"))


def test_tampered_blob_raises_integrity_error(project: Path, s3_location: S3Location) -> None:
    from nbtoolkit.errors import ArtifactIntegrityError
    from nbtoolkit.store.artifacts import FsspecBlobStore, open_blob_store

    blobs = open_blob_store(s3_location.url)
    assert isinstance(blobs, FsspecBlobStore)
    data = os.urandom(3 << 20)
    digest, size = blobs.put_bytes(data)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert blobs.read_bytes(digest) == data
    fetched = blobs.fetch_to(digest, project / "got" / "blob.bin")
    assert fetched.read_bytes() == data
    assert list(blobs.digests()) == [digest]

    key = _blob_key(s3_location, digest)
    s3_location.client().put_object(Bucket=s3_location.bucket, Key=key, Body=data[:-1] + b"\0")
    fresh = open_blob_store(s3_location.url)  # no cached knowledge of the blob
    with pytest.raises(ArtifactIntegrityError, match="does not match its sha256") as info:
        fresh.read_bytes(digest)
    assert key in str(info.value) and SECRET_KEY not in str(info.value)
    with pytest.raises(ArtifactIntegrityError):
        fresh.fetch_to(digest, project / "bad" / "blob.bin")
    assert not (project / "bad").exists() or list((project / "bad").iterdir()) == []
    with pytest.raises(ArtifactIntegrityError), fresh.open_blob(digest) as fh:
        while fh.read(1 << 16):
            pass
    # a missing object is the same typed error
    s3_location.client().delete_object(Bucket=s3_location.bucket, Key=key)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        open_blob_store(s3_location.url).verify(digest)


def test_same_content_is_uploaded_once(project: Path, s3_location: S3Location) -> None:
    from nbtoolkit.store.artifacts import open_blob_store

    blobs = open_blob_store(s3_location.url)
    src = project / "a.bin"
    src.write_bytes(b"x" * 100_000)
    digest, _ = blobs.put_file(src)
    first = s3_location.client().head_object(Bucket=s3_location.bucket, Key=_blob_key(s3_location, digest))
    again = open_blob_store(s3_location.url)  # another process would start like this
    assert again.put_file(src)[0] == digest
    second = s3_location.client().head_object(Bucket=s3_location.bucket, Key=_blob_key(s3_location, digest))
    assert first["LastModified"] == second["LastModified"] and first["ETag"] == second["ETag"]
    assert len(s3_location.keys()) == 1


MEASURE = r"""
import json, os, resource, sys
import nbtoolkit as nbtk
from nbtoolkit.store import open_store

path = sys.argv[1]
with open(path, "wb") as fh:  # written in 1 MiB pieces: the file never sits in memory
    for i in range(200):
        fh.write(os.urandom(1 << 20))
store = open_store()
with nbtk.start_run("big-artifact") as run:
    nbtk.log_artifact("small.txt")  # warm up the client before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nbtk.log_artifact(path, "big.bin")
    ref = store.get_run(run.run_id).artifact("big.bin")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.artifacts.fetch_to(ref.digest, path + ".back")
    fetched = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "fetched_kb": fetched, "digest": ref.digest,
                  "size": ref.size, "location": store.artifacts.location}))
"""


@pytest.mark.parametrize("where", ["s3", "local"])
def test_200mb_artifact_streams_with_bounded_memory(project: Path, request: pytest.FixtureRequest, where: str) -> None:
    env = dict(os.environ)
    if where == "s3":
        loc: S3Location = request.getfixturevalue("s3_location")
        env = {**os.environ, "NBTOOLKIT_ARTIFACTS": loc.url}
    (project / "small.txt").write_text("warm-up")
    big = project / "big.bin"
    res = subprocess.run([sys.executable, "-c", MEASURE, str(big)], cwd=project, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out: dict[str, Any] = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["size"] == 200 << 20
    with open(big, "rb") as fh:
        assert hashlib.file_digest(fh, "sha256").hexdigest() == out["digest"]
    assert (project / "big.bin.back").stat().st_size == 200 << 20
    grew_mb = (out["fetched_kb"] - out["before_kb"]) / 1024
    print(f"{where}: peak RSS grew by {grew_mb:.1f} MB for a 200 MB artifact (stored and read back)")
    assert grew_mb < 64, f"peak RSS grew by {grew_mb:.0f} MB while streaming 200 MB"
    if where == "s3":
        assert loc.keys()[_blob_key(loc, out["digest"])] == 200 << 20
