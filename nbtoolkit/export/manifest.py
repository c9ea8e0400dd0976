"""``MANIFEST.json``: what a bundle holds, with the sha256 and size of every file.

The manifest is the bundle's contract with whoever receives it. It carries a schema version
(:data:`MANIFEST_SCHEMA`), the provenance of the model (run id, experiment, model name,
version, creation time, nbtoolkit version), the export override if there was one, and one
entry per file. ``MANIFEST.json`` itself is not listed: it is the root of trust that
:func:`nbtoolkit.export.verify.verify_bundle` checks everything else against.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "FileEntry",
    "build_manifest",
    "check_member_names",
    "hash_file",
    "hash_tree",
    "parse_manifest",
]

MANIFEST_NAME = "MANIFEST.json"
MANIFEST_SCHEMA = "nbtoolkit.bundle.v1"
_SCHEMA_RE = re.compile(r"^nbtoolkit\.bundle\.v(\d+)$")
_SCHEMA_VERSION = 1
#: hashlib.file_digest reads 256 KiB at a time; 1 MiB buffers are a little faster on big files.
_BUF = 1 << 20
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class FileEntry:
    """One file of a bundle: POSIX path relative to the bundle root, sha256 and size."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def hash_file(path: str | Path) -> tuple[str, int]:
    """Return ``(sha256 hex, size)`` of a file, read with one reusable buffer.

    ``readinto`` into a preallocated buffer avoids one allocation per chunk; throughput matches
    :func:`hashlib.file_digest` (see ``benchmarks/bench_export.py``).
    """
    h = hashlib.sha256()
    buf = bytearray(_BUF)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


def path_problem(name: str) -> str | None:
    """Why ``name`` is not acceptable as a bundle member path, or ``None`` when it is.

    Refused: empty names, absolute paths (POSIX or Windows drive), backslashes, ``..`` and ``.``
    components, NUL and control characters.
    """
    if not name:
        return "empty path"
    if name.startswith("/") or _WINDOWS_DRIVE.match(name):
        return "absolute path"
    if "\\" in name:
        return "backslash in path"
    if any(ord(c) < 32 for c in name):
        return "control character in path"
    parts = name.split("/")
    if ".." in parts:
        return "'..' in path (escapes the bundle)"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' path component"
    return None


def check_member_names(names: Iterable[str], *, where: str) -> list[str]:
    """Problems with a list of member paths: unsafe paths, duplicates, case collisions.

    Args:
        names: POSIX paths relative to the bundle root.
        where: ``"manifest"`` or ``"archive"``, used in the messages.

    Returns:
        One line per problem, each naming the path.
    """
    return [msg for _, msg in name_problems(names, where=where)]


def name_problems(names: Iterable[str], *, where: str) -> list[tuple[str, str]]:
    """Like :func:`check_member_names`, as ``(name, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    folded: dict[str, str] = {}
    for name in names:
        why = path_problem(name)
        if why is not None:
            problems.append((name, f"{where} entry {name!r}: {why}"))
            continue
        if name in seen:
            problems.append((name, f"{where} entry {name!r}: duplicate name"))
            continue
        seen.add(name)
        key = name.casefold()
        if key in folded:
            problems.append(
                (name, f"{where} entry {name!r}: name collides with {folded[key]!r} on case-insensitive file systems")
            )
            continue
        folded[key] = name
    return problems


def hash_tree(root: Path, names: Sequence[str]) -> list[FileEntry]:
    """Hash the files ``names`` (POSIX paths relative to ``root``), sorted by path."""
    entries = []
    for name in sorted(names):
        digest, size = hash_file(root.joinpath(*PurePosixPath(name).parts))
        entries.append(FileEntry(name, digest, size))
    return entries


def list_files(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Walk ``root`` without following links.

    Returns:
        ``(regular files as POSIX paths, [(path, problem)])``; problems name symlinks, hard
        links, device files, FIFOs and sockets, which a bundle must never contain.
    """
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                rel = f"{prefix}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISLNK(mode):
                    problems.append((rel, f"{rel}: symbolic link (links are refused)"))
                elif stat.S_ISDIR(mode):
                    stack.append((Path(entry.path), f"{rel}/"))
                elif stat.S_ISREG(mode):
                    if st.st_nlink > 1:
                        problems.append((rel, f"{rel}: hard link ({st.st_nlink} names share this file; links are refused)"))
                    else:
                        files.append(rel)
                else:
                    kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device file"
                    problems.append((rel, f"{rel}: {kind} (only regular files are allowed)"))
    return sorted(files), problems


def build_manifest(
    *,
    files: Sequence[FileEntry],
    run_id: str,
    experiment: str,
    model: str,
    version: str,
    created: str,
    nbtoolkit_version: str,
    forced: bool,
    reason: str | None,
    unmet_gates: Sequence[str],
    model_info: Mapping[str, Any],
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Assemble the manifest dict (written as ``MANIFEST.json``)."""
    return {
        "schema": MANIFEST_SCHEMA,
        "model": model,
        "version": version,
        "run_id": run_id,
        "experiment": experiment,
        "created": created,
        "nbtoolkit_version": nbtoolkit_version,
        "forced": bool(forced),
        "reason": reason,
        "unmet_gates": list(unmet_gates),
        "model_file": dict(model_info),
        "notes": list(notes),
        "files": [f.to_dict() for f in files],
    }


def parse_manifest(data: Any) -> tuple[dict[str, Any], list[FileEntry], list[str]]:
    """Validate a decoded manifest.

    Returns:
        ``(manifest, file entries, problems)``. A manifest of a newer schema version warns and
        is read as far as it is understood.
    """
    problems: list[str] = []
    if not isinstance(data, dict):
        return {}, [], ["MANIFEST.json: not a JSON object"]
    schema = data.get("schema")
    match = _SCHEMA_RE.match(schema) if isinstance(schema, str) else None
    if match is None:
        return data, [], [f"MANIFEST.json: schema {schema!r} is not {MANIFEST_SCHEMA!r}; not an nbtoolkit bundle"]
    if int(match.group(1)) > _SCHEMA_VERSION:
        warnings.warn(
            f"bundle schema {schema} is newer than this nbtoolkit reads ({MANIFEST_SCHEMA}); upgrade nbtoolkit.",
            UserWarning,
            stacklevel=3,
        )
    raw = data.get("files")
    if not isinstance(raw, list):
        return data, [], ["MANIFEST.json: 'files' is not a list"]
    entries: list[FileEntry] = []
    names: list[str] = []
    for i, item in enumerate(raw):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("path"), str)
            and isinstance(item.get("sha256"), str)
            and re.fullmatch(r"[0-9a-f]{64}", item["sha256"]) is not None
            and isinstance(item.get("size"), int)
            and not isinstance(item.get("size"), bool)
            and item["size"] >= 0
        )
        if not ok:
            problems.append(f"MANIFEST.json: file entry {i} is malformed (needs path, sha256 and size)")
            continue
        names.append(item["path"])
        entries.append(FileEntry(item["path"], item["sha256"], item["size"]))
    named = name_problems(names, where="manifest")
    problems += [msg for _, msg in named]
    if MANIFEST_NAME in names:
        problems.append(f"manifest entry {MANIFEST_NAME!r}: the manifest cannot list itself")
    bad = {name for name, _ in named if path_problem(name) is not None}
    return data, [e for e in entries if e.path not in bad and e.path != MANIFEST_NAME], problems
