"""The project store: run metadata in SQL (SQLAlchemy Core) plus content-addressed artifacts."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, delete, func, insert, inspect, select, update
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit.errors import ParameterError, SchemaVersionError, StoreCorruptError, StoreError
from nbtoolkit.store import schema as S
from nbtoolkit.store.artifacts import blob_store_for, is_server_database
from nbtoolkit.store.attachments import RunAttachments
from nbtoolkit.store.blobstore import BlobStore
from nbtoolkit.store.cache import RunCopies
from nbtoolkit.store.engine import (
    describe_engine,
    disk_is_full,
    enable_wal,
    insert_ignore,
    is_disk_full_error,
    lock_for_migration,
    make_engines,
    migration_engine,
    pid_alive,
    process_start_time,
    transact,
)
from nbtoolkit.store.lineage import LineageRecords
from nbtoolkit.store.maintenance import StoreMaintenance
from nbtoolkit.store.models import ModelRecords
from nbtoolkit.store.predictions import PredictionLog
from nbtoolkit.store.reads import RunReads
from nbtoolkit.store.sqlite_file import check_database_file, warn_if_network_filesystem
from nbtoolkit.store.sweeps import SweepRecords
from nbtoolkit.store.version import SCHEMA_VERSION

#: A run whose heartbeat is older than this, on another host, is considered crashed.
STALE_HEARTBEAT_S = 300.0
HOST = socket.gethostname()

MetricRow = tuple[str, float, "int | None", float]  # (name, value, step, timestamp)


def _ensure_experiment(conn: Connection, name: str, now: float) -> None:
    if conn.execute(select(S.experiments.c.name).where(S.experiments.c.name == name)).first() is None:
        insert_ignore(conn, S.experiments, [{"name": name, "created": now}])


def _refuse_changed_params(stored: Mapping[str, str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise when a row would change a parameter ``stored`` already holds (same value is fine)."""
    for row in rows:
        old = stored.get(row["name"])
        if old is None or old == row["value"]:
            continue
        if _json.canonical(_json.loads(old)) != _json.canonical(_json.loads(row["value"])):
            raise ParameterError(
                f"Parameter {row['name']!r} is already {old[:200]} in this run; it cannot become "
                f"{row['value'][:200]}. Parameters are a record: log the new value under another "
                "name, or start a new run."
            )


def new_id() -> str:
    """Return a new 32-hex-character run id."""
    return uuid.uuid4().hex


T = TypeVar("T")


class Store(RunReads, RunAttachments, ModelRecords, SweepRecords, RunCopies, LineageRecords, StoreMaintenance, PredictionLog):
    """One project store.

    Args:
        path: the store folder (``.nbtoolkit/``); created when missing, except for a server
            database (then it only holds what is written there on request, such as reports).
        url: optional SQLAlchemy URL of a server database; default SQLite ``path/store.db``.
        redactor: scrubs secrets from every text written (see :mod:`nbtoolkit.redact`).
        artifacts: where blobs go, a folder or fsspec URL (default ``path/artifacts``).

    Opening writes nothing unless the schema must be created or upgraded, or runs of dead
    processes must be marked ``crashed`` (skipped when the disk is full), so reading works on
    a full disk. A damaged SQLite file raises :class:`~nbtoolkit.errors.StoreCorruptError`
    and is never replaced.
    """

    def __init__(
        self, path: str | Path, *, url: str | None = None, redactor: Any = None, artifacts: str | None = None
    ) -> None:
        self.path = Path(path)
        if not is_server_database(url):  # a server store keeps nothing in the folder until asked to
            self.path.mkdir(parents=True, exist_ok=True)
        self.db_path = self.path / "store.db"
        self.url = url
        low_disk = False
        if url is None:
            check_database_file(self.db_path)
            warn_if_network_filesystem(self.path)
            low_disk = self.db_path.is_file() and disk_is_full(str(self.path))
        self._reader, self._writer = make_engines(url, str(self.db_path), low_disk=low_disk)
        self._artifacts_setting = artifacts
        self._blobs: BlobStore | None = None
        self._redactor = redactor
        self._lock_cache: dict[str, Any] = {}
        self._stored_locks: set[str] = set()
        self._probe: Any = None  # (pid, sqlite3 connection) used only for PRAGMA data_version
        self._probe_lock = threading.Lock()
        self.listing_cache: dict[Any, tuple[int, Any]] = {}  # see nbtoolkit.query.runs
        self._local = threading.local()
        if not low_disk:
            enable_wal(self._writer)
        self._migrate()
        try:
            self.recover_stale_runs()
        except StoreError as exc:
            if not is_disk_full_error(exc):
                raise

    def __repr__(self) -> str:
        return f"Store({self.location_display!r})"

    @property
    def artifacts(self) -> BlobStore:
        """The blob store, opened on first use.

        Raises:
            ConfigError: a server store without an artifact location (see
                :func:`~nbtoolkit.store.artifacts.artifact_location`). Listing and reading run
                records work without one; starting a run or touching a blob does not.
        """
        if self._blobs is None:
            self._blobs = blob_store_for(self._artifacts_setting, store_path=self.path, store_url=self.url)
        return self._blobs

    @property
    def artifacts_location(self) -> str | None:
        """The configured artifact location (folder or fsspec URL); ``None`` = ``<store folder>/artifacts``.

        Together with :attr:`location` it is what a kernel on another machine needs to record
        into this store (it may carry credentials: hand it over, never record or print it).
        """
        return self._artifacts_setting

    @property
    def location(self) -> str:
        """What ``NBTOOLKIT_STORE`` must say to open this store again (folder or database URL)."""
        return self.url if self.url is not None else str(self.path.resolve())

    @property
    def location_display(self) -> str:
        """The store's location, safe to print (a server URL without its password)."""
        return str(self.path) if self.url is None else describe_engine(self._writer)

    # ------------------------------------------------------------------ schema
    def _found_version(self, conn: Connection) -> int | None:
        if not conn.dialect.has_table(conn, "meta"):  # one catalogue query, no inspector
            return None
        value = conn.execute(select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar()
        return None if value is None else int(value)

    def _migrate(self) -> None:
        found = self._read(self._found_version)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaVersionError(found, SCHEMA_VERSION, self.location_display)
        if found == SCHEMA_VERSION:
            return  # nothing to write: reading works on a full disk or a read-only copy

        def run(conn: Connection) -> None:
            lock_for_migration(conn)
            tables = set(inspect(conn).get_table_names())
            if "meta" not in tables:
                ours = tables & set(S.metadata.tables)
                if ours:
                    raise StoreCorruptError(
                        self.location_display, f"it holds store tables ({', '.join(sorted(ours))}) but no schema version"
                    )
                S.metadata.create_all(conn)
                conn.execute(insert(S.meta).values(key="schema_version", value=str(SCHEMA_VERSION)))
                return
            found = int(conn.execute(select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar_one())
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(found, SCHEMA_VERSION, self.location_display)
            for version in range(found, SCHEMA_VERSION):
                S.MIGRATIONS[version](conn)
            if found != SCHEMA_VERSION:
                conn.execute(
                    update(S.meta).where(S.meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
                )

        transact(migration_engine(self._writer), run)

    @property
    def schema_version(self) -> int:
        with self._reader.connect() as conn:
            return int(conn.execute(select(S.meta.c.value).where(S.meta.c.key == "schema_version")).scalar_one())

    def data_version(self) -> int | None:
        """A number that changes whenever anything commits to the store (SQLite only).

        It is SQLite's ``PRAGMA data_version`` read on a connection that never writes, so every
        commit -- by this process or another one -- changes it. ``None`` for other backends.
        Listings use it to reuse a result while nothing changed.
        """
        if self._reader.dialect.name != "sqlite":
            return None
        import sqlite3

        with self._probe_lock:
            if self._probe is None or self._probe[0] != os.getpid():
                path = self._reader.url.database or str(self.db_path)
                self._probe = (os.getpid(), sqlite3.connect(path, check_same_thread=False, isolation_level=None))
            try:
                return int(self._probe[1].execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._probe = None
                return None

    def dispose(self) -> None:
        """Close pooled connections (call after fork or before deleting the store)."""
        with self._probe_lock:
            if self._probe is not None and self._probe[0] == os.getpid():
                self._probe[1].close()
            self._probe = None
            self.listing_cache.clear()
        self._reader.dispose()
        self._writer.dispose()

    # ------------------------------------------------------------------ helpers
    def _redact(self, value: Any) -> Any:
        return value if self._redactor is None else self._redactor.redact_obj(value)

    def _redact_text(self, text: str | None) -> str | None:
        if text is None or self._redactor is None:
            return text
        return str(self._redactor.redact_text(text))

    def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction (lock taken up front, retried when busy)."""
        return transact(self._writer, fn)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a read transaction."""
        return transact(self._reader, fn)

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        *,
        experiment: str,
        declaration: Mapping[str, Any] | None = None,
        kind: str = "experiment",
        source: str = "kernel",
        run_id: str | None = None,
        baseline_ref: str | None = None,
        baseline_run_id: str | None = None,
        notebook_path: str | None = None,
        notebook_hash: str | None = None,
        parent_id: str | None = None,
        origin_run_id: str | None = None,
        pid: int | None = None,
        extra: Mapping[str, Any] | None = None,
        lock_hash: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> str:
        """Insert a new ``running`` run and return its id.

        ``lock_hash`` and ``params`` (JSON-compatible values) are written in the same
        transaction, so opening a run costs one round trip. A server store without an artifact
        location is refused here, before any row is written.
        """
        self.artifacts  # noqa: B018 - opens the blob store or raises ConfigError
        rid = run_id or new_id()
        now = time.time()
        own_pid = os.getpid() if pid is None else pid
        row = {
            "run_id": rid,
            "experiment": experiment,
            "status": "running",
            "kind": kind,
            "source": source,
            "started": now,
            "heartbeat": now,
            "host": HOST,
            "pid": own_pid,
            "proc_start": process_start_time(own_pid),
            "notebook_path": notebook_path,
            "notebook_hash": notebook_hash,
            "declaration": _json.dumps(self._redact(dict(declaration or {}))),
            "baseline_ref": baseline_ref,
            "baseline_run_id": baseline_run_id,
            "parent_id": parent_id,
            "origin_run_id": origin_run_id,
            "extra": _json.dumps(self._redact(dict(extra or {}))),
            "lock_hash": lock_hash,
        }
        param_rows = self._param_rows(rid, params or {})
        row["params_json"] = S.params_summary((r["name"], r["value"]) for r in param_rows)

        def run(conn: Connection) -> None:
            _ensure_experiment(conn, experiment, now)
            conn.execute(insert(S.runs).values(**row))
            if param_rows:
                conn.execute(insert(S.params), param_rows)

        self._write(run)
        return rid

    def _column_values(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Run column values ready to write: JSON columns serialised, text redacted."""
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key in ("declaration", "verdict_detail", "extra") and value is not None:
                value = _json.dumps(self._redact(value))
            elif key == "error":
                value = self._redact_text(value)
            values[key] = value
        return values

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Update run columns; dict values of JSON columns are serialised (and redacted)."""
        values = self._column_values(fields)
        self._write(lambda conn: conn.execute(update(S.runs).where(S.runs.c.run_id == run_id).values(**values)))

    def merge_extra(self, run_id: str, extra: Mapping[str, Any]) -> None:
        """Merge keys into a run's ``extra`` JSON in one transaction."""

        def run(conn: Connection) -> None:
            current = _json.loads(conn.execute(select(S.runs.c.extra).where(S.runs.c.run_id == run_id)).scalar(), {})
            current.update(self._redact(dict(extra)))
            conn.execute(update(S.runs).where(S.runs.c.run_id == run_id).values(extra=_json.dumps(current)))

        self._write(run)

    def adopt_run(self, run_id: str, *, experiment: str, pid: int | None = None, **fields: Any) -> None:
        """Make the calling process the owner of a run a runner created, in one transaction.

        The run moves to ``experiment`` (the name the kernel's ``%%experiment`` declares); the
        runner's provisional experiment name is dropped when no other run uses it, so it never
        shows up as an experiment of its own. ``fields`` are further run columns to set.
        """
        own = os.getpid() if pid is None else pid
        now = time.time()
        values = self._column_values(fields)
        values.update(experiment=experiment, pid=own, proc_start=process_start_time(own), host=HOST, heartbeat=now)

        def run(conn: Connection) -> None:
            old = conn.execute(select(S.runs.c.experiment).where(S.runs.c.run_id == run_id)).scalar()
            _ensure_experiment(conn, experiment, now)
            conn.execute(update(S.runs).where(S.runs.c.run_id == run_id).values(**values))
            if old is not None and old != experiment:
                used = conn.execute(select(func.count()).where(S.runs.c.experiment == old)).scalar()
                if not used:
                    conn.execute(delete(S.experiments).where(S.experiments.c.name == old))

        self._write(run)

    def heartbeat(self, run_id: str) -> None:
        self._write(
            lambda conn: conn.execute(
                update(S.runs).where(and_(S.runs.c.run_id == run_id, S.runs.c.status == "running")).values(heartbeat=time.time())
            )
        )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        verdict: str | None = None,
        verdict_detail: Mapping[str, Any] | None = None,
        error: str | None = None,
        only_if_running: bool = False,
    ) -> bool:
        """Set a terminal status (and verdict); return False when ``only_if_running`` skipped it."""
        values: dict[str, Any] = {"status": status, "ended": time.time()}
        if status != "finished":  # a run that did not finish has no verdict, whatever ran before
            values["verdict"] = values["verdict_detail"] = None
        elif verdict is not None:
            values["verdict"] = verdict
        if verdict_detail is not None and status == "finished":
            values["verdict_detail"] = _json.dumps(self._redact(dict(verdict_detail)))
        if error is not None:
            values["error"] = self._redact_text(error)
        cond = S.runs.c.run_id == run_id
        if only_if_running:
            cond = and_(cond, S.runs.c.status == "running")
        result = self._write(lambda conn: conn.execute(update(S.runs).where(cond).values(**values)))
        return bool(result.rowcount)

    def recover_stale_runs(self) -> list[str]:
        """Mark ``crashed`` every ``running`` run whose process is gone.

        Same host: the pid is dead or recycled. Other hosts: no heartbeat for
        :data:`STALE_HEARTBEAT_S`. Returns the ids marked.
        """
        rows = self._read(
            lambda conn: conn.execute(
                select(S.runs.c.run_id, S.runs.c.host, S.runs.c.pid, S.runs.c.proc_start, S.runs.c.heartbeat).where(
                    S.runs.c.status == "running"
                )
            ).all()
        )
        now = time.time()
        dead = []
        for run_id, host, pid, proc_start, beat in rows:
            if host == HOST and pid is not None:
                if not pid_alive(int(pid), proc_start):
                    dead.append(run_id)
            elif beat is None or now - beat > STALE_HEARTBEAT_S:
                dead.append(run_id)
        for run_id in dead:
            self.finish_run(
                run_id,
                status="crashed",
                error="The process recording this run ended without closing it (kernel died or was killed).",
                only_if_running=True,
            )
        return dead

    # ------------------------------------------------------------------ params / metrics / tags
    def _param_rows(self, run_id: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        # redacting {name: value} masks the whole value when the name looks secret
        return [
            {"run_id": run_id, "name": k, "value": _json.dumps(next(iter(self._redact({k: v}).values())))}
            for k, v in values.items()
        ]

    def log_params(self, run_id: str, values: Mapping[str, Any]) -> None:
        """Record parameters (values must already be JSON-compatible).

        Values of secret-looking names (``api_token``, ``db_password``...) are stored masked.
        Logging a parameter again with the same value is a no-op.

        Raises:
            ParameterError: a parameter already holds a different value in this run.
        """
        rows = self._param_rows(run_id, values)
        if not rows:
            return

        def run(conn: Connection) -> None:
            names = [r["name"] for r in rows]
            stored = dict(conn.execute(select(S.params.c.name, S.params.c.value).where(
                and_(S.params.c.run_id == run_id, S.params.c.name.in_(names)))).all())
            _refuse_changed_params(stored, rows)
            fresh = [r for r in rows if r["name"] not in stored]
            if fresh:
                conn.execute(insert(S.params), fresh)
                S.refresh_summary(conn, [run_id], with_metrics=False)

        self._write(run)

    def log_metrics(self, run_id: str, rows: Sequence[MetricRow]) -> None:
        """Write a batch of metric values; stepped values also go to the step series."""
        if not rows:
            return
        latest: dict[str, dict[str, Any]] = {}
        steps = []
        for name, value, step, ts in rows:
            v, special = _json.float_or_special(float(value))
            entry = {"run_id": run_id, "name": name, "value": v, "special": special, "step": step, "ts": ts}
            prev = latest.get(name)
            if prev is None or step is None or prev["step"] is None or step >= prev["step"]:
                latest[name] = entry
            if step is not None:
                steps.append(entry)

        def run(conn: Connection) -> None:
            current = {
                r.name: r.step
                for r in conn.execute(
                    select(S.metrics.c.name, S.metrics.c.step).where(
                        and_(S.metrics.c.run_id == run_id, S.metrics.c.name.in_(list(latest)))
                    )
                )
            }
            # a batch never replaces a later step already stored
            fresh = [e for n, e in latest.items() if not (n in current and current[n] is not None and e["step"] is not None and e["step"] < current[n])]
            if fresh:
                conn.execute(
                    delete(S.metrics).where(and_(S.metrics.c.run_id == run_id, S.metrics.c.name.in_([e["name"] for e in fresh])))
                )
                conn.execute(insert(S.metrics), fresh)
                S.refresh_summary(conn, [run_id], with_params=False)
            if steps:
                conn.execute(insert(S.metric_steps), steps)

        self._write(run)

    def set_tags(self, run_id: str, values: Mapping[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": str(self._redact_text(str(v)))} for k, v in values.items()]
        if not rows:
            return

        def run(conn: Connection) -> None:
            conn.execute(delete(S.tags).where(and_(S.tags.c.run_id == run_id, S.tags.c.key.in_(list(values)))))
            conn.execute(insert(S.tags), rows)

        self._write(run)
