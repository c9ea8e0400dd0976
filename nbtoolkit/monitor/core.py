"""``monitor``: one pure function from a prediction log frame to every number the monitor shows.

Per model version and time window: traffic, throughput, error rate, latency percentiles,
quality measured on labelled rows (with intervals) or, until labels arrive, estimated by CBPE
from the model's probabilities; fairness per slice; input drift against the training
reference; and the SLA check of the window. The CLI, the dashboard and the REST endpoint all
read the :class:`MonitorResult` this returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit.monitor.cbpe import (
    Calibrator,
    MulticlassCalibrator,
    estimate_binary,
    estimate_multiclass,
)
from nbtoolkit.monitor.drift import FeatureDrift, drift_table, inputs_frame
from nbtoolkit.monitor.quality import (
    RESAMPLES,
    WINDOW_RESAMPLES,
    MetricValue,
    SliceMetrics,
    labelled_rows,
    measured_quality,
    slice_metrics,
)
from nbtoolkit.monitor.windows import Traffic, check_frame, parse_duration, traffic, window_starts
from nbtoolkit.policy import Sla, SlaBreach, SlaReport

if TYPE_CHECKING:
    import pandas as pd

#: measured quality replaces the estimate once this share of a window's answered rows is labelled
MIN_LABEL_SHARE = 0.5


@dataclass(frozen=True)
class WindowReport:
    """The numbers of one model version in one window (or over the whole period).

    Attributes:
        start / end: window bounds (unix seconds).
        version: the model version.
        traffic: rows, requests, throughput, error rate, latency percentiles, labelled rows.
        measured: quality on the labelled rows, with bootstrap intervals.
        estimated: CBPE estimates from the probabilities of every answered row.
        slices: per-slice metrics and worst-slice gaps (one entry per slice column and metric).
        sla: the SLA check of this window (None when no SLA is configured).
    """

    start: float
    end: float
    version: str
    traffic: Traffic
    measured: dict[str, MetricValue] = field(default_factory=dict)
    estimated: dict[str, MetricValue] = field(default_factory=dict)
    slices: tuple[SliceMetrics, ...] = ()
    sla: SlaReport | None = None

    @property
    def label_share(self) -> float:
        """Share of the answered rows whose label has joined."""
        answered = self.traffic.rows * (1 - (self.traffic.error_rate or 0.0))
        return self.traffic.labelled / answered if answered > 0 else 0.0

    @property
    def quality(self) -> dict[str, MetricValue]:
        """Measured quality once enough labels joined (see ``MIN_LABEL_SHARE``), else the estimate."""
        if self.measured and (self.label_share >= MIN_LABEL_SHARE or not self.estimated):
            return dict(self.measured)
        return dict(self.estimated)

    def metrics(self) -> dict[str, float]:
        """Every number by the name an SLA rule uses: traffic, measured quality, ``<metric>_slice_gap``."""
        values = self.traffic.metrics()
        values.update({k: v.value for k, v in self.measured.items() if math.isfinite(v.value)})
        values.update({f"estimated_{k}": v.value for k, v in self.estimated.items() if math.isfinite(v.value)})
        for s in self.slices:
            key = f"{s.metric}_slice_gap"
            values[key] = max(values.get(key, 0.0), s.gap)
        return values

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "start": self.start, "end": self.end, "version": self.version,
            "traffic": {k: (v if v is None or math.isfinite(v) else None) for k, v in vars(self.traffic).items()},
            "label_share": self.label_share,
            "measured": {k: v.to_dict() for k, v in self.measured.items()},
            "estimated": {k: v.to_dict() for k, v in self.estimated.items()},
            "quality": {k: v.to_dict() for k, v in self.quality.items()},
            "slices": [s.to_dict() for s in self.slices],
            "sla": self.sla.to_dict() if self.sla is not None else None,
        }


@dataclass(frozen=True)
class DriftWindow:
    """Input drift of one window (all versions: inputs do not depend on the model)."""

    start: float
    end: float
    features: tuple[FeatureDrift, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"start": self.start, "end": self.end, "features": [f.to_dict() for f in self.features]}


@dataclass(frozen=True)
class Breach:
    """An SLA rule that did not hold for one version in one window."""

    version: str
    start: float
    end: float
    breach: SlaBreach

    def describe(self) -> str:
        """E.g. ``"1.1.0 in window 2026-12-01 10:00 UTC: error_rate = 0.2 > max 0.05"``."""
        import datetime as dt

        when = dt.datetime.fromtimestamp(self.start, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return f"{self.version} in window {when}: {self.breach.describe()}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"version": self.version, "start": self.start, "end": self.end, **self.breach.to_dict(),
                "text": self.describe()}


@dataclass(frozen=True)
class MonitorResult:
    """Everything ``nbtk monitor`` computed over a log frame.

    Attributes:
        model: the model name.
        window_seconds: the window length.
        windows: one report per (window, version), in time order.
        overall: one report per version over the whole period.
        drift: drift per window; drift_overall: over the whole period.
        sla: the SLA applied (empty when none is configured).
        slice_columns: the slice columns asked for.
    """

    model: str
    window_seconds: float
    windows: tuple[WindowReport, ...]
    overall: tuple[WindowReport, ...]
    drift: tuple[DriftWindow, ...] = ()
    drift_overall: tuple[FeatureDrift, ...] = ()
    sla: Sla = field(default_factory=Sla)
    slice_columns: tuple[str, ...] = ()

    @property
    def breaches(self) -> list[Breach]:
        """Every SLA breach of every window, in time order."""
        return [Breach(w.version, w.start, w.end, b) for w in self.windows if w.sla is not None for b in w.sla.breaches]

    @property
    def ok(self) -> bool:
        """No window breached the SLA."""
        return all(w.sla is None or w.sla.ok for w in self.windows)

    @property
    def versions(self) -> list[str]:
        """Versions seen in the log, in order of first appearance."""
        return list(dict.fromkeys(w.version for w in self.overall))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (no NaN or infinity anywhere)."""
        return {
            "schema": "nbtoolkit.monitor.v1", "model": self.model, "window_seconds": self.window_seconds,
            "ok": self.ok, "versions": self.versions, "sla": self.sla.to_dict(), "slice_columns": list(self.slice_columns),
            "breaches": [b.to_dict() for b in self.breaches],
            "overall": [w.to_dict() for w in self.overall], "windows": [w.to_dict() for w in self.windows],
            "drift_overall": [f.to_dict() for f in self.drift_overall], "drift": [d.to_dict() for d in self.drift],
        }

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.breaches)} SLA breach(es)"
        rows = sum(w.traffic.rows for w in self.overall)
        return (f"<MonitorResult {self.model}: {rows} rows, versions {', '.join(self.versions) or '-'}, "
                f"{len(self.windows)} window reports, {state}>")


def _estimate(rows: pd.DataFrame, calibrator: Calibrator | MulticlassCalibrator | None, positive: Any) -> dict[str, MetricValue]:
    import numpy as np

    done = rows[rows["ok"]]
    scored = done[done["score"].notna()]
    if len(scored):
        predicted = np.array([same_label(p, positive) for p in scored["prediction"]])
        binary = calibrator if isinstance(calibrator, Calibrator) else None
        values = estimate_binary(scored["score"].astype(float).to_numpy(), predicted, calibrator=binary)
        return {k: MetricValue(v, None, None, len(scored), estimated=True) for k, v in values.items()}
    with_proba = done[done["proba"].notna()]
    if len(with_proba):
        proba = np.array(with_proba["proba"].tolist(), dtype=float)
        multi = calibrator if isinstance(calibrator, MulticlassCalibrator) else None
        if multi is not None and proba.ndim == 2 and proba.shape[1] == len(multi.classes):
            classes = list(multi.classes)  # the classes of the whole log, not only of this window
        else:
            classes = sorted(set([*with_proba["prediction"].tolist(), *rows["label"].dropna().tolist()]), key=str)
        if proba.ndim == 2 and proba.shape[1] == len(classes):
            values = estimate_multiclass(proba, with_proba["prediction"].tolist(), classes, calibrator=multi)
            return {k: MetricValue(v, None, None, len(with_proba), estimated=True) for k, v in values.items()}
    return {}


def same_label(a: Any, b: Any) -> bool:
    """Whether two labels are the same class: ``1``, ``1.0`` and ``True`` are; ``"1"`` and ``1`` too."""
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def positive_class(frame: pd.DataFrame) -> Any:
    """The label a positive-class score refers to: the commonest prediction among rows scored at or above 0.5."""
    high = frame[frame["ok"] & frame["score"].notna()]
    high = high[high["score"].astype(float) >= 0.5]["prediction"]
    if high.empty:
        return 1
    return high.value_counts().index[0]


def fit_calibrator(frame: pd.DataFrame, *, min_rows: int = 200) -> Calibrator | MulticlassCalibrator | None:
    """Isotonic calibration fitted on the log's labelled rows (None with fewer than ``min_rows`` or one class).

    Binary scores get one calibrator; class probabilities (``proba``, in sorted class order) one
    per class, one-vs-rest, when every class of the log has labelled rows.
    """
    rows = frame[frame["ok"] & frame["label"].notna() & frame["score"].notna()]
    if len(rows) < min_rows:
        return _fit_multiclass(frame, min_rows)
    positive = positive_class(frame)
    truth = [1.0 if same_label(v, positive) else 0.0 for v in rows["label"]]
    if len(set(truth)) < 2:
        return None
    return Calibrator.fit(rows["score"].astype(float).to_numpy(), truth)


def _fit_multiclass(frame: pd.DataFrame, min_rows: int) -> MulticlassCalibrator | None:
    import numpy as np

    done = frame[frame["ok"] & frame["proba"].notna()]
    rows = done[done["label"].notna()]
    if len(rows) < min_rows:
        return None
    proba = np.array(rows["proba"].tolist(), dtype=float)
    classes = sorted(set([*done["prediction"].tolist(), *rows["label"].tolist()]), key=str)
    labels = rows["label"].tolist()
    if proba.ndim != 2 or proba.shape[1] != len(classes) or any(not any(same_label(y, c) for y in labels) for c in classes):
        return None
    canonical = [next(c for c in classes if same_label(y, c)) for y in labels]  # 1.0 and 1 are one class
    return MulticlassCalibrator.fit(proba, canonical, classes)


def _report(rows: pd.DataFrame, start: float, end: float, version: str, *, sla: Sla, slices: Sequence[str],
            metrics: Sequence[str] | None, calibrator: Calibrator | MulticlassCalibrator | None, positive: Any,
            resamples: int) -> WindowReport:
    labelled = labelled_rows(rows)
    measured = measured_quality(labelled, metrics=metrics, resamples=resamples) if labelled is not None else {}
    found: list[SliceMetrics] = []
    for column in slices:
        data = labelled_rows(rows, slice_column=column)
        if data is not None:
            found += slice_metrics(data, column, metrics=metrics)
    report = WindowReport(start, end, version, traffic(rows, end - start), measured,
                          _estimate(rows, calibrator, positive), tuple(found))
    if not sla:
        return report
    return WindowReport(**{**vars(report), "sla": sla.check(report.metrics())})


def monitor(
    frame: pd.DataFrame,
    *,
    model: str = "",
    window: str | float = "1h",
    reference: pd.DataFrame | None = None,
    slices: Sequence[str] = (),
    sla: Sla | Mapping[str, Any] | None = None,
    metrics: Sequence[str] | None = None,
    calibrator: Calibrator | MulticlassCalibrator | None = None,
) -> MonitorResult:
    """Compute the monitor's numbers from a prediction log frame.

    Args:
        frame: the log (``Store.prediction_log`` columns; see ``nbtoolkit.monitor.windows.LOG_COLUMNS``).
        model: the model name shown in the result.
        window: window length (``"1h"``, ``"15m"`` or seconds).
        reference: training data (one column per feature) for drift; None skips drift.
        slices: input columns to compute per-slice metrics and worst-slice gaps over.
        sla: the SLA each window is checked against (an ``Sla`` or its mapping; None: no check).
        metrics: quality metrics to compute (default: every one computable).
        calibrator: CBPE calibration of binary scores or class probabilities (default:
            :func:`fit_calibrator` on the log).

    Returns:
        The :class:`MonitorResult`.

    Raises:
        InputError: the frame misses required columns, or the window is not a duration.
    """
    seconds = parse_duration(window)
    rules = sla if isinstance(sla, Sla) else Sla.from_mapping(sla, where="sla=") if sla else Sla()
    log = check_frame(frame)
    calibrator = calibrator if calibrator is not None else fit_calibrator(log)
    positive = positive_class(log)
    options = {"sla": rules, "slices": tuple(slices), "metrics": metrics, "calibrator": calibrator, "positive": positive}
    log["_window"] = window_starts(log["ts"], seconds)
    windows = [
        _report(rows, float(start), float(start) + seconds, str(version), **options, resamples=WINDOW_RESAMPLES)
        for (start, version), rows in log.groupby(["_window", "version"], sort=True)
    ]
    overall = []
    if len(log):
        first, last = float(log["_window"].min()), float(log["_window"].max()) + seconds
        overall = [_report(rows, first, last, str(version), **options, resamples=RESAMPLES)
                   for version, rows in log.groupby("version", sort=False)]
    drift: list[DriftWindow] = []
    drift_overall: list[FeatureDrift] = []
    if reference is not None and len(log):
        drift = [DriftWindow(float(start), float(start) + seconds, tuple(drift_table(reference, inputs_frame(rows))))
                 for start, rows in log.groupby("_window", sort=True)]
        drift_overall = drift_table(reference, inputs_frame(log))
    return MonitorResult(model, seconds, tuple(windows), tuple(overall), tuple(drift), tuple(drift_overall),
                         rules, tuple(slices))
