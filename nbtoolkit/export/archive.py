"""The bundle archive: one deterministic ``.tar.gz`` of a bundle folder.

``nbtk export --archive`` hands it out, and every export stores it as a blob in the store's
artifact location (see :mod:`nbtoolkit.export.fetch`), so that other machines can fetch it.
The same folder written at the same time gives the same bytes: members in sorted order, regular
files and folders only, owners and modes normalised, every time (tar members and the gzip
header) set to the export time, no file name in the gzip header.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tarfile
from pathlib import Path

from nbtoolkit.errors import DiskFullError
from nbtoolkit.export.manifest import list_files
from nbtoolkit.store.blobstore import DISK_ERRNOS

__all__ = ["write_archive"]

#: gzip level of bundle archives (6: zlib's default balance of speed and size).
COMPRESSLEVEL = 6


def write_archive(src: Path, dest: Path, arcname: str, mtime: float) -> Path:
    """Write the tar.gz of the folder ``src`` (as ``arcname/``) to the new file ``dest``.

    ``dest`` must not exist (it is created exclusively, with the user's usual mode) and is
    fsynced; a failure removes it. Callers publish it by renaming or linking it into place.

    Raises:
        FileExistsError: ``dest`` exists.
        DiskFullError: the disk filled up while writing.
    """
    stamp = int(mtime)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=COMPRESSLEVEL, mtime=stamp) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                files, _ = list_files(src)
                dirs = sorted({"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)})
                for name in ["", *dirs]:
                    info = tarfile.TarInfo(f"{arcname}/{name}".rstrip("/"))
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, stamp
                    tar.addfile(info)
                for name in files:
                    path = src / name
                    info = tarfile.TarInfo(f"{arcname}/{name}")
                    info.size, info.mode, info.mtime = path.stat().st_size, 0o644, stamp
                    with open(path, "rb") as fh:
                        tar.addfile(info, fh)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            dest.unlink()
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            raise DiskFullError(str(dest.parent), DISK_ERRNOS[exc.errno]) from exc
        raise
    return dest
