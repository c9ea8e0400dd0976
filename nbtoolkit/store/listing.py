"""Listing runs: the one query behind ``nbtk.runs()`` and ``nbtk runs --json``.

Every run row carries its own summary (``runs.params_json`` / ``runs.metrics_json``, kept equal
to the parameter and metric rows on every write by
:func:`~nbtoolkit.store.schema.refresh_summary`), so a listing is one ``SELECT`` on one table.
:func:`summary_query` writes that ``SELECT``; it runs in two places:

* :meth:`Store.runs_wide <nbtoolkit.store.reads.RunReads.runs_wide>`, on the open store's
  SQLAlchemy engine;
* a :class:`Listing`: a read-only connection of the database driver itself (``sqlite3`` from the
  standard library, or psycopg2 -- SQLAlchemy's own PostgreSQL driver, whose libpq reads the
  URL, ``PGPASSWORD``, ``~/.pgpass`` and the SSL settings exactly as the store's engine does), so
  a fresh process lists runs without loading SQLAlchemy and the store's schema, engines and
  record modules -- most of the cost of a cold ``nbtk.runs()``.

A listing connection only reads a store that needs nothing done to it. :func:`open_listing`
answers ``None`` -- and the caller opens the full store, which creates, upgrades, recovers
and reports errors in one place -- when the database is missing, damaged, unreachable, at
another schema version, or cannot be read for any other reason; :meth:`Listing.runs_wide`
answers ``None`` while a run is marked ``running`` (opening the store marks the runs of dead
processes ``crashed`` first). Nothing here writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from nbtoolkit.store.version import SCHEMA_VERSION

if TYPE_CHECKING:
    from nbtoolkit.config import Settings

#: Columns of a summary row, in order.
SUMMARY_COLUMNS = (
    "run_id", "experiment", "status", "verdict", "started", "ended", "kind", "parent_id", "params_json", "metrics_json",
)
_CONNECT_TIMEOUT_S = 10
_BUSY_TIMEOUT_S = 30.0


def summary_query(
    marker: str,
    *,
    experiment: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    kind: str | Sequence[str] | None = None,
    parent_id: str | None = None,
    limit: int | None = None,
) -> tuple[str, list[Any]]:
    """The ``SELECT`` of summary rows, newest first, and its parameters.

    Args:
        marker: the driver's positional parameter marker (``?`` for sqlite3, ``%s`` for psycopg2).
        experiment, status, kind: keep rows whose column equals the value or one of the values.
        parent_id: keep the children of this sweep.
        limit: at most this many rows.
    """
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("experiment", experiment), ("status", status), ("kind", kind), ("parent_id", parent_id)):
        if value is None:
            continue
        values = [value] if isinstance(value, str) else list(value)
        if not values:
            where.append("1 = 0")
            continue
        where.append(f"{column} = {marker}" if len(values) == 1 else f"{column} IN ({', '.join([marker] * len(values))})")
        params.extend(values)
    sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started DESC"
    if limit is not None:
        sql += f" LIMIT {marker}"
        params.append(int(limit))
    return sql, params


class Listing:
    """A read-only driver connection that serves listings (see the module text).

    Args:
        conn: an open DB-API connection in autocommit mode.
        marker: its positional parameter marker.
        errors: the driver's base exception class.
        sqlite: whether the database is SQLite (then :meth:`data_version` is available).
    """

    def __init__(self, conn: Any, *, marker: str, errors: type[Exception], sqlite: bool, path: str | None = None) -> None:
        self._conn = conn
        self._path = path
        self._file_id = _file_id(path) if path is not None else None
        self._marker = marker
        self._errors = errors
        self._sqlite = sqlite
        self._lock = threading.Lock()
        self.closed = False
        self.listing_cache: dict[Any, tuple[int, Any]] = {}  # see nbtoolkit.query.runs

    def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any] | None:
        with self._lock:
            if self.closed:
                return None
            try:
                cursor = self._conn.cursor()
                try:
                    cursor.execute(sql, params)
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            except self._errors:
                self.close()  # whatever went wrong, the full store will say it properly
                return None

    def same_file(self) -> bool:
        """False when the SQLite file was replaced since this connection opened it."""
        return self._path is None or _file_id(self._path) == self._file_id

    def data_version(self) -> int | None:
        """SQLite's ``PRAGMA data_version``: it changes whenever anything commits (``None`` elsewhere)."""
        if not self._sqlite:
            return None
        rows = self._fetch("PRAGMA data_version")
        return None if not rows else int(rows[0][0])

    def schema_version(self) -> int | None:
        rows = self._fetch("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else None

    def runs_wide(self, **query: Any) -> list[Any] | None:
        """Summary rows like :meth:`Store.runs_wide`, or ``None`` when the full store must serve them.

        ``None`` while any run is marked ``running``: it may belong to a dead process, which
        only opening the store marks ``crashed``; and after any database error.
        """
        if self._fetch("SELECT 1 FROM runs WHERE status = 'running' LIMIT 1") != []:
            return None
        sql, params = summary_query(self._marker, **query)
        return self._fetch(sql, params)

    def close(self) -> None:
        self.closed = True
        try:
            self._conn.close()
        except self._errors:
            pass


_open: dict[tuple[str, int], Listing] = {}
_open_lock = threading.Lock()


def open_listing(settings: Settings | None = None) -> Listing | None:
    """The listing connection of the project's store (cached per process), or ``None``.

    ``None`` when the full store must be opened instead (see the module text).
    """
    if settings is None:
        from nbtoolkit.config import load_settings

        settings = load_settings()
    location = settings.store_url or str(settings.store_path / "store.db")
    key = (location, os.getpid())
    with _open_lock:
        listing = _open.get(key)
        if listing is not None and not listing.closed and listing.same_file():
            return listing
        listing = _connect_sqlite(location) if settings.store_url is None else _connect_server(settings.store_url)
        if listing is None or listing.schema_version() != SCHEMA_VERSION:
            if listing is not None:
                listing.close()
            _open.pop(key, None)
            return None
        _open[key] = listing
        return listing


def forget_listing(location: str) -> None:
    """Close this process's listing connection to ``location`` (a SQLite file path or a URL)."""
    with _open_lock:
        listing = _open.pop((location, os.getpid()), None)
    if listing is not None:
        listing.close()


def _connect_sqlite(path: str) -> Listing | None:
    import sqlite3

    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    except sqlite3.Error:
        return None
    return Listing(conn, marker="?", errors=sqlite3.Error, sqlite=True, path=path)


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def libpq_url(url: str) -> str | None:
    """A SQLAlchemy PostgreSQL URL as libpq reads it (``postgresql+psycopg2://`` -> ``postgresql://``).

    ``None`` for any other database.
    """
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        return None
    return urlunsplit(("postgresql", *parts[1:]))


def _connect_server(url: str) -> Listing | None:
    conninfo = libpq_url(url)
    if conninfo is None:
        return None
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        conn = psycopg2.connect(conninfo, connect_timeout=_CONNECT_TIMEOUT_S)
        conn.autocommit = True
    except psycopg2.Error:
        return None
    return Listing(conn, marker="%s", errors=psycopg2.Error, sqlite=False)


def _forget_after_fork() -> None:
    _open.clear()  # the parent's connections are the parent's


os.register_at_fork(after_in_child=_forget_after_fork)
