"""Watching a served model: ``nbtk monitor`` and ``nbtk abtest`` over the prediction log.

Modules: :mod:`~nbtoolkit.monitor.windows` (time windows, traffic, latency),
:mod:`~nbtoolkit.monitor.quality` (measured metrics, intervals, Fairlearn slices),
:mod:`~nbtoolkit.monitor.drift` (PSI and KS per feature), :mod:`~nbtoolkit.monitor.cbpe`
(estimated quality before labels arrive), :mod:`~nbtoolkit.monitor.core` (the pure
``monitor`` function), :mod:`~nbtoolkit.monitor.record` (log source, monitor runs, rollback),
:mod:`~nbtoolkit.monitor.dashboard` (HTML) and :mod:`~nbtoolkit.monitor.abtest`.
"""

from __future__ import annotations

from nbtoolkit.monitor.core import MonitorResult, WindowReport, monitor

__all__ = ["MonitorResult", "WindowReport", "monitor"]
