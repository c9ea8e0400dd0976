"""Git state of the project: commit, branch, dirty flag, remotes, the uncommitted diff and untracked files.

Tracked changes are recorded as the ``git diff HEAD`` text; untracked files separately, by
name, size and (for small text files) sha256. Files nbtoolkit wrote itself (executed
notebooks, reports, bundles: see :mod:`.written`) and the store folder are left out of both,
so they never make the tree dirty.

Three ``git`` processes run concurrently (``status``, ``diff HEAD``, ``config``), so the wall
time is that of the slowest, a few milliseconds in a normal repository. Outside a repository
(no ``.git`` above the project root) no process is started at all.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

from nbtoolkit._io import sha256_file
from nbtoolkit.envlock.written import written_paths
from nbtoolkit.redact import Redactor

__all__ = ["find_git_root", "git_state"]

_TIMEOUT = 30.0
#: Cap on the untracked names recorded (the dirty flag and count cover the rest).
MAX_UNTRACKED = 200
#: Untracked text files up to this size are hashed, so a later run can tell they changed.
HASH_LIMIT = 64 * 1024


def find_git_root(start: Path) -> Path | None:
    """Return the nearest folder at or above ``start`` holding ``.git``, or None."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def git_state(
    start: Path, *, redactor: Redactor, ignore: Path | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """Capture the git state of the repository containing ``start``.

    Args:
        start: a folder inside the working tree (the project root).
        redactor: scrubs remote URLs and the diff text.
        ignore: a folder whose changes do not make the tree dirty (the nbtoolkit store, when a
            project has not ignored it).

    Returns:
        ``(state, diff)``. ``state`` is ``{"root", "commit", "branch", "dirty", "changed",
        "untracked", "remotes", "diff_sha256"}`` or None outside a repository or when ``git``
        is unavailable. ``changed`` counts tracked files with changes; ``untracked`` lists
        ``{"path", "size", "sha256"}`` (folders end with ``/`` and have no size; sha256 only for
        text files up to 64 KiB). ``diff`` is the redacted ``git diff HEAD`` text of the tracked
        changes, None when empty; ``diff_sha256`` is the sha256 of its UTF-8 bytes.
    """
    root = find_git_root(start)
    if root is None:
        return None, None
    skip = written_paths(root)
    store = _relative(ignore, root)
    if store:
        skip.append(store.rstrip("/") + "/")
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    commands = {
        "status": ["status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z"],
        "diff": ["diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv", "--", ".",
                 *(f":(top,exclude,literal){p.rstrip('/')}" for p in skip)],
        "remotes": ["config", "--get-regexp", r"^remote\..*\.url$"],
    }
    try:
        procs = {
            name: subprocess.Popen(
                ["git", *args],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            for name, args in commands.items()
        }
    except OSError:  # git is not installed
        return None, None
    out: dict[str, bytes | None] = {}
    for name, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            stdout = b""
        out[name] = stdout if proc.returncode == 0 else None
    if out["status"] is None:  # not a usable repository (e.g. "dubious ownership")
        return None, None

    commit, branch, changed, untracked = _parse_status(out["status"], skip)
    untracked = [p for p in untracked if not _only_written(root, p, skip)]
    raw_diff = (out["diff"] or b"").decode("utf-8", errors="replace")
    diff = redactor.redact_text(raw_diff) if raw_diff else None
    state = {
        "root": str(root),
        "commit": commit,
        "branch": branch,
        "dirty": bool(changed or untracked),
        "changed": changed,
        "untracked": [_describe_untracked(root, p) for p in untracked[:MAX_UNTRACKED]],
        "remotes": _parse_remotes(out["remotes"] or b"", redactor),
        "diff_sha256": hashlib.sha256(diff.encode("utf-8")).hexdigest() if diff else None,
    }
    return state, diff


def _relative(path: Path | None, root: Path) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def _describe_untracked(root: Path, rel: str) -> dict[str, Any]:
    """Name, size and (small text files) sha256 of one untracked path."""
    full = root / rel
    if rel.endswith("/") or not full.is_file():
        return {"path": rel, "size": None, "sha256": None}
    size = full.stat().st_size
    digest = None
    if size <= HASH_LIMIT:
        head = full.read_bytes()[:8192]
        digest = None if b"\0" in head else sha256_file(full)
    return {"path": rel, "size": size, "sha256": digest}


def _skipped(path: str, skip: list[str]) -> bool:
    """Whether ``path`` is one of ``skip`` or lies in one of its folders (ending ``/``)."""
    bare = path.rstrip("/")
    return any(bare == s.rstrip("/") or (s.endswith("/") and path.startswith(s)) for s in skip)


def _only_written(root: Path, folder: str, skip: list[str]) -> bool:
    """Whether an untracked folder (git shows it collapsed, ``reports/``) holds only nbtoolkit's files."""
    if not folder.endswith("/") or not any(s.startswith(folder) for s in skip):
        return False
    files = [f.relative_to(root).as_posix() for f in (root / folder).rglob("*") if f.is_file()]
    return all(_skipped(f, skip) for f in files)


def _parse_status(raw: bytes, skip: list[str]) -> tuple[str | None, str | None, int, list[str]]:
    """Parse ``git status --porcelain=v2 --branch -z`` into (commit, branch, changed, untracked)."""
    commit = branch = None
    changed = 0
    untracked: list[str] = []
    fields = iter(raw.decode("utf-8", errors="replace").split("\0"))
    for record in fields:
        if record.startswith("# branch.oid "):
            oid = record[len("# branch.oid ") :]
            commit = None if oid == "(initial)" else oid
        elif record.startswith("# branch.head "):
            head = record[len("# branch.head ") :]
            branch = None if head == "(detached)" else head
        elif record[:2] in ("1 ", "2 ", "u ", "? "):
            kind = record[0]
            path = (
                record[2:]
                if kind == "?"
                else record.split(" ", {"1": 8, "2": 9, "u": 10}[kind])[-1]
            )
            if kind == "2":
                next(fields, None)  # the rename's original path
            if _skipped(path, skip):
                continue
            if kind == "?":
                untracked.append(path)
            else:
                changed += 1
    return commit, branch, changed, sorted(untracked)


def _parse_remotes(raw: bytes, redactor: Redactor) -> dict[str, str]:
    remotes: dict[str, str] = {}
    for line in raw.decode("utf-8", errors="replace").splitlines():
        key, _, url = line.partition(" ")
        if key.startswith("remote.") and key.endswith(".url"):
            remotes.setdefault(key[len("remote.") : -len(".url")], redactor.redact_url(url))
    return dict(sorted(remotes.items()))
