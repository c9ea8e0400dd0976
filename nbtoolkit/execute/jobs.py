"""A job: one notebook execution handed to a worker, and what comes back from it.

The submitting process records the run, then describes the execution as a :class:`RunJob`. The
job is pickled to wherever it executes (this process, a local pool worker or a Dask worker,
possibly on another machine), so it carries only plain values: the notebook's bytes, its
parameters and flags, and the store and artifact locations the kernel records into, never a
store or settings object. The worker sends back a :class:`JobResult` (pickled too): how the
execution ended and the executed notebook's bytes. The submitting process alone stores that
result and hands the caller a :class:`RunOutcome`, the user-facing result of one run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit.config import DEFAULT_MAX_OUTPUT_BYTES
from nbtoolkit.errors import StoreError
from nbtoolkit.html import coloured, esc

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord, Store

__all__ = ["JobResult", "RunJob", "RunOutcome"]


@dataclass(frozen=True)
class RunJob:
    """Everything a worker needs to execute one run (picklable; no store or settings objects).

    A worker on another machine needs no shared filesystem: ``source`` carries the notebook's
    bytes (the content the submitter hashed for the run cache), ``store_path`` and ``artifacts``
    say where the kernel records. Those two may carry credentials, so they stay out of ``repr``
    (Dask logs a failed task's arguments) and are never recorded.

    Attributes:
        notebook: the notebook's path on the submitting machine (what the run records).
        store_path: the store's location, a folder or a database URL (``Store.location``).
        cwd: the kernels' working directory on the submitting machine; a worker without it
            uses the folder it writes the shipped notebook into.
        artifacts: the artifact location (``Store.artifacts_location``); ``None`` = the store
            folder's default.
        source: the notebook file's bytes; ``None`` = read ``notebook`` where the job runs.
        files: ``{name relative to cwd: bytes}`` shipped with the task (``sweep --ship``),
            written next to the kernel only where ``cwd`` does not exist.
    """

    run_id: str
    notebook: str
    parameters: dict[str, Any]
    store_path: str = field(repr=False)
    cwd: str
    output: str | None = None
    kernel: str | None = None
    timeout: float | None = None
    flags: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    artifacts: str | None = field(default=None, repr=False)
    source: bytes | None = field(default=None, repr=False)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class JobResult:
    """What came back from a worker.

    ``status`` is the runner's view: finished, failed, interrupted, crashed or timed_out.
    ``cell_index`` counts the notebook's own cells (papermill's injected cell excluded).
    ``shipped`` is true when the worker executed the job's ``source`` from its own temporary
    folder (it could not read the same notebook at the submitted path).
    """

    run_id: str
    status: str
    duration: float
    error: str | None = None
    ename: str | None = None
    evalue: str | None = None
    cell_index: int | None = None
    cell_source: str | None = None
    traceback: str | None = None
    notebook_bytes: bytes | None = None
    stopped: bool = False
    host: str = ""
    pid: int = 0
    truncated: tuple[int, ...] = ()
    shipped: bool = False


@dataclass(frozen=True)
class RunOutcome:
    """The result of :func:`~nbtoolkit.execute.papermill_run.run_notebook` (also one entry of a sweep).

    Attributes:
        run_id: the recorded run.
        status: its terminal status (finished, failed, interrupted, crashed, timed_out).
        verdict: supported / rejected / inconclusive, or None without ``%%experiment``.
        output_path: where the executed notebook was written (None when only stored).
        cached_from: the run whose results were reused (run cache hit), else None.
    """

    run_id: str
    notebook: str
    status: str
    parameters: dict[str, Any]
    duration: float
    verdict: str | None = None
    error: str | None = None
    cell_index: int | None = None
    ename: str | None = None
    evalue: str | None = None
    cell_source: str | None = None
    traceback: str | None = None
    output_path: str | None = None
    cached_from: str | None = None
    warnings: tuple[str, ...] = ()
    store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when the notebook ran to the end (or exited with status 0)."""
        return self.status == "finished"

    def record(self) -> RunRecord:
        """The stored run.

        Raises:
            StoreError: the outcome was built without a store.
        """
        if self.store is None:
            raise StoreError(f"run {self.run_id[:8]}'s outcome carries no store; open one with nbtk.get_run.")
        return self.store.get_run(self.run_id)

    def describe_failure(self) -> str:
        """A readable failure: cell index, source excerpt and traceback."""
        if self.ok:
            return f"{Path(self.notebook).name}: finished"
        lines = [f"{Path(self.notebook).name}: {self.status}" + (f" in cell {self.cell_index}" if self.cell_index is not None else "")]
        if self.ename:
            lines.append(f"{self.ename}: {self.evalue or ''}".rstrip())
        if self.cell_source:
            src = self.cell_source.splitlines()
            lines.append("cell source:")
            lines.extend("    " + s for s in src[:12])
            if len(src) > 12:
                lines.append("    ...")
        if self.traceback:
            lines.append("traceback:")
            lines.extend("    " + s for s in self.traceback.rstrip().splitlines()[-25:])
        elif self.error:
            lines.append(self.error.rstrip())
        return "\n".join(lines)

    def __repr__(self) -> str:
        extra = f" verdict={self.verdict!r}" if self.verdict else ""
        cached = f" cached_from={self.cached_from[:8]!r}" if self.cached_from else ""
        return f"<RunOutcome {self.run_id[:8]} {Path(self.notebook).name} status={self.status!r}{extra}{cached}>"

    def _repr_html_(self) -> str:
        body = f"<b>{esc(Path(self.notebook).name)}</b> run <code>{esc(self.run_id[:8])}</code>: "
        body += coloured(self.status, "pass" if self.ok else "fail", bold=False)
        if self.verdict:
            body += f", verdict {esc(self.verdict)}"
        if not self.ok:
            body += f"<pre>{esc(self.describe_failure())}</pre>"
        return f"<div>{body}</div>"
