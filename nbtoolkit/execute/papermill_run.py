"""One notebook execution through papermill, recorded as exactly one run.

The split follows where each step may run:

* :func:`prepare_run` (submitting process): checks parameters, pre-creates the run row
  (kind ``papermill``, source ``papermill``), logs the injected parameters, stores the
  environment lock and the run-cache key.
* :func:`execute_job` (any process: the caller, a pool worker or a Dask worker): starts a fresh
  kernel with ``NBTOOLKIT_RUN_ID`` / ``NBTOOLKIT_PARAMS`` / ``NBTOOLKIT_NOTEBOOK`` /
  ``NBTOOLKIT_STORE`` (and feature flags) in *the kernel's* environment (no ``os.environ``
  mutation), executes with papermill and returns a picklable
  :class:`~nbtoolkit.execute.jobs.JobResult` that carries the executed notebook's bytes. The
  kernel's ``%%experiment`` adopts the pre-created run.
* :func:`finalize_run` (submitting process): stores the output notebook as an artifact,
  records duration and exit details in ``extra.runner`` and sets the terminal status.

What travels between the steps (:class:`~nbtoolkit.execute.jobs.RunJob` out,
:class:`~nbtoolkit.execute.jobs.JobResult` back, :class:`~nbtoolkit.execute.jobs.RunOutcome` to
the caller) is defined in :mod:`nbtoolkit.execute.jobs`.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.envlock.written import record_written
from nbtoolkit.errors import InputError, StoreError
from nbtoolkit.execute.engine import (
    Ending,
    engine_name,
    finish_output,
    interrupted_ending,
    strip_ansi,
    use_atomic_writes,
)
from nbtoolkit.execute.jobs import JobResult, RunJob, RunOutcome
from nbtoolkit.execute.params import check_parameters
from nbtoolkit.notebook import kernel_for, notebook_content_hash, without_outputs
from nbtoolkit.redact import default_redactor, redact_notebook_file

if TYPE_CHECKING:
    from nbtoolkit.config import Settings
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.store import Store

__all__ = ["execute_job", "finalize_run", "prepare_run", "run_notebook"]


# ---------------------------------------------------------------------------------- prepare
def prepare_run(
    store: Store,
    settings: Settings,
    notebook: Path,
    parameters: Mapping[str, Any],
    *,
    lock: EnvLock | None,
    nb_hash: str,
    key: str | None,
    parent_id: str | None = None,
    flags: Mapping[str, str] | None = None,
    kind: str = "papermill",
    origin_run_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Pre-create the run a kernel will adopt; log params, lock, data versions and cache key."""
    from nbtoolkit.store import DataRef

    run_extra: dict[str, Any] = {"runner": {"parameters": _json.to_jsonable(dict(parameters))}}
    if flags:
        run_extra["flags"] = dict(flags)
    run_extra.update(dict(extra or {}))
    run_id = store.create_run(
        experiment=notebook.stem,
        kind=kind,
        source="papermill",
        notebook_path=str(notebook),
        notebook_hash=nb_hash,
        parent_id=parent_id,
        origin_run_id=origin_run_id,
        extra=run_extra,
    )
    if parameters:
        store.log_params(run_id, _json.to_jsonable(dict(parameters)))
    fields: dict[str, Any] = {}
    if lock is not None:
        store.put_lock(lock.hash, lock.to_dict())
        fields["lock_hash"] = lock.hash
        refs = [
            DataRef(str(d["path"]), str(d.get("source", "dvc")), str(d["md5"]), "md5", d.get("size"))
            for d in lock.to_dict().get("data", [])
            if d.get("md5")
        ]
        store.add_datasets(run_id, refs)
        if lock.git_diff:
            store.put_text_artifact(run_id, name="git.diff", kind="diff", text=lock.git_diff, media_type="text/x-diff")
    if key:
        fields["cache_key"] = key
    if fields:
        store.update_run(run_id, **fields)
    return run_id


def kernel_env(job: RunJob, *, notebook: str | None = None) -> dict[str, str]:
    """The kernel's environment: this process's plus the run hand-over variables and flags.

    The store and artifact locations come from the job, never from this process's environment:
    a Dask worker started without ``NBTOOLKIT_*`` settings records where the submitter does.
    ``notebook`` is the file the kernel executes (a shipped copy on a worker without the project).
    """
    env = dict(os.environ)
    env.update(
        NBTOOLKIT_RUN_ID=job.run_id,
        NBTOOLKIT_PARAMS=_json.dumps(_json.to_jsonable(job.parameters)),
        NBTOOLKIT_NOTEBOOK=notebook or job.notebook,
        NBTOOLKIT_STORE=job.store_path,
        # the kernel hands the run back to this process when %%experiment ends (see ActiveRun.close)
        NBTOOLKIT_RUNNER_PID=str(os.getpid()),
    )
    if job.artifacts is None:
        env.pop("NBTOOLKIT_ARTIFACTS", None)
    else:
        env["NBTOOLKIT_ARTIFACTS"] = job.artifacts
    for name, value in job.flags.items():
        env[f"NBTOOLKIT_FLAG_{name}"] = str(value)
    return env


@dataclass(frozen=True)
class _Workspace:
    """Where a job executes on this machine: the notebook file and the kernel's working folder."""

    notebook: str
    cwd: str
    shipped: bool


def _workspace(job: RunJob, tmpdir: str) -> _Workspace:
    """Use the job's notebook and folder when this machine has them; else the shipped copies.

    The notebook at ``job.notebook`` is executed only when it holds exactly ``job.source`` once
    its outputs are cleared (a worker elsewhere may have another version at that path, or none,
    or no permission to read it); otherwise the bytes are written to ``tmpdir/work/<name>``. The kernel runs in
    ``job.cwd`` when this machine can enter it, else in that ``work`` folder, which then also
    receives ``job.files`` at their relative paths.
    """
    try:
        notebook_here = job.source is None or without_outputs(Path(job.notebook).read_bytes()) == job.source
    except (OSError, ValueError):  # unreadable, or not a notebook (any more)
        notebook_here = False
    cwd_here = os.path.isdir(job.cwd) and os.access(job.cwd, os.R_OK | os.X_OK)
    if notebook_here and cwd_here:
        return _Workspace(job.notebook, job.cwd, False)
    work = Path(tmpdir) / "work"
    work.mkdir()
    notebook = job.notebook
    if not notebook_here and job.source is not None:
        notebook = str(work / Path(job.notebook).name)
        Path(notebook).write_bytes(job.source)
    if cwd_here:
        return _Workspace(notebook, job.cwd, not notebook_here)
    for name, data in job.files.items():
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or ".." in parts:
            raise InputError(f"Shipped file name {name!r} leaves the working folder; ship paths inside it.")
        target = work.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return _Workspace(notebook, str(work), not notebook_here)


# ---------------------------------------------------------------------------------- execute
def execute_job(job: RunJob) -> JobResult:
    """Execute one run in a fresh kernel and return what happened (never raises for notebook errors).

    A ``KeyboardInterrupt`` in this process (Ctrl-C, or SIGTERM in a worker) stops the kernel,
    keeps the output notebook and returns status ``interrupted``.
    """
    started = time.perf_counter()
    tmpdir = tempfile.mkdtemp(prefix="nbtk-run-")  # this task's own folder, removed at the end
    try:
        where = _workspace(job, tmpdir)
        output = os.path.abspath(job.output or os.path.join(tmpdir, "output.ipynb"))  # absolute: atomic saves
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        if job.output:  # the executed notebook is nbtoolkit's: it never makes the git tree dirty
            record_written(job.output, pending=True)
        err_log = tempfile.NamedTemporaryFile(prefix="nbtk-kernel-", suffix=".log", dir=tmpdir, delete=False)  # noqa: SIM115
        try:
            ending = _execute(job, where, output, err_log)
        except KeyboardInterrupt:  # while papermill was still being imported
            ending = interrupted_ending()
        duration = time.perf_counter() - started
        err_log.close()
        kernel_log = Path(err_log.name).read_text(encoding="utf-8", errors="replace")
        data = finish_output(output, ending, kernel_log, job.timeout) if os.path.exists(output) else None
        if data is not None:  # the one redaction of the executed notebook: the -o file and the stored copy
            data = redact_notebook_file(output, default_redactor(environ=kernel_env(job, notebook=where.notebook)))
        if job.output:  # after the redaction rewrote it: the ledger holds the final content's hash
            record_written(job.output)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return JobResult(
        run_id=job.run_id,
        status=ending.status,
        duration=duration,
        error=ending.error,
        ename=ending.ename,
        evalue=ending.evalue,
        cell_index=ending.index,
        cell_source=ending.source,
        traceback=ending.traceback,
        notebook_bytes=data,
        stopped=ending.stopped,
        truncated=ending.truncated,
        host=socket.gethostname(),
        pid=os.getpid(),
        shipped=where.shipped,
    )


def _execute(job: RunJob, where: _Workspace, output: str, err_log: IO[bytes]) -> Ending:
    """Run papermill on the job's notebook; map each way it can end to an :class:`Ending`."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    e = Ending()
    use_atomic_writes()
    try:
        kernel, language = kernel_for(where.notebook)
        papermill.execute_notebook(
            where.notebook,
            output,
            parameters=dict(job.parameters),
            engine_name=engine_name(),
            kernel_name=job.kernel or kernel,
            language=language,
            progress_bar=False,
            execution_timeout=job.timeout,
            start_timeout=job.start_timeout,
            max_output_bytes=job.max_output_bytes,
            kernel_start={"env": kernel_env(job, notebook=where.notebook), "cwd": where.cwd,
                          "stderr": err_log, "stdout": err_log},
        )
    except PapermillExecutionError as exc:
        e.ename, e.evalue = exc.ename, exc.evalue
        e.traceback = strip_ansi("\n".join(exc.traceback or []))
        e.status = "interrupted" if exc.ename == "KeyboardInterrupt" else "failed"
        e.index, e.source = exc.cell_index, exc.source
        e.error = f"{exc.ename}: {exc.evalue}".rstrip(": ")
    except CellTimeoutError as exc:
        e.status, e.ename = "timed_out", "CellTimeoutError"
        e.evalue = f"a cell ran longer than {job.timeout:g} s"
        e.error = f"Timed out: {e.evalue} (--timeout {job.timeout:g}). {exc}"
    except DeadKernelError as exc:
        e.status, e.ename, e.evalue = "crashed", "DeadKernelError", "the kernel died"
        e.error = f"The kernel died while executing ({exc})."
    except KeyboardInterrupt:
        e = interrupted_ending()
    except Exception as exc:  # kernel failed to start, bad notebook, ...
        e.status, e.ename, e.evalue = "failed", type(exc).__name__, str(exc)
        e.error = f"Could not execute the notebook: {type(exc).__name__}: {exc}"
    return e


# ---------------------------------------------------------------------------------- finalize
def finalize_run(store: Store, job: RunJob, result: JobResult, *, warnings: tuple[str, ...] = ()) -> RunOutcome:
    """Store the output notebook, runner details and the terminal status of ``result.run_id``.

    The kernel's own terminal status wins when it closed the run as failed or interrupted (it
    holds the real traceback); a timeout or a dead kernel always wins; a run still ``running``
    (no ``%%experiment`` cell) is closed with the runner's status.
    """
    run_id = result.run_id
    if result.notebook_bytes is not None:
        try:
            digest, size = store.artifacts.put_bytes(result.notebook_bytes)
        except StoreError as exc:  # artifact store unreachable, disk full...: close the run saying so
            if store.get_run(run_id).status == "running":
                store.finish_run(run_id, status="failed", error=f"The output notebook could not be stored. {exc}")
            raise
        store.add_artifact(
            run_id, name="output.ipynb", kind="notebook", digest=digest, size=size, media_type="application/x-ipynb+json"
        )
    runner = {
        "parameters": _json.to_jsonable(job.parameters),
        "duration_s": round(result.duration, 4),
        "exit": result.status,
        "ename": result.ename,
        "evalue": result.evalue,
        "cell_index": result.cell_index,
        "output": job.output,
        "kernel": job.kernel,
        "timeout": job.timeout,
        "host": result.host,
        "worker_pid": result.pid,
        "notebook_shipped": result.shipped,
        "max_output_bytes": job.max_output_bytes,
        "output_truncated_cells": list(result.truncated),
    }
    store.merge_extra(run_id, {"runner": runner})
    current = store.get_run(run_id)
    recorded = current.status
    if result.status in ("timed_out", "crashed"):
        store.finish_run(run_id, status=result.status, error=result.error)
    elif result.status in ("failed", "interrupted"):
        if recorded not in ("failed", "interrupted"):
            store.finish_run(run_id, status=result.status, error=result.error or result.ename)
    elif recorded in ("running", "crashed"):
        # "crashed" here only means another process saw the (already stopped) kernel's pid gone
        # before this runner wrote the outcome; papermill says the notebook ran to the end
        store.finish_run(run_id, status="finished")
    record = store.get_run(run_id)
    return RunOutcome(
        run_id=run_id,
        notebook=job.notebook,
        status=record.status,
        parameters=dict(job.parameters),
        duration=result.duration,
        verdict=record.verdict,
        error=record.error if record.status != "finished" else None,
        cell_index=result.cell_index,
        ename=result.ename,
        evalue=result.evalue,
        cell_source=result.cell_source,
        traceback=result.traceback,
        output_path=job.output,
        warnings=warnings,
        store=store,
    )


# ---------------------------------------------------------------------------------- one run
def run_notebook(
    path: str | Path,
    *,
    parameters: Mapping[str, Any] | None = None,
    output: str | Path | None = None,
    cwd: str | Path | None = None,
    kernel: str | None = None,
    timeout: float | None = None,
    flags: Mapping[str, str] | None = None,
    allow_unknown: bool = False,
    force: bool = False,
    store: Store | None = None,
    settings: Settings | None = None,
) -> RunOutcome:
    """Execute a notebook with papermill in a fresh kernel and record it as one run.

    When a finished run had the same notebook code, parameters, flags, environment and data,
    the run is served from the run cache instead (like a sweep child): a new run of kind
    ``cached`` copies its results, and ``outcome.cached_from`` names it.

    Args:
        path: the notebook.
        parameters: values injected after the ``parameters`` cell (typed values, not strings).
        output: where to keep the executed notebook (it is stored as an artifact either way).
        cwd: the kernel's working directory (default: the notebook's folder).
        kernel: kernel name (default: the notebook's kernelspec, else ``python3``).
        timeout: per-cell execution timeout in seconds; a cell over it ends the run ``timed_out``.
        flags: feature flags, passed to the kernel as ``NBTOOLKIT_FLAG_<NAME>`` and recorded.
        allow_unknown: inject names the notebook does not define instead of refusing them.
        force: execute even when the run cache holds a finished run with the same inputs.
        store: the project store (default: the current project's).
        settings: project settings (default: resolved from the working directory).

    Returns:
        A :class:`~nbtoolkit.execute.jobs.RunOutcome`; ``outcome.ok`` is False for failed,
        interrupted, crashed and timed-out runs (the output notebook is kept in all cases).

    Raises:
        ParameterError: unknown parameter names (unless ``allow_unknown``).
        InputError: the notebook does not exist.
        KeyboardInterrupt: re-raised after the run was recorded as ``interrupted``.
    """
    # the run cache is imported here, not at module top: workers import this module for
    # execute_job, and the cache would load the store (and SQLAlchemy) into every one of them
    from nbtoolkit.config import load_settings
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.execute.cache import cache_key, find_cached_run
    from nbtoolkit.store import open_store

    nb_path = Path(path).expanduser().resolve()
    if not nb_path.is_file():
        raise InputError(f"Notebook {path} does not exist; pass the path of an .ipynb file.")
    params = dict(parameters or {})
    warnings = check_parameters(nb_path, params, allow_unknown=allow_unknown)
    settings = settings or load_settings()
    store = store or open_store(settings)
    lock = capture_lock(settings, notebook_path=nb_path)
    source = without_outputs(nb_path.read_bytes())  # hashed and executed: the same content
    nb_hash = notebook_content_hash(source)
    key = cache_key(nb_hash, params, lock, flags)
    hit = None if force else find_cached_run(store, key, root=settings.root)
    if hit is not None:
        return _serve_from_cache(store, hit, nb_path, params, key=key, output=output, warnings=tuple(warnings))
    run_id = prepare_run(store, settings, nb_path, params, lock=lock, nb_hash=nb_hash, key=key, flags=flags)
    job = RunJob(
        run_id=run_id,
        notebook=str(nb_path),
        parameters=params,
        store_path=store.location,
        cwd=str(Path(cwd).resolve() if cwd else nb_path.parent),
        output=str(Path(output).resolve()) if output else None,
        kernel=kernel,
        timeout=timeout,
        flags={k: str(v) for k, v in (flags or {}).items()},
        max_output_bytes=settings.max_output_bytes,
        artifacts=store.artifacts_location,
        source=source,
    )
    result = execute_job(job)
    outcome = finalize_run(store, job, result, warnings=tuple(warnings))
    if result.stopped:
        raise KeyboardInterrupt
    return outcome


def _serve_from_cache(store: Store, hit: str, nb_path: Path, params: dict[str, Any], *, key: str,
                      output: str | Path | None, warnings: tuple[str, ...]) -> RunOutcome:
    """Record a cache hit of a single run; write the source's executed notebook to ``output``."""
    from nbtoolkit.execute.cache import copy_cached_run  # not at module top: see run_notebook

    run_id = copy_cached_run(store, hit, parent_id=None, key=key,
                             extra={"runner": {"parameters": _json.to_jsonable(params), "exit": "cached"}})
    record = store.get_run(run_id)
    out_path = None
    notebook = record.artifact("output.ipynb")
    if output is not None and notebook is not None:
        target = Path(output).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.artifacts.read_bytes(notebook.digest))
        out_path = str(target)
    return RunOutcome(run_id=run_id, notebook=str(nb_path), status=record.status, parameters=params, duration=0.0,
                      verdict=record.verdict, output_path=out_path, cached_from=hit, warnings=warnings, store=store)
