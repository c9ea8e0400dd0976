"""Notebook widgets: :class:`ExperimentForm`, :class:`RunBrowser` (``nbtk.browse()``) and the
live progress shown while an ``%%experiment`` cell logs step metrics.

Names load on first use, so the magic can import :mod:`nbtoolkit.widgets.progress` without
pulling in ipywidgets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtoolkit._lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from nbtoolkit.widgets.browser import RunBrowser, browse
    from nbtoolkit.widgets.form import CriterionRow, ExperimentForm, check_form, experiment_cell
    from nbtoolkit.widgets.progress import LiveProgress, attach_progress
