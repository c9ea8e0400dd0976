"""The active run and the ``log_*`` API.

A run is opened by the ``%%experiment`` magic, by :func:`start_run` in scripts, or adopted from a
runner (``nbtk run`` pre-creates the run and passes ``NBTOOLKIT_RUN_ID`` to the kernel, so the
kernel's data and the runner's data are one run). Metric values are buffered in memory and
flushed in batches by a background thread (every second, and at the end), which also keeps the
run's heartbeat fresh so a dead process is detected.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.baselines import resolve_baseline
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.errors import InputError, NoActiveRunError

if TYPE_CHECKING:
    from nbtoolkit.declaration import Declaration
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.store import Store
    from nbtoolkit.verdict import Verdict

FLUSH_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 15.0
MAX_BUFFER = 50_000


class NbToolkitWarning(UserWarning):
    """Something was recorded differently from how it was given (e.g. a repr for a non-JSON value)."""


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} names must be non-empty strings, got {name!r}.")
    if len(name) > 255:
        raise InputError(f"{what} name {name[:40]!r}... is {len(name)} characters; use at most 255.")
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise InputError(f"{what} name {name!r} contains the control character {bad!r}; remove it.")
    return name


def _metric_value(name: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(
            f"Metric {name!r} must be a number (int, float or numpy scalar), got "
            f"{type(value).__name__}; log text with nbtk.log_params or tags instead."
        ) from None
    if getattr(value, "ndim", 0) not in (0, None):
        raise InputError(f"Metric {name!r} must be a single number, got an array; log one value per step.")
    return result


def jsonable_param(name: str, value: Any) -> Any:
    """JSON form of a parameter value; a repr (with a warning) when it has none."""
    try:
        return _json.to_jsonable(value)
    except (_json.NotSerializable, RecursionError):
        warnings.warn(
            f"Parameter {name!r} ({type(value).__name__}) is not JSON-serialisable; recorded as its repr.",
            NbToolkitWarning,
            stacklevel=3,
        )
        return repr(value)


@dataclass
class ActiveRun:
    """A run being recorded in this process. Returned by :func:`start_run` and :func:`current_run`."""

    run_id: str
    experiment: str
    store: Store
    settings: Settings
    declaration: Declaration
    baseline_run_id: str | None = None
    baseline_reason: str | None = None
    lock: EnvLock | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "running"
    verdict: Verdict | None = None
    error: str | None = None
    _steps: dict[str, int] = field(default_factory=dict)
    _buffer: list[tuple[str, float, int | None, float]] = field(default_factory=list)
    _buffer_lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _listeners: list[Callable[[str, float, int | None], None]] = field(default_factory=list)

    # -------------------------------------------------------------- background flushing
    def _start_flusher(self) -> None:
        self._thread = threading.Thread(target=self._flush_loop, name=f"nbtk-flush-{self.run_id[:8]}", daemon=True)
        self._thread.start()

    def _flush_loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(FLUSH_INTERVAL_S):
            try:
                self.flush()
                if time.monotonic() - last_beat >= HEARTBEAT_INTERVAL_S:
                    self.store.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except Exception:  # never kill the user's cell from the background thread
                traceback.print_exc()

    def flush(self) -> None:
        """Write buffered metric values to the store now."""
        with self._buffer_lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self.store.log_metrics(self.run_id, batch)

    def _stop_flusher(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()

    # -------------------------------------------------------------- logging
    def add_listener(self, fn: Callable[[str, float, int | None], None]) -> None:
        """Call ``fn(name, value, step)`` for every metric value logged (live progress)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[str, float, int | None], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def log_metric(self, name: str, value: Any, step: int | None = None) -> None:
        _check_name(name, "Metric")
        fval = _metric_value(name, value)
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int):
                try:
                    step = int(step)  # numpy integers
                except (TypeError, ValueError):
                    raise InputError(f"step for metric {name!r} must be an integer, got {step!r}.") from None
            last = self._steps.get(name)
            if last is None or step >= last:
                self._steps[name] = step
                self.metrics[name] = fval
        else:
            self.metrics[name] = fval
        with self._buffer_lock:
            self._buffer.append((name, fval, step, time.time()))
            full = len(self._buffer) >= MAX_BUFFER
        if full:
            self.flush()
        for fn in self._listeners:
            fn(name, fval, step)

    def log_params(self, values: Mapping[str, Any]) -> None:
        clean = {}
        for name, value in values.items():
            _check_name(name, "Parameter")
            clean[name] = jsonable_param(name, value)
        self.params.update(clean)
        self.store.log_params(self.run_id, clean)

    def set_tags(self, values: Mapping[str, Any]) -> None:
        tags = {_check_name(k, "Tag"): str(v) for k, v in values.items()}
        self.store.set_tags(self.run_id, tags)

    # -------------------------------------------------------------- closing
    def close(self, status: str, *, error: str | None = None) -> None:
        """Flush, evaluate the verdict (for finished runs) and record the terminal status."""
        from nbtoolkit.verdict import compute_verdict

        self._stop_flusher()
        verdict = None
        try:
            verdict = compute_verdict(self)
        except Exception as exc:  # a verdict problem must not lose the run
            warnings.warn(f"Could not evaluate the verdict: {exc}", NbToolkitWarning, stacklevel=2)
        self.verdict = verdict
        self.status = status
        self.error = error
        self.store.finish_run(
            self.run_id,
            status=status,
            verdict=verdict.status if verdict is not None else None,
            verdict_detail=verdict.to_dict() if verdict is not None else None,
            error=error,
        )

    def record(self) -> Any:
        """The stored :class:`~nbtoolkit.store.RunRecord` of this run."""
        return self.store.get_runs([self.run_id])[0]

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id[:8]} experiment={self.experiment!r} status={self.status!r}>"


_stack: list[ActiveRun] = []
_pending_seeds: dict[str, int] = {}


def current_run() -> ActiveRun | None:
    """The innermost active run in this process, or ``None``."""
    return _stack[-1] if _stack else None


def _require(function: str) -> ActiveRun:
    run = current_run()
    if run is None:
        raise NoActiveRunError(function)
    return run


def _injected_from_env() -> tuple[str | None, dict[str, Any]]:
    run_id = os.environ.get("NBTOOLKIT_RUN_ID") or None
    params = _json.loads(os.environ.get("NBTOOLKIT_PARAMS"), {})
    return run_id, params if isinstance(params, dict) else {}


_adopted: set[str] = set()


def open_run(
    declaration: Declaration,
    *,
    source: str = "script",
    notebook_path: str | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
) -> ActiveRun:
    """Start recording a run (used by :func:`start_run` and the magic).

    Resolves the baseline first, so an unknown baseline fails before anything runs. Captures the
    environment lock, stores it (deduplicated) with the uncommitted git diff, and either creates
    a run or adopts the one a runner created for this kernel.
    """
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.notebook import notebook_hash
    from nbtoolkit.store import DataRef, open_store

    settings = settings or load_settings()
    store = store or open_store(settings)
    baseline_run_id, baseline_reason = resolve_baseline(store, declaration.baseline)

    seeds = dict(_pending_seeds)
    if declaration.seed is not None:
        seeds["seed"] = declaration.seed
        _apply_seed(declaration.seed)
    lock = capture_lock(settings, notebook_path=notebook_path, seeds=seeds)
    store.put_lock(lock.hash, lock.to_dict())

    nb_hash = None
    if notebook_path:
        with contextlib.suppress(OSError, ValueError):
            nb_hash = notebook_hash(notebook_path)

    runner_run_id, _ = _injected_from_env()
    decl = declaration.to_dict()
    clean_params: dict[str, Any] = {}
    if runner_run_id and runner_run_id not in _adopted and store.run_exists(runner_run_id):
        _adopted.add(runner_run_id)
        run_id = runner_run_id
        columns: dict[str, Any] = {
            "declaration": decl,
            "baseline_ref": declaration.baseline,
            "baseline_run_id": baseline_run_id,
            "lock_hash": lock.hash,
        }
        if nb_hash:  # keep the runner's hash when the kernel cannot read the notebook
            columns["notebook_hash"] = nb_hash
        store.adopt_run(run_id, experiment=declaration.experiment, **columns)
    else:
        clean_params = _clean_params(params or {})
        run_id = store.create_run(
            experiment=declaration.experiment,
            declaration=decl,
            source=source,
            baseline_ref=declaration.baseline,
            baseline_run_id=baseline_run_id,
            notebook_path=str(notebook_path) if notebook_path else None,
            notebook_hash=nb_hash,
            lock_hash=lock.hash,
            params=clean_params,
        )
        params = None  # recorded with the run

    run = ActiveRun(
        run_id=run_id,
        experiment=declaration.experiment,
        store=store,
        settings=settings,
        declaration=declaration,
        baseline_run_id=baseline_run_id,
        baseline_reason=baseline_reason,
        lock=lock,
    )
    try:
        if lock.git_diff:
            store.put_text_artifact(run_id, name="git.diff", kind="diff", text=lock.git_diff, media_type="text/x-diff")
        dvc_refs = [
            DataRef(str(d["path"]), str(d.get("source", "dvc")), str(d["md5"]), "md5", d.get("size"))
            for d in (lock.data.get("data") or [])
            if d.get("md5")
        ]
        store.add_datasets(run_id, dvc_refs)
        if declaration.tags:
            run.set_tags(declaration.tags)
        if seeds:
            store.merge_extra(run_id, {"seeds": seeds})
        run.params.update(clean_params)
        if params:
            run.log_params(params)
    except BaseException:
        # never leave a run 'running' when opening it failed half-way
        store.finish_run(run_id, status="failed", error=traceback.format_exc(), only_if_running=True)
        raise
    _pending_seeds.clear()
    _stack.append(run)
    run._start_flusher()
    return run


def _clean_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validated names and JSON forms of parameter values (see :meth:`ActiveRun.log_params`)."""
    return {_check_name(name, "Parameter"): jsonable_param(name, value) for name, value in values.items()}


def close_run(run: ActiveRun, status: str, *, error: str | None = None) -> None:
    """Close ``run`` with ``status`` and pop it from the active stack."""
    try:
        run.close(status, error=error)
    finally:
        if run in _stack:
            _stack.remove(run)


def status_for(exc: BaseException | None) -> str:
    """Map how a block ended to a run status."""
    if exc is None:
        return "finished"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "finished"
    return "failed"


@contextlib.contextmanager
def start_run(
    experiment: str,
    *,
    hypothesis: str = "",
    success: str | list[str] | tuple[str, ...] = (),
    scope: str = "",
    owner: str = "",
    until: str | None = None,
    baseline: str | None = None,
    tags: Mapping[str, str] | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    description: str = "",
) -> Iterator[ActiveRun]:
    """Record a run around a block of code, outside IPython or inside it.

    Example::

        with nbtk.start_run("churn-gbm", success="roc_auc >= 0.9", baseline="churn-logreg") as run:
            nbtk.log(roc_auc=0.93)
        print(run.verdict)

    Raises:
        CriteriaError: a success criterion does not parse (before the block runs).
        RunNotFoundError: the baseline names nothing known (before the block runs).
    """
    from nbtoolkit.declaration import make_declaration

    declaration = make_declaration(
        experiment,
        hypothesis=hypothesis,
        success=[success] if isinstance(success, str) else list(success),
        scope=scope,
        owner=owner,
        until=until,
        baseline=baseline,
        tags=dict(tags or {}),
        seed=seed,
        description=description,
    )
    run = open_run(declaration, source="script", params=params)
    try:
        yield run
    except BaseException as exc:
        status = status_for(exc)
        close_run(run, status, error=None if status == "finished" else traceback.format_exc())
        raise
    else:
        close_run(run, "finished")


# ---------------------------------------------------------------------------- public log API
def log(**metrics: Any) -> None:
    """Log metric values by keyword: ``nbtk.log(roc_auc=0.91, fit_seconds=3.2)``."""
    run = _require("log")
    for name, value in metrics.items():
        run.log_metric(name, value)


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Log one metric value, optionally as step ``step`` of a series (buffered, fast)."""
    _require("log_metric").log_metric(name, value, step)


def log_params(params: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Record parameters: ``nbtk.log_params({"lr": 0.1})`` or ``nbtk.log_params(lr=0.1)``."""
    values = dict(params or {})
    values.update(kwargs)
    _require("log_params").log_params(values)


def set_tags(tags: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Attach string tags to the active run."""
    values = dict(tags or {})
    values.update(kwargs)
    _require("set_tags").set_tags(values)


def _apply_seed(n: int) -> dict[str, int]:
    import sys

    random.seed(n)
    applied = {"python": n}
    try:
        import numpy as np

        np.random.seed(n % (2**32))
        applied["numpy"] = n
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(n)
        applied["torch"] = n
    return applied


def seed(n: int) -> int:
    """Seed Python's ``random``, NumPy (and torch when imported) and record the seed with the run."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"seed needs a non-negative integer, got {n!r}.")
    _apply_seed(n)
    run = current_run()
    if run is None:
        _pending_seeds["seed"] = n
    else:
        run.store.merge_extra(run.run_id, {"seeds": {"seed": n}})
        run.log_params({"seed": n})
    return n
