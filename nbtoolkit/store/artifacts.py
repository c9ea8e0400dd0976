"""Content-addressed artifact blobs: ``<location>/sha256/ab/abcdef...``.

The location is an fsspec URL (see :func:`artifact_location`): a local or shared network folder
(the default is ``<store folder>/artifacts``), ``s3://``, ``gs://``, ``az://`` or any other
protocol fsspec knows. Identical content is stored once. Every write hashes the source in
chunks, skips the upload when the blob is already there, then streams it while hashing again,
so nothing is read whole into memory and a source that changes mid-copy is refused. Reads are
checked against the digest (:class:`~nbtoolkit.errors.ArtifactIntegrityError`).

Local folders write through a temporary file, fsync and ``os.replace``; object stores write
the object in one PUT (or a multipart upload completed at the end), so a reader never sees a
partial blob. A full disk raises :class:`~nbtoolkit.errors.DiskFullError` after removing the
temporary file. The store writes the blob *before* committing the row that references it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from nbtoolkit.errors import (
    ARTIFACTS_SETTING,
    ArtifactLocationError,
    ArtifactStoreUnavailableError,
    ConfigError,
    DiskFullError,
)
from nbtoolkit.store.blobstore import (
    DISK_ERRNOS,
    HEX_DIGITS,
    PROBE_SECONDS,
    BlobStore,
    check_digest,
    is_url,
    one_line,
    safe_location,
    service_codes,
)

__all__ = [
    "ArtifactStore",
    "BlobStore",
    "FsspecBlobStore",
    "LocalBlobStore",
    "artifact_location",
    "blob_store_for",
    "check_digest",
    "is_server_database",
    "open_blob_store",
    "safe_location",
]

#: fsspec protocols whose single-object writes are atomic (PUT / completed multipart upload).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"})

#: Part size of streamed uploads to object stores (S3 needs at least 5 MiB per part).
UPLOAD_PART = 8 << 20

#: The fsspec package implementing each well-known scheme, for the message when it is missing.
DRIVERS = {
    "s3": "s3fs (pip install 'nbtoolkit[team]')", "s3a": "s3fs (pip install 'nbtoolkit[team]')",
    "gs": "gcsfs (pip install gcsfs)", "gcs": "gcsfs (pip install gcsfs)",
    "az": "adlfs (pip install adlfs)", "abfs": "adlfs (pip install adlfs)", "abfss": "adlfs (pip install adlfs)",
    "adl": "adlfs (pip install adlfs)", "oss": "ossfs (pip install ossfs)", "sftp": "paramiko (pip install paramiko)",
}

#: Seconds the reachability probe of an S3 location waits for a connection (botocore's default is 60).
PROBE_CONNECT_SECONDS = 3

#: botocore's retry settings for the probe: one retry, not the default four with back-off.
PROBE_RETRIES = {"max_attempts": 2, "mode": "standard"}


def is_server_database(store_url: str | None) -> bool:
    """True when the metadata lives in a database server (anything but SQLite)."""
    return store_url is not None and not store_url.split(":", 1)[0].lower().startswith("sqlite")


def artifact_location(configured: str | None, *, store_path: Path | None, store_url: str | None) -> str:
    """Return where the blobs go: the configured location, else ``<store folder>/artifacts``.

    Args:
        configured: ``NBTOOLKIT_ARTIFACTS`` / ``[tool.nbtoolkit] artifacts`` (path or fsspec URL).
        store_path: the store folder.
        store_url: the metadata database URL (``None`` = SQLite in ``store_path``).

    Raises:
        ConfigError: the metadata is on a database server and no artifact location is set:
            a local folder there would hold blobs nobody else can read.
    """
    if configured:
        return configured
    if is_server_database(store_url) or store_path is None:
        raise ConfigError(
            "The store is a database server but no artifact location is configured, so other "
            "machines could not read the artifacts. Set NBTOOLKIT_ARTIFACTS (or [tool.nbtoolkit] "
            "artifacts) to a shared location such as s3://bucket/prefix or a shared network folder."
        )
    return str(Path(store_path) / "artifacts")


class LocalBlobStore(BlobStore):
    """Blobs in a local or mounted network folder (the fast path: no fsspec).

    Args:
        root: the folder holding ``sha256/`` and ``tmp/``.
        bound: the folder every write must stay inside, checked on real paths before each
            write (default ``root``; the store passes its own folder for the default location,
            so a symlinked ``artifacts/`` pointing elsewhere is refused).
    """

    def __init__(self, root: str | Path, *, bound: str | Path | None = None) -> None:
        self.root = Path(root)
        self._url = str(self.root)
        self.bound = Path(bound) if bound is not None else self.root
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"

    def path_for(self, digest: str) -> Path:
        """Return where the blob with ``digest`` lives (it may not exist)."""
        check_digest(digest)
        return self._blobs / digest[:2] / digest[2:]

    def where(self, digest: str) -> str:
        return str(self.path_for(digest))

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def _open_raw(self, digest: str) -> IO[bytes]:
        return open(self.path_for(digest), "rb")

    def digests(self) -> Iterator[str]:
        if not self._blobs.is_dir():
            return
        for prefix in sorted(self._blobs.iterdir()):
            for blob in sorted(prefix.iterdir()) if prefix.is_dir() else ():
                name = prefix.name + blob.name
                if len(name) == 64 and set(name) <= HEX_DIGITS:
                    yield name

    def _make_folder(self, folder: Path) -> None:
        """Create ``folder`` step by step, refusing any step whose real path leaves the bound.

        Each level is checked before anything is created under it, so a symlinked
        ``artifacts/`` or ``sha256/`` pointing elsewhere never receives a file or folder.
        """
        bound = self.bound.resolve()
        path = self.root
        for part in ("", *folder.relative_to(self.root).parts):
            path = path / part if part else path
            path.mkdir(parents=not part, exist_ok=True)
            real = path.resolve()
            if not real.is_relative_to(bound):
                raise ArtifactLocationError(str(path), str(real), str(bound))

    def _upload(self, source: IO[bytes], digest: str) -> None:
        target = self.path_for(digest)
        tmp: Path | None = None
        try:
            for folder in (self._tmp, target.parent):
                self._make_folder(folder)
            fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
            tmp = Path(name)
            with os.fdopen(fd, "wb") as out:
                self._copy_checked(source, out, digest)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
            tmp = None
        except OSError as exc:
            if exc.errno in DISK_ERRNOS:
                raise DiskFullError(str(self.root), DISK_ERRNOS[exc.errno]) from exc
            raise
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


class FsspecBlobStore(BlobStore):
    """Blobs at any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``az://…``, ``sftp://…``).

    Credentials come from the usual places of each protocol (for S3: AWS's variables and config
    files, ``AWS_ENDPOINT_URL`` for S3-compatible servers); they are never printed.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs

        self._url = url
        scheme = url.split("://", 1)[0].lower()
        try:
            self.fs, self.root = url_to_fs(url, **storage_options)
        except ImportError as exc:
            driver = DRIVERS.get(scheme, f"the fsspec implementation of {scheme}://")
            raise ConfigError(
                f"The artifact location {safe_location(url)} needs {driver}, which is not installed "
                f"({one_line(exc, url=url)}). Install it in the environment that records runs, or change "
                f"{ARTIFACTS_SETTING}; then run `nbtk store check`."
            ) from None
        except ValueError as exc:
            from fsspec.registry import known_implementations, registry

            if scheme in known_implementations or scheme in registry:  # the driver refused its settings
                raise ConfigError(
                    f"The artifact location {safe_location(url)} could not be opened by its fsspec driver "
                    f"({one_line(exc, url=url)}). Check {ARTIFACTS_SETTING} and the driver's settings in the "
                    "environment (credentials, account, endpoint); then run `nbtk store check`."
                ) from None
            known = "s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or a folder"
            raise ConfigError(
                f"The artifact location {safe_location(url)} is not a known fsspec URL ({one_line(exc, url=url)}). "
                f"Check the spelling of {ARTIFACTS_SETTING}: use {known}, and install the fsspec package of the "
                "scheme (for s3://: pip install 'nbtoolkit[team]'); then run `nbtk store check`."
            ) from None
        self.root = self.root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._direct = bool(OBJECT_STORES.intersection(protocols))
        self._s3 = "s3" in protocols and callable(getattr(self.fs, "call_s3", None))
        self._present: set[str] = set()

    def _key(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest[2:]}"

    # ---------------------------------------------------------------- availability
    def _probe(self) -> None:
        """One quick request: the endpoint answers, the bucket exists, the credentials are accepted.

        S3 lists at most one key under ``sha256/`` through a client of its own with a short
        connect timeout and one retry (the client of uploads keeps botocore's defaults); other
        asynchronous object stores check the bucket (container) within :data:`PROBE_SECONDS`.
        Valid credentials lacking the list permission are not refused here: the requests that
        need a permission report it when it is missing.
        """
        bucket, _, prefix = self.root.partition("/")
        if self._s3:
            options = dict(self.fs.storage_options)
            config = {
                **(options.pop("config_kwargs", None) or {}),
                "connect_timeout": PROBE_CONNECT_SECONDS,
                "read_timeout": PROBE_SECONDS,
                "retries": PROBE_RETRIES,
            }
            probe = type(self.fs)(**options, config_kwargs=config)
            probe.retries = 1  # s3fs's own retry loop (on top of botocore's)
            try:  # ``timeout`` bounds the whole call (fsspec's sync), whatever the driver does
                probe.call_s3(
                    "list_objects_v2", Bucket=bucket, Prefix=f"{prefix}/sha256/".lstrip("/"), MaxKeys=1,
                    timeout=PROBE_SECONDS,
                )
            except PermissionError as exc:
                if "AccessDenied" not in service_codes(exc):
                    raise
            except FileNotFoundError as exc:  # listing a bucket that exists never answers 404
                codes = service_codes(exc)
                answer = "NoSuchBucket" if "NoSuchBucket" in codes else f"{codes[0] if codes else 404}: {one_line(exc, url=self._url)}"
                raise ArtifactStoreUnavailableError(
                    self.location, f"the bucket {bucket!r} does not exist at this endpoint ({answer})"
                ) from None
            return
        if not (self._direct and bucket and getattr(self.fs, "async_impl", False)):
            return  # folders over sftp, smb..., memory://: the first request reports its own error
        from fsspec.asyn import sync

        try:
            found = sync(self.fs.loop, self.fs._exists, bucket, timeout=PROBE_SECONDS)
        except PermissionError:
            return
        if not found:
            raise ArtifactStoreUnavailableError(self.location, f"the bucket (container) {bucket!r} does not exist")

    def where(self, digest: str) -> str:
        return f"{self.location.rstrip('/')}/sha256/{digest[:2]}/{digest[2:]}"

    def exists(self, digest: str) -> bool:
        if digest in self._present:
            return True
        key = self._key(digest)
        with self._remote():
            found = self._exists(key)
        if found:
            self._present.add(digest)
        return found

    def _exists(self, key: str) -> bool:
        if self._s3:  # one HEAD request; fsspec's exists() also lists the key as a "folder"
            bucket, path, _ = self.fs.split_path(key)
            try:
                self.fs.call_s3("head_object", Bucket=bucket, Key=path)
                found = True
            except FileNotFoundError:
                found = False
        else:
            self.fs.invalidate_cache(key)  # another process may have written or removed it
            found = bool(self.fs.exists(key))
        return found

    def _open_raw(self, digest: str) -> IO[bytes]:
        key = self._key(digest)
        with self._remote():
            self.fs.invalidate_cache(key)  # listings cached earlier may describe an older object
            opened: IO[bytes] = self.fs.open(key, "rb", block_size=UPLOAD_PART)
        return opened

    def digests(self) -> Iterator[str]:
        base = f"{self.root}/sha256/"
        try:
            with self._remote():
                keys = self.fs.find(base)
        except FileNotFoundError:
            return
        for key in sorted(keys):
            name = key[len(base):].replace("/", "") if key.startswith(base) else ""
            if len(name) == 64 and set(name) <= HEX_DIGITS:
                yield name

    def _upload(self, source: IO[bytes], digest: str) -> None:
        with self._remote():
            self._upload_unchecked(source, digest)

    def _upload_unchecked(self, source: IO[bytes], digest: str) -> None:
        key = self._key(digest)
        # object stores make a single object visible only once it is complete; other file
        # systems get a temporary name and a rename
        dest = key if self._direct else f"{self.root}/tmp/blob-{uuid.uuid4().hex}"
        out = self.fs.open(dest, "wb", block_size=UPLOAD_PART)
        try:
            self._copy_checked(source, out, digest)
        except BaseException as exc:
            if self._direct:
                with contextlib.suppress(Exception):
                    out.discard()  # aborts a multipart upload: nothing becomes visible
                out.closed = True  # so that garbage collection does not commit the part written
            else:
                with contextlib.suppress(Exception):
                    out.close()
                with contextlib.suppress(Exception):
                    self.fs.rm(dest)
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                raise DiskFullError(self.location, DISK_ERRNOS[exc.errno]) from exc
            raise
        out.close()
        if dest != key:
            self.fs.mv(dest, key)
        self._present.add(digest)


def open_blob_store(location: str, *, bound: str | Path | None = None) -> BlobStore:
    """Open the blob store at ``location``: a folder (or ``file://`` URL) or any fsspec URL.

    Args:
        location: where the blobs live.
        bound: for local folders, the folder writes must stay inside (default: the location).
    """
    if not is_url(location):
        return LocalBlobStore(Path(location).expanduser(), bound=bound)
    if location.startswith("file://"):
        return LocalBlobStore(Path(urlsplit(location).path), bound=bound)
    return FsspecBlobStore(location)


def blob_store_for(configured: str | None, *, store_path: Path | None, store_url: str | None) -> BlobStore:
    """Open the blob store of a store: the configured location, else ``<store folder>/artifacts``.

    The default folder must stay inside the store folder on real paths (a symlinked
    ``artifacts/`` pointing elsewhere is refused at the first write); a configured location may be
    anywhere. See :func:`artifact_location` for the server-database rule.
    """
    location = artifact_location(configured, store_path=store_path, store_url=store_url)
    return open_blob_store(location, bound=None if configured else store_path)


#: The earlier name of the local blob store.
ArtifactStore = LocalBlobStore
