"""Live canary routing: which rows the challenger answers, and when to stop sending it any.

Routing uses the same deterministic bucketing as feature-flag rollouts and the canary
simulation (:func:`nbtoolkit.stability._common.bucket`): a row goes to the challenger when
``bucket(key, salt) < percent * 100``. Shares grow monotonically, so a key routed to the
challenger at 5 % stays routed at 25 %. A row without a key is bucketed by its row id.

With a plan (the steps of the challenger bundle's ``release.json``), each step is held until
the challenger answered at least ``min_rows`` rows in it, ``window`` seconds passed, and the SLA
holds on the step's rows; then the next step starts. When the last step (100 %) has held, the
plan is complete: the server promotes the challenger (:mod:`nbtoolkit.serve.control`) and calls
:meth:`CanaryRouter.finish`. Without a plan the share stays at ``percent``.

The SLA (error rate, latency percentiles of the per-row latency, and quality metrics once
labels have been joined) is checked over the current step's rows (at least ``min_rows`` of
them) after every failed challenger call and at most every ``JUDGE_EVERY`` seconds otherwise. The first breach halts the canary at once: from the next row
on, every row goes to the champion. Rolling the registry alias back is the server's job
(:mod:`nbtoolkit.serve.control`), outside the request path.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit.export.release import DEFAULT_SALT
from nbtoolkit.policy import Sla, SlaReport
from nbtoolkit.stability._common import bucket, latency_stats

#: SLA metrics measured from the traffic itself (everything else needs labels).
#: Successful challenger calls are judged at most this often (seconds); failures at once.
JUDGE_EVERY = 0.05
#: The SLA of a step is judged on at most this many of its latest challenger rows.
WINDOW_ROWS = 5000
TRAFFIC_METRICS = ("error_rate", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_mean_ms")


@dataclass
class Halt:
    """Why and when the canary stopped routing to the challenger."""

    reason: str
    at: float
    pct: float
    report: SlaReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "at": self.at, "pct": self.pct,
                "sla": None if self.report is None else self.report.to_dict()}


@dataclass
class _Window:
    started: float
    ok: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW_ROWS))
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW_ROWS))


class CanaryRouter:
    """Thread-safe routing state of a live canary.

    Args:
        percent: the challenger's share when there is no plan.
        sla: the thresholds a step must hold.
        steps: the plan's shares (increasing, ending at 100), or ``None``.
        salt: bucketing salt.
        min_rows: challenger rows a step needs before the SLA is judged.
        window: shortest time a plan step is held (seconds).
    """

    def __init__(
        self, *, percent: float, sla: Sla, steps: Sequence[float] | None = None, salt: str = DEFAULT_SALT,
        min_rows: int = 20, window: float = 10.0,
    ) -> None:
        self.steps = tuple(float(s) for s in steps) if steps else None
        self.step = 0
        self.base_percent = float(self.steps[0] if self.steps else percent)
        self.sla = sla
        self.salt = salt
        self.min_rows = min_rows
        self.window = window
        self.halt: Halt | None = None
        self.flag_off = False
        self.flag_percent: float | None = None
        self.completed = False
        self.completion: str | None = None  # why the plan completed (the promotion's reason)
        self.promoted = False  # the challenger became the champion: nothing is routed any more
        self._win = _Window(time.time())
        self._judged = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()

    @property
    def percent(self) -> float:
        """The share routed to the challenger now (0 when halted or switched off)."""
        if self.halt is not None or self.flag_off or self.promoted:
            return 0.0
        return self.flag_percent if self.flag_percent is not None else self.base_percent

    @property
    def wake(self) -> threading.Event:
        """Set when the canary halts or its plan completes (the controller waits on it to act at once)."""
        return self._wake

    def route(self, keys: Sequence[str | None], row_ids: Sequence[str]) -> list[bool]:
        """True for each row the challenger answers."""
        pct = self.percent
        if pct <= 0:
            return [False] * len(row_ids)
        limit = pct * 100
        return [bucket(k if k is not None else r, salt=self.salt) < limit for k, r in zip(keys, row_ids, strict=True)]

    def set_flag(self, value: Any) -> None:
        """Apply the canary flag: ``False`` switches the challenger off, a number sets the share."""
        with self._lock:
            if isinstance(value, bool):
                self.flag_off, self.flag_percent = not value, None
            elif isinstance(value, (int, float)):
                self.flag_off, self.flag_percent = value <= 0, min(max(float(value), 0.0), 100.0)
            else:
                self.flag_off, self.flag_percent = not bool(value), None

    def record(self, *, rows: int, ok: bool, latency_ms: float) -> Halt | None:
        """Add one challenger call (``rows`` rows, per-row latency) and judge the step."""
        with self._lock:
            if self.halt is not None:
                return self.halt
            self._win.ok.extend([ok] * rows)
            self._win.latency_ms.extend([latency_ms] * rows if ok else [])
            now = time.monotonic()
            if now - self._judged < JUDGE_EVERY and ok:  # failures are judged at once
                return None
            self._judged = now
        return self.judge()

    def measured(self) -> dict[str, float]:
        """Error rate and latency percentiles of the challenger over the current step."""
        with self._lock:
            n = len(self._win.ok)
            if n == 0:
                return {}
            out = {"error_rate": (n - sum(self._win.ok)) / n}
            out.update(latency_stats(self._win.latency_ms) if self._win.latency_ms else {})
            return out

    def step_started(self) -> float:
        return self._win.started

    def judge(self, quality: Mapping[str, float] | None = None) -> Halt | None:
        """Check the SLA on the current step; halt on a breach, advance a plan step when it passed."""
        with self._lock:
            rows = len(self._win.ok)
            if self.halt is not None or rows < self.min_rows:
                return self.halt
        measured = {**self.measured(), **dict(quality or {})}
        report = self.sla.check(measured, strict=False)
        with self._lock:
            if self.halt is not None:
                return self.halt
            if report.breaches:
                reason = "canary SLA breach at {:g}% on {} challenger rows: {}".format(
                    self.percent, rows, "; ".join(b.describe() for b in report.breaches))
                self.halt = Halt(reason, time.time(), self.percent, report)
                self._wake.set()
                return self.halt
            if self.steps and not self.completed and time.time() - self._win.started >= self.window:
                if self.step + 1 < len(self.steps):
                    self.step += 1
                    self.base_percent = self.steps[self.step]
                    self._win = _Window(time.time())
                else:
                    self.completed = True
                    held = time.time() - self._win.started
                    self.completion = (f"canary plan completed: step {self.steps[self.step]:g}% passed the SLA "
                                       f"on {rows} challenger rows in {held:.0f} s")
                    self._wake.set()
        return None

    def finish(self) -> None:
        """The challenger was promoted: it answers as the champion now, nothing is routed."""
        with self._lock:
            self.promoted = True

    def stop(self, reason: str) -> Halt:
        """Halt for a reason found outside the request path (e.g. a quality metric)."""
        with self._lock:
            if self.halt is None:
                self.halt = Halt(reason, time.time(), self.percent)
                self._wake.set()
            return self.halt

    def state(self) -> dict[str, Any]:
        """A JSON-compatible summary for ``/health``."""
        return {
            "percent": self.percent, "plan": list(self.steps) if self.steps else None, "step": self.step,
            "completed": self.completed, "completion": self.completion, "promoted": self.promoted,
            "switched_off": self.flag_off,
            "halt": None if self.halt is None else self.halt.to_dict(),
            "step_rows": len(self._win.ok), "measured": self.measured(),
        }
