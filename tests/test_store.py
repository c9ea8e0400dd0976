"""The store: schema creation, migrations, version guard, atomic and content-addressed artifacts."""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
from pathlib import Path

import pytest

from nbtoolkit.store.version import SCHEMA_VERSION

DATA = Path(__file__).resolve().parent / "data"
LEGACY_RUN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(backend):
    """The store-level tests below run on SQLite and on PostgreSQL (see conftest's ``backend``)."""
    return backend


def _fresh(path: Path):
    from nbtoolkit.store import Store

    return Store(path)


def test_new_store_has_every_table_at_the_latest_version(tmp_path: Path) -> None:
    from nbtoolkit.store import schema as S

    store = _fresh(tmp_path / ".nbtoolkit")
    assert store.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(store.db_path)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert set(S.metadata.tables) <= tables
    assert con.execute("pragma journal_mode").fetchone()[0] == "wal"
    cols = {r[1] for r in con.execute("pragma table_info(runs)")}
    assert {"run_id", "experiment", "status", "verdict", "lock_hash", "cache_key"} <= cols
    con.close()


def test_v1_store_is_upgraded_in_place_and_keeps_its_run(tmp_path: Path) -> None:

    folder = tmp_path / ".nbtoolkit"
    folder.mkdir()
    con = sqlite3.connect(folder / "store.db")
    con.executescript((DATA / "store_v1.sql").read_text(encoding="utf-8"))
    assert "cache_key" not in {r[1] for r in con.execute("pragma table_info(runs)")}
    con.close()

    store = _fresh(folder)
    assert store.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(folder / "store.db")
    assert "cache_key" in {r[1] for r in con.execute("pragma table_info(runs)")}
    assert "sweeps" in {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()

    rec = store.get_run(LEGACY_RUN[:6])
    assert rec.run_id == LEGACY_RUN
    assert (rec.experiment, rec.status, rec.verdict) == ("legacy-exp", "finished", "supported")
    # the fixture is shared with tests/test_registry.py (one run, one param, one metric)
    assert rec.params == {"C": 1.0}
    assert rec.metrics == {"roc_auc": 0.93}
    assert rec.declaration.hypothesis == "v1 runs survive upgrades"
    assert rec.started == 1700000000.0 and rec.ended == 1700000060.0
    assert rec.cache_key is None
    # the upgraded store takes new runs next to the old one
    rid = store.create_run(experiment="new-exp")
    store.finish_run(rid, status="finished")
    assert {r["run_id"] for r in store.query_runs()[0]} == {LEGACY_RUN, rid}
    # the v4 step filled the per-run summary of the old run: runs() reads it in one query
    import nbtoolkit as nbtk

    frame = nbtk.runs(store=store).set_index("run_id")
    assert frame.loc[LEGACY_RUN, "params.C"] == 1.0 and frame.loc[LEGACY_RUN, "metrics.roc_auc"] == 0.93
    assert math.isnan(frame.loc[rid, "params.C"])
    # and opening it again is a no-op
    assert _fresh(folder).schema_version == SCHEMA_VERSION


def test_store_from_a_newer_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    from nbtoolkit.errors import SchemaVersionError

    folder = tmp_path / ".nbtoolkit"
    _fresh(folder).dispose()
    con = sqlite3.connect(folder / "store.db")
    con.execute("update meta set value=? where key='schema_version'", (str(SCHEMA_VERSION + 5),))
    con.commit()
    con.close()
    with pytest.raises(SchemaVersionError) as info:
        _fresh(folder)
    msg = str(info.value)
    assert str(SCHEMA_VERSION + 5) in msg and str(SCHEMA_VERSION) in msg
    assert "upgrade" in msg.lower() or "newer" in msg.lower()
    # nothing was changed by the refused open
    con = sqlite3.connect(folder / "store.db")
    assert con.execute("select value from meta where key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION + 5)
    con.close()


def test_artifacts_are_content_addressed_and_deduplicated(store, tmp_path: Path) -> None:
    data = b"same bytes" * 1000
    d1, n1 = store.artifacts.put_bytes(data)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    d2, n2 = store.artifacts.put_file(src)
    assert d1 == d2 == hashlib.sha256(data).hexdigest()
    assert n1 == n2 == len(data)
    blobs = [p for p in (store.path / "artifacts" / "sha256").rglob("*") if p.is_file()]
    assert len(blobs) == 1 and blobs[0].read_bytes() == data
    # no temporary files left behind
    tmp = store.path / "artifacts" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []
    # two runs referencing the same blob share it
    r1 = store.create_run(experiment="e")
    r2 = store.create_run(experiment="e")
    store.add_artifact(r1, name="a.bin", kind="artifact", digest=d1, size=n1)
    store.add_artifact(r2, name="b.bin", kind="artifact", digest=d1, size=n1)
    assert store.get_run(r1).artifact("a.bin").digest == store.get_run(r2).artifact("b.bin").digest
    assert store.artifacts.read_bytes(d1) == data


def test_artifact_write_is_atomic(store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way leaves neither a blob nor a temp file."""
    data = os.urandom(50_000)
    digest = hashlib.sha256(data).hexdigest()
    real_fsync = os.fsync

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        store.artifacts.put_bytes(data)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not store.artifacts.exists(digest)
    assert list((store.path / "artifacts" / "tmp").iterdir()) == []
    # blobs are read-only once committed
    store.artifacts.put_bytes(data)
    assert not os.access(store.artifacts.path_for(digest), os.W_OK) or os.geteuid() == 0
    assert oct(store.artifacts.path_for(digest).stat().st_mode & 0o777) == "0o444"


def test_tampered_blob_raises_integrity_error(store) -> None:
    from nbtoolkit.errors import ArtifactIntegrityError

    digest, _ = store.artifacts.put_bytes(b"model weights v1")
    path = store.artifacts.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"model weights v2")
    with pytest.raises(ArtifactIntegrityError) as info:
        store.artifacts.read_bytes(digest)
    assert digest[:12] in str(info.value)
    with pytest.raises(ArtifactIntegrityError):
        store.artifacts.verify(digest)
    with pytest.raises(ArtifactIntegrityError):
        store.artifacts.copy_to(digest, store.path.parent / "out.bin")
    assert not (store.path.parent / "out.bin").exists()


def test_bad_digest_is_an_input_error(store) -> None:
    from nbtoolkit.errors import InputError

    with pytest.raises(InputError):
        store.artifacts.path_for("../../etc/passwd")


def test_metrics_keep_special_values_and_latest_step(store) -> None:
    rid = store.create_run(experiment="e")
    store.log_metrics(rid, [("a", math.nan, None, 1.0), ("b", math.inf, None, 1.0), ("c", -math.inf, None, 1.0)])
    store.log_metrics(rid, [("s", 3.0, 3, 1.0), ("s", 1.0, 1, 1.0)])
    store.log_metrics(rid, [("s", 2.0, 2, 2.0)])  # a late, older step does not replace the last value
    rec = store.get_run(rid)
    assert math.isnan(rec.metrics["a"]) and rec.metrics["b"] == math.inf and rec.metrics["c"] == -math.inf
    assert rec.metrics["s"] == 3.0
    assert store.metric_history(rid, "s") == [(1, 1.0), (2, 2.0), (3, 3.0)]


def test_runs_summary_follows_every_write_of_params_and_metrics(store) -> None:
    """``runs()`` reads the per-run summary columns; they must always equal the rows."""
    import nbtoolkit as nbtk
    from nbtoolkit.store import schema as S

    rid = store.create_run(experiment="e", params={"lr": 0.1, "layers": [2, 3]})
    store.log_params(rid, {"lr": 0.1, "opt": "adam"})
    store.log_metrics(rid, [("a", math.nan, None, 1.0), ("b", math.inf, None, 1.0), ("s", 3.0, 3, 1.0)])
    store.log_metrics(rid, [("s", 2.0, 2, 2.0), ("c", -math.inf, None, 2.0), ("d", 0.5, None, 2.0)])
    other = store.create_run(experiment="e", params={"lr": 0.2})
    frame = nbtk.runs(store=store).set_index("run_id")
    assert frame.loc[rid, "params.lr"] == 0.1 and frame.loc[rid, "params.opt"] == "adam"
    assert frame.loc[rid, "params.layers"] == "[2, 3]" and frame.loc[other, "params.lr"] == 0.2
    got = frame.loc[rid, ["metrics.a", "metrics.b", "metrics.c", "metrics.d", "metrics.s"]].tolist()
    assert math.isnan(got[0]) and got[1:] == [math.inf, -math.inf, 0.5, 3.0]
    assert math.isnan(frame.loc[other, "metrics.s"])
    # the summary columns equal a recomputation from the rows (what the v4 migration backfills)
    before = store._read(lambda c: c.execute(S.runs.select().with_only_columns(S.runs.c.run_id, S.runs.c.params_json, S.runs.c.metrics_json)).all())
    store._write(lambda c: S.refresh_summary(c, [rid, other]))
    after = store._read(lambda c: c.execute(S.runs.select().with_only_columns(S.runs.c.run_id, S.runs.c.params_json, S.runs.c.metrics_json)).all())
    assert sorted(before) == sorted(after)
    # a cache hit copies the summary with the rows
    store.finish_run(rid, status="finished")
    store.copy_run(rid, new_id="c" * 32, parent_id=None, cache_key="k")
    assert nbtk.runs(store=store).set_index("run_id").loc["c" * 32, "metrics.s"] == 3.0


def test_run_id_prefixes(store) -> None:
    from nbtoolkit.errors import AmbiguousRunIdError, InputError, RunNotFoundError

    a = store.create_run(experiment="e", run_id="abcd1" + "0" * 27)
    store.create_run(experiment="e", run_id="abcd2" + "0" * 27)
    assert store.resolve_run_id("abcd1") == a
    assert store.resolve_run_id(a.upper()) == a
    with pytest.raises(AmbiguousRunIdError) as info:
        store.resolve_run_id("abcd")
    assert "ambiguous" in str(info.value)
    with pytest.raises(RunNotFoundError):
        store.resolve_run_id("ffff")
    with pytest.raises(InputError):
        store.resolve_run_id("ab")
    with pytest.raises(RunNotFoundError):
        store.resolve_run_id("not-hex")


def test_stale_running_run_of_dead_process_is_marked_crashed(store) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    rid = store.create_run(experiment="e", pid=proc.pid)
    live = store.create_run(experiment="e")
    assert rid in store.recover_stale_runs()
    rec = store.get_run(rid)
    assert rec.status == "crashed" and rec.ended is not None and "ended without closing" in rec.error
    assert store.get_run(live).status == "running"


DAMAGED_DECLARATION = {"experiment": "old exp", "hypothesis": "kept as stored", "success": ["acc >>= 0.9"],
                       "until": "soon", "seed": -3, "legacy_note": "from v0.1"}


def test_damaged_or_missing_declaration_and_verdict_load_without_crashing(store) -> None:
    """Rows an older version (or a hand edit) wrote never break a read; nothing stored is lost."""
    from nbtoolkit.store.card import run_card_html, run_card_text

    old = store.create_run(experiment="old-exp", declaration=DAMAGED_DECLARATION)
    store.finish_run(old, status="finished", verdict="supported", verdict_detail={"criteria": []})
    bare = store.create_run(experiment="bare", kind="papermill")
    store.finish_run(bare, status="finished")

    rec = store.get_run(old)
    decl = rec.declaration
    assert decl.declared and decl.experiment == "old exp" and decl.hypothesis == "kept as stored"
    assert decl.success == () and decl.until is None and decl.seed is None and decl.criteria == []
    assert decl.extra == {"success": ["acc >>= 0.9"], "until": "soon", "seed": -3, "legacy_note": "from v0.1"}
    assert rec.verdict == "supported" and rec.verdict_detail is None  # unreadable detail: the column stays
    shown = rec.to_dict()["declaration"]
    assert {k: shown[k] for k in DAMAGED_DECLARATION} == DAMAGED_DECLARATION  # round-trips unchanged
    assert "kept as stored" in run_card_text(rec) and "kept as stored" in run_card_html(rec)

    empty = store.get_run(bare)
    assert not empty.declaration.declared and empty.declaration.hypothesis == ""
    assert empty.to_dict()["declaration"] == {} and empty.verdict_detail is None
    assert empty.hypothesis == "" and "bare" in run_card_text(empty)

    rows, _, _ = store.query_runs()
    by_id = {r["run_id"]: r["declaration"] for r in rows}
    assert by_id[old] == decl and not by_id[bare].declared


def test_stored_declaration_and_verdict_come_back_typed(store) -> None:
    from nbtoolkit.declaration import make_declaration
    from nbtoolkit.verdict import Verdict, evaluate

    decl = make_declaration("typed", hypothesis="h", success="acc >= 0.5; acc >= baseline.acc",
                            until="2030-01-31", tags={"team": "ml"}, seed=7)
    verdict = evaluate(decl.criteria, {"acc": 0.9}, baseline={"acc": 0.95})
    run_id = store.create_run(experiment="typed", declaration=decl.to_dict())
    store.finish_run(run_id, status="finished", verdict=verdict.status, verdict_detail=verdict.to_dict())
    rec = store.get_run(run_id)
    assert rec.declaration == decl and rec.declaration.extra == {}
    assert isinstance(rec.verdict_detail, Verdict) and rec.verdict_detail == verdict
    assert rec.verdict_detail.status == "rejected" and rec.verdict_detail.results[1].baseline == 0.95
    assert rec.to_dict()["declaration"] == decl.to_dict()
    assert rec.to_dict()["verdict_detail"] == verdict.to_dict()
