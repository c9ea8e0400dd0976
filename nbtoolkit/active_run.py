"""The run being recorded in this process (:class:`ActiveRun`) and what it accepts as values.

Metric values are buffered in memory and flushed in batches by a background thread (every
second, and at the end), which also keeps the run's heartbeat fresh so a dead process is
detected. Closing a run evaluates its verdict with :func:`nbtoolkit.evidence.evaluate_run` from
plain values (criteria, metrics, baseline run id), so the verdict knows nothing of this class.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.config import Settings
from nbtoolkit.errors import InputError, NbToolkitWarning, ParameterError
from nbtoolkit.evidence import evaluate_run
from nbtoolkit.verdict import Verdict

if TYPE_CHECKING:
    from nbtoolkit.declaration import Declaration
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.store import RunRecord, Store

FLUSH_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 15.0
MAX_BUFFER = 50_000


def check_name(name: Any, what: str) -> str:
    """Return ``name`` when it is a usable metric/parameter/tag/artifact name.

    Raises:
        InputError: empty, not a string, longer than 255 characters or holding control characters.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} names must be non-empty strings, got {name!r}.")
    if len(name) > 255:
        raise InputError(f"{what} name {name[:40]!r}... is {len(name)} characters; use at most 255.")
    bad = next((c for c in name if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise InputError(f"{what} name {name!r} contains the control character {bad!r}; remove it.")
    return name


def metric_value(name: str, value: Any) -> float:
    """The float value of a metric given as a number, bool or numpy scalar.

    Raises:
        InputError: not a number, or an array.
    """
    if isinstance(value, bool):
        return float(value)
    try:
        result = float(value)
    except OverflowError:
        raise InputError(
            f"Metric {name!r} = {value!r:.60} is too large for a 64-bit float; log it scaled "
            "(e.g. its logarithm) or as a parameter string."
        ) from None
    except (TypeError, ValueError):
        raise InputError(
            f"Metric {name!r} must be a number (int, float or numpy scalar), got "
            f"{type(value).__name__}; log text with nbtk.log_params or tags instead."
        ) from None
    if getattr(value, "ndim", 0) not in (0, None):
        raise InputError(f"Metric {name!r} must be a single number, got an array; log one value per step.")
    return result


def jsonable_param(name: str, value: Any) -> Any:
    """JSON form of a parameter value; a repr (with a warning) when it has none.

    Raises:
        ParameterError: the value is over :data:`~nbtoolkit._json.MAX_PARAM_CHARS` characters
            or holds an integer beyond 64 bits (see :func:`~nbtoolkit._json.check_param`).
    """
    try:
        clean = _json.to_jsonable(value)
    except (_json.NotSerializable, RecursionError):
        warnings.warn(
            f"Parameter {name!r} ({type(value).__name__}) is not JSON-serialisable; recorded as its repr.",
            NbToolkitWarning,
            stacklevel=3,
        )
        clean = repr(value)
    _json.check_param(name, clean)
    return clean


def clean_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validated names and JSON forms of parameter values (see :meth:`ActiveRun.log_params`)."""
    return {check_name(name, "Parameter"): jsonable_param(name, value) for name, value in values.items()}


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
    #: the ``nbtk run`` process that created this run (an adopted run): it records the terminal status
    runner_pid: int | None = None
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
        """Stop calling ``fn`` (no-op when it was not added)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(fn)

    def log_metric(self, name: str, value: Any, step: int | None = None) -> None:
        """Log one metric value, optionally as step ``step`` of a series (buffered)."""
        check_name(name, "Metric")
        fval = metric_value(name, value)
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
        """Record parameters (JSON forms; a repr with a warning for the rest).

        Raises:
            ParameterError: a parameter already holds a different value in this run, or a
                value is over the length limit or holds an integer beyond 64 bits.
        """
        clean = clean_params(values)
        for name, value in clean.items():
            if name in self.params and _json.dumps(self.params[name]) != _json.dumps(value):
                raise ParameterError(
                    f"Parameter {name!r} is already {_json.dumps(self.params[name])[:200]} in this run; "
                    f"it cannot become {_json.dumps(value)[:200]}. Parameters are a record: log the "
                    "new value under another name, or start a new run."
                )
        self.params.update(clean)
        self.store.log_params(self.run_id, clean)

    def set_tags(self, values: Mapping[str, Any]) -> None:
        """Attach string tags to this run."""
        tags = {check_name(k, "Tag"): str(v) for k, v in values.items()}
        self.store.set_tags(self.run_id, tags)

    # -------------------------------------------------------------- closing
    def close(self, status: str, *, error: str | None = None) -> None:
        """Flush, evaluate the verdict (finished runs only) and record the terminal status."""
        self._stop_flusher()
        verdict = None
        try:
            # a run that raised, was interrupted or crashed has no verdict: its metrics are partial
            verdict = self._verdict() if status == "finished" else None
        except Exception as exc:  # a verdict problem must not lose the run
            warnings.warn(f"Could not evaluate the verdict: {exc}", NbToolkitWarning, stacklevel=2)
        self.verdict = verdict
        self.status = status
        self.error = error
        if self.runner_pid is not None and status == "finished":
            # the notebook goes on after this cell: the run is finished only when the runner says
            # so; if the runner dies first, its dead pid makes the run "crashed", never "finished"
            self.store.adopt_run(
                self.run_id,
                experiment=self.experiment,
                pid=self.runner_pid,
                verdict=verdict.status if verdict is not None else None,
                verdict_detail=verdict.to_dict() if verdict is not None else None,
            )
            return
        self.store.finish_run(
            self.run_id,
            status=status,
            verdict=verdict.status if verdict is not None else None,
            verdict_detail=verdict.to_dict() if verdict is not None else None,
            error=error,
        )

    def _verdict(self) -> Verdict:
        """The verdict of this run's metrics against its declared criteria and baseline."""
        no_baseline = "no baseline declared" if self.declaration.baseline is None else None
        return evaluate_run(
            self.store,
            self.declaration.criteria,
            self.metrics,
            run_id=self.run_id,
            baseline_run_id=self.baseline_run_id,
            baseline_reason=self.baseline_reason or no_baseline,
        )

    def record(self) -> RunRecord:
        """The stored :class:`~nbtoolkit.store.RunRecord` of this run."""
        return self.store.get_runs([self.run_id])[0]

    def __repr__(self) -> str:
        return f"<ActiveRun {self.run_id[:8]} experiment={self.experiment!r} status={self.status!r}>"
