"""The papermill engine nbtoolkit runs notebooks with, registered as papermill's ``nbtoolkit`` engine.

papermill finds it through the ``papermill.engine`` entry-point group (see ``pyproject.toml``).
It starts the kernel with the run's environment and working directory, passed as
``kernel_start`` (no ``os.environ`` or ``os.chdir`` in the driving process), stops the kernel
at once when the notebook is done, and caps each cell's output (``max_output_bytes``): past the
cap, output is dropped with a visible note in the cell and ``metadata["nbtoolkit"]`` saying so.
This module exists for papermill to load: it subclasses papermill's engine and client, so it
imports papermill at its top and nothing else should import it early.
"""

from __future__ import annotations

import logging
from typing import Any

from nbformat import NotebookNode
from nbformat.v4 import new_output
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine
from papermill.utils import merge_kwargs, remove_args
from traitlets import Integer

from nbtoolkit.config import DEFAULT_MAX_OUTPUT_BYTES
from nbtoolkit.execute.cellmeta import TRUNCATED_KEY, truncation_note


def message_bytes(msg: dict[str, Any]) -> int:
    """The size of an output message's payload: stream text, rich data, or an error's traceback."""
    content = msg.get("content", {})
    size = len(str(content.get("text", "")).encode("utf-8", "replace"))
    size += sum(len(str(value)) for value in (content.get("data") or {}).values())
    size += sum(len(str(line)) for line in content.get("traceback") or ())
    return size


class CappedNotebookClient(PapermillNotebookClient):  # type: ignore[misc]  # papermill ships no type hints
    """papermill's notebook client with a per-cell output cap (nbclient's ``output`` hook)."""

    max_output_bytes = Integer(
        DEFAULT_MAX_OUTPUT_BYTES, help="Bytes of output kept per cell; 0 or less keeps everything."
    ).tag(config=True)

    def __init__(self, nb_man: Any, **kwargs: Any) -> None:
        super().__init__(nb_man, **kwargs)
        self._kept: dict[int, int] = {}

    def output(self, outs: list[NotebookNode], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        """Keep an output while the cell's total stays under the cap; past it, drop it and say so once."""
        cap = int(self.max_output_bytes)
        if self.clear_before_next_output:
            self._kept[cell_index] = 0  # the cell is about to clear what it showed so far
        if cap <= 0:
            return super().output(outs, msg, display_id, cell_index)
        size = message_bytes(msg)
        kept = self._kept.get(cell_index, 0)
        if kept + size <= cap:
            self._kept[cell_index] = kept + size
            return super().output(outs, msg, display_id, cell_index)
        if kept < cap and msg.get("msg_type") == "stream":
            # keep the head of a large stream message (the kernel batches a tight loop's prints)
            head = str(msg["content"].get("text", "")).encode("utf-8")[: cap - kept].decode("utf-8", "ignore")
            super().output(outs, {**msg, "content": {**msg["content"], "text": head}}, display_id, cell_index)
            self._kept[cell_index] = cap
            size -= len(head.encode("utf-8"))
        meta = self.nb.cells[cell_index].metadata.setdefault("nbtoolkit", {})
        mark = meta.get(TRUNCATED_KEY)
        if mark is None:
            meta[TRUNCATED_KEY] = {"limit_bytes": cap, "dropped_bytes": size}
            outs.append(new_output("stream", name="stderr", text=truncation_note(cap)))
        else:
            mark["dropped_bytes"] += size
        return None

    def clear_output(self, outs: list[NotebookNode], msg: dict[str, Any], cell_index: int) -> None:
        """Clear as nbclient does; an immediate clear frees the cell's output budget."""
        super().clear_output(outs, msg, cell_index)
        if not msg.get("content", {}).get("wait"):
            self._kept[cell_index] = 0


class NbToolkitEngine(NBClientEngine):  # type: ignore[misc]  # papermill ships no type hints
    """papermill's nbclient engine, with the kernel started in the run's env and cwd and output capped."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        """Execute ``nb_man``'s notebook; ``kernel_start`` holds the kernel's ``env`` and ``cwd``."""
        start = dict(kwargs.pop("kernel_start", None) or {})
        execution_timeout = kwargs.pop("execution_timeout", None)
        start_timeout = kwargs.pop("start_timeout", 60)
        max_output_bytes = kwargs.pop("max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES)
        kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
        final = merge_kwargs(
            kwargs,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=logging.getLogger("papermill"),
            max_output_bytes=int(max_output_bytes),
            # the notebook is done (or failed) and saved: stop the kernel at once instead of
            # waiting for a graceful shutdown; nothing of a finished run lives in the kernel
            shutdown_kernel="immediate",
        )
        return CappedNotebookClient(nb_man, **final).execute(**start)
