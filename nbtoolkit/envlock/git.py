"""Git state of the project: commit, branch, dirty flag, remotes and the uncommitted diff.

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

from nbtoolkit.redact import Redactor

__all__ = ["find_git_root", "git_state"]

_TIMEOUT = 30.0
#: Cap on the untracked names recorded (the dirty flag and count cover the rest).
MAX_UNTRACKED = 200


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
        ``(state, diff)``. ``state`` is ``{"root", "commit", "branch", "dirty", "untracked",
        "remotes", "diff_sha256"}`` or None outside a repository or when ``git`` is
        unavailable. ``diff`` is the redacted ``git diff HEAD`` text, None when empty;
        ``diff_sha256`` is the sha256 of its UTF-8 bytes.
    """
    root = find_git_root(start)
    if root is None:
        return None, None
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    commands = {
        "status": ["status", "--porcelain=v2", "--branch", "--untracked-files=normal", "-z"],
        "diff": ["diff", "HEAD", "--no-color", "--no-ext-diff", "--no-textconv"],
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

    commit, branch, changed, untracked = _parse_status(out["status"], _relative(ignore, root))
    raw_diff = (out["diff"] or b"").decode("utf-8", errors="replace")
    diff = redactor.redact_text(raw_diff) if raw_diff else None
    state = {
        "root": str(root),
        "commit": commit,
        "branch": branch,
        "dirty": bool(changed or untracked),
        "untracked": untracked[:MAX_UNTRACKED],
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


def _parse_status(raw: bytes, ignore: str | None) -> tuple[str | None, str | None, int, list[str]]:
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
            if ignore and (path.rstrip("/") == ignore or path.startswith(ignore + "/")):
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
