"""The papermill engine nbtoolkit runs notebooks with, registered as papermill's ``nbtoolkit`` engine.

papermill finds it through the ``papermill.engine`` entry-point group (see ``pyproject.toml``).
It starts the kernel with the run's environment and working directory, passed as
``kernel_start`` (no ``os.environ`` or ``os.chdir`` in the driving process), and stops the kernel
at once when the notebook is done. This module exists for papermill to load: it subclasses
papermill's engine, so it imports papermill at its top and nothing else should import it early.
"""

from __future__ import annotations

import logging
from typing import Any

from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine
from papermill.utils import merge_kwargs, remove_args


class NbToolkitEngine(NBClientEngine):  # type: ignore[misc]  # papermill ships no type hints
    """papermill's nbclient engine, with the kernel started in the run's env and cwd."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        """Execute ``nb_man``'s notebook; ``kernel_start`` holds the kernel's ``env`` and ``cwd``."""
        start = dict(kwargs.pop("kernel_start", None) or {})
        execution_timeout = kwargs.pop("execution_timeout", None)
        start_timeout = kwargs.pop("start_timeout", 60)
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        final = merge_kwargs(
            kwargs,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            # the notebook is done (or failed) and saved: stop the kernel at once instead of
            # waiting for a graceful shutdown; nothing of a finished run lives in the kernel
            shutdown_kernel="immediate",
        )
        return PapermillNotebookClient(nb_man, **final).execute(**start)
