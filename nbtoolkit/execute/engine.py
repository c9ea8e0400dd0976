"""papermill plumbing for :func:`~nbtoolkit.execute.papermill_run.execute_job`.

The name of nbtoolkit's papermill engine (:mod:`nbtoolkit.execute.papermill_engine`, found by
papermill through its ``papermill.engine`` entry point), plus helpers that read and mark the
executed notebook.
"""

from __future__ import annotations

import re
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_TAG = "papermill-error-cell-tag"
#: the name under which pyproject.toml registers :class:`~nbtoolkit.execute.papermill_engine.NbToolkitEngine`
ENGINE_NAME = "nbtoolkit"


def engine_name() -> str:
    """The name papermill knows nbtoolkit's engine by (its ``papermill.engine`` entry point)."""
    return ENGINE_NAME


def strip_ansi(text: str) -> str:
    """``text`` without ANSI colour codes (kernel tracebacks)."""
    return _ANSI.sub("", text)


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def own_cells(nb: Any) -> list[Any]:
    """The cells papermill executed (its error-marker cells removed)."""
    return [c for c in nb.cells if ERROR_TAG not in _tags(c)]


def source_index(cells: list[Any], index: int) -> int:
    """Index among the notebook's own cells (papermill's injected-parameters cell excluded)."""
    return sum(1 for c in cells[:index] if "injected-parameters" not in _tags(c))


def stderr_of(cell: Any) -> str:
    """What a cell printed to stderr."""
    return "".join(
        "".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"
    )


def mark_cell(nb: Any, index: int, message: str) -> None:
    """Put papermill-style markers before cell ``index`` (kernel death, timeout)."""
    import nbformat

    head = nbformat.v4.new_markdown_cell(f'<span style="color:red; font-size:1.5em;">{message} (see the marked cell below)</span>')
    head.metadata["tags"] = [ERROR_TAG]
    anchor = nbformat.v4.new_markdown_cell(f'<span id="papermill-error-cell" style="color:red; font-size:1.5em;">{message}:</span>')
    anchor.metadata["tags"] = [ERROR_TAG]
    nb.cells[index].metadata.setdefault("nbtoolkit", {})["error"] = message
    nb.cells.insert(index, anchor)
    nb.cells.insert(0, head)


def last_started_cell(nb: Any) -> int | None:
    """Index of the last cell papermill started executing, or ``None``."""
    last = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = i
    return last
