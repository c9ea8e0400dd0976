"""Store maintenance: integrity check, online backup, and copying a whole store between backends.

Mixed into :class:`~nbtoolkit.store.Store`. ``check`` reports problems without changing
anything. ``backup`` snapshots the SQLite file through SQLite's online backup API (consistent
while runs are being written), then the artifact blobs. ``copy_into`` copies every table, in
dependency order, through SQLAlchemy Core, keeping ids and times; copying again adds only what
is missing.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, func, select, text, tuple_, update
from sqlalchemy.engine import Connection, Engine

from nbtoolkit import _json
from nbtoolkit.errors import (
    ArtifactIntegrityError,
    ArtifactStoreUnavailableError,
    ConfigError,
    InputError,
    StoreCorruptError,
    StoreError,
)
from nbtoolkit.store import schema as S
from nbtoolkit.store.blobstore import BlobStore
from nbtoolkit.store.engine import insert_ignore, retry, sync_id_sequence
from nbtoolkit.store.models import blob_digest
from nbtoolkit.store.sqlite_file import check_database_file
from nbtoolkit.store.version import SCHEMA_VERSION

BATCH = 2000


@dataclass
class CheckResult:
    """What ``nbtk store check`` found.

    Attributes:
        location: the store, safe to print.
        problems: everything wrong (empty = healthy).
        facts: what was checked and found fine (backend, schema version, row counts...).
        counts: rows per table.
        orphans: blobs no artifact row references (listed, not a problem).
    """

    location: str
    problems: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_sqlite_file(path: Path, location: str) -> CheckResult | None:
    """A :class:`CheckResult` for a damaged SQLite file (``None`` when the file looks sound)."""
    try:
        check_database_file(path)
    except StoreCorruptError as exc:
        return CheckResult(location, problems=[f"database: {exc.finding}"])
    return None


def _table_counts(conn: Connection, tables: list[Table]) -> dict[str, int]:
    return {t.name: int(conn.execute(select(func.count()).select_from(t)).scalar_one()) for t in tables}


def _probe_write(conn: Connection) -> None:
    """Prove write permission with an update the caller's transaction then rolls back."""
    conn.execute(update(S.meta).where(S.meta.c.key == "schema_version").values(value=S.meta.c.value))


@dataclass
class CopyResult:
    """What ``copy_store`` did: rows added per table, rows already there, blobs copied, conflicts."""

    added: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    conflicts: list[str] = field(default_factory=list)


def _store_tables(conn: Connection) -> list[Table]:
    """Every table of the store in dependency order: the schema's, then any others found."""
    known = [t for t in S.metadata.sorted_tables if t.name != "meta"]
    names = set(S.metadata.tables) | {"meta"}
    others = MetaData()
    extra = [n for n in conn.dialect.get_table_names(conn) if n not in names]
    if extra:
        others.reflect(bind=conn, only=extra)
    existing = set(conn.dialect.get_table_names(conn))
    return [t for t in known if t.name in existing] + list(others.sorted_tables)


def _key_columns(table: Table) -> list[str]:
    pk = [c.name for c in table.primary_key.columns]
    return pk or [c.name for c in table.columns]


class StoreMaintenance:
    """Check, back up and copy a whole store (mixed into :class:`~nbtoolkit.store.Store`)."""

    # provided by Store
    path: Path
    db_path: Path
    url: str | None
    _reader: Engine
    _writer: Engine
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]

    if TYPE_CHECKING:  # properties of Store

        @property
        def artifacts(self) -> BlobStore: ...

        @property
        def location(self) -> str: ...

        @property
        def location_display(self) -> str: ...

        @property
        def schema_version(self) -> int: ...

    # ------------------------------------------------------------------ check
    def table_counts(self) -> dict[str, int]:
        """Rows per table of the store (every table, also ones this schema does not define)."""
        return dict(self._read(lambda conn: _table_counts(conn, _store_tables(conn))))

    def referenced_digests(self) -> set[str]:
        """The sha256 of every blob a row references: artifacts, and the bundle archive of each export."""

        def run(conn: Connection) -> set[str]:
            found = set(conn.execute(select(S.artifacts.c.digest).distinct()).scalars().all())
            for extra in conn.execute(select(S.exports.c.extra)).scalars():
                digest = blob_digest(_json.loads(extra, {}) or {})
                if digest is not None:
                    found.add(digest)
            return found

        return set(self._read(run))

    def _check_database(self, result: CheckResult) -> None:
        dialect = self._writer.dialect.name
        result.facts.append(f"backend: {dialect}")
        if dialect == "sqlite":
            rows = self._read(lambda conn: conn.exec_driver_sql("PRAGMA integrity_check(20)").all())
            findings = [str(r[0]) for r in rows]
            if findings != ["ok"]:
                result.problems.append(f"database: integrity_check: {'; '.join(findings)}")
            else:
                result.facts.append("integrity_check: ok")
        result.facts.append(f"schema version: {self.schema_version} (this nbtoolkit: {SCHEMA_VERSION})")
        try:
            with self._writer.connect() as conn, conn.begin() as tx:
                _probe_write(conn)
                tx.rollback()
            result.facts.append("write permission: ok")
        except Exception as exc:  # noqa: BLE001 - any refusal is the finding
            reason = str(getattr(exc, "orig", exc)).splitlines()[0]
            result.problems.append(f"write permission: the database refused a write ({reason})")
        result.counts = self.table_counts()

    def _check_artifacts(self, result: CheckResult) -> bool:
        """Check every referenced blob; False when the store has no artifact location to check."""
        try:
            result.facts.append(f"artifact location: {self.artifacts.location}")
        except ConfigError as exc:
            result.problems.append(f"artifacts: {exc}")
            return False
        referenced = self.referenced_digests()
        missing = bad = 0
        try:
            for digest in sorted(referenced):
                where = self.artifacts.where(digest)
                if not self.artifacts.exists(digest):
                    missing += 1
                    result.problems.append(f"artifact {digest[:12]}: blob missing ({where})")
                    continue
                try:
                    self.artifacts.verify(digest)
                except ArtifactIntegrityError:
                    bad += 1
                    result.problems.append(f"artifact {digest[:12]}: content does not match its sha256 ({where})")
            result.orphans = [d for d in self.artifacts.digests() if d not in referenced]
        except ArtifactStoreUnavailableError as exc:  # the database checks above still stand
            result.problems.append(f"artifacts: {exc}")
            return False
        result.facts.append(
            f"artifacts: {len(referenced)} referenced blobs, {missing} missing, {bad} damaged, {len(result.orphans)} orphan"
        )
        return True

    def check(self, *, against: StoreMaintenance | None = None) -> CheckResult:
        """Check the database and every artifact; optionally that this store holds all of ``against``.

        Args:
            against: a source store (after :meth:`copy_into`): each of its tables must have no
                more rows than this store's, and each of its blobs must be present here.
        """
        result = CheckResult(self.location_display)
        self._check_database(result)
        blobs_known = self._check_artifacts(result)
        if against is not None:
            theirs = against.table_counts()
            for table, count in theirs.items():
                if result.counts.get(table, 0) < count:
                    result.problems.append(f"table {table}: {result.counts.get(table, 0)} rows, the source has {count}")
            lacking = [d for d in against.referenced_digests() if blobs_known and not self.artifacts.exists(d)]
            result.problems.extend(f"artifact {d[:12]}: in the source, not here" for d in lacking)
            result.facts.append(f"compared with {against.location_display}: {len(theirs)} tables")
        return result

    # ------------------------------------------------------------------ backup
    def backup(self, dest: str | Path) -> Path:
        """Copy this SQLite store to the folder ``dest`` while it may be in use.

        The database goes through SQLite's online backup API (a consistent snapshot even while
        other processes write), then every blob it references is copied and verified.

        Returns:
            The new ``dest/store.db``.

        Raises:
            InputError: the store is not SQLite, or ``dest`` already holds a store.
        """
        if self.url is not None:
            raise InputError(
                f"{self.location_display} is a server database; back it up with the server's tools (pg_dump), "
                "or copy it into a folder with `nbtk store copy`."
            )
        target = Path(dest)
        if (target / "store.db").exists():
            raise InputError(f"{target} already holds a store; give an empty or new folder.")
        target.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target, prefix=".store-", suffix=".db")
        os.close(fd)
        source = self.db_path

        def snapshot() -> None:
            src = sqlite3.connect(source, timeout=30)
            dst = sqlite3.connect(tmp_name)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=WAL").fetchone()
            finally:
                dst.close()
                src.close()

        try:
            retry(snapshot, where=str(source))
            with open(tmp_name, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp_name, target / "store.db")
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        copy = type(self)(target)  # type: ignore[call-arg]  # blobs go to the backup's own artifacts/
        try:
            self._copy_blobs(copy, copy.referenced_digests())
        finally:
            copy.dispose()  # type: ignore[attr-defined]
        return target / "store.db"

    # ------------------------------------------------------------------ copy
    def _copy_blobs(self, dst: StoreMaintenance, digests: set[str]) -> int:
        copied = 0
        for digest in sorted(digests):
            if dst.artifacts.exists(digest):
                continue
            where = self.artifacts.where(digest)
            if not self.artifacts.exists(digest):
                raise StoreError(
                    f"artifact {digest[:12]} is missing in {self.location_display} ({where}); run `nbtk store check` "
                    "there, or give the source's artifact location (`nbtk store copy --src-artifacts`)."
                )
            try:
                with self.artifacts.open_blob(digest) as source:
                    dst.artifacts.put_stream(source, digest)
            except ArtifactIntegrityError as exc:
                raise StoreError(
                    f"artifact {where} does not match its sha256 {digest[:12]}...; nothing was copied for it. "
                    "Run `nbtk store check` on the source."
                ) from exc
            copied += 1
        return copied

    def _add_rows(self, table: Table, rows: list[dict[str, Any]], result: CopyResult) -> None:
        """Insert the rows this store lacks; count rows already here and rows that differ."""
        keys = _key_columns(table)
        columns = [c.name for c in table.columns]

        def run(conn: Connection) -> tuple[int, int, list[str]]:
            cond: Any
            if table.primary_key.columns:
                cond = tuple_(*[table.c[k] for k in keys]).in_([tuple(r[k] for k in keys) for r in rows])
            elif "run_id" in table.c:
                cond = table.c.run_id.in_({r["run_id"] for r in rows})
            else:
                cond = text("1=1")
            found = conn.execute(select(*[table.c[c] for c in columns]).where(cond)).mappings()
            there = {tuple(m[k] for k in keys): tuple(m[c] for c in columns) for m in found}
            fresh, same, clash = [], 0, []
            for row in rows:
                key = tuple(row[k] for k in keys)
                if key not in there:
                    fresh.append(row)
                    there[key] = tuple(row[c] for c in columns)
                elif there[key] == tuple(row[c] for c in columns):
                    same += 1
                else:
                    clash.append(f"{table.name} {dict(zip(keys, key, strict=True))}")
            if table.primary_key.columns:
                insert_ignore(conn, table, fresh)
            elif fresh:
                conn.execute(table.insert(), fresh)
            return len(fresh), same, clash

        added, same, clash = self._write(run)
        result.added[table.name] = result.added.get(table.name, 0) + added
        result.present[table.name] = result.present.get(table.name, 0) + same
        result.conflicts.extend(clash)

    def copy_into(self, dst: StoreMaintenance) -> CopyResult:
        """Copy every run, lock, artifact, approval, export and registry record into ``dst``.

        Blobs go first, so no copied row ever points at a missing blob. Rows keep their ids and
        times; a row already in ``dst`` is skipped (so copying again is harmless); a row whose key
        is in ``dst`` with different content is left alone and listed in ``conflicts``.
        """
        if self.location == dst.location:
            raise InputError("The source and the destination are the same store.")
        result = CopyResult()
        result.blobs = self._copy_blobs(dst, self.referenced_digests())
        dst_tables = {t.name: t for t in dst._read(_store_tables)}
        for table in self._read(_store_tables):
            target = dst_tables.get(table.name)
            if target is None:
                result.conflicts.append(f"{table.name}: the destination has no such table (older nbtoolkit?)")
                continue
            with self._reader.connect() as conn:
                batch: list[dict[str, Any]] = []
                for row in conn.execution_options(yield_per=BATCH).execute(select(table)).mappings():
                    batch.append({c.name: row[c.name] for c in target.columns if c.name in row})
                    if len(batch) >= BATCH:
                        dst._add_rows(target, batch, result)
                        batch = []
                if batch:
                    dst._add_rows(target, batch, result)
            dst._write(partial(sync_id_sequence, table=target))
        return result
