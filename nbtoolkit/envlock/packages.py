"""Installed distributions, read from ``importlib.metadata`` (no ``pip`` subprocess).

The scan is cached per process. It stays valid while ``sys.path`` is unchanged and no
*watched* folder has a new modification time; the watched folders are the ``sys.path``
entries that held a distribution, plus every ``site-packages`` / ``dist-packages`` entry.
Installing, upgrading or removing a package adds or removes a ``*.dist-info`` folder (or a
``.pth`` file) in such a folder and so invalidates the cache, while saving a notebook in the
working folder (also on ``sys.path`` in a kernel) does not.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

__all__ = ["canonical_name", "installed_packages"]

PackageInfo = dict[str, Any]

_SITE_DIRS = frozenset({"site-packages", "dist-packages"})
_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class _Scan:
    entries: tuple[str, ...]
    stamps: tuple[tuple[str, int], ...]  # (watched folder, mtime_ns) taken before scanning
    packages: dict[str, PackageInfo]

    def is_current(self, entries: tuple[str, ...]) -> bool:
        return entries == self.entries and all(_mtime(p) == m for p, m in self.stamps)


_lock = threading.Lock()
_last_scan: _Scan | None = None


def canonical_name(name: str) -> str:
    """Return the PEP 503 normalised form of a distribution name (``Foo_Bar`` -> ``foo-bar``)."""
    return _SEPARATORS.sub("-", name).lower()


def installed_packages() -> dict[str, PackageInfo]:
    """Return every distribution importable from ``sys.path``.

    Returns:
        ``{canonical name: {"version", "origin", "url", "commit"}}``. ``origin`` is
        ``"editable"``, ``"vcs"``, ``"url"`` (a local folder or an archive) or ``"index"``,
        taken from the distribution's PEP 610 ``direct_url.json``; ``url`` is returned as
        recorded there (the caller redacts it) and ``commit`` is the VCS commit id. When a
        name is installed twice, the copy earlier on ``sys.path`` (the one ``import`` finds)
        wins. The dicts are fresh copies.
    """
    global _last_scan
    entries = tuple(dict.fromkeys(p or os.getcwd() for p in sys.path if isinstance(p, str)))
    with _lock:
        scan = _last_scan
        if scan is None or not scan.is_current(entries):
            scan = _last_scan = _scan(entries)
    return {name: dict(info) for name, info in scan.packages.items()}


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _scan(entries: tuple[str, ...]) -> _Scan:
    # Stamp first: a package installed while we scan then shows up at the next call.
    stamps = {entry: _mtime(entry) for entry in entries}
    watched = {e for e in entries if os.path.basename(e.rstrip("/\\")) in _SITE_DIRS}
    packages: dict[str, PackageInfo] = {}
    for entry in entries:
        for dist in metadata.distributions(path=[entry]):
            name, version = _name_version(dist)
            if not name:
                continue
            watched.add(entry)
            packages.setdefault(canonical_name(name), {"version": version, **_origin(dist)})
    return _Scan(
        entries=entries,
        stamps=tuple((e, stamps[e]) for e in entries if e in watched),
        packages=dict(sorted(packages.items())),
    )


def _name_version(dist: metadata.Distribution) -> tuple[str | None, str | None]:
    # Reading only the header block is several times faster than ``dist.metadata``, which
    # runs the email parser over the whole long description.
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text is None:
        return None, None
    name = version = None
    for line in text.split("\n\n", 1)[0].splitlines():
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
        if name and version:
            break
    return name, version


def _origin(dist: metadata.Distribution) -> PackageInfo:
    """Read PEP 610 ``direct_url.json``: how the distribution was installed."""
    raw = dist.read_text("direct_url.json")
    if raw is None:
        return {"origin": "index", "url": None, "commit": None}
    try:
        direct = json.loads(raw)
    except ValueError:
        return {"origin": "url", "url": None, "commit": None}
    if not isinstance(direct, dict):
        return {"origin": "url", "url": None, "commit": None}
    url = direct.get("url") if isinstance(direct.get("url"), str) else None
    vcs = direct.get("vcs_info")
    if isinstance(vcs, dict):
        commit = vcs.get("commit_id")
        return {"origin": "vcs", "url": url, "commit": commit if isinstance(commit, str) else None}
    dir_info = direct.get("dir_info")
    editable = isinstance(dir_info, dict) and dir_info.get("editable") is True
    return {"origin": "editable" if editable else "url", "url": url, "commit": None}
