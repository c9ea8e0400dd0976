"""A fresh process lists runs through the driver alone, and gives what the full store gives.

``nbtk.runs()`` with no store in a new process reads the summary rows through a read-only
``sqlite3`` / psycopg2 connection (:mod:`nbtoolkit.store.listing`) instead of loading SQLAlchemy
and the store. These tests hold it to the same answer as the store path, and plant every case
where the store must be opened instead: a run of a dead process, a damaged file, an older
schema, a replaced file, a commit after the first listing.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

_LIST = """
import json, sys
import nbtoolkit as nbtk
frame = nbtk.runs()
print(json.dumps({
    "sqlalchemy": "sqlalchemy" in sys.modules,
    "store": "nbtoolkit.store.store" in sys.modules,
    "frame": json.loads(frame.to_json(orient="split", date_format="iso")),
}))
"""


def _list_in_fresh_process(cwd: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _LIST], cwd=cwd, capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _store_frame(store: Any) -> dict[str, Any]:
    import nbtoolkit as nbtk

    return json.loads(nbtk.runs(store=store).to_json(orient="split", date_format="iso"))


def _record(store: Any, n: int) -> list[str]:
    ids = []
    for i in range(n):
        rid = store.create_run(experiment="exp-a" if i % 2 else "exp-b", params={"lr": 0.1 * (i + 1), "model": f"m{i}", "api_token": "s3cr3t-value"})
        store.log_metrics(rid, [("auc", 0.5 + i / 100, None, 1.0), ("loss", float("nan") if i == 1 else 1.0 / (i + 1), None, 1.0)])
        store.finish_run(rid, status="finished" if i != 2 else "failed", verdict="supported" if i % 2 else None)
        ids.append(rid)
    return ids


def test_fresh_process_lists_without_sqlalchemy_and_equals_the_store(backend: Any, project: Path) -> None:
    ids = _record(backend, 4)
    got = _list_in_fresh_process(project)
    assert got["sqlalchemy"] is False and got["store"] is False
    assert got["frame"] == _store_frame(backend)
    assert sorted(r[got["frame"]["columns"].index("run_id")] for r in got["frame"]["data"]) == sorted(ids)
    assert "s3cr3t-value" not in json.dumps(got)  # the summary was redacted when written


_DIE_WHILE_RUNNING = """
import os
import shutil
from nbtoolkit.store import open_store
store = open_store()
rid = store.create_run(experiment="exp-dead", params={"x": 1})
print(rid, flush=True)
os._exit(0)  # the kernel dies: the run stays marked running
"""


def test_a_run_of_a_dead_process_is_marked_crashed_through_the_store(backend: Any, project: Path) -> None:
    _record(backend, 1)
    out = subprocess.run([sys.executable, "-c", _DIE_WHILE_RUNNING], cwd=project, capture_output=True, text=True, check=True)
    dead = out.stdout.strip()
    got = _list_in_fresh_process(project)
    assert got["sqlalchemy"] is True  # the listing stepped aside: only the store marks it crashed
    status = dict((r[0], r[2]) for r in got["frame"]["data"])
    assert status[dead] == "crashed"
    assert _list_in_fresh_process(project)["sqlalchemy"] is False  # nothing running any more


def test_a_damaged_file_is_refused_by_the_store_not_read_around(project: Path) -> None:
    from nbtoolkit.store import open_store

    store = open_store()
    _record(store, 2)
    store.dispose()
    db = project / ".nbtoolkit" / "store.db"
    data = bytearray(db.read_bytes())
    data[:16] = b"NOT A DATABASE!!"
    db.write_bytes(bytes(data))
    out = subprocess.run([sys.executable, "-c", _LIST], cwd=project, capture_output=True, text=True)
    assert out.returncode == 1
    assert "StoreCorruptError" in out.stderr and str(db) in out.stderr
    assert db.read_bytes()[:16] == b"NOT A DATABASE!!"  # left untouched


def test_an_older_schema_is_upgraded_by_the_store(project: Path) -> None:
    from nbtoolkit.store.version import SCHEMA_VERSION

    folder = project / ".nbtoolkit"
    folder.mkdir(exist_ok=True)
    con = sqlite3.connect(folder / "store.db")
    con.executescript((Path(__file__).parent / "data" / "store_v1.sql").read_text(encoding="utf-8"))
    con.close()
    got = _list_in_fresh_process(project)
    assert got["sqlalchemy"] is True
    assert [r[1] for r in got["frame"]["data"]] == ["legacy-exp"]
    con = sqlite3.connect(folder / "store.db")
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    con.close()
    assert _list_in_fresh_process(project)["sqlalchemy"] is False  # upgraded: the listing serves


def test_listing_sees_every_commit_and_a_replaced_file(project: Path) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.store import Store

    folder = project / ".nbtoolkit"
    writer = Store(folder)  # another connection, as another process would be
    first = _record(writer, 1)
    assert list(nbtk.runs()["run_id"]) == first
    assert list(nbtk.runs()["run_id"]) == first  # served from the cache: unchanged data version
    second = _record(writer, 1)
    assert set(nbtk.runs()["run_id"]) == set(first + second)
    writer.finish_run(second[0], status="finished", verdict="refuted")
    assert nbtk.runs(verdict="refuted")["run_id"].tolist() == second
    writer.dispose()

    # the store is deleted and started again: the listing reopens the new file
    shutil.rmtree(folder)
    assert nbtk.runs().empty  # no database: the store path creates an empty one
    restarted = Store(folder)
    third = _record(restarted, 1)
    assert list(nbtk.runs()["run_id"]) == third
    restarted.dispose()


def test_listing_connection_never_writes(project: Path) -> None:
    from nbtoolkit.store import Store
    from nbtoolkit.store.listing import open_listing

    _record(Store(project / ".nbtoolkit"), 1)
    listing = open_listing()
    assert listing is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
        listing._conn.execute("DELETE FROM runs")


_CLI_LIST = """
import sys
from nbtoolkit.cli import main
sys.argv = ["nbtk", *sys.argv[1:]]
try:
    main()
finally:
    print("SQLALCHEMY" if "sqlalchemy" in sys.modules else "DRIVER-ONLY")
"""


def test_nbtk_runs_lists_through_the_driver_unless_the_store_must_open(backend: Any, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _record(backend, 3)

    def nbtk(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", _CLI_LIST, *args], cwd=project, capture_output=True, text=True, env=dict(os.environ))
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()

    listed = nbtk("runs", "--json")
    assert listed[-1] == "DRIVER-ONLY"  # the store came from NBTOOLKIT_STORE / the project: no SQLAlchemy
    assert sorted(r["run_id"] for r in json.loads("\n".join(listed[:-1]))) == sorted(ids)
    table = nbtk("runs")
    assert table[-1] == "DRIVER-ONLY" and "3 run(s)" in "\n".join(table)
    # a store named on the command line is opened as named, and gives the same runs
    location = os.environ["NBTOOLKIT_STORE"]
    monkeypatch.delenv("NBTOOLKIT_STORE")
    named = nbtk("--store", location, "runs", "--json")
    assert named[-1] == "SQLALCHEMY"
    assert sorted(r["run_id"] for r in json.loads("\n".join(named[:-1]))) == sorted(ids)
