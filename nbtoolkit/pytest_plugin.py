"""pytest plugin: ``pytest --nbtk notebooks/`` runs every notebook as a smoke test.

Registered as the ``pytest11`` entry point ``nbtoolkit``. Without ``--nbtk`` it does nothing
(and imports nothing heavy). Each ``.ipynb`` file becomes one test item executed like
``nbtk test``: smoke parameters from ``metadata.nbtoolkit.smoke``, a fresh kernel, recorded as
a run of kind ``test``; a failure shows the cell index, a source excerpt and the traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


class NotebookFailed(Exception):
    """Raised by a notebook item; carries the :class:`~nbtoolkit.execute.nbtest.NotebookTestResult`."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.reason)
        self.result = result


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nbtoolkit")
    group.addoption("--nbtk", action="store_true", default=False, help="Collect .ipynb files and smoke-test them with nbtoolkit.")
    group.addoption("--nbtk-timeout", type=float, default=600.0, help="Per-cell timeout in seconds for --nbtk notebooks (default 600).")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not parent.config.getoption("nbtk", default=False):
        return None
    if file_path.suffix != ".ipynb" or ".ipynb_checkpoints" in file_path.parts:
        return None
    return NotebookFile.from_parent(parent, path=file_path)


class NotebookFile(pytest.File):
    """A notebook file: one item."""

    def collect(self) -> Any:
        yield NotebookItem.from_parent(self, name=self.path.name)


class NotebookItem(pytest.Item):
    """Executes the notebook with its smoke parameters in a fresh kernel."""

    def runtest(self) -> None:
        from nbtoolkit.execute.nbtest import test_notebooks

        timeout = self.config.getoption("nbtk_timeout")
        (result,) = test_notebooks([self.path], jobs=1, timeout=timeout)
        if not result.passed:
            raise NotebookFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, NotebookFailed):
            return excinfo.value.result.describe()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"notebook: {self.name}"
