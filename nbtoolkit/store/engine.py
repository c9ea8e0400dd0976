"""SQLAlchemy engines for the store: the embedded SQLite file or a PostgreSQL server.

SQLite is tuned for many concurrent writers on one machine: WAL journal, a busy timeout, and
write transactions that take the write lock up front (``BEGIN IMMEDIATE``) so two writers never
deadlock upgrading read locks. PostgreSQL write transactions run ``SERIALIZABLE``, which gives
the same "as if one at a time" behaviour the store's read-then-write operations rely on.
:func:`retry` absorbs what both report under contention (``database is locked``, serialization
failures, deadlocks); none of it reaches the user. Every other database error is translated
into a typed :class:`~nbtoolkit.errors.StoreError` here, in one place.
"""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import NullPool, QueuePool

from nbtoolkit.errors import StoreCorruptError, StoreError
from nbtoolkit.store.sqlite_file import integrity_finding

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
RETRIES = 30
#: Key of the PostgreSQL advisory lock held while the schema is created or migrated.
MIGRATION_LOCK_KEY = 0x6E62746B  # "nbtk"
#: PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock, lock not available.
RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: SQLite primary result codes of a damaged database (SQLITE_CORRUPT, SQLITE_NOTADB).
SQLITE_DAMAGED = frozenset({11, 26})
SQLITE_FULL = 13
TEAM_EXTRA = "pip install 'nbtoolkit[team]'"


def _guard_fork(engine: Engine) -> None:
    """A forked child never reuses its parent's pooled connections (pid check on checkout)."""

    @event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_conn: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise DisconnectionError("connection was opened by another process")


def _sqlite_engine(path: str, *, immediate: bool, exclusive: bool = False) -> Engine:
    # Pooled connections: closing the last connection of a WAL database checkpoints and deletes
    # the WAL, which cost ~15 ms per transaction with a connection per transaction (NullPool).
    # ``exclusive`` (a full disk): SQLite cannot grow the shared-memory index, so the connection
    # keeps it in heap memory (EXCLUSIVE locking mode); it is closed after every transaction so
    # the lock is held only while reading.
    pool: dict[str, Any] = (
        {"poolclass": NullPool}
        if exclusive
        else {"poolclass": QueuePool, "pool_size": 2, "max_overflow": 8, "pool_timeout": BUSY_TIMEOUT_MS / 1000}
    )
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}, **pool
    )
    _guard_fork(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        if exclusive:  # before anything touches the database (and its shared-memory index)
            cur.execute("PRAGMA locking_mode=EXCLUSIVE")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def server_url(url: str) -> str:
    """Normalise a server database URL: plain ``postgresql://`` (and ``postgres://``) use psycopg2.

    psycopg2 is SQLAlchemy's default PostgreSQL driver and the team extra's. A URL that names
    another driver (``postgresql+psycopg://`` for psycopg 3) keeps it.

    Raises:
        StoreError: the database driver is not installed (the message names the package).
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    driver = parsed.get_driver_name()
    if parsed.get_backend_name() == "postgresql" and importlib.util.find_spec(driver) is None:
        install = f"Install the team extra: {TEAM_EXTRA}" if driver == "psycopg2" else (
            f"Install {driver}, or write the URL as postgresql://... to use the team extra's psycopg2 ({TEAM_EXTRA})")
        raise StoreError(
            f"The store {parsed.render_as_string(hide_password=True)} is a PostgreSQL database, but its "
            f"driver ({driver}) is not installed. {install}."
        )
    return parsed.render_as_string(hide_password=False)


class _QuietPipelineAbort(logging.Filter):
    """Drop psycopg 3's warning about a pipeline aborted by a serialization failure we retry.

    Only psycopg 3 (``postgresql+psycopg://``) logs it; psycopg2 has no pipeline mode.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("error ignored terminating")


def _quiet_psycopg() -> None:
    logger = logging.getLogger("psycopg")
    if not any(isinstance(f, _QuietPipelineAbort) for f in logger.filters):
        logger.addFilter(_QuietPipelineAbort())


def make_engines(url: str | None, sqlite_path: str, *, low_disk: bool = False) -> tuple[Engine, Engine]:
    """Return ``(read_engine, write_engine)`` for a store.

    Args:
        url: a SQLAlchemy URL for a server database, or ``None`` for the embedded SQLite file.
        sqlite_path: the SQLite file used when ``url`` is ``None``.
        low_disk: the SQLite file's disk is full: read through an engine that needs no new
            disk space (see :func:`_sqlite_engine`).
    """
    if url is None or url.startswith("sqlite"):
        path = sqlite_path if url is None else url.split("///", 1)[-1]
        return _sqlite_engine(path, immediate=False, exclusive=low_disk), _sqlite_engine(path, immediate=True)
    full = server_url(url)
    _quiet_psycopg()
    read = create_engine(full, pool_pre_ping=True, pool_size=2, max_overflow=4)
    write = create_engine(full, pool_pre_ping=True, pool_size=2, max_overflow=4, isolation_level="SERIALIZABLE")
    _guard_fork(read)
    _guard_fork(write)
    return read, write


def enable_wal(engine: Engine) -> None:
    """Switch a SQLite database to WAL (persistent; a no-op when already WAL)."""
    if engine.dialect.name != "sqlite":
        return
    # PRAGMA journal_mode cannot run inside a transaction, and SQLAlchemy connections begin one
    # on first use (our "begin" hook emits BEGIN): use the raw autocommit DBAPI connection.
    def switch() -> None:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            try:
                mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    cur.execute("PRAGMA journal_mode=WAL").fetchone()
            finally:
                cur.close()
        finally:
            raw.close()

    retry(switch, where=engine.url.database or "")


def migration_engine(engine: Engine) -> Engine:
    """The engine to create or migrate the schema with.

    PostgreSQL: READ COMMITTED, so that after waiting for :func:`lock_for_migration` the
    transaction sees the tables another client just created (a SERIALIZABLE snapshot would be
    taken before the wait).
    """
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="READ COMMITTED")
    return engine


def lock_for_migration(conn: Connection) -> None:
    """Serialise schema creation and migration between clients that start at the same time.

    PostgreSQL: a transaction-scoped advisory lock (released at commit). SQLite: the write
    transaction already holds the database's write lock (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, skipping those whose primary key is already present (any backend)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), list(rows))
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), list(rows))
    else:
        raise StoreError(f"Unsupported store database {conn.dialect.name!r}; use SQLite or PostgreSQL.")


def sync_id_sequence(conn: Connection, table: Table) -> None:
    """After rows were inserted with explicit ids, move the id sequence past them (PostgreSQL)."""
    if conn.dialect.name != "postgresql" or "id" not in table.c:
        return
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table.name}), 1), "
            f"(SELECT COUNT(*) > 0 FROM {table.name}))"
        )
    )


def _sqlite_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", exc)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None


def _is_transient(exc: BaseException) -> bool:
    if _sqlstate(exc) in RETRY_SQLSTATES:
        return True
    if _sqlite_code(exc) in (5, 6):  # SQLITE_BUSY, SQLITE_LOCKED
        return True
    orig = getattr(exc, "orig", None)
    msg = str(orig if orig is not None else exc).lower()
    return isinstance(exc, (OperationalError, sqlite3.OperationalError)) and ("locked" in msg or "busy" in msg)


def typed_store_error(exc: BaseException, where: str = "") -> StoreError | None:
    """Translate a raw database error into a typed, one-line :class:`StoreError` (else ``None``).

    Args:
        exc: the exception caught (SQLAlchemy or DBAPI).
        where: the SQLite file or the masked server URL, for the message.
    """
    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, (DBAPIError, sqlite3.DatabaseError)):
        return None
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    place = where or "the store database"
    code = _sqlite_code(exc)
    if code in SQLITE_DAMAGED or (code is None and isinstance(orig, sqlite3.DatabaseError) and "malformed" in reason):
        finding = integrity_finding(where) if where and os.path.isfile(where) else reason
        return StoreCorruptError(where or "store.db", finding or reason)
    if code == SQLITE_FULL or "disk is full" in reason or "no space left" in reason.lower():
        return StoreError(
            f"The disk holding {place} is full ({reason}); nothing was written. Free some space and retry."
        )
    if code == 10:  # SQLITE_IOERR
        return StoreError(
            f"Reading or writing {place} failed at the disk ({reason}). Check the disk (full, removed, "
            "read-only?) and run `nbtk store check`."
        )
    if code == 8:  # SQLITE_READONLY
        return StoreError(f"{place} is read-only ({reason}); make the store folder writable to record runs.")
    if _sqlstate(exc) is not None and str(_sqlstate(exc)).startswith("08"):
        return StoreError(f"Cannot reach the store database {place} ({reason}). Check the server and the URL.")
    return StoreError(
        f"The store database {place} refused the operation ({reason}). Run `nbtk store check` to diagnose it."
    )


def retry(fn: Callable[[], T], *, where: str = "") -> T:
    """Call ``fn`` again (with jittered back-off) while the database reports contention.

    Contention is SQLite's ``database is locked`` and PostgreSQL's serialization failures and
    deadlocks; every other database error becomes a typed :class:`StoreError`.
    """
    delay = 0.01
    for attempt in range(RETRIES):
        try:
            return fn()
        except (DBAPIError, sqlite3.DatabaseError) as exc:
            if not _is_transient(exc):
                raise typed_store_error(exc, where) or exc from exc
            if attempt == RETRIES - 1:
                reason = getattr(exc, "orig", None) or exc
                raise StoreError(
                    f"The store database stayed busy after {RETRIES} attempts ({reason}). "
                    "Another process holds a long write transaction; retry when it finishes."
                ) from exc
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 1.0)
    raise AssertionError("unreachable")


def describe_engine(engine: Engine) -> str:
    """The engine's database, safe to print: the SQLite file or the URL without its password."""
    if engine.dialect.name == "sqlite":
        return engine.url.database or ""
    return engine.url.render_as_string(hide_password=True)


def transact(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """Run ``fn(conn)`` in one transaction on ``engine``, retrying on contention."""

    def attempt() -> T:
        with engine.begin() as conn:
            return fn(conn)

    return retry(attempt, where=describe_engine(engine))


def disk_is_full(folder: str, *, margin: int = 256 * 1024) -> bool:
    """True when the filesystem holding ``folder`` has less than ``margin`` bytes free."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def is_disk_full_error(exc: BaseException) -> bool:
    """True for errors a full (or failing) disk raises: ENOSPC, EIO, SQLite FULL/IOERR."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EIO, errno.EDQUOT):
        return True
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return cause is not None and _sqlite_code(cause) in (SQLITE_FULL, 10, 8)


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
