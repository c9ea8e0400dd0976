"""Atomic file writes and hashing shared by the store, reports and bundles."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read it by setting it, then put it back at once
    os.umask(mask)
    return mask


def new_file_mode(path: str | Path) -> int:
    """The mode a file written to ``path`` gets: the existing file's, else ``0o666`` minus the umask.

    ``mkstemp`` creates files readable by their owner only; a report or notebook replaced
    through it must still get the user's normal mode (``0644`` under the usual umask).
    """
    with contextlib.suppress(FileNotFoundError):
        return os.stat(path).st_mode & 0o7777
    return 0o666 & ~_umask()


def new_dir_mode() -> int:
    """The mode a new folder gets under the process umask (``0755`` under the usual ``022``)."""
    return 0o777 & ~_umask()


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary sibling, fsync it, then ``os.replace`` it into place.

    A reader sees either the old file or the whole new one, never a half-written file. The
    file keeps its mode when it exists and otherwise gets the user's normal one (see
    :func:`new_file_mode`), not ``mkstemp``'s owner-only ``0600``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    mode_bits = new_file_mode(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode_bits)
        fh: IO[Any] = os.fdopen(fd, mode) if "b" in mode else os.fdopen(fd, mode, encoding="utf-8")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_writer(path, mode="wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
