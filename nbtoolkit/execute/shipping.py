"""What reaches sweep children on workers that do not share this machine's files.

A Dask worker on another machine gets, with every task, the notebook's bytes and the store and
artifact locations (see :class:`~nbtoolkit.execute.jobs.RunJob`); its kernel records
straight into the database server and object storage. This module, used by the submitting
process only, adds the two remaining pieces:

* :func:`check_store_reachable`: refuse a store such kernels could not write (SQLite on this
  machine) and warn about an artifact folder that may not be shared.
* ``--ship PATH``: small project files (helper modules, configuration) read here and written
  next to the shipped notebook on a worker that runs the kernel in a temporary folder. Data
  belongs in object storage or a shared checkout: every task carries the shipped bytes, so
  their total is capped at :data:`MAX_SHIPPED_BYTES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nbtoolkit.artifacts import files_within
from nbtoolkit.config import mask_url
from nbtoolkit.errors import InputError
from nbtoolkit.store.artifacts import is_server_database
from nbtoolkit.store.blobstore import is_url

if TYPE_CHECKING:
    from nbtoolkit.store import Store

__all__ = ["MAX_SHIPPED_BYTES", "check_store_reachable", "read_shipped", "shipped_digests", "shipped_names"]

#: Total size of the ``--ship`` files; they travel with every task through the scheduler.
MAX_SHIPPED_BYTES = 16 << 20


def check_store_reachable(store: Store, foreign_hosts: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a store that kernels on ``foreign_hosts`` could not write; return warnings.

    Every kernel records its own run, so workers on other machines need a database server and
    an artifact location they reach (object storage, or a network folder mounted at the same
    path). A SQLite store is refused: each worker would write a file of its own at that path
    (or share one over a network filesystem, where SQLite's locking is unsafe). A folder as the
    artifact location only draws a warning, since it may be such a mount.

    Raises:
        InputError: the store is SQLite and some workers run on other machines.
    """
    if not foreign_hosts:
        return ()
    hosts = ", ".join(foreign_hosts)
    if not is_server_database(store.url):
        raise InputError(
            f"The store {store.location_display} is a SQLite file on this machine, but Dask workers run on "
            f"other machines ({hosts}) and their kernels record the runs themselves. Use a database server "
            "and object storage: NBTOOLKIT_STORE=postgresql://USER@HOST/DB and "
            "NBTOOLKIT_ARTIFACTS=s3://BUCKET/PREFIX (README: Sweeps on a Dask cluster)."
        )
    location = store.artifacts_location or ""
    if not is_url(location) or location.startswith("file://"):
        return (
            f"The artifact location {mask_url(location)} is a folder; kernels on {hosts} write their artifacts "
            "to that path on their own machine, which the rest of the team reads only if it is the same "
            "network mount everywhere. Otherwise set NBTOOLKIT_ARTIFACTS=s3://BUCKET/PREFIX.",
        )
    return ()


def shipped_names(paths: Iterable[str | Path], base: Path) -> list[str]:
    """The ``--ship`` paths as POSIX names relative to the kernels' working folder ``base``.

    Raises:
        InputError: a path does not exist or lies outside ``base``.
    """
    names = []
    for given in paths:
        path = Path(given).expanduser()
        path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        if not path.exists():
            raise InputError(f"--ship {given}: no such file or folder.")
        if not path.is_relative_to(base) or path == base:
            raise InputError(
                f"--ship {given} is not inside the kernels' working folder {base} (the notebook's folder, or the "
                "sweep's cwd); ship files from that folder: they land at the same relative path on the worker."
            )
        names.append(path.relative_to(base).as_posix())
    return sorted(dict.fromkeys(names))


def read_shipped(base: Path, names: Iterable[str]) -> dict[str, bytes]:
    """Read the shipped files and folders under ``base``: ``{relative POSIX name: bytes}``.

    Raises:
        InputError: a shipped path is gone, or all of them together exceed :data:`MAX_SHIPPED_BYTES`.
        ArtifactLinkError: a shipped folder holds a link pointing outside it.
    """
    files: dict[str, bytes] = {}
    for name in names:
        path = base / name
        if path.is_file():
            files[name] = path.read_bytes()
        elif path.is_dir():
            for file, relative in files_within(path):
                files[f"{name}/{relative}"] = file.read_bytes()
        else:
            raise InputError(f"The shipped path {path} does not exist in this checkout; restore it or drop --ship.")
    total = sum(len(data) for data in files.values())
    if total > MAX_SHIPPED_BYTES:
        raise InputError(
            f"--ship files total {total / 2**20:.1f} MiB, over the {MAX_SHIPPED_BYTES >> 20} MiB that travel with "
            "every task; read data from object storage (s3://...) or a shared checkout instead."
        )
    return files


def shipped_digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """``{name: sha256}`` of shipped files (part of the run-cache key and the run's record)."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
