"""SQLAlchemy engines for the store.

SQLite is tuned for many concurrent writers on one machine: WAL journal, a busy timeout, and
write transactions that take the write lock up front (``BEGIN IMMEDIATE``) so two writers never
deadlock upgrading read locks. A short retry loop absorbs the rare ``database is locked`` that
SQLite still reports under heavy contention; it never reaches the user.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import QueuePool

from nbtoolkit.errors import StoreError

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
RETRIES = 20


def _sqlite_engine(path: str, *, immediate: bool) -> Engine:
    # Pooled connections: closing the last connection of a WAL database checkpoints and deletes
    # the WAL, which cost ~15 ms per transaction with a connection per transaction (NullPool).
    # A forked child never reuses its parent's connections (pid check on checkout).
    engine = create_engine(
        f"sqlite:///{path}",
        poolclass=QueuePool,
        pool_size=2,
        max_overflow=8,
        pool_timeout=BUSY_TIMEOUT_MS / 1000,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_conn, record, proxy):
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise DisconnectionError("connection was opened by another process")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, record):
        record.info["pid"] = os.getpid()
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def make_engines(url: str | None, sqlite_path: str) -> tuple[Engine, Engine]:
    """Return ``(read_engine, write_engine)`` for a store.

    Args:
        url: a SQLAlchemy URL for a server database, or ``None`` for the embedded SQLite file.
        sqlite_path: the SQLite file used when ``url`` is ``None``.
    """
    if url is None or url.startswith("sqlite"):
        path = sqlite_path if url is None else url.split("///", 1)[-1]
        return _sqlite_engine(path, immediate=False), _sqlite_engine(path, immediate=True)
    engine = create_engine(url, pool_pre_ping=True)
    return engine, engine


def enable_wal(engine: Engine) -> None:
    """Switch a SQLite database to WAL (persistent; a no-op when already WAL)."""
    if engine.dialect.name != "sqlite":
        return
    # PRAGMA journal_mode cannot run inside a transaction, and SQLAlchemy connections begin one
    # on first use (our "begin" hook emits BEGIN): use the raw autocommit DBAPI connection.
    raw = engine.raw_connection()
    try:

        def switch() -> None:
            cur = raw.cursor()
            try:
                mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    cur.execute("PRAGMA journal_mode=WAL").fetchone()
            finally:
                cur.close()

        retry(switch)
    finally:
        raw.close()


def _is_locked(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    msg = str(orig).lower() if orig is not None else str(exc).lower()
    return "locked" in msg or "busy" in msg


def retry(fn: Callable[[], T]) -> T:
    """Call ``fn`` again (with jittered back-off) while SQLite reports the database locked."""
    delay = 0.01
    for attempt in range(RETRIES):
        try:
            return fn()
        except (OperationalError, sqlite3.OperationalError) as exc:
            reason = getattr(exc, "orig", None) or exc
            if not _is_locked(exc):
                raise StoreError(
                    f"The store database refused the operation ({reason}). Check that the store "
                    "folder is writable and not corrupted (`sqlite3 .nbtoolkit/store.db 'pragma integrity_check'`)."
                ) from exc
            if attempt == RETRIES - 1:
                raise StoreError(
                    f"The store database stayed locked after {RETRIES} attempts ({reason}). "
                    "Another process holds a long write transaction; retry when it finishes."
                ) from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")


def transact(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run ``fn(conn)`` in one transaction on ``engine``, retrying when the database is locked."""

    def attempt() -> T:
        with engine.begin() as conn:
            return fn(conn)

    return retry(attempt)


def process_start_time(pid: int | None = None) -> str | None:
    """Return a token identifying a process instance (Linux: start time in clock ticks).

    Together with the pid it tells a live process from a recycled pid.
    """
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, proc_start: str | None) -> bool:
    """True when ``pid`` runs and (where known) is the same process instance."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode(errors="replace").rsplit(")", 1)[-1].split()[0]
        if state in ("Z", "X"):  # a killed child not yet reaped by its parent
            return False
    except (OSError, IndexError):
        pass
    if proc_start is not None:
        current = process_start_time(pid)
        if current is not None and current != proc_start:
            return False
    return True
