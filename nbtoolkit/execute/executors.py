"""Where sweep children execute: the ``nbtoolkit.executors`` registry.

Built-ins:

* ``local``: a process pool (``spawn`` context, so no state leaks from the parent); every child
  starts its own fresh kernel with its own ports and working directory.
* ``dask``: a ``distributed.Client`` connected to ``--address``; children run as tasks on the
  cluster's workers and their results travel back to the submitting process, which alone
  writes terminal states, runner details and output notebooks to the store. Each task carries
  the notebook's bytes and the store and artifact locations, so a worker on another machine
  needs no shared filesystem: its kernel records straight into a server store and object
  storage (a sweep refuses a SQLite store when some workers run on other machines).

A plugin registers an object following :class:`Executor` under the entry-point group
``nbtoolkit.executors``.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
import socket
import time
from typing import Any, Protocol

from nbtoolkit._registry import Registry
from nbtoolkit.errors import InputError
from nbtoolkit.execute.engine import engine_name
from nbtoolkit.execute.papermill_run import execute_job

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "ExecutorSession", "LocalExecutor"]


class ExecutorSession(Protocol):
    """An open executor: submits jobs, reports how many run at once, stops on Ctrl-C.

    ``foreign_hosts`` names the workers' machines other than this one (empty when every worker
    runs here): their kernels see none of this machine's files.
    """

    slots: int
    foreign_hosts: tuple[str, ...]

    def submit(self, job: Any) -> cf.Future[Any]:
        """Run :func:`~nbtoolkit.execute.papermill_run.execute_job` on ``job`` somewhere."""

    def stop(self) -> None:
        """Ask running children to stop now (their kernels shut down, notebooks kept)."""

    def close(self) -> None:
        """Release workers / connections."""


class Executor(Protocol):
    """Factory of sessions; registered by name."""

    name: str

    def open(self, *, jobs: int | None, address: str | None) -> ExecutorSession:
        """Start (or connect to) the workers."""


# ------------------------------------------------------------------------------------ local
_running = False


def _run_in_worker(job: Any) -> Any:
    global _running
    _running = True
    try:
        return execute_job(job)
    finally:
        _running = False


def _on_sigterm(signum: int, frame: Any) -> None:
    if _running:
        raise KeyboardInterrupt  # execute_job stops the kernel and returns "interrupted"
    os._exit(0)


def _init_worker() -> None:
    from nbtoolkit._lean import UNUSED_IN_WORKERS, skip_unused_optional_imports

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, _on_sigterm)
    skip_unused_optional_imports(UNUSED_IN_WORKERS)
    # import papermill's engines (and nbclient) while the parent prepares the runs
    from papermill.engines import papermill_engines

    papermill_engines.get_engine(engine_name())


class _LocalSession:
    def __init__(self, jobs: int) -> None:
        import multiprocessing as mp

        self.slots = jobs
        self.foreign_hosts: tuple[str, ...] = ()
        self._pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker)
        # start every worker now, so their imports overlap with the parent's preparation
        for _ in range(jobs):
            self._pool.submit(time.sleep, 0)

    def submit(self, job: Any) -> cf.Future[Any]:
        return self._pool.submit(_run_in_worker, job)

    def stop(self) -> None:
        for proc in list((self._pool._processes or {}).values()):
            if proc.pid is None:
                continue
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class LocalExecutor:
    """Process pool on this machine (``--jobs N`` workers, default: the number of CPUs)."""

    name = "local"

    def open(self, *, jobs: int | None, address: str | None) -> ExecutorSession:
        if address:
            raise InputError("--address is only for --executor dask; drop it or add --executor dask.")
        return _LocalSession(max(1, jobs or os.cpu_count() or 1))


# ------------------------------------------------------------------------------------- dask
def _stop_kernels(run_ids: list[str]) -> int:
    """Kill the kernels (children of this worker) that execute ``run_ids``; run on Dask workers.

    A Dask task cannot be interrupted, but its kernel can: the task then ends at once and its
    kernel can no longer write to the run after the submitter marked it interrupted.
    """
    try:
        import psutil
    except ImportError:
        return 0
    wanted = set(run_ids)
    killed = 0
    for child in psutil.Process().children(recursive=True):
        try:
            if child.environ().get("NBTOOLKIT_RUN_ID") in wanted:
                child.kill()
                killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return killed


class _DaskSession:
    def __init__(self, address: str, jobs: int | None) -> None:
        from distributed import Client

        try:
            self._client = Client(address, timeout="10s")
        except OSError as exc:
            raise InputError(
                f"Cannot reach the Dask scheduler at {address} ({exc}); start one with "
                "`dask scheduler` and pass its tcp://HOST:PORT to --address."
            ) from None
        threads = sum(self._client.nthreads().values()) or 1
        self.slots = min(jobs, threads) if jobs else threads
        here = socket.gethostname()
        self.foreign_hosts = tuple(sorted(set(self._client.run(socket.gethostname).values()) - {here}))
        self._futures: dict[str, Any] = {}

    def submit(self, job: Any) -> cf.Future[Any]:
        dask_future = self._client.submit(execute_job, job, pure=False, key=f"nbtk-run-{job.run_id}")
        self._futures[job.run_id] = dask_future
        out: cf.Future[Any] = cf.Future()

        def done(f: Any) -> None:
            try:
                out.set_result(f.result())
            except BaseException as exc:  # noqa: BLE001 - handed to the orchestrator
                if not out.done():
                    out.set_exception(exc)

        dask_future.add_done_callback(done)
        return out

    def stop(self) -> None:
        running = [run_id for run_id, f in self._futures.items() if not f.done()]
        self._client.cancel(list(self._futures.values()))
        if running:
            try:
                self._client.run(_stop_kernels, running)
            except Exception:  # noqa: BLE001 - best effort; the records are marked either way
                pass

    def close(self) -> None:
        self._client.close()


class DaskExecutor:
    """A Dask ``distributed`` cluster at ``--address tcp://HOST:PORT``."""

    name = "dask"

    def open(self, *, jobs: int | None, address: str | None) -> ExecutorSession:
        if not address:
            raise InputError("--executor dask needs --address tcp://HOST:PORT of the Dask scheduler.")
        return _DaskSession(address, jobs)


EXECUTORS: Registry[Executor] = Registry("nbtoolkit.executors", "executor")
EXECUTORS.register("local", LocalExecutor())
EXECUTORS.register("dask", DaskExecutor())
