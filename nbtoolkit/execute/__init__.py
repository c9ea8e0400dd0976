"""Re-execution: ``nbtk run`` / ``sweep`` / ``reproduce`` / ``test`` as plain functions.

Modules: :mod:`.params` (papermill-typed parameters and name checks), :mod:`.jobs` (the job a
worker executes and the results that come back), :mod:`.papermill_run` (one recorded execution),
:mod:`.engine` (the papermill engine and notebook marking), :mod:`.space` (grid and random
spaces), :mod:`.executors` (local process pool, Dask), :mod:`.sweeps`, :mod:`.cache` (run cache),
:mod:`.reproduction`, :mod:`.nbtest` (smoke tests, shared with the pytest plugin). Everything
heavy (papermill, nbclient, dask) is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtoolkit._lazy import lazy_exports

_EXPORTS = {
    "run_notebook": "nbtoolkit.execute.papermill_run",
    "RunOutcome": "nbtoolkit.execute.jobs",
    "sweep": "nbtoolkit.execute.sweeps",
    "SweepOutcome": "nbtoolkit.execute.sweeps",
    "SweepProgress": "nbtoolkit.execute.sweeps",
    "reproduce": "nbtoolkit.execute.reproduction",
    "Reproduction": "nbtoolkit.execute.reproduction",
    "test_notebooks": "nbtoolkit.execute.nbtest",
    "NotebookTestResult": "nbtoolkit.execute.nbtest",
    "EXECUTORS": "nbtoolkit.execute.executors",
}

__all__ = [
    "EXECUTORS",
    "NotebookTestResult",
    "Reproduction",
    "RunOutcome",
    "SweepOutcome",
    "SweepProgress",
    "reproduce",
    "run_notebook",
    "sweep",
    "test_notebooks",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from nbtoolkit.execute.executors import EXECUTORS
    from nbtoolkit.execute.jobs import RunOutcome
    from nbtoolkit.execute.nbtest import NotebookTestResult, test_notebooks
    from nbtoolkit.execute.papermill_run import run_notebook
    from nbtoolkit.execute.reproduction import Reproduction, reproduce
    from nbtoolkit.execute.sweeps import SweepOutcome, SweepProgress, sweep
