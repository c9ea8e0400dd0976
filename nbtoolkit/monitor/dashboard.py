"""The monitor's self-contained HTML dashboard: time series with SLA bands, slices, drift.

Rendered through the report templates (``monitor_dashboard.html.j2``, autoescaped, the reports'
Content-Security-Policy: no script, images as data URIs), so every model name, version, feature
and slice value from the log is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from nbtoolkit.html import PALETTE, SERIES_COLOURS
from nbtoolkit.monitor.core import MonitorResult, WindowReport
from nbtoolkit.monitor.record import MONITOR_KIND, RESULT_ARTIFACT
from nbtoolkit.report.plots import figure_uri, safe_plot
from nbtoolkit.report.render import environment, render

_COLORS = SERIES_COLOURS
_SLA_COLOR = PALETTE["red"]


def _label(text: Any) -> str:
    """User text for a plot label, ``$`` escaped so matplotlib never parses it as mathtext."""
    return str(text)[:60].replace("$", r"\$")


def _limit(result: MonitorResult, bound: str, metric: str) -> float | None:
    return next((r.limit for r in result.sla.rules if r.bound == bound and r.metric == metric), None)


def _band(ax: Any, result: MonitorResult, metric: str) -> None:
    """Shade the side of the SLA limit that breaches (above a max, below a min)."""
    for bound in ("max", "min"):
        limit = _limit(result, bound, metric)
        if limit is None:
            continue
        ax.axhline(limit, color=_SLA_COLOR, linestyle="--", linewidth=1, label=f"SLA {bound} {limit:g}")
        low, high = ax.get_ylim()
        if bound == "max":
            ax.axhspan(limit, max(high, limit * 1.1 + 1e-9), color=_SLA_COLOR, alpha=0.08)
        else:
            ax.axhspan(min(low, limit * 0.9), limit, color=_SLA_COLOR, alpha=0.08)


def _series(windows: Sequence[WindowReport], version: str, get: Any) -> tuple[list[Any], list[float]]:
    xs, ys = [], []
    for w in windows:
        value = get(w) if w.version == version else None
        if value is not None:
            xs.append(dt.datetime.fromtimestamp(w.start, tz=dt.UTC))
            ys.append(float(value))
    return xs, ys


def timeseries_plot(result: MonitorResult, quality_metric: str | None) -> str | None:
    """Four panels over the windows, one line per version: throughput, error rate, p95/p99 latency, quality."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not result.windows:
        return None
    fig = Figure(figsize=(11, 6.4), dpi=80, layout="tight")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(2, 2, i + 1) for i in range(4)]
    panels: list[tuple[str, str, Any]] = [
        ("throughput_rps", "rows / s", lambda w: w.traffic.throughput_rps),
        ("error_rate", "error rate", lambda w: w.traffic.error_rate),
        ("latency_p95_ms", "latency p95 / p99 (ms)", lambda w: w.traffic.latency_p95_ms),
    ]
    for ax, (metric, title, get) in zip(axes, panels, strict=False):
        for i, version in enumerate(result.versions):
            xs, ys = _series(result.windows, version, get)
            ax.plot(xs, ys, "o-", color=_COLORS[i % len(_COLORS)], label=_label(version), linewidth=1.4, markersize=3)
            if metric == "latency_p95_ms":
                xs, ys = _series(result.windows, version, lambda w: w.traffic.latency_p99_ms)
                ax.plot(xs, ys, ":", color=_COLORS[i % len(_COLORS)], label=_label(f"{version} p99"), linewidth=1.2)
        _band(ax, result, metric)
        if metric == "latency_p95_ms":
            _band(ax, result, "latency_p99_ms")
        ax.set_title(title, fontsize=10)
    ax = axes[3]
    if quality_metric is not None:
        for i, version in enumerate(result.versions):
            color = _COLORS[i % len(_COLORS)]
            mine = [w for w in result.windows if w.version == version]
            measured = [(w, w.measured[quality_metric]) for w in mine if quality_metric in w.measured]
            if measured:
                xs = [dt.datetime.fromtimestamp(w.start, tz=dt.UTC) for w, _ in measured]
                ys = [m.value for _, m in measured]
                lo = [m.value - (m.low if m.low is not None else m.value) for _, m in measured]
                hi = [(m.high if m.high is not None else m.value) - m.value for _, m in measured]
                ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=color, label=_label(f"{version} measured"),
                            linewidth=1.4, markersize=3, capsize=2)
            xs, ys = _series(mine, version, lambda w: w.estimated[quality_metric].value if quality_metric in w.estimated else None)
            if ys:
                ax.plot(xs, ys, "s--", color=color, alpha=0.7, label=_label(f"{version} estimated (CBPE)"), markersize=3)
        _band(ax, result, quality_metric)
        ax.set_title(_label(f"{quality_metric}: measured vs estimated"), fontsize=10)
    else:
        ax.set_visible(False)
    for a in axes:
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.autofmt_xdate()
    return figure_uri(fig)


def _quality_metric(data: dict[str, Any]) -> str | None:
    names = [k for w in data["windows"] for k in (*w["measured"], *w["estimated"])]
    for preferred in ("roc_auc", "accuracy", "rmse", "mae"):
        if preferred in names:
            return preferred
    return names[0] if names else None


def render_dashboard(result: MonitorResult, *, run_id: str | None = None, rollback: dict[str, Any] | None = None) -> str:
    """The dashboard HTML of ``result`` (self-contained; every value from the log escaped)."""
    metric = _quality_metric(result.to_dict())
    return render(
        "monitor_dashboard.html.j2", kind="monitor", title=f"Monitor: {result.model}", result=result,
        data=result.to_dict(), run_id=run_id, rollback=rollback, quality_metric=metric,
        plot=safe_plot(timeseries_plot, result, metric),
        window_text=_duration(result.window_seconds),
    )


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def report_section(record: Any, store: Any) -> tuple[str, str] | None:
    """Run-report section for runs of kind ``monitor`` (entry point ``nbtoolkit.report_sections``).

    The tables of the dashboard from the run's stored ``monitor.json`` (the time-series figure
    lives in the dashboard file only); every value escaped by the template.
    """
    import json

    ref = record.artifact(RESULT_ARTIFACT) if record.kind == MONITOR_KIND else None
    if ref is None:
        return None
    data = json.loads(store.artifacts.read_bytes(ref.digest))
    html = environment().get_template("monitor_body.html.j2").render(
        data=data, plot=None, run_id=record.run_id, rollback=None, quality_metric=_quality_metric(data),
        window_text=_duration(float(data["window_seconds"])))
    return f"Production monitor: {data['model']}", f'<div class="nbtk-monitor">{html}</div>'
