"""Capture and compare environment locks.

:func:`capture_lock` records, at run start and without a ``pip`` subprocess: the interpreter
and platform, every installed distribution (editable / VCS / URL origins noted), the active
conda environment, the git commit, branch, dirty flag, remotes and uncommitted diff, the
notebook's content hash, the data DVC tracks, the seeds and an allow-list of environment
variables. ``lock.diff(other)`` reports what changed between two runs.

Secrets never enter a lock: every string in it, the diff text included, goes through the
project's :class:`~nbtoolkit.redact.Redactor` (URL credentials stripped, values of
secret-looking variables masked), and secret-looking variable names are never recorded.

Modules: :mod:`.lock` (the objects), :mod:`.packages`, :mod:`.git`, :mod:`.dvc` (the sources).
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit.envlock.dvc import dvc_entries
from nbtoolkit.envlock.git import git_state
from nbtoolkit.envlock.lock import LOCK_SCHEMA, EnvLock, LockDiff
from nbtoolkit.envlock.packages import installed_packages
from nbtoolkit.redact import Redactor, default_redactor

if TYPE_CHECKING:
    from nbtoolkit.config import Settings

__all__ = ["LOCK_SCHEMA", "EnvLock", "LockDiff", "capture_lock"]


def capture_lock(
    settings: Settings,
    *,
    notebook_path: str | Path | None = None,
    seeds: Mapping[str, int] | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnvLock:
    """Capture the environment of a run.

    Args:
        settings: project settings (root, store path, variable allow-list, secret patterns).
        notebook_path: the notebook being run; its content hash is recorded when readable.
        seeds: random seeds the run uses, recorded as given.
        environ: environment to record variables and conda state from (default
            ``os.environ``). Secret values from it *and* from ``os.environ`` are scrubbed.

    Returns:
        The :class:`EnvLock`; ``lock.git_diff`` holds the redacted uncommitted diff.
    """
    env = os.environ if environ is None else environ
    merged = env if environ is None else {**os.environ, **environ}
    redactor = default_redactor(settings, environ=merged)
    git, diff = git_state(settings.root, redactor=redactor, ignore=settings.store_path)
    data: dict[str, Any] = {
        "schema": LOCK_SCHEMA,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": _platform(),
        "packages": {},  # redacted once per package scan, below
        "conda": _conda(env),
        "git": git,
        "notebook": _notebook(notebook_path, settings.root),
        "data": dvc_entries(settings.root, skip=settings.store_path),
        "seeds": dict(seeds) if seeds is not None else None,
        "env": _allowed_env(env, settings.env_allowlist, redactor),
    }
    # One pass scrubs every string (package URLs, remotes, paths, variables). Package names
    # such as "keyring" look secret but are not, so values under such keys are kept.
    clean = redactor.redact_obj(data, mask_secret_keys=False)
    clean["packages"] = _redacted_packages(redactor)
    return EnvLock(data=clean, git_diff=diff)


_PACKAGES_MEMO: tuple[Any, Redactor, dict[str, Any]] | None = None


def _redacted_packages(redactor: Redactor) -> dict[str, Any]:
    """The redacted package table, recomputed only when the package scan or redactor changes.

    Redacting ~15,000 strings of package metadata was most of a warm lock capture's cost;
    both the scan and the redactor are cached per process, so their identities key the memo.
    """
    global _PACKAGES_MEMO
    from nbtoolkit.envlock import packages as _packages

    fresh = installed_packages()  # refreshes the scan when sys.path changed
    scan = _packages._last_scan
    memo = _PACKAGES_MEMO
    if memo is None or memo[0] is not scan or memo[1] is not redactor:
        memo = (scan, redactor, redactor.redact_obj(fresh, mask_secret_keys=False))
        if _packages._last_scan is scan:  # no rescan raced us
            _PACKAGES_MEMO = memo
    return {name: dict(info) if isinstance(info, dict) else info for name, info in memo[2].items()}


_PLATFORM: dict[str, str] | None = None


def _platform() -> dict[str, str]:
    global _PLATFORM
    if _PLATFORM is None:  # platform.uname() is cached by the stdlib too; this skips the copy
        uname = platform.uname()
        _PLATFORM = {"system": uname.system, "release": uname.release, "machine": uname.machine}
    return dict(_PLATFORM)


def _conda(env: Mapping[str, str]) -> dict[str, str] | None:
    prefix = env.get("CONDA_PREFIX")
    if not prefix:
        return None
    return {"name": env.get("CONDA_DEFAULT_ENV") or Path(prefix).name, "prefix": prefix}


def _notebook(path: str | Path | None, root: Path) -> dict[str, Any] | None:
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    try:
        shown = resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        shown = str(resolved)
    try:
        digest: str | None = hashlib.sha256(resolved.read_bytes()).hexdigest()
    except OSError:
        digest = None  # not saved yet, or unreadable: the path is still worth recording
    return {"path": shown, "sha256": digest}


def _allowed_env(
    env: Mapping[str, str], allowlist: tuple[str, ...], redactor: Redactor
) -> dict[str, str]:
    exact = {name for name in allowlist if not name.endswith("*")}
    prefixes = tuple(name[:-1] for name in allowlist if name.endswith("*"))
    return {
        name: value
        for name, value in sorted(env.items())
        if (name in exact or name.startswith(prefixes)) and not redactor.is_secret_name(name)
    }
