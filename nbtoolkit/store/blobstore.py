"""The blob store contract: sha256-addressed blobs, streamed writes and verified reads.

:class:`BlobStore` holds what every location shares (hashing, skipping content already stored,
refusing a source that changes mid-copy, checking digests on read, fetching to a file);
:mod:`nbtoolkit.store.artifacts` provides the local-folder and fsspec implementations and
chooses one from the configured location.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import io
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from nbtoolkit._io import CHUNK
from nbtoolkit.errors import ArtifactIntegrityError, DiskFullError, InputError, StoreError

#: Errors that mean "the disk is full or failing" rather than a bug or a permission problem.
DISK_ERRNOS = {errno.ENOSPC: "no space left", errno.EDQUOT: "quota exceeded", errno.EIO: "input/output error"}

#: Files stored at once by :meth:`BlobStore.put_files` (uploads and fsyncs overlap).
PUT_WORKERS = 8

#: Threads for folders whose files are all small (at most 1 MiB each).
SMALL_FILE_WORKERS = 32

#: The characters of a sha256 hex digest.
HEX_DIGITS = frozenset("0123456789abcdef")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a lowercase sha256 hex digest, else raise :class:`InputError`."""
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= HEX_DIGITS:
        raise InputError(f"{digest!r} is not a sha256 hex digest.")
    return digest


def is_url(location: str) -> bool:
    """True when ``location`` has a ``scheme://`` prefix (a single letter is a Windows drive)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").isalnum()


def safe_location(location: str) -> str:
    """``location`` without user name, password or query string: safe to print and record."""
    if not is_url(location):
        return location
    parts = urlsplit(location)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _hash_stream(fh: IO[bytes]) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    while chunk := fh.read(CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


class VerifyingReader(io.RawIOBase):
    """A read-only stream over a blob that checks its sha256 when the end is reached.

    The last read raises :class:`ArtifactIntegrityError` when the bytes do not match.
    """

    def __init__(self, raw: IO[bytes], digest: str, where: str) -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._where = where
        self._hasher = hashlib.sha256()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        if not data:
            if not self._done:
                self._done = True
                if self._hasher.hexdigest() != self._digest:
                    raise ArtifactIntegrityError(self._digest, self._where)
            return 0
        view[: len(data)] = data
        self._hasher.update(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class BlobStore(abc.ABC):
    """Blobs addressed by their sha256, at one location.

    Subclasses provide the storage primitives; hashing, idempotence and verification live here.
    """

    #: The location as given, which may carry credentials; never print it (use ``location``).
    _url: str

    @property
    def location(self) -> str:
        """The location without credentials (safe to print and record)."""
        return safe_location(self._url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # ---------------------------------------------------------------- primitives
    @abc.abstractmethod
    def exists(self, digest: str) -> bool:
        """True when the blob ``digest`` is stored."""

    @abc.abstractmethod
    def where(self, digest: str) -> str:
        """A printable (credential-free) name of the blob, for messages."""

    @abc.abstractmethod
    def _open_raw(self, digest: str) -> IO[bytes]:
        """Open the stored blob for reading (unchecked)."""

    @abc.abstractmethod
    def _upload(self, source: IO[bytes], digest: str) -> None:
        """Stream ``source`` into the blob ``digest``; :meth:`_copy_checked` does the copying."""

    @abc.abstractmethod
    def digests(self) -> Iterator[str]:
        """Every stored blob's digest (for consistency checks and copies)."""

    def require(self, digest: str) -> None:
        """Raise :class:`StoreError` unless the blob is stored (checked before a row refers to it)."""
        if not self.exists(digest):
            raise StoreError(
                f"The blob {digest[:12]}... is not at {self.location}; store its bytes first "
                "(store.artifacts.put_file / put_bytes), then record the artifact."
            )

    # ---------------------------------------------------------------- writing
    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Store a file, streamed in chunks; return ``(sha256, size)``. No upload if already stored."""
        source = Path(path)
        if not source.is_file():
            raise InputError(f"{source} is not a file; pass the path of an existing file.")
        with open(source, "rb") as fh:
            digest, size = _hash_stream(fh)
            if not self.exists(digest):
                fh.seek(0)
                self._upload(fh, digest)
        return digest, size

    def put_files(self, paths: Sequence[Path], *, workers: int | None = None) -> list[tuple[str, int]]:
        """Store several files concurrently; return their ``(sha256, size)`` in order.

        Uploads and fsyncs overlap (threads; hashing and I/O release the GIL). Folders of small
        files (each at most 1 MiB) use more threads, as their cost is round trips, not bytes;
        memory stays bounded either way. On the first failure the files not yet started are
        skipped and that error is raised once the running ones have finished, so the caller
        records no row for any of them.
        """
        if len(paths) <= 1:
            return [self.put_file(p) for p in paths]
        if workers is None:
            small = all(Path(p).stat().st_size <= CHUNK for p in paths)
            workers = SMALL_FILE_WORKERS if small else PUT_WORKERS
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        with ThreadPoolExecutor(max_workers=min(workers, len(paths)), thread_name_prefix="nbtk-put") as pool:
            futures = [pool.submit(self.put_file, p) for p in paths]
            for future in wait(futures, return_when=FIRST_EXCEPTION).not_done:
                future.cancel()
        for future in futures:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                raise error
        return [f.result() for f in futures]

    def put_stream(self, source: IO[bytes], digest: str) -> None:
        """Store the bytes read from ``source``, which must hash to ``digest`` (e.g. another store's blob).

        Nothing is uploaded when the blob is already here. A source whose bytes do not match is
        refused and leaves no blob behind (an :meth:`open_blob` source raises
        :class:`ArtifactIntegrityError` at its end; any other raises :class:`InputError`).
        """
        if not self.exists(check_digest(digest)):
            self._upload(source, digest)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._upload(io.BytesIO(data), digest)
        return digest, len(data)

    @staticmethod
    def _copy_checked(source: IO[bytes], sink: IO[bytes], digest: str) -> None:
        """Copy in chunks, re-hashing: a source changed since it was hashed is refused."""
        hasher = hashlib.sha256()
        while chunk := source.read(CHUNK):
            hasher.update(chunk)
            sink.write(chunk)
        if hasher.hexdigest() != digest:
            raise InputError(
                "The file changed while it was being stored (its sha256 differs from a moment "
                "ago); nothing was recorded. Log it again once it is no longer being written."
            )

    # ---------------------------------------------------------------- reading
    def open_blob(self, digest: str) -> BinaryIO:
        """Open a blob as a binary file object, checked against ``digest`` as it is read.

        Reading to the end raises :class:`ArtifactIntegrityError` if the bytes do not match.
        """
        check_digest(digest)
        try:
            raw = self._open_raw(digest)
        except FileNotFoundError:
            raise ArtifactIntegrityError(digest, f"{self.where(digest)} (missing)") from None
        return io.BufferedReader(VerifyingReader(raw, digest, self.where(digest)), CHUNK)

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """Return a blob's bytes (for small blobs: figures, notebooks), checked by default."""
        if not verify:
            with self._open_raw(check_digest(digest)) as raw:
                return raw.read()
        with self.open_blob(digest) as fh:
            return fh.read()

    def verify(self, digest: str) -> None:
        """Raise :class:`ArtifactIntegrityError` unless the blob exists and matches its digest."""
        with self.open_blob(digest) as fh:
            while fh.read(CHUNK):
                pass

    def fetch_to(self, digest: str, dest: str | Path) -> Path:
        """Stream a checked blob to the file ``dest``; a bad blob leaves no file behind."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
        # os.open with 0o666 so the file gets the user's usual mode (umask), unlike mkstemp's 0600
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out, self.open_blob(digest) as src:
                while chunk := src.read(CHUNK):
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                raise DiskFullError(str(target.parent), DISK_ERRNOS[exc.errno]) from exc
            raise
        return target

    def copy_to(self, digest: str, dest: str | Path) -> Path:
        """Same as :meth:`fetch_to` (kept for callers of the earlier name)."""
        return self.fetch_to(digest, dest)
