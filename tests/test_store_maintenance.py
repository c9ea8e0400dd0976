# ruff: noqa: F811  (pytest fixtures imported from _s3 are redefined as parameters)
"""``nbtk store check``, ``backup`` (while runs are written) and ``copy`` between SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _s3 import S3Location, s3_location, s3_server  # noqa: F401 - fixtures
from conftest import nbtk_cli

PASSWORD = "pw-copy-7Hq-never-print"


def _populate(store: Any) -> dict[str, str]:
    """Runs with lineage, metrics, tags, artifacts, locks, approvals, exports and registry history."""
    from sqlalchemy import insert

    from nbtoolkit.store import DataRef
    from nbtoolkit.store import schema as S

    parent = store.create_run(experiment="base", params={"lr": 0.1, "layers": [1, 2]}, declaration={"hypothesis": "h0"})
    store.log_metrics(parent, [("loss", 1.0 / (s + 1), s, 100.0 + s) for s in range(5)] + [("auc", float("nan"), None, 7.0)])
    store.set_tags(parent, {"team": "a"})
    store.put_text_artifact(parent, name="notes.txt", kind="text", text="parent notes")
    store.put_lock("f" * 64, {"schema": 1, "python": {"version": "3.11"}})
    store.update_run(parent, lock_hash="f" * 64)
    store.add_datasets(parent, [DataRef(path="data.csv", source="file", digest="d" * 32, algo="md5", size=12)])
    store.finish_run(parent, status="finished", verdict="supported", verdict_detail={"criteria": []})
    child = store.create_run(experiment="base", parent_id=parent, params={"lr": 0.2})
    store.put_text_artifact(child, name="out.txt", kind="text", text="child output")
    store.finish_run(child, status="finished")
    repro = store.create_run(experiment="base", origin_run_id=parent, kind="reproduction")
    store.finish_run(repro, status="failed", error="boom")
    store.add_approval(parent, by="reviewer", note="looks right")
    store.add_approval(child, by="lead", note="ok")

    def registry(conn: Any) -> None:
        conn.execute(insert(S.exports).values(run_id=parent, model="m", version="1.0.0", path="/b/1", created=5.0, manifest_sha256="a" * 64))
        conn.execute(insert(S.aliases).values(model="m", alias="production", version="1.0.0", updated=6.0))
        for i, (frm, to) in enumerate([(None, "1.0.0"), ("1.0.0", "1.0.1"), ("1.0.1", "1.0.0")]):
            conn.execute(insert(S.alias_history).values(model="m", alias="production", from_version=frm, to_version=to,
                                                       action="promote" if i < 2 else "rollback", by="ops", created=10.0 + i))

    store._write(registry)
    return {"parent": parent, "child": child, "repro": repro}


def _dump(store: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted, for comparing stores across backends."""
    from sqlalchemy import select

    from nbtoolkit.store import schema as S

    out = {}
    for table in S.metadata.sorted_tables:
        if table.name == "meta":
            continue
        rows = store._read(lambda c, t=table: c.execute(select(t)).all())
        out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def test_copy_sqlite_to_postgres_and_back_keeps_everything(project: Path, postgres_url: str, tmp_path: Path) -> None:
    from nbtoolkit.store import Store, open_store

    src_folder = project / ".nbtoolkit"
    src = open_store()
    ids = _populate(src)
    pg = postgres_url.replace("postgresql+psycopg2://postgres@", f"postgresql://postgres:{PASSWORD}@")

    shared = str(tmp_path / "team-blobs")  # a server store's blobs live at an explicit location
    first = nbtk_cli("store", "copy", str(src_folder), pg, "--dst-artifacts", shared, cwd=project)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "runs: +3" in first.stdout and "alias_history: +3" in first.stdout and "approvals: +2" in first.stdout
    assert "2 blobs copied" in first.stdout
    again = nbtk_cli("store", "copy", str(src_folder), pg, cwd=project, env={"NBTOOLKIT_ARTIFACTS": shared})
    assert again.returncode == 0, again.stdout + again.stderr
    assert " 0 rows added" in again.stdout and "0 blobs copied" in again.stdout
    checked = nbtk_cli("--store", pg, "store", "check", "--against", str(src_folder), cwd=project,
                       env={"NBTOOLKIT_ARTIFACTS": shared})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "2 referenced blobs, 0 missing, 0 damaged" in checked.stdout
    for out in (first, again, checked):
        assert PASSWORD not in out.stdout + out.stderr

    target = Store(src_folder, url=pg, artifacts=shared)
    assert _dump(target) == _dump(src)
    rec = target.get_run(ids["child"])
    assert rec.parent_id == ids["parent"] and rec.params == {"lr": 0.2}
    # ids of approvals / history keep counting after the copied ones
    target.add_approval(ids["repro"], by="new", note="")
    ids_now = [r[0] for r in target._read(lambda c: c.exec_driver_sql("SELECT id FROM approvals ORDER BY id").all())]
    assert ids_now == [1, 2, 3]

    back_folder = tmp_path / "back" / ".nbtoolkit"
    back = nbtk_cli("store", "copy", pg, str(back_folder), "--src-artifacts", shared, cwd=project)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "2 blobs copied" in back.stdout
    restored = Store(back_folder)
    assert _dump(restored) == _dump(target)
    assert restored.artifacts.read_bytes(restored.get_run(ids["child"]).artifact("out.txt").digest) == b"child output"


def test_copy_folder_into_postgres_and_s3_then_check_is_clean(project: Path, postgres_url: str, s3_location: S3Location) -> None:
    from nbtoolkit.store import Store, open_store

    src_folder = project / ".nbtoolkit"
    src = open_store()
    ids = _populate(src)
    big = project / "weights.bin"
    big.write_bytes(os.urandom(9 << 20))  # over one upload part: a multipart upload
    digest, size = src.artifacts.put_file(big)
    src.add_artifact(ids["child"], name="weights.bin", kind="model", digest=digest, size=size)

    copied = nbtk_cli("store", "copy", str(src_folder), postgres_url, "--dst-artifacts", s3_location.url, cwd=project)
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert "3 blobs copied" in copied.stdout and "runs: +3" in copied.stdout
    keys = s3_location.keys()
    prefix = f"{s3_location.prefix}/sha256/{digest[:2]}/{digest[2:]}"
    assert keys[prefix] == size and len([k for k in keys if "/sha256/" in k]) == 3

    env = {"NBTOOLKIT_ARTIFACTS": s3_location.url}
    checked = nbtk_cli("--store", postgres_url, "store", "check", "--against", str(src_folder), cwd=project, env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"artifact location: {s3_location.url}" in checked.stdout
    assert "3 referenced blobs, 0 missing, 0 damaged, 0 orphan" in checked.stdout and checked.stdout.rstrip().endswith("OK")

    target = Store(src_folder, url=postgres_url, artifacts=s3_location.url)
    assert _dump(target) == _dump(src)
    assert target.artifacts.read_bytes(target.get_run(ids["child"]).artifact("out.txt").digest) == b"child output"

    # damage one object in the bucket: the check finds it, the copy back refuses it
    s3_location.client().put_object(Bucket=s3_location.bucket, Key=prefix, Body=b"not the weights")
    damaged = nbtk_cli("--store", postgres_url, "store", "check", cwd=project, env=env)
    assert damaged.returncode == 1 and f"artifact {digest[:12]}: content does not match its sha256" in damaged.stdout
    back = nbtk_cli("store", "copy", postgres_url, str(project / "back"), cwd=project, env=env)
    assert back.returncode == 1 and "does not match its sha256" in back.stderr
    assert not (project / "back" / "artifacts" / "sha256" / digest[:2] / digest[2:]).exists()


def test_check_finds_missing_and_damaged_blobs_and_lists_orphans(project: Path) -> None:
    from nbtoolkit.store import open_store

    store = open_store()
    ids = _populate(store)
    healthy = nbtk_cli("store", "check", cwd=project)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "integrity_check: ok" in healthy.stdout and "2 referenced blobs, 0 missing, 0 damaged, 0 orphan" in healthy.stdout

    notes = store.artifacts.path_for(store.get_run(ids["parent"]).artifact("notes.txt").digest)
    out = store.artifacts.path_for(store.get_run(ids["child"]).artifact("out.txt").digest)
    os.chmod(notes, 0o644)
    notes.write_bytes(b"tampered")
    out.unlink()
    orphan_digest, _ = store.artifacts.put_bytes(b"nobody refers to me")
    result = nbtk_cli("store", "check", cwd=project)
    assert result.returncode == 1
    assert "content does not match its sha256" in result.stdout and "blob missing" in result.stdout
    assert f"orphan blob (no artifact row): {orphan_digest}" in result.stdout
    assert "2 problem(s) found" in result.stdout


_WRITER = """
import sys, time
import nbtoolkit as nbtk
deadline = time.time() + float(sys.argv[1])
n = 0
while time.time() < deadline:
    with nbtk.start_run("busy", params={"n": n}) as run:
        for step in range(10):
            nbtk.log_metric("loss", float(step), step=step)
    n += 1
print(n)
"""


def test_backup_while_runs_are_being_written(project: Path, tmp_path: Path) -> None:
    from nbtoolkit.store import Store, open_store

    store = open_store()
    _populate(store)
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, "12"], cwd=project, env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    backups = []
    try:
        time.sleep(3)
        for i in range(3):
            dest = tmp_path / f"backup{i}"
            result = nbtk_cli("store", "backup", str(dest), cwd=project)
            assert result.returncode == 0, result.stdout + result.stderr
            backups.append(dest)
            time.sleep(1)
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert int(out) > 3
    counts = []
    for dest in backups:
        con = sqlite3.connect(dest / "store.db")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        copy = Store(dest)
        rows, params, _ = copy.query_runs(experiment="busy")
        counts.append(len(rows))
        for rec in copy.get_runs([r["run_id"] for r in rows if r["status"] == "finished"]):
            assert [s for s, _ in rec.metric_history("loss")] == list(range(10))  # no torn run
        checked = nbtk_cli("--store", str(dest), "store", "check", cwd=project)
        assert checked.returncode == 0, checked.stdout
        copy.dispose()
    assert counts == sorted(counts) and counts[-1] > 0
    again = nbtk_cli("store", "backup", str(backups[0]), cwd=project)
    assert again.returncode == 2 and "already holds a store" in again.stderr


def test_backup_of_a_server_store_points_to_pg_dump(project: Path, postgres_url: str, tmp_path: Path) -> None:
    result = nbtk_cli("--store", postgres_url, "store", "backup", str(tmp_path / "b"), cwd=project)
    assert result.returncode == 2 and "pg_dump" in result.stderr


def test_copy_reports_rows_that_differ_instead_of_overwriting(project: Path, tmp_path: Path) -> None:
    from sqlalchemy import update

    from nbtoolkit.store import Store, open_store
    from nbtoolkit.store import schema as S

    src = open_store()
    _populate(src)
    dst_folder = tmp_path / "dst"
    assert nbtk_cli("store", "copy", str(project / ".nbtoolkit"), str(dst_folder), cwd=project).returncode == 0
    dst = Store(dst_folder)
    dst._write(lambda c: c.execute(update(S.approvals).where(S.approvals.c.id == 1).values(note="edited in dst")))
    dst.dispose()
    result = nbtk_cli("store", "copy", str(project / ".nbtoolkit"), str(dst_folder), cwd=project)
    assert result.returncode == 1
    assert "CONFLICT" in result.stdout and "approvals {'id': 1}" in result.stdout
    assert Store(dst_folder)._read(lambda c: c.execute(S.approvals.select().where(S.approvals.c.id == 1)).one().note) == "edited in dst"


@pytest.mark.parametrize("where", ["src", "dst"])
def test_copy_refuses_a_damaged_sqlite_store(where: str, project: Path, tmp_path: Path) -> None:
    from nbtoolkit.store import open_store

    _populate(open_store())
    other = tmp_path / "other"
    other.mkdir()
    (other / "store.db").write_bytes(b"garbage" * 100)
    args = (str(other), str(tmp_path / "new")) if where == "src" else (str(project / ".nbtoolkit"), str(other))
    result = nbtk_cli("store", "copy", *args, cwd=project)
    assert result.returncode == 1 and "PROBLEM: database: the file is not a SQLite database" in result.stdout
    assert (other / "store.db").read_bytes() == b"garbage" * 100
