"""Live progress of step metrics inside a running ``%%experiment`` cell.

The magic attaches a :class:`LiveProgress` listener to the run. Nothing is displayed until the
first metric logged *with a step* arrives; then one output is created (an IPython display
handle) and updated in place with the latest values and an inline SVG sparkline per metric.
Updates are throttled by time, and the interval grows with the cost of a render, so rendering
stays under ~2 % of the cell's time; most calls cost one bit test (see
:class:`LiveProgress`). The final state is rendered when the run ends. Plain HTML/SVG (no widget state), so the output
survives in saved and papermill-executed notebooks.

Only stdlib imports at module level: the magic imports this module in every cell.
"""

from __future__ import annotations

import os
import time
from typing import Any

from nbtoolkit.html import PALETTE, esc, fmt_number

MIN_INTERVAL_S = 0.5
RENDER_BUDGET = 0.02  # fraction of wall time spent rendering
MAX_POINTS = 256  # curve points kept per series (between MAX_POINTS and 2 * MAX_POINTS)
MAX_SERIES = 8


def sparkline_svg(points: list[tuple[int, float]], *, width: int = 160, height: int = 32,
                  max_points: int = MAX_POINTS) -> str:
    """An inline SVG polyline of ``(step, value)`` points (non-finite values skipped)."""
    pts = [(s, v) for s, v in points if v == v and abs(v) != float("inf")]
    if len(pts) > max_points:
        stride = -(-len(pts) // max_points)
        pts = pts[::stride] + ([pts[-1]] if (len(pts) - 1) % stride else [])
    if len(pts) < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    dx = (x1 - x0) or 1
    dy = (y1 - y0) or 1
    coords = " ".join(
        f"{2 + (x - x0) / dx * (width - 4):.1f},{height - 2 - (y - y0) / dy * (height - 4):.1f}"
        for x, y in pts
    )
    return (
        f'<svg class="nbtk-sparkline" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><polyline fill="none" stroke="{PALETTE["blue"]}" stroke-width="1.5" '
        f'points="{coords}"/></svg>'
    )


class LiveProgress:
    """A throttled, updating display of step metrics.

    ``listener`` is what goes to ``ActiveRun.add_listener``. To stay cheap it keeps only the
    steps that are multiples of a stride (1, 2, 4, ... doubled whenever a series holds
    ``2 * MAX_POINTS`` points) for the curves; the values shown as "latest" come from the run
    itself, so they are exact. Most calls return after one bit test.

    Args:
        experiment: shown in the header.
        run: the active run (latest values and steps are read from it); optional.
        interval: minimum seconds between two updates.
        display: ``display(obj, display_id=True)``-like function (default IPython's).
    """

    def __init__(self, experiment: str = "", *, run: Any = None, interval: float = MIN_INTERVAL_S,
                 display: Any = None) -> None:
        self.experiment = experiment
        self.run = run
        self.interval = interval
        self.series: dict[str, list[tuple[int, float]]] = {}
        self.updates = 0
        self.finished = False
        self._display = display
        self._handle: Any = None
        self._due = 0.0
        self._started = time.monotonic()
        self.listener = self._make_listener()

    def _make_listener(self) -> Any:
        series = self.series
        monotonic = time.monotonic
        mask = 0  # keep steps with step & mask == 0

        def listener(name: str, value: float, step: int | None) -> None:
            nonlocal mask
            if step is None or step & mask:
                return
            points = series.get(name)
            if points is None:
                if len(series) >= MAX_SERIES:
                    return
                points = series[name] = []
            points.append((step, value))
            if len(points) >= 2 * MAX_POINTS:
                mask = mask * 2 + 1
                for key, pts in series.items():
                    series[key] = [p for p in pts if not p[0] & mask]
            if monotonic() >= self._due:
                self.update()

        return listener

    def __call__(self, name: str, value: float, step: int | None) -> None:
        self.listener(name, value, step)

    def update(self) -> None:
        """Render now (creating the display on first use) and schedule the next update."""
        t0 = time.monotonic()
        if self._handle is None:
            show = self._display
            if show is None:
                from IPython.display import display as show
            self._handle = show(self, display_id=True)
        else:
            self._handle.update(self)
        self.updates += 1
        cost = time.monotonic() - t0
        self._due = time.monotonic() + max(self.interval, cost / RENDER_BUDGET)

    def finish(self) -> None:
        """Detach from the run and render the final state (no-op when no step metric came)."""
        self.finished = True
        if self.run is not None:
            self.run.remove_listener(self.listener)
        if self._handle is not None:
            self.update()

    # ------------------------------------------------------------------ rendering
    def latest(self) -> dict[str, tuple[int, float]]:
        """``{metric: (step, value)}``: the run's exact last values (else the last kept point)."""
        out = {name: s[-1] for name, s in self.series.items() if s}
        if self.run is not None:
            metrics, steps = self.run.metrics, getattr(self.run, "_steps", {})
            for name in out:
                if name in metrics and steps.get(name) is not None:
                    out[name] = (steps[name], metrics[name])
        return out

    def _repr_html_(self) -> str:
        elapsed = time.monotonic() - self._started
        state = "finished" if self.finished else "running"
        rows = []
        latest = self.latest()
        for name, series in self.series.items():
            step, value = latest[name]
            rows.append(
                f'<tr class="nbtk-progress-metric" data-metric="{esc(name)}">'
                f"<td><b>{esc(name)}</b></td><td>step {esc(step)}</td>"
                f'<td class="nbtk-progress-value">{esc(fmt_number(value))}</td>'
                f"<td>{sparkline_svg([*series, (step, value)])}</td></tr>"
            )
        return (
            f'<div class="nbtk-progress" data-state="{state}" style="font-family:system-ui,sans-serif;'
            f'font-size:12px;border-left:3px solid {PALETTE["blue"]};padding:2px 8px">'
            f"<div>{esc(self.experiment)} — {state}, {elapsed:.1f} s</div>"
            f'<table style="border-collapse:collapse">{"".join(rows)}</table></div>'
        )

    def __repr__(self) -> str:
        parts = [f"{n}[{s}]={fmt_number(v)}" for n, (s, v) in self.latest().items()]
        state = "finished" if self.finished else "running"
        return f"{self.experiment} ({state}): " + ", ".join(parts)


def progress_enabled() -> bool:
    """Live progress is on inside Jupyter kernels unless ``NBTOOLKIT_PROGRESS=0``."""
    if os.environ.get("NBTOOLKIT_PROGRESS", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def attach_progress(run: Any) -> LiveProgress | None:
    """Attach a :class:`LiveProgress` to an active run when running in a kernel.

    Returns:
        The listener (call its :meth:`~LiveProgress.finish` when the run ends), or ``None``.
    """
    if not progress_enabled():
        return None
    progress = LiveProgress(run.experiment, run=run)
    run.add_listener(progress.listener)
    return progress
