"""Content-addressed artifact storage: ``artifacts/sha256/ab/abcdef...``.

Identical content is stored once. Writes go through a temporary file in the same folder,
fsync, then ``os.replace``, so a reader never sees a partial artifact.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from nbtoolkit._io import CHUNK, sha256_file
from nbtoolkit.errors import ArtifactIntegrityError, InputError


class ArtifactStore:
    """Blobs addressed by their sha256.

    Args:
        root: the folder holding ``sha256/`` and ``tmp/``.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "sha256"
        self._tmp = self.root / "tmp"

    def path_for(self, digest: str) -> Path:
        """Return where the blob with ``digest`` lives (it may not exist)."""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(f"{digest!r} is not a sha256 hex digest.")
        return self._blobs / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def _commit_tmp(self, tmp: Path, digest: str) -> Path:
        target = self.path_for(digest)
        if target.is_file():
            tmp.unlink()
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        return target

    def _tempfile(self) -> tuple[int, Path]:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        return fd, Path(name)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; return ``(sha256, size)``."""
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest, len(data)
        fd, tmp = self._tempfile()
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._commit_tmp(tmp, digest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return digest, len(data)

    def put_file(self, path: str | Path) -> tuple[str, int]:
        """Copy a file into the store, hashing while copying; return ``(sha256, size)``."""
        source = Path(path)
        if not source.is_file():
            raise InputError(f"{source} is not a file; pass the path of an existing file.")
        fd, tmp = self._tempfile()
        hasher = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(CHUNK):
                    hasher.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            self._commit_tmp(tmp, hasher.hexdigest())
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return hasher.hexdigest(), size

    def read_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        """Return a blob's bytes, checking them against ``digest`` by default."""
        path = self.path_for(digest)
        data = path.read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise ArtifactIntegrityError(digest, str(path))
        return data

    def verify(self, digest: str) -> None:
        """Raise :class:`ArtifactIntegrityError` unless the blob matches its digest."""
        path = self.path_for(digest)
        if not path.is_file() or sha256_file(path) != digest:
            raise ArtifactIntegrityError(digest, str(path))

    def copy_to(self, digest: str, dest: str | Path) -> Path:
        """Copy a verified blob to ``dest`` (a file path)."""
        self.verify(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path_for(digest), dest)
        return dest
