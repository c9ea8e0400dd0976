"""The blob store contract: sha256-addressed blobs, streamed writes and verified reads.

:class:`BlobStore` holds what every location shares (hashing, skipping content already stored,
refusing a source that changes mid-copy, checking digests on read, fetching to a file);
:mod:`nbtoolkit.store.artifacts` provides the local-folder and fsspec implementations and
chooses one from the configured location.

An object store that cannot be used (endpoint down, no such bucket, credentials refused) is
found by a quick probe on the first use of the location, with short timeouts and no long retry
loop, and raised as :class:`~nbtoolkit.errors.ArtifactStoreUnavailableError`: before anything
is uploaded, so no row ever refers to a blob that is not stored. A later request failing for
the same reasons raises it too; integrity and disk-full errors are never wrapped.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import io
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from nbtoolkit._io import CHUNK
from nbtoolkit.errors import (
    ArtifactIntegrityError,
    ArtifactStoreUnavailableError,
    DiskFullError,
    InputError,
    NbToolkitError,
    StoreError,
)
from nbtoolkit.redact import MASK, default_redactor

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


#: The first request to an object store may take this long (seconds) before the location is
#: reported unavailable; ordinary requests keep their driver's own timeouts and retries.
PROBE_SECONDS = 10.0

#: Service error codes meaning the bucket (S3) or container (Azure) does not exist.
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket", "ContainerNotFound"})

#: Service error codes meaning the credentials themselves were refused.
_REFUSED_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
    "InvalidClientTokenId", "AuthenticationFailed", "AuthorizationHeaderMalformed",
})

#: Service error codes meaning the credentials are valid but lack the permission.
_DENIED_CODES = frozenset({"AccessDenied", "AllAccessDisabled", "AuthorizationFailure", "AuthorizationPermissionMismatch", "403"})

#: Exception class names (botocore, aiohttp, azure-core, google-auth, fsspec) that mean the
#: server could not be reached or did not answer; matched by name, so none is imported.
_CONNECTION_ERRORS = frozenset({
    "EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError",
    "ProxyConnectionError", "SSLError", "ClientConnectorError", "ClientConnectionError", "ServerTimeoutError",
    "ServiceRequestError", "ServiceResponseError", "FSTimeoutError", "TransportError",
})

#: Exception class names meaning no usable credentials were found or they could not be refreshed.
_NO_CREDENTIAL_ERRORS = frozenset({
    "NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "ClientAuthenticationError",
    "DefaultCredentialsError", "RefreshError",
})


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling (at most 8)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        implicit = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ if current.__cause__ is not None else implicit
    return seen


def _service_code(exc: BaseException) -> str | None:
    """The service's error code carried by ``exc`` (botocore ``response``, azure ``error_code``)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    code = getattr(exc, "error_code", None)
    return str(code) if code else None


def service_codes(exc: BaseException) -> list[str]:
    """The service error codes (``NoSuchBucket``, ``AccessDenied``...) carried by ``exc`` and its causes."""
    return [c for c in map(_service_code, _chain(exc)) if c]


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def unavailable_reason(exc: BaseException, *, url: str = "", waited: float | None = None) -> str | None:
    """One line saying why the artifact location cannot be used, or ``None`` for any other error.

    Recognises: the server could not be reached or did not answer; the bucket (container) does
    not exist; the credentials are missing, refused or lack the permission. A missing *object*,
    a digest mismatch or a full disk is not such an error. The line is scrubbed of credentials
    (those of ``url`` and any the redactor knows); it never holds a secret. ``waited``: the
    time limit of the request, named when it ran out.
    """
    if isinstance(exc, NbToolkitError):
        return None
    chain = _chain(exc)
    codes = service_codes(exc)
    names = set().union(*map(_names, chain))

    def detail(match: Callable[[BaseException], bool] = lambda e: True) -> str:
        """The message of the first (outermost) exception of the chain that ``match`` accepts."""
        return one_line(next((e for e in chain if match(e)), exc), url)

    def named(kinds: frozenset[str]) -> Callable[[BaseException], bool]:
        return lambda e: bool(_names(e) & kinds)

    def of_type(*kinds: type[BaseException]) -> Callable[[BaseException], bool]:
        return lambda e: isinstance(e, kinds)

    if missing := next((c for c in codes if c in _MISSING_BUCKET_CODES), None):
        return f"the bucket does not exist ({missing})"
    if refused := next((c for c in codes if c in _REFUSED_CREDENTIAL_CODES), None):
        return f"the server refused the credentials ({refused}: {detail()})"
    if names & _NO_CREDENTIAL_ERRORS:
        return f"no usable credentials ({detail(named(_NO_CREDENTIAL_ERRORS))})"
    if denied := next((c for c in codes if c in _DENIED_CODES), None):
        return f"access denied ({denied}: {detail()})"
    if any(isinstance(e, PermissionError) for e in chain):
        return f"access denied ({detail(of_type(PermissionError))})"
    if "FSTimeoutError" in names:
        return f"the server did not answer within {waited:g} s" if waited else "the server did not answer in time"
    if names & _CONNECTION_ERRORS:
        return f"cannot reach the server ({detail(named(_CONNECTION_ERRORS))})"
    if any(isinstance(e, (ConnectionError, TimeoutError, socket.gaierror)) for e in chain):
        return f"cannot reach the server ({detail(of_type(ConnectionError, TimeoutError, socket.gaierror))})"
    if "ParamValidationError" in names and "bucket name" in str(exc).lower():
        return f"the location does not name a valid bucket ({detail()})"
    return None


def one_line(exc: BaseException, url: str = "") -> str:
    """``exc``'s message on one line, without credentials or URL query strings, at most 240 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if url and is_url(url):
        parts = urlsplit(url)
        for secret in (parts.password, parts.username, parts.query):
            if secret:
                text = text.replace(secret, MASK)
    text = default_redactor().redact_text(text)
    text = _URL_QUERY.sub(r"\1", text)  # request parameters (and any signature) are noise here
    return text if len(text) <= 240 else text[:237] + "..."


#: A URL's query string, up to a quote, space or closing bracket.
_URL_QUERY = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s\"'?<>]+)\?[^\s\"'<>)]*", re.IGNORECASE)


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

    #: True once :meth:`check_available` has succeeded (the probe then never runs again).
    _available: bool = False

    #: Serialises the first probe of concurrent writers (one probe, not one per thread).
    _probe_lock = threading.Lock()

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

    # ---------------------------------------------------------------- availability
    def _probe(self) -> None:
        """Check that the location can be used, quickly (a subclass hook; local folders need none).

        Raise the driver's own error; :meth:`check_available` types it.
        """
        return None

    def check_available(self) -> None:
        """Raise :class:`ArtifactStoreUnavailableError` unless the location can be used.

        The first call probes the location with short timeouts (endpoint reachable, bucket
        present, credentials accepted); once it passed, later calls return at once. A probe
        failing for a reason :func:`unavailable_reason` does not know is inconclusive: the
        requests themselves then report what is wrong. A failed probe is not remembered, so a
        location that comes back is used again.
        """
        if self._available:
            return
        with self._probe_lock:
            if self._available:
                return
            try:
                self._probe()
            except NbToolkitError:
                raise
            except Exception as exc:
                reason = unavailable_reason(exc, url=self._url, waited=PROBE_SECONDS)
                if reason is not None:
                    raise ArtifactStoreUnavailableError(self.location, reason) from None
            self._available = True

    @contextlib.contextmanager
    def _remote(self) -> Iterator[None]:
        """Probe the location once (:meth:`check_available`), then type the errors of the requests inside.

        An error meaning "the location cannot be used" becomes :class:`ArtifactStoreUnavailableError`;
        every other error (a missing object, integrity, a full disk, a changed source) passes unchanged.
        The driver's exception is not chained: its text may name the raw location.
        """
        self.check_available()
        try:
            yield
        except Exception as exc:
            reason = unavailable_reason(exc, url=self._url)
            if reason is None:
                raise
            raise ArtifactStoreUnavailableError(self.location, reason) from None

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
        self.check_available()  # once, before the threads start
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
