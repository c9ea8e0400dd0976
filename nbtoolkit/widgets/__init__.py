"""Notebook widgets: :class:`ExperimentForm`, :class:`RunBrowser` (``nbtk.browse()``) and the
live progress shown while an ``%%experiment`` cell logs step metrics.

Names load on first use, so the magic can import :mod:`nbtoolkit.widgets.progress` without
pulling in ipywidgets.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ExperimentForm": "nbtoolkit.widgets.form",
    "CriterionRow": "nbtoolkit.widgets.form",
    "experiment_cell": "nbtoolkit.widgets.form",
    "check_form": "nbtoolkit.widgets.form",
    "RunBrowser": "nbtoolkit.widgets.browser",
    "browse": "nbtoolkit.widgets.browser",
    "LiveProgress": "nbtoolkit.widgets.progress",
    "attach_progress": "nbtoolkit.widgets.progress",
}

__all__ = [
    "CriterionRow",
    "ExperimentForm",
    "LiveProgress",
    "RunBrowser",
    "attach_progress",
    "browse",
    "check_form",
    "experiment_cell",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbtoolkit.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from nbtoolkit.widgets.browser import RunBrowser, browse
    from nbtoolkit.widgets.form import CriterionRow, ExperimentForm, check_form, experiment_cell
    from nbtoolkit.widgets.progress import LiveProgress, attach_progress
