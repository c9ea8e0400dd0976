"""Checks on the embedded store's SQLite file made *before* SQLite opens it for writing.

SQLite treats an empty file as a new database, so without these checks an emptied or damaged
``store.db`` would be silently replaced by a fresh store. Everything here only reads: the
damaged file stays byte-identical for the user to inspect or restore.
"""

from __future__ import annotations

import os
import sqlite3
import warnings
from pathlib import Path

from nbtoolkit.errors import StoreCorruptError, StoreLocationWarning

MOUNTS_FILE = "/proc/mounts"
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100

#: Filesystem types on which SQLite's WAL (shared memory between processes) is unsafe.
NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "afs", "ncpfs", "9p", "fuse.sshfs", "glusterfs", "ceph", "lustre", "gpfs", "davfs", "fuse.davfs2"}
)


def _header_problem(path: Path) -> str | None:
    """Describe what is wrong with the file's header and size (``None`` when it looks sound)."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes)"
    with open(path, "rb") as fh:
        header = fh.read(HEADER_SIZE)
    if len(header) < HEADER_SIZE or not header.startswith(SQLITE_MAGIC):
        return f"the file is not a SQLite database (header starts {header[:16]!r}, {size} bytes)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"the header holds an impossible page size ({page_size})"
    pages = int.from_bytes(header[28:32], "big")
    header_count_valid = header[24:28] == header[92:96]
    if header_count_valid and pages and pages * page_size > size:
        return f"the file is truncated ({size} bytes; its header says {pages} pages of {page_size} bytes)"
    return None


def integrity_finding(path: str | Path) -> str:
    """Run ``PRAGMA integrity_check`` without changing the file; return its first finding.

    The file is opened ``immutable`` (no locks, no journal, no write of any kind).
    """
    uri = Path(path).resolve().as_uri().replace("file://", "file:", 1) + "?immutable=1"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = con.execute("PRAGMA integrity_check(5)").fetchall()
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        con.close()
    findings = [str(r[0]) for r in rows]
    return "ok" if findings == ["ok"] else "; ".join(findings)


def _confirmed_by_sqlite(path: Path) -> bool:
    """True when a read-only SQLite connection also finds the database damaged.

    A header whose page count runs past the end of the file is what a checkpoint in progress
    looks like for an instant; only a failing quick check makes it a damaged file.
    """
    uri = path.resolve().as_uri().replace("file://", "file:", 1) + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            row = con.execute("PRAGMA quick_check(1)").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return True
    return row is None or row[0] != "ok"


def check_database_file(path: str | Path) -> None:
    """Refuse a damaged store database before anything opens it for writing.

    A missing file is fine (a new store is created). An empty, truncated or non-SQLite file
    raises; the file is only read.

    Raises:
        StoreCorruptError: naming the file, what is wrong and what to do.
    """
    db = Path(path)
    if not db.exists():
        return
    if not db.is_file():
        raise StoreCorruptError(str(db), "it is not a regular file")
    problem = _header_problem(db)
    if problem is None:
        return
    if problem.startswith("the file is truncated") and not _confirmed_by_sqlite(db):
        return
    finding = integrity_finding(db)
    raise StoreCorruptError(str(db), problem if finding == "ok" else f"{problem}; integrity_check: {finding}")


def _unescape_mount(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: str | Path, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (longest matching mount point in /proc/mounts).

    Args:
        path: any path (need not exist; its nearest existing parent is used).
        mounts: the text of ``/proc/mounts`` (read from the system when ``None``).
    """
    if mounts is None:
        try:
            with open(MOUNTS_FILE, encoding="utf-8", errors="replace") as fh:
                mounts = fh.read()
        except OSError:
            return None
    target = os.path.realpath(os.path.abspath(path))
    best: tuple[int, str] | None = None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point, fstype = _unescape_mount(fields[1]), fields[2]
        inside = target == point or target.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), fstype)
    return None if best is None else best[1]


def network_filesystem(path: str | Path, mounts: str | None = None) -> str | None:
    """The filesystem type when ``path`` is on a network filesystem (NFS, SMB/CIFS...), else ``None``."""
    fstype = filesystem_type(path, mounts)
    if fstype is None:
        return None
    base = fstype.lower()
    return fstype if base in NETWORK_FS_TYPES or base.split(".", 1)[0] in {"nfs", "cifs", "smb3"} else None


def warn_if_network_filesystem(folder: Path) -> None:
    """Warn (:class:`~nbtoolkit.errors.StoreLocationWarning`) when ``folder`` is on a network filesystem."""
    fstype = network_filesystem(folder)
    if fstype is not None:
        warnings.warn(
            StoreLocationWarning(
                f"The store {folder} is on a network filesystem ({fstype}). SQLite's WAL journal is "
                "unsafe there (records can be lost or corrupted when several machines write). Put the "
                "store on a local disk, or use a shared PostgreSQL store: "
                "NBTOOLKIT_STORE=postgresql://user@host/db (pip install 'nbtoolkit[team]')."
            ),
            stacklevel=3,
        )
