"""The project store: runs, metrics, artifacts, environment locks, approvals and exports.

``open_store()`` finds the project's ``.nbtoolkit/`` (see :mod:`nbtoolkit.config`), creates or
upgrades it, marks runs whose process died as ``crashed``, and returns a :class:`Store`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from nbtoolkit.config import Settings, load_settings
from nbtoolkit.store.models import ModelVersion, Move
from nbtoolkit.store.records import (
    STATUSES,
    TERMINAL_STATUSES,
    VERDICTS,
    Approval,
    ArtifactRef,
    DataRef,
    RunRecord,
)
from nbtoolkit.store.store import Store, new_id
from nbtoolkit.store.sweeps import Sweep

__all__ = [
    "STATUSES",
    "TERMINAL_STATUSES",
    "VERDICTS",
    "Approval",
    "ArtifactRef",
    "DataRef",
    "ModelVersion",
    "Move",
    "RunRecord",
    "Store",
    "Sweep",
    "new_id",
    "open_store",
]

_cache: dict[tuple[str, str | None, int], Store] = {}
_cache_lock = threading.Lock()


def open_store(settings: Settings | None = None, *, path: str | Path | None = None) -> Store:
    """Open (creating or upgrading) the store of the current project.

    Args:
        settings: resolved settings; default :func:`~nbtoolkit.config.load_settings`.
        path: explicit store folder (wins over settings).

    Returns:
        A :class:`Store`, cached per process and folder.
    """
    if settings is None:
        settings = load_settings(store=path) if path is not None else load_settings()
    folder = Path(path) if path is not None else settings.store_path
    key = (str(folder.resolve()), settings.store_url, os.getpid())
    with _cache_lock:
        store = _cache.get(key)
        if store is None or not (folder / "store.db").exists() and settings.store_url is None:
            from nbtoolkit.redact import default_redactor

            store = Store(folder, url=settings.store_url, redactor=default_redactor(settings))
            _cache[key] = store
        return store


def _forget_after_fork() -> None:
    _cache.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
