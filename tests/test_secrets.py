"""Planted secrets never reach a byte of the store (SQLite file, WAL, artifacts, locks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import git

GH_TOKEN = "ghp_PLANTEDTOKEN123"
AWS_SECRET = "PLANTEDawsSECRETx9f8e7d6c5b4a"
DIST_PASSWORD = "PLANTEDdistPASSWORD456"
PARAM_SECRET = "PLANTEDparamVALUE777"
PLANTED = (GH_TOKEN, AWS_SECRET, DIST_PASSWORD, PARAM_SECRET)


def _fake_distribution(site: Path) -> None:
    info = site / "privatepkg-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: privatepkg\nVersion: 1.2.3\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    (info / "direct_url.json").write_text(
        json.dumps(
            {
                "url": f"https://deploy:{DIST_PASSWORD}@git.example.com/team/privatepkg.git",
                "vcs_info": {"vcs": "git", "commit_id": "0" * 40, "requested_revision": "main"},
            }
        ),
        encoding="utf-8",
    )
    (site / "privatepkg.py").write_text("VALUE = 1\n", encoding="utf-8")


def _all_store_bytes(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_planted_secrets_never_reach_the_store(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbtoolkit as nbtk

    git(project, "remote", "add", "origin", f"https://user:{GH_TOKEN}@github.com/o/r.git")
    (project / "settings.py").write_text("TIMEOUT = 3\n", encoding="utf-8")
    git(project, "add", "settings.py")
    git(project, "commit", "-q", "-m", "settings")
    # uncommitted change holding a secret value
    (project / "settings.py").write_text(f"TIMEOUT = 3\nAWS_KEY = {AWS_SECRET!r}\n", encoding="utf-8")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    site = tmp_path / "site"
    _fake_distribution(site)
    monkeypatch.syspath_prepend(str(site))

    with nbtk.start_run("secrets", params={"api_token": PARAM_SECRET, "lr": 0.1}) as run:
        nbtk.log_params(db_password=PARAM_SECRET, note=f"clone https://u:{GH_TOKEN}@h/x or https://u:{DIST_PASSWORD}@h/x")
        nbtk.set_tags(source=f"https://user:{GH_TOKEN}@github.com/o/r.git")
        nbtk.log(auc=0.9)
    with pytest.raises(RuntimeError):
        with nbtk.start_run("secrets-fail", success="auc >= 0.5") as failed:
            raise RuntimeError(f"login failed with {os.environ['AWS_SECRET_ACCESS_KEY']} via https://x:{DIST_PASSWORD}@db")

    store = run.store
    rec = store.get_run(run.run_id)
    # the lock was captured and is meaningful (the fake distribution and the git remote are in it)
    lock = rec.lock().to_dict()
    assert "privatepkg" in json.dumps(lock)
    assert rec.artifact("git.diff") is not None
    diff = store.artifacts.read_bytes(rec.artifact("git.diff").digest).decode()
    assert "AWS_KEY" in diff and "TIMEOUT" in diff  # the diff is kept, only the value is masked
    assert rec.params["lr"] == 0.1 and rec.params["api_token"] == "***" and rec.params["db_password"] == "***"
    assert "RuntimeError" in store.get_run(failed.run_id).error

    # close the connections (the last one checkpoints the WAL), then read every byte of the store folder
    store.dispose()
    raw = _all_store_bytes(store.path)
    assert len(raw) > 10_000
    for secret in PLANTED:
        assert secret.encode() not in raw, f"{secret} leaked into the store"
    import sqlite3

    con = sqlite3.connect(store.db_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dump = "\n".join(con.iterdump())
    con.close()
    for secret in PLANTED:
        assert secret not in dump
    raw = _all_store_bytes(store.path)
    for secret in PLANTED:
        assert secret.encode() not in raw


def test_logged_text_files_are_scrubbed_and_binary_files_kept(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbtoolkit as nbtk

    monkeypatch.setenv("HF_TOKEN", "hf-planted-file-value-0123")
    folder = project / "outputs"
    folder.mkdir()
    (folder / "config.yaml").write_text(
        "model: bert\ntoken: hf-planted-file-value-0123\nurl: https://u:pw-planted-9876@h.example/x\nkey: user_id\n",
        encoding="utf-8")
    binary = bytes(range(256)) + b"hf-planted-file-value-0123"  # not text: stored byte for byte
    (folder / "weights.bin").write_bytes(binary)
    late = project / "late.log"
    with nbtk.start_run("files") as run:
        refs = {r.name: r for r in nbtk.log_artifact(folder)}
        monkeypatch.setenv("LATE_API_KEY", "late-exported-value-42")  # exported after the run began
        late.write_text("calling with late-exported-value-42\n", encoding="utf-8")
        nbtk.log_artifact(late)
    store = run.store
    text = store.artifacts.read_bytes(refs["outputs/config.yaml"].digest).decode()
    assert text == "model: bert\ntoken: ***\nurl: https://h.example/x\nkey: user_id\n"
    assert store.artifacts.read_bytes(refs["outputs/weights.bin"].digest) == binary
    assert store.artifacts.read_bytes(store.get_run(run.run_id).artifact("late.log").digest) == b"calling with ***\n"
