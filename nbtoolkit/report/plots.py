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


def param_vs_metric(runs: Sequence[Mapping[str, Any]], params: Sequence[str], metric: str) -> str | None:
    """One panel per parameter: the metric of every run against that parameter's value.

    ``runs`` items hold ``params`` and ``metrics`` dicts. Numeric parameters are scattered on a
    numeric axis (log scale when they span several decades); others on a categorical axis.
    """
    names = [p for p in params][:MAX_PANELS]
    points = [(r["params"], r["metrics"].get(metric)) for r in runs]
    points = [(p, m) for p, m in points if isinstance(m, (int, float)) and math.isfinite(m)]
    if not names or not points:
        return None
    fig, axes = _figure(len(names), width=3.6, height=2.8)
    for ax, name in zip(axes, names, strict=True):
        xs = [p.get(name) for p, _ in points]
        ys = [m for _, m in points]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        if numeric:
            ax.scatter(xs, ys, s=14, color=_COLORS[0], alpha=0.75)
            positive = [x for x in xs if x > 0]
            if len(positive) == len(xs) and max(positive) / min(positive) >= 100:
                ax.set_xscale("log")
        else:
            cats = sorted({str(x) for x in xs})
            pos = {c: i for i, c in enumerate(cats)}
            ax.scatter([pos[str(x)] for x in xs], ys, s=14, color=_COLORS[0], alpha=0.75)
            ax.set_xticks(range(len(cats)), [_label(c, 14) for c in cats], rotation=30, ha="right")
        _style(ax, f"{metric} vs {name}", name, metric)
    return figure_uri(fig)
