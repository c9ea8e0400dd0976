"""nbtoolkit: declare, capture, re-execute, document and hand off notebook experiments.

``import nbtoolkit as nbtk`` is cheap: every public name is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtoolkit._lazy import lazy_exports
from nbtoolkit._version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # capture
    "start_run": "nbtoolkit.tracking",
    "current_run": "nbtoolkit.tracking",
    "log": "nbtoolkit.tracking",
    "log_metric": "nbtoolkit.tracking",
    "log_params": "nbtoolkit.tracking",
    "log_artifact": "nbtoolkit.artifacts",
    "log_figure": "nbtoolkit.artifacts",
    "log_model": "nbtoolkit.artifacts",
    "log_predictions": "nbtoolkit.artifacts",
    "set_tags": "nbtoolkit.tracking",
    "track_data": "nbtoolkit.artifacts",
    "seed": "nbtoolkit.tracking",
    # re-execute
    "run_notebook": "nbtoolkit.execute.papermill_run",
    "sweep": "nbtoolkit.execute.sweeps",
    "reproduce": "nbtoolkit.execute.reproduction",
    # query
    "runs": "nbtoolkit.query",
    "get_run": "nbtoolkit.query",
    "compare": "nbtoolkit.report.compare",
    # hand off
    "approve": "nbtoolkit.export.approvals",
    "export_bundle": "nbtoolkit.export.bundle",
    "verify_bundle": "nbtoolkit.export.verify",
    "load_bundle": "nbtoolkit.export.load",
    # objects
    "RunRecord": "nbtoolkit.store",
    "EnvLock": "nbtoolkit.envlock",
    "Verdict": "nbtoolkit.verdict",
    "Settings": "nbtoolkit.config",
    "NbToolkitError": "nbtoolkit.errors",
    # stability
    "shadow": "nbtoolkit.stability.shadow",
    "canary": "nbtoolkit.stability.canary",
    "flag": "nbtoolkit.stability.flags",
    "promote": "nbtoolkit.stability.promotion",
    "rollback": "nbtoolkit.stability.promotion",
    # notebook UI
    "browse": "nbtoolkit.widgets.browser",
}

__all__ = ["__version__", "load_ipython_extension", *_EXPORTS]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, submodules=("widgets",))


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%experiment`` (``%load_ext nbtoolkit``)."""
    from nbtoolkit.magics import load_ipython_extension as _load

    _load(ipython)


if TYPE_CHECKING:
    from nbtoolkit.artifacts import log_artifact, log_figure, log_model, log_predictions, track_data
    from nbtoolkit.config import Settings
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.errors import NbToolkitError
    from nbtoolkit.execute.papermill_run import run_notebook
    from nbtoolkit.execute.reproduction import reproduce
    from nbtoolkit.execute.sweeps import sweep
    from nbtoolkit.export.approvals import approve
    from nbtoolkit.export.bundle import export_bundle
    from nbtoolkit.export.load import load_bundle
    from nbtoolkit.export.verify import verify_bundle
    from nbtoolkit.query import get_run, runs
    from nbtoolkit.report.compare import compare
    from nbtoolkit.stability.canary import canary
    from nbtoolkit.stability.flags import flag
    from nbtoolkit.stability.promotion import promote, rollback
    from nbtoolkit.stability.shadow import shadow
    from nbtoolkit.store import RunRecord
    from nbtoolkit.tracking import (
        current_run,
        log,
        log_metric,
        log_params,
        seed,
        set_tags,
        start_run,
    )
    from nbtoolkit.verdict import Verdict
    from nbtoolkit.widgets.browser import browse
