"""Verify a bundle folder or ``.tar.gz`` archive before anything in it is used.

Every check runs and every problem is reported, each naming the file:

- ``MANIFEST.json`` is present, a regular file, valid JSON of schema ``nbtoolkit.bundle.v1``;
- manifest paths are relative, without ``..``, backslashes, duplicates or names that collide
  on case-insensitive file systems;
- the folder holds only regular files and folders: no symbolic or hard links, devices, FIFOs;
- every listed file exists with the recorded size and sha256 (*changed* / *missing*), and no
  file is there that the manifest does not list (*extra*).

Archives are checked member by member *before* extraction (the same path rules, and only
regular files and folders), then extracted with :mod:`tarfile`'s ``"data"`` filter into a
temporary folder, which is verified like a bundle folder.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from nbtoolkit.errors import BundleIntegrityError, InputError
from nbtoolkit.export.manifest import (
    MANIFEST_NAME,
    FileEntry,
    hash_file,
    list_files,
    name_problems,
    parse_manifest,
    path_problem,
)

__all__ = ["VerifyReport", "is_archive", "open_bundle", "verify_bundle"]

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class VerifyReport:
    """A bundle that passed verification.

    Attributes:
        path: the bundle folder or archive that was checked.
        manifest: the decoded ``MANIFEST.json``.
        files: the verified file entries.
        archive: whether ``path`` is an archive.
    """

    path: Path
    manifest: dict[str, Any]
    files: tuple[FileEntry, ...] = field(default=())
    archive: bool = False

    @property
    def ok(self) -> bool:
        return True

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def summary(self) -> str:
        """One line: what was verified."""
        m = self.manifest
        forced = " (exported with a forced override)" if m.get("forced") else ""
        return (
            f"OK: {len(self.files)} files, {self.total_bytes} bytes verified in {self.path} "
            f"({m.get('model')} {m.get('version')}, run {str(m.get('run_id'))[:12]}){forced}"
        )

    def __repr__(self) -> str:
        m = self.manifest
        return f"<VerifyReport ok model={m.get('model')!r} version={m.get('version')!r} files={len(self.files)}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(f.path)}</code></td><td>{f.size}</td>"
            f"<td><code>{html.escape(f.sha256[:16])}</code></td></tr>"
            for f in self.files
        )
        return (
            f"<div><b>{html.escape(self.summary())}</b><table><thead><tr><th>file</th><th>bytes</th>"
            f"<th>sha256</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


def is_archive(path: Path) -> bool:
    """Whether ``path`` names a bundle archive (a file ending in .tar.gz, .tgz or .tar)."""
    return path.name.endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def verify_bundle(path: str | Path) -> VerifyReport:
    """Re-hash and validate a bundle folder or archive.

    Args:
        path: a bundle folder (holding ``MANIFEST.json``) or a ``.tar.gz`` archive of one.

    Returns:
        A :class:`VerifyReport` when every check passes.

    Raises:
        InputError: ``path`` does not exist.
        BundleIntegrityError: one or more problems; ``problems`` lists every one, by file name.
    """
    with open_bundle(path) as (_, report):
        return report


@contextlib.contextmanager
def open_bundle(path: str | Path) -> Iterator[tuple[Path, VerifyReport]]:
    """Verify ``path`` and yield ``(bundle folder, report)``.

    For an archive the folder is a temporary extraction, removed when the block ends.
    """
    target = Path(path)
    if target.name == MANIFEST_NAME and target.is_file():
        target = target.parent  # `nbtk verify bundle/MANIFEST.json` means the bundle
    if not target.exists() and not target.is_symlink():
        raise InputError(f"{target} does not exist; pass a bundle folder or a .tar.gz bundle archive.")
    if target.is_dir() and not target.is_symlink():
        manifest, entries, problems = verify_folder(target)
        if problems:
            raise BundleIntegrityError(str(target), problems)
        yield target, VerifyReport(target, manifest, tuple(entries), archive=False)
        return
    if target.is_symlink():
        raise BundleIntegrityError(str(target), [f"{target.name}: symbolic link (pass the bundle itself)"])
    if not target.is_file():
        raise InputError(f"{target} is neither a bundle folder nor an archive.")
    with tempfile.TemporaryDirectory(prefix="nbtk-bundle-") as tmp:
        root = extract_archive(target, Path(tmp))
        manifest, entries, problems = verify_folder(root)
        if problems:
            raise BundleIntegrityError(str(target), problems)
        yield root, VerifyReport(target, manifest, tuple(entries), archive=True)


def verify_folder(root: Path) -> tuple[dict[str, Any], list[FileEntry], list[str]]:
    """Check a bundle folder; return ``(manifest, verified entries, problems)``."""
    manifest_path = root / MANIFEST_NAME
    try:
        st = manifest_path.lstat()
    except FileNotFoundError:
        return {}, [], [f"{MANIFEST_NAME}: missing; this is not an nbtoolkit bundle (or it is incomplete)"]
    if not stat.S_ISREG(st.st_mode):
        return {}, [], [f"{MANIFEST_NAME}: not a regular file (links and special files are refused)"]
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return {}, [], [f"{MANIFEST_NAME}: not valid JSON ({exc})"]
    manifest, entries, problems = parse_manifest(data)
    on_disk, special = list_files(root)
    problems += [msg for _, msg in special]
    problems += [msg for _, msg in name_problems(on_disk, where="bundle file") if "collides" in msg]
    special_names = {name for name, _ in special}
    disk = set(on_disk) - {MANIFEST_NAME}
    listed = {e.path for e in entries}
    problems += _model_file_problems(manifest, listed)
    verified: list[FileEntry] = []
    for entry in entries:
        if entry.path not in disk:
            if entry.path not in special_names:
                problems.append(f"{entry.path}: missing (listed in the manifest, not in the bundle)")
            continue
        file_path = root.joinpath(*PurePosixPath(entry.path).parts)
        size = file_path.lstat().st_size
        if size != entry.size:
            problems.append(f"{entry.path}: changed (size {size} bytes, manifest says {entry.size})")
            continue
        digest, _ = hash_file(file_path)
        if digest != entry.sha256:
            problems.append(f"{entry.path}: changed (sha256 {digest[:12]}..., manifest says {entry.sha256[:12]}...)")
            continue
        verified.append(entry)
    for name in sorted(disk - listed):
        problems.append(f"{name}: extra file not listed in the manifest")
    return manifest, verified, problems


def _model_file_problems(manifest: dict[str, Any], listed: set[str]) -> list[str]:
    """The manifest's ``model_file`` must name a file the manifest lists (never ``../x``)."""
    info = manifest.get("model_file")
    if info is None:
        return []
    model_rel = info.get("file") if isinstance(info, dict) else None
    if isinstance(model_rel, str) and model_rel in listed:
        return []
    return [f"{MANIFEST_NAME}: model_file {model_rel!r} is not a file of the bundle (it must be one of the listed files)"]


def _member_name(member: tarfile.TarInfo) -> str:
    """The member's path with a trailing ``/`` and leading ``./`` removed (``tar -C dir .``)."""
    name = member.name
    if member.isdir() and name.endswith("/") and len(name) > 1:
        name = name[:-1]
    while name.startswith("./"):
        name = name[2:]
    return name


def check_archive_members(members: list[tarfile.TarInfo]) -> tuple[str, list[str]]:
    """Check archive members before extraction.

    Returns:
        ``(prefix of the bundle folder inside the archive ("" or "name/"), problems)``.
    """
    problems: list[str] = []
    names: list[str] = []
    for m in members:
        name = _member_name(m)
        if name == "." and m.isdir():
            continue  # the archive's own root folder
        names.append(name)
        if m.issym() or m.islnk():
            problems.append(f"archive member {name!r}: {'symbolic' if m.issym() else 'hard'} link (links are refused)")
        elif m.ischr() or m.isblk():
            problems.append(f"archive member {name!r}: device file (only regular files are allowed)")
        elif m.isfifo():
            problems.append(f"archive member {name!r}: FIFO (only regular files are allowed)")
        elif not (m.isfile() or m.isdir()):
            problems.append(f"archive member {name!r}: unsupported member type {m.type!r}")
    problems += [msg for _, msg in name_problems(names, where="archive")]
    safe = [n for n in names if path_problem(n) is None]
    tops = {n.split("/", 1)[0] for n in safe}
    prefix = ""
    if MANIFEST_NAME not in safe:
        if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST_NAME}" in safe:
            prefix = f"{next(iter(tops))}/"
        else:
            problems.append(f"archive: no {MANIFEST_NAME} at its top level or in a single top-level folder")
    return prefix, problems


#: more members than any bundle has: refuse archives that would exhaust inodes
MAX_ARCHIVE_MEMBERS = 10_000


def _size_problems(archive: Path, members: list[tarfile.TarInfo], max_bytes: int) -> list[str]:
    """Refuse an archive that would expand past ``max_bytes`` (a decompression bomb)."""
    problems = []
    if len(members) > MAX_ARCHIVE_MEMBERS:
        problems.append(f"{archive.name}: {len(members)} members, more than {MAX_ARCHIVE_MEMBERS} (not a bundle)")
    total = sum(m.size for m in members if m.isreg())
    if total > max_bytes:
        problems.append(
            f"{archive.name}: expands to {total:,} bytes, more than the {max_bytes:,} bytes available "
            "for extraction; free disk space or verify the bundle folder instead"
        )
    return problems


def extract_archive(archive: Path, dest: Path, *, max_bytes: int | None = None) -> Path:
    """Check every member, then extract with the ``"data"`` filter; return the bundle folder.

    Args:
        archive: the ``.tar.gz`` bundle.
        dest: an empty folder to extract into.
        max_bytes: refuse archives whose files add up to more (default: the free space of
            ``dest``'s file system), so a decompression bomb cannot fill the disk.

    Raises:
        BundleIntegrityError: an unsafe, oversized or unreadable archive (nothing is extracted).
    """
    budget = shutil.disk_usage(dest).free if max_bytes is None else max_bytes
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            prefix, problems = check_archive_members(members)
            problems += _size_problems(archive, members, budget)
            if problems:
                raise BundleIntegrityError(str(archive), problems)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise BundleIntegrityError(str(archive), [f"archive member refused by the data filter: {exc}"]) from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleIntegrityError(str(archive), [f"{archive.name}: not a readable tar archive ({exc})"]) from exc
    root = dest / prefix if prefix else dest
    # extraction must not have produced anything but folders and regular files
    for folder, _dirs, files in os.walk(dest):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if not stat.S_ISREG(st.st_mode):
                raise BundleIntegrityError(str(archive), [f"{name}: not a regular file after extraction"])
    return root
