"""DVC-tracked data, read from ``*.dvc`` files and ``dvc.lock`` without importing ``dvc``.

The project tree is walked once per capture, pruning folders that cannot hold DVC metadata
files: hidden folders (``.git``, ``.dvc``, ``.nbtoolkit``, ``.venv``, caches),
``node_modules``, ``__pycache__``, virtual and conda environments (a ``pyvenv.cfg`` or
``conda-meta`` inside), the nbtoolkit store, and the outputs DVC itself tracks (named by the
metadata files met higher up or next to them). Parsed files
are cached on (path, mtime, size), so an unchanged file is not parsed twice.
"""

from __future__ import annotations

import os
import posixpath
import threading
from pathlib import Path
from typing import Any

__all__ = ["dvc_entries"]

DataEntry = dict[str, Any]

_SKIP_DIRS = frozenset({"node_modules", "__pycache__"})
_ENV_MARKERS = ("pyvenv.cfg", "conda-meta")

_lock = threading.Lock()
_parsed: dict[str, tuple[tuple[int, int], list[DataEntry]]] = {}


def dvc_entries(root: Path, *, skip: Path | None = None) -> list[DataEntry]:
    """Return the data tracked by DVC under ``root``.

    Args:
        root: the project root to walk.
        skip: one more folder not to descend into (the nbtoolkit store).

    Returns:
        One ``{"path", "md5", "size", "nfiles", "source"}`` dict per tracked path, sorted by
        path. ``path`` is relative to ``root`` (POSIX separators; an external output keeps its
        URL), ``md5`` ends with ``.dir`` for a folder, ``source`` is ``"dvc"`` for a ``*.dvc``
        file or ``"dvc.lock"`` for a pipeline stage's dependency or output. Unreadable or
        malformed files are skipped.
    """
    root = root.resolve()
    # Folders never descended into: DVC outputs (their content is the data itself) and the store.
    pruned: set[str] = {str(skip.resolve())} if skip is not None else set()
    found: dict[str, DataEntry] = {}
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                items = list(it)
        except OSError:
            continue
        if folder != str(root) and any(item.name in _ENV_MARKERS for item in items):
            continue
        rel_folder = os.path.relpath(folder, root).replace(os.sep, "/")
        for item in items:
            if not (item.name.endswith(".dvc") or item.name == "dvc.lock"):
                continue
            try:
                if not item.is_file():
                    continue
                stat = item.stat()
            except OSError:
                continue
            for parsed in _parse_cached(item.path, (stat.st_mtime_ns, stat.st_size)):
                entry = dict(parsed)
                is_out = entry.pop("_out")
                local = entry["path"]
                if "://" not in local and not posixpath.isabs(local):
                    entry["path"] = posixpath.normpath(posixpath.join(rel_folder, local))
                    if is_out:
                        pruned.add(os.path.normpath(os.path.join(folder, local)))
                # an output wins over the same path seen as another stage's dependency
                if is_out or entry["path"] not in found:
                    found[entry["path"]] = entry
        for item in items:
            if item.name.startswith(".") or item.name in _SKIP_DIRS or item.path in pruned:
                continue
            try:
                if item.is_dir(follow_symlinks=False):
                    stack.append(item.path)
            except OSError:
                continue
    return [found[path] for path in sorted(found)]


def _parse_cached(path: str, stamp: tuple[int, int]) -> list[DataEntry]:
    with _lock:
        hit = _parsed.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    entries = _parse(path)
    with _lock:
        _parsed[path] = (stamp, entries)
    return entries


def _parse(path: str) -> list[DataEntry]:
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(doc, dict):
        return []
    if os.path.basename(path) != "dvc.lock":
        return [e for out in _list(doc.get("outs")) if (e := _entry(out, "dvc", is_out=True))]
    stages = doc.get("stages") if "schema" in doc else doc  # dvc.lock 2.0 / 1.0 layouts
    entries: list[DataEntry] = []
    for stage in stages.values() if isinstance(stages, dict) else ():
        if not isinstance(stage, dict):
            continue
        for key in ("deps", "outs"):
            for item in _list(stage.get(key)):
                if entry := _entry(item, "dvc.lock", is_out=key == "outs"):
                    entries.append(entry)
    return entries


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _entry(item: Any, source: str, *, is_out: bool) -> DataEntry | None:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        return None

    def number(key: str) -> int | None:
        value = item.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    md5 = item.get("md5")
    return {
        "path": item["path"],
        "md5": md5 if isinstance(md5, str) else None,
        "size": number("size"),
        "nfiles": number("nfiles"),
        "source": source,
        "_out": is_out,
    }
