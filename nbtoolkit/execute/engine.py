"""papermill plumbing for :func:`~nbtoolkit.execute.papermill_run.execute_job`.

The name of nbtoolkit's papermill engine (:mod:`nbtoolkit.execute.papermill_engine`, found by
papermill through its ``papermill.engine`` entry point), the I/O handler that makes every save
papermill makes atomic, plus helpers that read and mark the executed notebook.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtoolkit._io import atomic_write_text
from nbtoolkit.execute.cellmeta import ENDED_KEY, TRUNCATED_KEY
from nbtoolkit.redact import default_redactor

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ERROR_TAG = "papermill-error-cell-tag"
#: the name under which pyproject.toml registers :class:`~nbtoolkit.execute.papermill_engine.NbToolkitEngine`
ENGINE_NAME = "nbtoolkit"


def engine_name() -> str:
    """The name papermill knows nbtoolkit's engine by (its ``papermill.engine`` entry point)."""
    return ENGINE_NAME


class AtomicLocalHandler:
    """papermill I/O handler for absolute local paths whose writes replace the file atomically.

    papermill saves the output notebook after every cell (and again at the end) by opening it
    with ``"w"``: a reader polling the file meets it empty or half-written. This handler writes
    a temporary sibling, fsyncs it and renames it into place instead; reads, listings and
    pretty paths are papermill's own local handler's.
    """

    def __init__(self, local: Any) -> None:
        self._local = local

    def read(self, path: str) -> Any:
        """Read ``path`` as papermill's local handler does."""
        return self._local.read(path)

    def listdir(self, path: str) -> Any:
        """List ``path`` as papermill's local handler does."""
        return self._local.listdir(path)

    def write(self, buf: str, path: str) -> None:
        """Replace ``path`` with ``buf``, secrets scrubbed, atomically (temporary file, fsync, rename).

        Scrubbing here covers every intermediate save, so a runner killed mid-notebook leaves no
        secret in the partial file; the structure-aware pass over the final notebook follows in
        :func:`~nbtoolkit.execute.papermill_run.execute_job`.
        """
        atomic_write_text(path, default_redactor().redact_text(buf))

    def pretty_path(self, path: str) -> str:
        """``path`` as papermill shows it."""
        return str(self._local.pretty_path(path))

    def cwd(self, new_path: str | None) -> Any:
        """Set the folder relative paths resolve against (papermill's local handler keeps it)."""
        return self._local.cwd(new_path)


_ATOMIC_SCHEME = "/"


def use_atomic_writes() -> None:
    """Route papermill's writes to absolute local paths through :class:`AtomicLocalHandler` (once).

    papermill picks the most recently registered handler whose scheme prefixes the path, so
    registering for ``"/"`` covers every absolute POSIX path; nbtoolkit always passes absolute
    output paths.
    """
    from papermill.iorw import LocalHandler, papermill_io

    if not isinstance(papermill_io.get_handler("/x.ipynb"), AtomicLocalHandler):
        papermill_io.register(_ATOMIC_SCHEME, AtomicLocalHandler(LocalHandler()))


def truncated_cells(cells: list[Any]) -> list[int]:
    """Indexes (in ``cells``) of the cells whose output was cut at the cap."""
    return [i for i, c in enumerate(cells) if TRUNCATED_KEY in c.get("metadata", {}).get("nbtoolkit", {})]


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


def mark_cell(nb: Any, index: int, message: str, *, ended: dict[str, Any] | None = None) -> None:
    """Put papermill-style markers before cell ``index`` (kernel death, timeout, interruption).

    ``ended`` (such as ``{"status": "timed_out", "timeout_s": 20}``) is recorded in the cell's
    ``metadata["nbtoolkit"]["ended"]``.
    """
    import nbformat

    head = nbformat.v4.new_markdown_cell(f'<span style="color:red; font-size:1.5em;">{message} (see the marked cell below)</span>')
    head.metadata["tags"] = [ERROR_TAG]
    anchor = nbformat.v4.new_markdown_cell(f'<span id="papermill-error-cell" style="color:red; font-size:1.5em;">{message}:</span>')
    anchor.metadata["tags"] = [ERROR_TAG]
    meta = nb.cells[index].metadata.setdefault("nbtoolkit", {})
    meta["error"] = message
    if ended is not None:
        meta[ENDED_KEY] = ended
    nb.cells.insert(index, anchor)
    nb.cells.insert(0, head)


def last_started_cell(nb: Any) -> int | None:
    """Index of the last cell papermill started executing, or ``None``."""
    last = None
    for i, cell in enumerate(nb.cells):
        if cell.get("metadata", {}).get("papermill", {}).get("start_time"):
            last = i
    return last


@dataclass
class Ending:
    """How an execution ended, filled in step by step (see :class:`~nbtoolkit.execute.jobs.JobResult`)."""

    status: str = "finished"
    error: str | None = None
    ename: str | None = None
    evalue: str | None = None
    index: int | None = None
    source: str | None = None
    traceback: str | None = None
    stopped: bool = False
    truncated: tuple[int, ...] = ()


def interrupted_ending() -> Ending:
    """The ending of an execution stopped from outside (Ctrl-C, SIGTERM, a stopped sweep)."""
    return Ending(
        status="interrupted", ename="KeyboardInterrupt", evalue="execution was interrupted",
        error="Interrupted from outside the notebook (Ctrl-C or the sweep stopped).", stopped=True,
    )


_MARKED = {"crashed": "The kernel died here", "timed_out": "This cell timed out", "interrupted": "Execution was interrupted here"}


def finish_output(output: str, e: Ending, kernel_log: str, timeout: float | None) -> bytes:
    """Complete ``e`` from the executed notebook at ``output`` and return the notebook's bytes.

    Marks the cell where the kernel died, the cell timed out or an outside interruption
    stopped it (rewriting ``output`` atomically), and notes which cells' output was capped.
    """
    import nbformat

    nb = nbformat.read(output, as_version=4)
    cells = own_cells(nb)
    if e.status == "failed" and e.index is not None and e.index < len(cells):
        if e.ename == "CellExecutionError" and not e.evalue:
            # no error output (e.g. a failing magic): say what it printed instead
            printed = strip_ansi(stderr_of(cells[e.index])).strip()
            e.evalue = printed or "the cell failed without printing an error"
            e.error = f"{e.ename}: {e.evalue}"
    if e.status in _MARKED and (e.status != "interrupted" or e.stopped):  # papermill marks in-notebook errors
        last = last_started_cell(nb)
        if last is not None:
            e.source = "".join(nb.cells[last].source)
            e.index = last
            ended: dict[str, Any] = {"status": e.status}
            if e.status == "timed_out":
                ended["timeout_s"] = timeout
            mark_cell(nb, last, _MARKED[e.status], ended=ended)
            atomic_write_text(output, nbformat.writes(nb))
    own = own_cells(nb)
    e.truncated = tuple(source_index(own, i) for i in truncated_cells(own))
    if e.status == "crashed" and kernel_log.strip():
        e.error = f"{e.error}\nKernel log (last lines):\n" + "\n".join(kernel_log.strip().splitlines()[-10:])
    if e.index is not None:
        e.index = source_index(cells, e.index)
    return Path(output).read_bytes()
