"""The project store: runs, metrics, artifacts, environment locks, approvals and exports.

``open_store()`` finds the project's store (see :mod:`nbtoolkit.config`): the embedded SQLite
file in ``.nbtoolkit/`` or a server database named by a SQLAlchemy URL (``postgresql://...``).
It creates or upgrades the schema when needed, marks runs whose process died as ``crashed``,
and returns a :class:`Store`. A damaged SQLite file is refused, never replaced.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from nbtoolkit._lazy import lazy_exports
from nbtoolkit.config import Settings, is_url, load_settings

if TYPE_CHECKING:
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

# public name -> module that defines it (loaded on first use: importing a light module of this
# package, such as nbtoolkit.store.listing, does not load SQLAlchemy)
_EXPORTS = {
    "STATUSES": "nbtoolkit.store.records",
    "TERMINAL_STATUSES": "nbtoolkit.store.records",
    "VERDICTS": "nbtoolkit.store.records",
    "Approval": "nbtoolkit.store.records",
    "ArtifactRef": "nbtoolkit.store.records",
    "DataRef": "nbtoolkit.store.records",
    "ModelVersion": "nbtoolkit.store.models",
    "Move": "nbtoolkit.store.models",
    "RunRecord": "nbtoolkit.store.records",
    "Store": "nbtoolkit.store.store",
    "Sweep": "nbtoolkit.store.sweeps",
    "new_id": "nbtoolkit.store.store",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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

_cache: dict[tuple[str, str | None, str | None, int], Store] = {}
_cache_lock = threading.Lock()


def open_store(settings: Settings | None = None, *, path: str | Path | None = None) -> Store:
    """Open (creating or upgrading) the store of the current project.

    Args:
        settings: resolved settings; default :func:`~nbtoolkit.config.load_settings`.
        path: explicit store folder or database URL (wins over settings).

    Returns:
        A :class:`Store`, cached per process and location.

    Raises:
        StoreCorruptError: the SQLite file is damaged (it is left untouched).
        StoreError: the database cannot be reached, or its driver is not installed.
    """
    if settings is None:
        settings = load_settings(store=path) if path is not None else load_settings()
    elif path is not None and is_url(str(path)):
        settings = load_settings(settings.root, store=path)
    folder = settings.store_path if path is None or settings.store_url is not None else Path(path)
    key = (str(folder.resolve()), settings.store_url, settings.artifacts, os.getpid())
    from nbtoolkit.redact import LiveRedactor
    from nbtoolkit.store.store import Store

    with _cache_lock:
        store = _cache.get(key)
        if store is None or not (folder / "store.db").exists() and settings.store_url is None:
            # live: a secret the notebook exports into os.environ after opening is scrubbed too
            store = Store(
                folder, url=settings.store_url, redactor=LiveRedactor(settings), artifacts=settings.artifacts
            )
            _cache[key] = store
        return store


def _forget_after_fork() -> None:
    _cache.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
