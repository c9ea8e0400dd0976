"""The run cache: skip a re-execution whose inputs equal a finished run's (DVC's run-cache idea).

The key is the sha256 over the notebook's code hash, the canonical JSON of the injected
parameters, the environment hash of the lock (python, platform, packages), the DVC-tracked
data hashes and the feature flags (when any). A candidate run is only a hit when, in addition, every file it recorded with
``nbtk.track_data`` still hashes the same today.

A hit is recorded as a *new* run row (kind ``cached``, status ``finished``, ``origin_run_id`` =
the run that really executed, ``extra.cached = true``) carrying a copy of that run's parameters, metrics,
verdict, data versions and artifact references (blobs are shared, not copied). Every sweep point
therefore has exactly one child row, and reports and ``--resume`` need no special case. A single
``nbtk run`` is served the same way (``--force`` re-executes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.store import new_id

if TYPE_CHECKING:
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.store import Store

__all__ = ["cache_key", "copy_cached_run", "find_cached_run"]

CACHE_KEY_VERSION = "nbtoolkit.runcache.v1"


def data_hashes(lock: EnvLock | None) -> list[tuple[str, str]]:
    """(path, md5) of the DVC-tracked data recorded in ``lock``, sorted."""
    if lock is None:
        return []
    entries = lock.data.get("data") or []
    return sorted((str(e.get("path")), str(e.get("md5"))) for e in entries if isinstance(e, dict))


def cache_key(notebook_hash: str, parameters: Mapping[str, Any], lock: EnvLock | None,
              flags: Mapping[str, str] | None = None, files: Mapping[str, str] | None = None) -> str:
    """The run-cache key of executing a notebook with ``parameters`` in the environment ``lock``.

    Feature ``flags`` and the sha256 of files shipped with the task (``sweep --ship``) are part
    of the inputs when given (a run without them keeps its old key).
    """
    body: dict[str, Any] = {
        "v": CACHE_KEY_VERSION,
        "notebook": notebook_hash,
        "params": _json.to_jsonable(dict(parameters)),
        "environment": lock.environment_hash if lock is not None else None,
        "data": data_hashes(lock),
    }
    if flags:
        body["flags"] = {str(k): str(v) for k, v in flags.items()}
    if files:
        body["files"] = {str(k): str(v) for k, v in sorted(files.items())}
    return hashlib.sha256(_json.canonical(body).encode("utf-8")).hexdigest()


def _tracked_data_unchanged(store: Store, run_id: str, root: Path) -> bool:
    from nbtoolkit._io import sha256_file

    record = store.get_run(run_id)
    for ref in record.data:
        if ref.source != "track_data":
            continue
        path = Path(ref.path)
        path = path if path.is_absolute() else root / path
        if not path.exists():
            return False
        if path.is_file():
            digest = sha256_file(path)
        else:
            h = hashlib.sha256()
            for f in sorted(x for x in path.rglob("*") if x.is_file()):
                h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
            digest = h.hexdigest()
        if digest != ref.digest:
            return False
    return True


def find_cached_run(store: Store, key: str, *, root: Path) -> str | None:
    """The id of the newest finished run that really executed with cache key ``key``, or None."""
    for source_id in store.cache_sources(key):
        if _tracked_data_unchanged(store, source_id, root):
            return source_id
    return None


def copy_cached_run(
    store: Store,
    source_id: str,
    *,
    parent_id: str | None,
    key: str,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Record a cache hit: a finished run row linked to ``source_id`` with a copy of its results."""
    return store.copy_run(source_id, new_id=new_id(), parent_id=parent_id, cache_key=key, extra=extra)
