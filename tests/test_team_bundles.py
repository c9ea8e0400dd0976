# ruff: noqa: F811  (pytest fixtures imported from _s3 are redefined as parameters)
"""Hand-offs across machines: a bundle exported on one machine is resolved, loaded and served on another.

The team store is a real PostgreSQL server with artifacts in a real S3 API (moto_server on
127.0.0.1). "Machine A" exports and promotes from its project folder, then its bundle folder is
deleted: nothing on disk is shared. "Machine B" is another project folder with its own cache
(``XDG_CACHE_HOME``) and the same store settings; it gets the bundle from the store's artifact
location, checked by sha256 and by the bundle's manifest. Tampered, foreign and missing blobs are
refused with clear errors; no credential reaches anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from _s3 import ACCESS_KEY, SECRET_KEY, S3Location, s3_location, s3_server  # noqa: F401 (fixtures)
from _serve import Server, export_model, free_port, records
from _stability import demo_models, make_run, register
from conftest import git, nbtk_cli

from nbtoolkit import registry
from nbtoolkit.errors import (
    ArtifactIntegrityError,
    BundleIntegrityError,
    BundleUnavailableError,
    PromotionRefused,
)
from nbtoolkit.export.fetch import bundle_cache, manifest_sha256
from nbtoolkit.stability.promotion import promote
from nbtoolkit.store import open_store
from nbtoolkit.store.models import ModelVersion

pytestmark = pytest.mark.slow


def _machine(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``root`` the current project (a git repo with a pyproject) with its own bundle cache."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "pyproject.toml").exists():
        (root / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "0"\n\n[tool.nbtoolkit]\n', encoding="utf-8")
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "init")
    monkeypatch.chdir(root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(root / "cache"))
    return root


def _blob_key(loc: S3Location, digest: str) -> str:
    return f"{loc.prefix}/sha256/{digest[:2]}/{digest[2:]}"


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET_KEY not in text and ACCESS_KEY not in text


def _tree_text(folder: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture
def team(project: Path, s3_location: S3Location, postgres_url: str, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Machine A exports cancer 1.0.0 (GBM) to the team store, promotes it, and its bundle folder is deleted."""
    monkeypatch.setenv("NBTOOLKIT_STORE", postgres_url)
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    _machine(project, monkeypatch)
    m = demo_models()
    exported = Path(export_model(tmp_path / "A-bundles", m["gb"], model="cancer", version="1.0.0"))
    store_a = open_store()
    mv = registry.get_version("cancer", "1.0.0", store=store_a)
    promote("cancer", "1.0.0", to="production", by="ana", reason="first", store=store_a)
    assert registry.resolve("cancer@production", store=store_a).path == str(exported)  # machine A: the folder itself
    store_a.dispose()
    shutil.rmtree(exported)  # plant: the recorded path exists on no other machine
    machine_b = _machine(tmp_path / "B", monkeypatch)
    return {"m": m, "version": mv, "b": machine_b, "s3": s3_location, "recorded": exported}


def test_the_export_stores_its_archive_before_recording_the_version(team: dict[str, Any]) -> None:
    mv: ModelVersion = team["version"]
    loc: S3Location = team["s3"]
    assert mv.blob is not None and mv.to_dict()["blob"] == mv.blob
    assert mv.extra["blob"]["size"] == loc.keys()[_blob_key(loc, mv.blob)]
    body = loc.client().get_object(Bucket=loc.bucket, Key=_blob_key(loc, mv.blob))["Body"].read()
    assert hashlib.sha256(body).hexdigest() == mv.blob
    archive = team["b"] / "x.tar.gz"
    archive.write_bytes(body)
    with tarfile.open(archive) as tar:  # the bundle itself, under <model>-<version>/
        names = tar.getnames()
        manifest = tar.extractfile("cancer-1.0.0/MANIFEST.json")
        assert manifest is not None and hashlib.sha256(manifest.read()).hexdigest() == mv.manifest_sha256
    assert {"cancer-1.0.0/model/model.skops", "cancer-1.0.0/signature.json"} <= set(names)
    _no_secret(body.decode("latin-1"), json.dumps(mv.extra), mv.path)


def test_machine_b_resolves_loads_and_reuses_a_verified_copy(team: dict[str, Any]) -> None:
    import nbtoolkit as nbtk

    m, mv = team["m"], team["version"]
    store = open_store()
    try:
        resolved = registry.resolve("cancer@production", store=store)
        local = Path(resolved.path)
        assert local == bundle_cache() / "cancer" / "1.0.0" / mv.blob[:16]
        assert local.is_relative_to(team["b"] / "cache") and manifest_sha256(local) == mv.manifest_sha256
        assert (resolved.model, resolved.version, resolved.run_id) == (mv.model, mv.version, mv.run_id)
        assert not team["recorded"].exists()
        X = m["X"].iloc[:60]
        bundle = nbtk.load_bundle("cancer@production", store=store)
        assert bundle.version == "1.0.0" and bundle.path == local
        assert bundle.predict(X).tolist() == m["gb"].predict(X).tolist()
        inode = local.stat().st_ino
        assert Path(registry.resolve("cancer@1.0.0", store=store).path) == local
        assert local.stat().st_ino == inode  # reused, not fetched again
        assert [p.name for p in local.parent.iterdir()] == [local.name]  # no half-extracted work folder left
        # a changed file in the cache: loading re-verifies every hash and refuses it
        (local / "signature.json").write_text("{}", encoding="utf-8")
        with pytest.raises(BundleIntegrityError, match="signature.json: changed"):
            nbtk.load_bundle("cancer@production", store=store)
        # a cache entry that is not the version's (its manifest changed): fetched again over it
        (local / "MANIFEST.json").write_text("{}", encoding="utf-8")
        assert Path(registry.resolve("cancer@production", store=store).path) == local
        assert local.stat().st_ino != inode and manifest_sha256(local) == mv.manifest_sha256
        assert nbtk.load_bundle("cancer@production", store=store).predict(X).tolist() == m["gb"].predict(X).tolist()
        assert [p.name for p in local.parent.iterdir()] == [local.name]
        # promotion gates verify the fetched copy on machine B
        move = promote("cancer", "1.0.0", to="staging", by="lee", reason="from machine B", store=store)
        assert move.to_version == "1.0.0"
        _no_secret(_tree_text(local))
    finally:
        store.dispose()


def test_nbtk_serve_verify_and_fetch_from_machine_b(team: dict[str, Any]) -> None:
    m, mv, b = team["m"], team["version"], team["b"]
    frame, cols = m["frame"], list(m["X"].columns)
    server = Server(b, "cancer@production")
    try:
        r = server.score(records(frame, range(12)))
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == m["gb"].predict(frame[cols].iloc[:12]).tolist()
    finally:
        err = server.stop()
    _no_secret(err)
    verify = nbtk_cli("verify", "cancer@1.0.0", cwd=b)
    assert verify.returncode == 0, verify.stderr
    assert "OK:" in verify.stdout and str(bundle_cache() / "cancer" / "1.0.0") in verify.stdout
    fetched = nbtk_cli("fetch", "cancer@production", "-o", str(b / "deploy"), cwd=b)
    assert fetched.returncode == 0, fetched.stderr
    folder = b / "deploy" / "cancer-1.0.0"
    assert manifest_sha256(folder) == mv.manifest_sha256 and (folder / "model" / "model.skops").is_file()
    archived = nbtk_cli("fetch", "cancer@1.0.0", "-o", str(b / "deploy"), "--archive", cwd=b)
    assert archived.returncode == 0, archived.stderr
    archive = b / "deploy" / "cancer-1.0.0.tar.gz"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == mv.blob  # the exported archive itself
    again = nbtk_cli("fetch", "cancer@1.0.0", "-o", str(b / "deploy"), cwd=b)
    assert again.returncode == 2 and "already exists" in again.stderr
    _no_secret(verify.stdout + verify.stderr, fetched.stdout + fetched.stderr, archived.stdout + archived.stderr)


def test_concurrent_fetches_on_one_machine_install_one_complete_copy(team: dict[str, Any]) -> None:
    mv, b = team["version"], team["b"]
    folder = bundle_cache() / "cancer" / "1.0.0"
    abandoned, running = folder / ".fetch-killed", folder / ".fetch-running"  # plant: a killed fetch, one in progress
    for work in (abandoned, running):
        (work / "bundle").mkdir(parents=True)
    os.utime(abandoned, (1_000_000_000, 1_000_000_000))
    code = "from nbtoolkit import registry; print(registry.resolve('cancer@1.0.0').path)"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=b, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    paths = {o.strip().splitlines()[-1] for o, _ in outs}
    entry = bundle_cache() / "cancer" / "1.0.0" / mv.blob[:16]
    assert paths == {str(entry)}
    assert sorted(p.name for p in entry.parent.iterdir()) == sorted([entry.name, running.name])
    from nbtoolkit.export.verify import verify_bundle

    assert verify_bundle(entry).manifest["version"] == "1.0.0"


def test_a_tampered_or_foreign_blob_is_refused_and_leaves_no_cache_entry(team: dict[str, Any]) -> None:
    import nbtoolkit as nbtk

    mv, loc = team["version"], team["s3"]
    key = _blob_key(loc, mv.blob)
    client = loc.client()
    body = client.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
    store = open_store()
    try:
        # a foreign archive: the blob of 1.0.0 recorded for a version whose manifest is another's
        other = ModelVersion("cancer", "9.9.9", mv.run_id, "/elsewhere/cancer-9.9.9", mv.created, "0" * 64,
                             extra={"blob": {"sha256": mv.blob, "size": len(body)}})
        assert store.record_export(other)
        with pytest.raises(BundleIntegrityError, match="another bundle's archive"):
            registry.resolve("cancer@9.9.9", store=store)
        assert list((bundle_cache() / "cancer" / "9.9.9").iterdir()) == []
        # a tampered blob: same key, other bytes
        client.put_object(Bucket=loc.bucket, Key=key, Body=body[:-200] + b"\0" * 200)
        with pytest.raises(ArtifactIntegrityError) as info:
            nbtk.load_bundle("cancer@production", store=store)
        assert key in str(info.value)
        assert list((bundle_cache() / "cancer" / "1.0.0").iterdir()) == []
        with pytest.raises(PromotionRefused, match="does not verify") as refused:  # the gates fetch and refuse it too
            promote("cancer", "1.0.0", to="staging", by="lee", reason="from machine B", store=store)
        assert key in str(refused.value)
        # the store check names it too
        check = nbtk_cli("store", "check", cwd=team["b"])
        assert check.returncode == 1 and f"artifact {mv.blob[:12]}: content does not match" in check.stdout
        _no_secret(check.stdout + check.stderr, str(info.value))
    finally:
        store.dispose()


def test_a_missing_blob_with_the_path_gone_names_both_and_the_fix(team: dict[str, Any]) -> None:
    mv, loc, b = team["version"], team["s3"], team["b"]
    loc.client().delete_object(Bucket=loc.bucket, Key=_blob_key(loc, mv.blob))
    store = open_store()
    try:
        with pytest.raises(BundleUnavailableError) as info:
            registry.resolve("cancer@production", store=store)
    finally:
        store.dispose()
    message = str(info.value)
    assert str(team["recorded"]) in message and _blob_key(loc, mv.blob) in message
    assert "nbtk store copy" in message and "--new-version" in message
    served = nbtk_cli("serve", "cancer@production", "--port", str(free_port()), cwd=b, timeout=120)
    assert served.returncode != 0 and "neither at" in served.stderr and "Traceback" not in served.stderr
    _no_secret(message, served.stderr)


def test_store_copy_carries_bundle_blobs_to_the_team_store(project: Path, s3_location: S3Location, postgres_url: str,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A personal SQLite store copied into PostgreSQL + S3: another machine loads its versions."""
    _machine(project, monkeypatch)
    m = demo_models()
    exported = Path(export_model(tmp_path / "bundles", m["gb"], model="cancer", version="1.0.0"))
    personal = project / ".nbtoolkit"
    mv = registry.get_version("cancer", "1.0.0")
    assert mv.blob is not None and (personal / "artifacts" / "sha256" / mv.blob[:2] / mv.blob[2:]).is_file()
    copied = nbtk_cli("store", "copy", str(personal), postgres_url, "--dst-artifacts", s3_location.url, cwd=project)
    assert copied.returncode == 0, copied.stderr
    assert _blob_key(s3_location, mv.blob) in s3_location.keys()
    monkeypatch.setenv("NBTOOLKIT_STORE", postgres_url)
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", s3_location.url)
    check = nbtk_cli("store", "check", "--against", str(personal), cwd=project)
    assert check.returncode == 0, check.stdout + check.stderr
    shutil.rmtree(exported)
    _machine(tmp_path / "B", monkeypatch)
    store = open_store()
    try:
        import nbtoolkit as nbtk

        bundle = nbtk.load_bundle("cancer@1.0.0", store=store)
        X = m["X"].iloc[:30]
        assert bundle.predict(X).tolist() == m["gb"].predict(X).tolist()
    finally:
        store.dispose()
    s3_location.client().delete_object(Bucket=s3_location.bucket, Key=_blob_key(s3_location, mv.blob))
    missing = nbtk_cli("store", "check", cwd=tmp_path / "B")
    assert missing.returncode == 1 and f"artifact {mv.blob[:12]}: blob missing" in missing.stdout
    _no_secret(copied.stdout + copied.stderr, check.stdout, missing.stdout)


def test_sqlite_single_user_uses_the_recorded_folder_and_old_versions_keep_their_path(
    project: Path, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbtoolkit as nbtk

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    m = demo_models()
    exported = export_model(tmp_path / "bundles", m["gb"], model="cancer", version="1.0.0")
    assert registry.resolve("cancer@1.0.0", store=store).path == exported
    assert nbtk.load_bundle("cancer@1.0.0", store=store).path == Path(exported)
    assert not (tmp_path / "cache").exists()  # nothing fetched: the folder is here
    # a different bundle at the recorded path (not the version's manifest): the stored archive is used
    shutil.rmtree(exported)
    shutil.copytree(Path(export_model(tmp_path / "other", m["lr"], model="cancer", version="1.0.1")), exported)
    local = Path(registry.resolve("cancer@1.0.0", store=store).path)
    assert local.is_relative_to(tmp_path / "cache") and local != Path(exported)
    X = m["X"].iloc[:30]
    assert nbtk.load_bundle("cancer@1.0.0", store=store).predict(X).tolist() == m["gb"].predict(X).tolist()
    # a version exported before bundles were stored: its path is the record, missing or not
    old = register(store, tmp_path / "old", m["lr"], model="legacy", version="0.1.0", run_id=make_run("legacy"))
    assert registry.get_version("legacy", "0.1.0", store=store).blob is None
    assert registry.resolve("legacy@0.1.0", store=store).path == str(old.resolve())
    shutil.rmtree(old)
    assert registry.resolve("legacy@0.1.0", store=store).path == str(old.resolve())
    with pytest.raises(nbtk.NbToolkitError, match="does not exist"):
        nbtk.load_bundle("legacy@0.1.0", store=store)
    gone = nbtk_cli("fetch", "legacy@0.1.0", "-o", str(tmp_path / "deploy"))
    assert gone.returncode == 2 and "its only copy" in gone.stderr
