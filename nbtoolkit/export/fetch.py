"""Registry versions on any machine: the bundle's archive fetched from the store into a local cache.

Every export stores the bundle's archive as a blob in the store's artifact location and records
its sha256 with the version (``extra.blob``, see :mod:`nbtoolkit.export.bundle`). The folder the
export wrote exists only on the exporting machine; on any other machine (a team store on
PostgreSQL with artifacts in object storage) :func:`local_bundle` gives a bundle of the version
that is here:

1. the recorded path, when it holds the version's manifest (``sha256(MANIFEST.json)`` equals
   the recorded ``manifest_sha256``) -- the single-user case, unchanged;
2. else a cached copy from an earlier fetch, when its manifest matches;
3. else the blob, streamed from the artifact location and checked against its sha256, extracted
   with the archive checks of :func:`~nbtoolkit.export.verify.extract_archive`, verified file by
   file against its manifest, and renamed into the cache in one step: no half-extracted entry is
   ever visible, and processes fetching the same version at once each install a complete copy
   (the first rename wins; the others use it).

Versions exported before bundles were stored have no blob: their path is the record, as before.

The cache is ``$XDG_CACHE_HOME/nbtoolkit/bundles/<model>/<version>/<first 16 hex of the archive's
sha256>/`` (``~/.cache/...`` without ``XDG_CACHE_HOME``), per machine and user, shared by every
project and store on it: an entry is named by its content, so two stores cannot collide.
Deleting the folder is always safe; nothing evicts entries on its own. Work folders of fetches
killed midway (``.fetch-*``) are removed by the next fetch of that version after an hour.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO

from nbtoolkit._io import CHUNK, new_dir_mode
from nbtoolkit.envlock.written import record_written
from nbtoolkit.errors import BundleIntegrityError, BundleUnavailableError, HandoffError, InputError
from nbtoolkit.export.archive import write_archive
from nbtoolkit.export.manifest import MANIFEST_NAME
from nbtoolkit.export.verify import extract_archive, verify_bundle, verify_folder
from nbtoolkit.store import Store
from nbtoolkit.store.models import ModelVersion

__all__ = ["bundle_cache", "copy_bundle", "local_bundle", "manifest_sha256"]

#: Work folders of fetches in progress, next to the cache entry they will become.
WORK_PREFIX = ".fetch-"

#: A work folder untouched this long (seconds) belongs to a fetch that was killed.
ABANDONED_AFTER = 3600

#: A model name or version usable as one folder name of the cache.
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def bundle_cache() -> Path:
    """The folder holding fetched bundles: ``$XDG_CACHE_HOME/nbtoolkit/bundles`` (default ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # the XDG spec ignores relative values
    return root / "nbtoolkit" / "bundles"


def manifest_sha256(path: Path) -> str | None:
    """The sha256 of the ``MANIFEST.json`` of a bundle folder or archive at ``path`` (``None``: none there)."""
    try:
        if path.is_dir():
            manifest = path / MANIFEST_NAME
            return _sha256_stream(manifest.open("rb")) if manifest.is_file() and not manifest.is_symlink() else None
        if path.is_file():
            with tarfile.open(path, "r:*") as tar:
                for member in tar:  # MANIFEST.json is the first file of an exported archive
                    name = member.name.removeprefix("./")
                    if member.isfile() and (name == MANIFEST_NAME or (name.count("/") == 1 and name.endswith(f"/{MANIFEST_NAME}"))):
                        fh = tar.extractfile(member)
                        return None if fh is None else _sha256_stream(fh)
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None


def _sha256_stream(fh: IO[bytes]) -> str:
    hasher = hashlib.sha256()
    with fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _entry(version: ModelVersion, digest: str) -> Path:
    for part in (version.model, version.version):
        if not _PART.match(part):
            raise InputError(f"{version.model} {version.version}: {part!r} cannot name a cache folder; re-export with a plain name.")
    return bundle_cache() / version.model / version.version / digest[:16]


def local_bundle(version: ModelVersion, *, store: Store) -> Path:
    """A bundle of ``version`` on this machine: its recorded path, else a verified copy from the store.

    Args:
        version: a recorded export (``registry.get_version``).
        store: the store whose artifact location holds the version's archive.

    Returns:
        The recorded path (it holds the version's manifest, or the version has no stored
        archive), or the cached bundle folder.

    Raises:
        BundleUnavailableError: the recorded path does not hold the bundle and the archive is
            not in the artifact location (both named, with the fix).
        ArtifactIntegrityError: the archive's bytes do not match its sha256 (a tampered blob).
        BundleIntegrityError: the archive is unsafe, or its files or manifest are not the
            version's.
    """
    recorded = Path(version.path)
    digest = version.blob
    if digest is None or manifest_sha256(recorded) == version.manifest_sha256:
        return recorded
    entry = _entry(version, digest)
    if manifest_sha256(entry) == version.manifest_sha256:
        return entry
    if not store.artifacts.exists(digest):
        raise BundleUnavailableError(version.model, version.version, version.path, store.artifacts.where(digest))
    entry.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(entry.parent)
    work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=entry.parent))
    try:
        root = _unpack(version, digest, store, work)
        _install(root, entry, version.manifest_sha256, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry


def _unpack(version: ModelVersion, digest: str, store: Store, work: Path) -> Path:
    """Fetch the archive into ``work`` (sha256-checked), extract and verify it; return the bundle folder."""
    archive = store.artifacts.fetch_to(digest, work / "bundle.tar.gz")
    (work / "bundle").mkdir()
    where = f"{version.model} {version.version} from {store.artifacts.where(digest)}"
    try:
        root = extract_archive(archive, work / "bundle")
    except BundleIntegrityError as exc:
        raise BundleIntegrityError(where, exc.problems) from None
    archive.unlink()
    _, _, problems = verify_folder(root)
    found = manifest_sha256(root)
    if not problems and found != version.manifest_sha256:
        problems = [f"{MANIFEST_NAME}: sha256 {str(found)[:12]}..., the registry recorded "
                    f"{version.manifest_sha256[:12]}... for this version (another bundle's archive)"]
    if problems:
        raise BundleIntegrityError(where, problems)
    return root


def _remove_abandoned(folder: Path) -> None:
    """Remove work folders of fetches killed midway (older than :data:`ABANDONED_AFTER`)."""
    cutoff = time.time() - ABANDONED_AFTER
    for work in folder.glob(f"{WORK_PREFIX}*"):
        with contextlib.suppress(OSError):
            if work.lstat().st_mtime < cutoff:
                shutil.rmtree(work)


#: Attempts to install a fetched bundle over cache entries that are not the version's.
INSTALL_ATTEMPTS = 3


def _install(root: Path, entry: Path, manifest: str, work: Path) -> None:
    """Rename the verified folder to ``entry`` in one step; a concurrent fetch may have won."""
    os.chmod(root, new_dir_mode())
    for attempt in range(INSTALL_ATTEMPTS):
        try:
            os.rename(root, entry)
            return
        except OSError:
            if manifest_sha256(entry) == manifest:
                return  # another process installed the same bundle first
        # a damaged or foreign entry: move it out of the way in one rename (readers see it or
        # nothing), then try again
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry, work / f"stale-{attempt}")
    raise HandoffError(f"Could not install the fetched bundle into the cache at {entry}; check that folder's permissions.")


def copy_bundle(version: ModelVersion, out_dir: str | Path, *, archive: bool = False, store: Store) -> Path:
    """Write a verified copy of ``version``'s bundle to ``out_dir`` (``nbtk fetch``).

    The copy is ``out_dir/<model>-<version>`` (a folder) or ``<model>-<version>.tar.gz`` with
    ``archive=True`` (the exported archive itself when the version has one). It is built in a
    hidden folder next to the target, verified file by file against its manifest (which must be
    the version's), then renamed into place.

    Raises:
        InputError: the target exists, or ``out_dir`` is a file.
        BundleUnavailableError, ArtifactIntegrityError, BundleIntegrityError: see :func:`local_bundle`.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; pass a folder to hold the bundle.")
    name = f"{version.model}-{version.version}"
    target = out / (f"{name}.tar.gz" if archive else name)
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} already exists; remove it or choose another -o folder.")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".fetching", dir=out))
    try:
        copy = _copy(version, name, work, archive=archive, store=store)
        verify_bundle(copy)
        if manifest_sha256(copy) != version.manifest_sha256:
            raise BundleIntegrityError(str(copy), [f"{MANIFEST_NAME}: not the manifest the registry recorded for {name}"])
        if archive:
            try:
                os.link(copy, target)  # never overwrite a file that appeared meanwhile
            except FileExistsError:
                raise InputError(f"{target} already exists; remove it or choose another -o folder.") from None
        else:
            os.chmod(copy, new_dir_mode())
            try:
                os.rename(copy, target)
            except OSError:
                raise InputError(f"{target} already exists; remove it or choose another -o folder.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record_written(target)  # a fetched bundle never makes the git tree dirty
    return target


def _copy(version: ModelVersion, name: str, work: Path, *, archive: bool, store: Store) -> Path:
    """The bundle as a folder or archive inside ``work`` (not yet verified)."""
    if archive and version.blob is not None:
        return store.artifacts.fetch_to(version.blob, work / f"{name}.tar.gz")
    source = local_bundle(version, store=store)
    if not source.exists():
        raise InputError(
            f"{name}: its bundle {source} is not on this machine, and the version was exported before bundles were "
            "stored in the artifact location, so that path is its only copy; copy it here, or export the run again."
        )
    if archive:
        if source.is_dir():
            return write_archive(source, work / f"{name}.tar.gz", name, version.created)
        return Path(shutil.copyfile(source, work / f"{name}.tar.gz"))
    if source.is_dir():
        return Path(shutil.copytree(source, work / name, symlinks=True))  # links stay links: verification refuses them
    (work / "x").mkdir()
    return extract_archive(source, work / "x").rename(work / name)
