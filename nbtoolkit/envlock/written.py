"""The ledger of files nbtoolkit wrote itself, so they never make the git tree "dirty".

An executed notebook (``nbtk run -o``), a report or an export bundle written inside a git
working tree would otherwise show up as an untracked or modified file in the next run's lock,
and ``nbtk reproduce`` would report code drift that was never there. Each writer calls
:func:`record_written`; :func:`git_state <nbtoolkit.envlock.git.git_state>` leaves out every
path whose content is still what nbtoolkit wrote (a file edited afterwards by the user counts
again).

The ledger is one JSON object per line, appended with ``O_APPEND`` (safe for parallel sweep
workers), in the repository's git directory (``.git/nbtoolkit-written.jsonl``): it belongs to
the clone, is never committed, and needs no project settings to find. Outside a git working
tree nothing is recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nbtoolkit._io import sha256_file

__all__ = ["LEDGER_NAME", "LEDGER_SCHEMA", "ledger_path", "record_written", "written_paths"]

LEDGER_NAME = "nbtoolkit-written.jsonl"
LEDGER_SCHEMA = 1
#: Marks a path still being written (e.g. a running notebook): any content is nbtoolkit's.
PENDING = "pending"
#: Marks a folder nbtoolkit created whole (an export bundle): everything under it is nbtoolkit's.
FOLDER = "folder"


def _git_dir(root: Path) -> Path | None:
    """The git directory of a working tree: ``.git`` itself, or where a ``.git`` file points."""
    dot = root / ".git"
    if dot.is_dir():
        return dot
    try:
        first = dot.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError):
        return None
    if not first.startswith("gitdir:"):
        return None
    target = Path(first[len("gitdir:"):].strip())
    target = target if target.is_absolute() else (root / target)
    return target.resolve() if target.is_dir() else None


def _work_tree(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def ledger_path(root: Path) -> Path | None:
    """Where the ledger of the working tree at ``root`` lives (None when not a git tree)."""
    git_dir = _git_dir(root)
    return None if git_dir is None else git_dir / LEDGER_NAME


def record_written(path: str | Path, *, pending: bool = False) -> None:
    """Note that nbtoolkit wrote ``path`` (a file, or a folder it created whole).

    Args:
        path: the file or folder written. Nothing happens outside a git working tree.
        pending: the file is still being written (a notebook while it runs); record it so a
            lock captured meanwhile by a parallel run does not count it, and call again with
            ``pending=False`` when it is complete.
    """
    target = Path(path).expanduser().resolve()
    root = _work_tree(target.parent)
    ledger = None if root is None else ledger_path(root)
    if root is None or ledger is None:
        return
    if target.is_dir():
        state = FOLDER
    elif pending or not target.is_file():
        state = PENDING
    else:
        state = sha256_file(target)
    line = json.dumps({"v": LEDGER_SCHEMA, "path": target.relative_to(root).as_posix(), "sha256": state}) + "\n"
    try:
        fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return  # a read-only clone: the tree will look dirty, which is honest
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line)


def _read(ledger: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    try:
        text = ledger.read_text(encoding="utf-8")
    except OSError:
        return entries
    for raw in text.splitlines():
        try:
            entry: Any = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("sha256"), str):
            entries[entry["path"]] = entry["sha256"]  # the latest write wins
    return entries


def written_paths(root: Path) -> list[str]:
    """Root-relative paths nbtoolkit wrote whose content is still what it wrote.

    Folders end with ``/``. A file edited since (its sha256 differs) or deleted is not listed,
    so it makes the tree dirty like any other change.
    """
    ledger = ledger_path(root)
    if ledger is None:
        return []
    out = []
    for rel, state in _read(ledger).items():
        full = root / rel
        if state == FOLDER and full.is_dir():
            out.append(rel.rstrip("/") + "/")
        elif state == PENDING and full.exists():
            out.append(rel)
        elif full.is_file() and sha256_file(full) == state:
            out.append(rel)
    return sorted(out)
