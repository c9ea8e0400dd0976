"""Report plots: matplotlib (Agg canvas, no pyplot, no global backend change) to PNG data URIs."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbtoolkit.html import PALETTE, SERIES_COLOURS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from nbtoolkit.stats import Predictions

MAX_PANELS = 12
_COLORS = SERIES_COLOURS


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    """Bytes as a ``data:`` URI."""
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _figure(n_panels: int, *, width: float = 4.2, height: float = 3.0) -> tuple[Figure, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, max(1, n_panels))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, height * rows), dpi=80, layout="tight")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def figure_uri(fig: Figure) -> str:
    """Render a figure to a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return data_uri(buf.getvalue())


def safe_plot(fn: Any, *args: Any, **kwargs: Any) -> str | None:
    """Call a plot function; a plotting failure yields no plot rather than no report."""
    try:
        result: str | None = fn(*args, **kwargs)
    except Exception:  # matplotlib can fail on odd data; the tables still carry the numbers
        return None
    return result


def _label(text: Any, limit: int = 60) -> str:
    """User text for a plot label: shortened, ``$`` escaped so it is never parsed as mathtext."""
    s = str(text)
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _style(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(_label(title), fontsize=10)
    ax.set_xlabel(_label(xlabel), fontsize=9)
    ax.set_ylabel(_label(ylabel), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)


def step_curves(
    series: Mapping[str, Sequence[tuple[int, float]]],
    *,
    baseline: Mapping[str, Sequence[tuple[int, float]]] | None = None,
    labels: tuple[str, str] = ("this run", "baseline"),
) -> str | None:
    """One panel per metric logged with steps (baseline dashed); ``None`` when there are none."""
    names = [n for n, s in series.items() if len(s) > 0][:MAX_PANELS]
    if not names:
        return None
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names, strict=True):
        steps, values = zip(*series[name], strict=True)
        ax.plot(steps, values, color=_COLORS[0], label=_label(labels[0]), linewidth=1.5)
        other = (baseline or {}).get(name)
        if other:
            bs, bv = zip(*other, strict=True)
            ax.plot(bs, bv, color=_COLORS[5], linestyle="--", label=_label(labels[1]), linewidth=1.2)
            ax.legend(fontsize=8)
        _style(ax, name, "step", name)
    return figure_uri(fig)


def _roc(t: Any, s: Any) -> tuple[Any, Any]:
    import numpy as np

    order = np.argsort(-s, kind="mergesort")
    t, s = t[order], s[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0, tps] / max(tps[-1], 1)
    fpr = np.r_[0, fps] / max(fps[-1], 1)
    return fpr, tpr


def _pr(t: Any, s: Any) -> tuple[Any, Any]:
    import numpy as np

    order = np.argsort(-s, kind="mergesort")
    t, s = t[order], s[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(t)[distinct]
    precision = tps / (distinct + 1)
    recall = tps / max(tps[-1], 1)
    return np.r_[0, recall], np.r_[1, precision]


def roc_pr_curves(curves: Mapping[str, Predictions]) -> str | None:
    """ROC and precision-recall panels for every labelled prediction set that holds scores."""
    usable = {}
    for label, pred in curves.items():
        view = pred.view("scores") if pred is not None and pred.has_scores else None
        if view is not None and 0 < int(view[0].sum()) < len(view[0]):
            usable[label] = view
    if not usable:
        return None
    fig, (roc_ax, pr_ax) = _figure(2, width=4.0, height=3.4)
    for i, (label, (t, s)) in enumerate(usable.items()):
        color = _COLORS[i % len(_COLORS)]
        fpr, tpr = _roc(t, s)
        roc_ax.plot(fpr, tpr, color=color, label=label, linewidth=1.5)
        rec, prec = _pr(t, s)
        pr_ax.step(rec, prec, where="post", color=color, label=label, linewidth=1.5)
    roc_ax.plot([0, 1], [0, 1], color=PALETTE["grey_light"], linestyle=":", linewidth=1)
    _style(roc_ax, "ROC curve", "false positive rate", "true positive rate")
    _style(pr_ax, "Precision-recall", "recall", "precision")
    roc_ax.legend(fontsize=8, loc="lower right")
    pr_ax.legend(fontsize=8, loc="lower left")
    return figure_uri(fig)


def _axis_values(xs: Sequence[Any]) -> tuple[list[float], list[float], list[str]] | None:
    """Positions for a parameter axis: numbers as they are, anything else as categories.

    Returns:
        ``(positions, tick positions, tick labels)``, or None when there is nothing to place.
    """
    if not xs:
        return None
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs):
        ticks = sorted({float(x) for x in xs})
        return [float(x) for x in xs], ticks, [_label(f"{t:g}", 12) for t in ticks]
    cats = sorted({str(x) for x in xs})
    pos = {c: float(i) for i, c in enumerate(cats)}
    return [pos[str(x)] for x in xs], list(pos.values()), [_label(c, 12) for c in cats]


def param_vs_metric(runs: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str, *,
                    higher: bool = True) -> str | None:
    """One panel per parameter: the metric of every run against that parameter's value.

    ``runs`` items hold ``params`` and ``metrics`` dicts. Numeric parameters are placed on a
    numeric axis (log scale when they span two decades or more), others on a categorical one;
    ticks sit at the values tried; the mean per value is joined by a line and the best run
    (``higher``: whether higher is better) is ringed, so the trend reads at a glance.
    """
    names = [p for p in params][:MAX_PANELS]
    points = [(r["params"], r["metrics"].get(metric)) for r in runs]
    points = [(p, m) for p, m in points if isinstance(m, (int, float)) and math.isfinite(m)]
    if not names or not points:
        return None
    best = (max if higher else min)(range(len(points)), key=lambda i: points[i][1])
    fig, axes = _figure(len(names), width=4.0, height=3.2)
    for ax, name in zip(axes, names, strict=True):
        placed = _axis_values([p.get(name) for p, _ in points])
        if placed is None:
            continue
        xs, ticks, tick_labels = placed
        ys = [m for _, m in points]
        ax.scatter(xs, ys, s=36, color=_COLORS[0], alpha=0.8, zorder=3)
        means = {t: [y for x, y in zip(xs, ys, strict=True) if x == t] for t in ticks}
        ax.plot(ticks, [sum(v) / len(v) for v in means.values()], color=_COLORS[0], alpha=0.5, linewidth=1.2,
                label="mean per value")
        ax.scatter([xs[best]], [ys[best]], s=110, facecolors="none", edgecolors=PALETTE["text"], linewidths=1.4,
                   zorder=4, label="best run")
        positive = [x for x in xs if x > 0]
        numeric = all(isinstance(p.get(name), (int, float)) for p, _ in points)
        if numeric and len(positive) == len(xs) and max(positive) / min(positive) >= 100:
            ax.set_xscale("log")
        if len(ticks) <= 12:
            ax.set_xticks(ticks, tick_labels, rotation=30 if not numeric else 0, ha="right" if not numeric else "center")
        _style(ax, f"{metric} by {name}", name, metric)
        ax.legend(fontsize=7, loc="best")
    return figure_uri(fig)


def parallel_coordinates(runs: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str, *,
                         higher: bool = True) -> str | None:
    """One line per run across an axis per parameter and a last axis for the metric.

    Each axis is scaled to its own range and labelled with its values; lines are coloured by the
    metric (dark = best), so the combinations that do well stand out. Meant for three or more
    parameters, where one panel per parameter hides the interactions.
    """
    from matplotlib import colormaps

    names = list(params)[:MAX_PANELS]
    rows = [(r["params"], r["metrics"].get(metric)) for r in runs]
    rows = [(p, m) for p, m in rows if isinstance(m, (int, float)) and math.isfinite(m)]
    if len(names) < 2 or len(rows) < 2:
        return None
    columns: list[tuple[list[float], list[float], list[str]]] = []
    for name in [*names, metric]:
        values = [m for _, m in rows] if name == metric else [p.get(name) for p, _ in rows]
        placed = _axis_values(values)
        if placed is None:
            return None
        columns.append(placed)
    scaled = []
    for xs, _, _ in columns:
        lo, hi = min(xs), max(xs)
        scaled.append([(x - lo) / (hi - lo) if hi > lo else 0.5 for x in xs])
    metric_col = columns[-1][0]
    lo, hi = min(metric_col), max(metric_col)
    cmap = colormaps["viridis_r" if higher else "viridis"]
    fig, (ax,) = _figure(1, width=max(6.0, 1.6 * (len(names) + 1)), height=3.8)
    order = sorted(range(len(rows)), key=lambda i: metric_col[i] if higher else -metric_col[i])
    for i in order:  # best drawn last, on top
        shade = (metric_col[i] - lo) / (hi - lo) if hi > lo else 1.0
        ax.plot(range(len(columns)), [col[i] for col in scaled], color=cmap(shade), linewidth=1.6, alpha=0.85)
    for j, (xs, ticks, tick_labels) in enumerate(columns):
        ax.axvline(j, color=PALETTE["grey_light"], linewidth=1)
        lo_j, hi_j = min(xs), max(xs)
        shown = list(zip(ticks, tick_labels, strict=True))
        if len(shown) > 6:
            shown = [shown[0], shown[len(shown) // 2], shown[-1]]
        for t, text in shown:
            ax.text(j + 0.04, (t - lo_j) / (hi_j - lo_j) if hi_j > lo_j else 0.5, text, fontsize=7,
                    va="center", color=PALETTE["text"], zorder=5,
                    bbox={"facecolor": PALETTE["white"], "edgecolor": "none", "alpha": 0.85, "pad": 1})
    ax.set_xticks(range(len(columns)), [_label(n, 16) for n in [*names, metric]], fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(columns) - 0.6)
    ax.set_title(_label(f"Parallel coordinates: parameters and {metric} (dark = best)"), fontsize=10)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return figure_uri(fig)
