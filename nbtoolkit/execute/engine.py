"""papermill plumbing for :func:`~nbtoolkit.execute.papermill_run.execute_job`.

A papermill engine that starts the kernel with the run's environment and working directory
(no ``os.environ`` or ``os.chdir`` in the driving process) and stops it at once when the
notebook is done, plus helpers that read and mark the executed notebook.
"""

from __future__ import annotations

import re
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_TAG = "papermill-error-cell-tag"


def _engine() -> str:
    """Register (once per process) a papermill engine that starts the kernel with our env/cwd."""
    from papermill.engines import NBClientEngine, papermill_engines

    if "nbtoolkit" in papermill_engines._engines:
        return "nbtoolkit"

    class NbToolkitEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            import logging

            from papermill.clientwrap import PapermillNotebookClient
            from papermill.utils import merge_kwargs, remove_args

            start = dict(kwargs.pop("kernel_start") or {})
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

    papermill_engines.register("nbtoolkit", NbToolkitEngine)
    return "nbtoolkit"


def _strip(text: str) -> str:
    return _ANSI.sub("", text)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _own_cells(nb: Any) -> list[Any]:
    """The cells papermill executed (its error-marker cells removed)."""
    return [c for c in nb.cells if ERROR_TAG not in _tags(c)]


def _source_index(cells: list[Any], index: int) -> int:
    """Index among the notebook's own cells (papermill's injected-parameters cell excluded)."""
    return sum(1 for c in cells[:index] if "injected-parameters" not in _tags(c))


def _stderr_of(cell: Any) -> str:
    return "".join(
        "".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )


def _mark_cell(nb: Any, index: int, message: str) -> None:
    """Put papermill-style markers before cell ``index`` (kernel death, timeout)."""
    import nbformat

    head = nbformat.v4.new_markdown_cell(f'<span style="color:red; font-size:1.5em;">{message} (see the marked cell below)</span>')
    head.metadata["tags"] = [ERROR_TAG]
    anchor = nbformat.v4.new_markdown_cell(f'<span id="papermill-error-cell" style="color:red; font-size:1.5em;">{message}:</span>')
    anchor.metadata["tags"] = [ERROR_TAG]
    nb.cells[index].metadata.setdefault("nbtoolkit", {})["error"] = message
    nb.cells.insert(index, anchor)
    nb.cells.insert(0, head)


def _last_started_cell(nb: Any) -> int | None:
    last = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = i
    return last
