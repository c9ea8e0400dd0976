"""Store location and engines: URLs vs folders, PostgreSQL, credentials, concurrent schema creation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import nbtk_cli

from nbtoolkit.config import load_settings, mask_url
from nbtoolkit.errors import ConfigError
from nbtoolkit.store.version import SCHEMA_VERSION

PASSWORD = "pw-Zq81-never-print"


def _pg_url_with_password(url: str) -> str:
    return url.replace("postgresql+psycopg2://postgres@", f"postgresql://postgres:{PASSWORD}@")


# ---------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "value",
    ["postgresql://nbtk@db.internal:5432/experiments", "postgresql+psycopg2://u:p@h/db", "mysql+pymysql://u@h/db"],
)
def test_a_url_is_never_a_folder_name(value: str, tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"NBTOOLKIT_STORE": value})
    assert settings.store_url == value
    assert settings.store_path == tmp_path / ".nbtoolkit"
    assert ":" not in settings.store_path.name
    flag = load_settings(tmp_path, store=value, environ={})
    assert flag.store_url == value


def test_store_url_in_pyproject_and_sqlite_urls(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.nbtoolkit]\nstore = "postgresql://team@db/exp"\n', encoding="utf-8")
    assert load_settings(tmp_path, environ={}).store_url == "postgresql://team@db/exp"
    # the environment wins over the file, a folder there means the embedded store again
    env = load_settings(tmp_path, environ={"NBTOOLKIT_STORE": str(tmp_path / "mine")})
    assert (env.store_url, env.store_path) == (None, tmp_path / "mine")
    lite = load_settings(tmp_path, environ={"NBTOOLKIT_STORE": f"sqlite:///{tmp_path}/s/store.db"})
    assert (lite.store_url, lite.store_path) == (None, tmp_path / "s")


def test_passwords_are_masked_in_settings_and_messages(tmp_path: Path) -> None:
    url = f"postgresql://nbtk:{PASSWORD}@db.internal:5432/experiments"
    settings = load_settings(tmp_path, environ={"NBTOOLKIT_STORE": url})
    assert PASSWORD not in repr(settings)
    assert PASSWORD not in settings.store_display
    assert settings.store_display == "postgresql://nbtk:***@db.internal:5432/experiments"
    assert PASSWORD not in mask_url(url)


def test_nbtk_with_a_url_creates_no_folder_named_after_it(project: Path, postgres_url: str) -> None:
    result = nbtk_cli("runs", cwd=project, env={"NBTOOLKIT_STORE": postgres_url})
    assert result.returncode == 0, result.stderr
    assert not any(p.name.startswith("postgresql") for p in project.rglob("*"))
    assert not (project / ".nbtoolkit" / "store.db").exists()


def test_missing_driver_error_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # psycopg2 is installed here; hide it the way a fresh install without the extra would lack it
    from nbtoolkit.errors import StoreError
    from nbtoolkit.store import Store

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("psycopg2", "psycopg") else real(name, *a))
    with pytest.raises(StoreError) as err:
        Store(tmp_path / "s", url=f"postgresql://u:{PASSWORD}@127.0.0.1:1/db")
    assert "pip install 'nbtoolkit[team]'" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert "driver (psycopg2) is not installed" in str(err.value)
    # a URL naming another driver (psycopg 3) names that package, and the extra as the other way
    with pytest.raises(StoreError) as err:
        Store(tmp_path / "s", url=f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/db")
    message = str(err.value)
    assert "driver (psycopg) is not installed. Install psycopg, or write the URL as postgresql://" in message
    assert "pip install 'nbtoolkit[team]'" in message and PASSWORD not in message


def test_missing_driver_in_the_cli_is_one_line_exit_1(project: Path) -> None:
    code = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'psycopg2' else real(n, *a)\n"
        "sys.argv = ['nbtk', 'runs']\n"
        "from nbtoolkit.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "NBTOOLKIT_STORE": f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"}
    result = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "nbtoolkit[team]" in result.stderr and "Traceback" not in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


# ---------------------------------------------------------------------------------- PostgreSQL
def test_unreachable_server_is_a_typed_error_without_the_password(project: Path) -> None:
    url = f"postgresql://nbtk:{PASSWORD}@127.0.0.1:9/experiments"  # port 9: nothing listens
    result = nbtk_cli("runs", cwd=project, env={"NBTOOLKIT_STORE": url})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1
    assert PASSWORD not in result.stderr + result.stdout


def test_postgres_store_records_and_lists_through_the_cli(project: Path, postgres_url: str) -> None:
    from nbtoolkit.store import open_store

    url = _pg_url_with_password(postgres_url)  # trust auth accepts it; it must never show
    env = {"NBTOOLKIT_STORE": url}
    os.environ["NBTOOLKIT_STORE"] = url
    try:
        store = open_store()
        # without an artifact location a server store refuses to start a run, before writing a row
        with pytest.raises(ConfigError, match="NBTOOLKIT_ARTIFACTS"):
            store.create_run(experiment="pg-exp")
        assert store.query_runs()[0] == []
        os.environ["NBTOOLKIT_ARTIFACTS"] = str(project / "team-blobs")
        store = open_store()
        rid = store.create_run(experiment="pg-exp", params={"lr": 0.1}, declaration={"hypothesis": "h"})
        store.log_metrics(rid, [("loss", 0.5, 1, 1.0), ("loss", 0.25, 2, 2.0), ("auc", float("inf"), None, 3.0)])
        store.finish_run(rid, status="finished", verdict="supported")
        assert PASSWORD not in repr(store)
    finally:
        os.environ.pop("NBTOOLKIT_STORE")
        os.environ.pop("NBTOOLKIT_ARTIFACTS", None)
    listed = nbtk_cli("runs", "--json", cwd=project, env=env)  # listing needs no artifact location
    assert listed.returncode == 0, listed.stderr
    assert rid in listed.stdout and "pg-exp" in listed.stdout
    shown = nbtk_cli("show", rid[:8], cwd=project, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "loss" in shown.stdout
    unchecked = nbtk_cli("store", "check", cwd=project, env=env)
    assert unchecked.returncode == 1 and "PROBLEM: artifacts: The store is a database server" in unchecked.stdout
    checked = nbtk_cli("store", "check", cwd=project, env={**env, "NBTOOLKIT_ARTIFACTS": str(project / "team-blobs")})
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "backend: postgresql" in checked.stdout and "write permission: ok" in checked.stdout
    for out in (listed, shown, checked):
        assert PASSWORD not in out.stdout + out.stderr
    rec = open_store(path=url).get_run(rid)
    assert rec.metrics["auc"] == float("inf") and rec.metrics["loss"] == 0.25
    assert [s for s, _ in rec.metric_history("loss")] == [1, 2]


_OPEN_AT_ONCE = """
import sys, time
from nbtoolkit.store import Store
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
s = Store(sys.argv[3], url=sys.argv[1], artifacts=sys.argv[3] + "/blobs")
s.create_run(experiment="race", params={"n": 1})
print(s.schema_version)
"""


def test_many_clients_creating_the_schema_at_once(postgres_url: str, tmp_path: Path) -> None:
    import time

    start = time.time() + 3.0
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, postgres_url, str(start), str(tmp_path / f"a{i}")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(8)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [e for _, e in outs]
    from nbtoolkit.store import Store, schema

    store = Store(tmp_path / "check", url=postgres_url)
    assert {o.strip() for o, _ in outs} == {str(SCHEMA_VERSION)}
    assert store._read(lambda c: c.execute(schema.meta.select()).all()) == [("schema_version", str(SCHEMA_VERSION))]
    runs, params, _ = store.query_runs(experiment="race")
    assert len(runs) == 8 and len(params) == 8


def test_same_migrations_upgrade_a_v2_postgres_store(postgres_url: str, tmp_path: Path) -> None:
    """A v2 schema built by the same metadata (minus v3 tables) is upgraded in place."""
    from sqlalchemy import create_engine, insert

    from nbtoolkit.store import Store, schema

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        v2 = [t for name, t in schema.metadata.tables.items() if name not in ("aliases", "alias_history")]
        schema.metadata.create_all(conn, tables=v2)
        conn.execute(insert(schema.meta).values(key="schema_version", value="2"))
        conn.execute(insert(schema.experiments).values(name="old", created=1.0))
        conn.execute(insert(schema.runs).values(run_id="ab" * 16, experiment="old", status="finished", started=1.0))
    engine.dispose()
    store = Store(tmp_path / "s", url=postgres_url)
    assert store.schema_version == SCHEMA_VERSION
    assert store.get_run("abab").experiment == "old"
    assert "alias_history" in store._read(lambda c: c.dialect.get_table_names(c))


def test_store_code_has_no_sqlite_only_sql() -> None:
    """Dialect-specific SQL lives in the engine module (one place), nowhere else in the store."""
    import re

    folder = Path(__file__).resolve().parent.parent / "nbtoolkit" / "store"
    allowed = {"engine.py", "sqlite_file.py", "maintenance.py", "listing.py"}  # listing: the driver's own connection
    # SQL keywords as written in SQL text (SQLAlchemy's portable ``autoincrement=True`` is fine)
    pattern = re.compile(r"INSERT OR|PRAGMA (?!data_version)|sqlite_master|ON CONFLICT|AUTOINCREMENT|RETURNING")
    offenders = [
        f"{p.name}:{n}" for p in folder.glob("*.py") if p.name not in allowed
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith(("#", '"', "It is"))
    ]
    assert offenders == []



@pytest.mark.slow
def test_nbtk_run_kernel_records_into_postgres(project: Path, postgres_url: str) -> None:
    """The runner and the notebook's kernel share one run in the server database, none in SQLite."""
    import shutil

    from conftest import TEST_NOTEBOOKS

    from nbtoolkit.store import open_store

    nb = Path(shutil.copy(TEST_NOTEBOOKS / "params_all_types.ipynb", project / "nb.ipynb"))
    env = {"NBTOOLKIT_STORE": postgres_url, "NBTOOLKIT_ARTIFACTS": str(project / ".nbtoolkit" / "artifacts")}
    res = nbtk_cli("run", str(nb), "-p", "count", "7", cwd=project, env=env)
    assert res.returncode == 0, res.stderr
    store = open_store(path=postgres_url)
    runs, _, _ = store.query_runs()
    assert len(runs) == 1
    rec = store.get_run(runs[0]["run_id"])
    assert (rec.experiment, rec.status, rec.params["count"]) == ("param-types", "finished", 7)
    assert "score" in rec.metrics and rec.artifact("output.ipynb") is not None
    assert not (project / ".nbtoolkit" / "store.db").exists()
