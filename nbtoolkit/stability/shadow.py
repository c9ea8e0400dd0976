"""Shadow tests: the challenger sees every row the champion serves; only the champion answers.

Both models are called on the same rows in batches. The champion's outputs are returned
unchanged; a challenger that raises never affects them: its batch is retried row by row, so
each failure is attributed to the row that caused it (that row gets no challenger output).

Latency method: the percentiles (p50/p95/p99) are per row: each model is called on single
rows (a request of one row, timed with ``time.perf_counter``) — every row with
``batch_size=1``, else ``latency_rows`` rows spread evenly over the data after the batched
pass. A batch's time divided by its rows would give every row of the batch the same value, so
p50 = p95 = p99; that amortised figure is kept as ``latency_batch_row_ms`` (what a
batch-scoring service sees per row).

The result is recorded as a run of kind ``shadow`` (metrics ``champion.*``, ``challenger.*``,
``agreement``; a summary in ``extra["shadow"]``) and renders as a report section.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit.config import Settings
from nbtoolkit.errors import InputError
from nbtoolkit.html import PALETTE, colour, esc, fmt_number
from nbtoolkit.policy import Sla, SlaReport, as_sla, padded, sla_table_html
from nbtoolkit.stability._common import (
    ModelHandle,
    as_model,
    buckets,
    choose_method,
    column_or_array,
    compute_metrics,
    feature_frame,
    labelled_mask,
    labels_of,
    latency_stats,
    load_frame,
    metric_fns,
    scores_of,
)
from nbtoolkit.stability.batches import Errors, call_isolated, sample_positions, time_rows
from nbtoolkit.store import Store, open_store

LATENCY_METHOD = (
    "p50/p95/p99 = single-row calls timed with perf_counter (every row with batch_size=1, else "
    "an even sample of latency_rows rows); latency_batch_row_ms = batch time / rows in the batch"
)
#: rows timed one by one for the latency percentiles when scoring in batches
LATENCY_ROWS = 200
MAX_ERRORS_KEPT = 50
MAX_SLICES_KEPT = 50


@dataclass(frozen=True)
class RowError:
    """A row the challenger failed on."""

    row: int
    key: Any
    error: str
    message: str


@dataclass(frozen=True)
class SliceStat:
    """Agreement within one slice (a category of ``slice_by``, or a key bucket)."""

    name: str
    rows: int
    agreement: float | None
    disagreements: int
    errors: int


@dataclass
class ShadowResult:
    """What a shadow test measured.

    Attributes:
        champion_output: the champion's outputs, exactly as it returned them.
        challenger_output: the challenger's outputs (``None`` / NaN rows where it failed).
        agreement: share of rows (where the challenger answered) on which the two agree.
        slices: agreement per slice, lowest first.
        latency: ``{"champion": {...}, "challenger": {...}}`` p50/p95/p99/mean in ms.
        errors: the challenger's per-row errors (first 50 kept; ``error_count`` has them all).
        metrics: ``{"champion": {...}, "challenger": {...}}`` on labelled rows.
        sla: the SLA check of the challenger's measurements.
        run_id: the recorded run (``None`` with ``record=False``).
    """

    champion_output: Any
    challenger_output: Any
    agreement: float | None
    slices: list[SliceStat]
    latency: dict[str, dict[str, float]]
    errors: list[RowError]
    error_count: int
    metrics: dict[str, dict[str, float]]
    sla: SlaReport
    rows: int
    labelled: int
    run_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def challenger_measurements(self) -> dict[str, float]:
        """The flat metrics the SLA is checked against."""
        return dict(self.summary.get("measured", {}))

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "run_id": self.run_id}

    def __repr__(self) -> str:
        agree = "n/a" if self.agreement is None else f"{self.agreement:.4f}"
        sla = "ok" if self.sla.ok else f"{len(self.sla.breaches)} breach(es)"
        return f"<ShadowResult rows={self.rows} agreement={agree} challenger_errors={self.error_count} sla={sla}>"

    def _repr_html_(self) -> str:
        return shadow_section_html(self.summary)


def _call_both(champ: ModelHandle, chall: ModelHandle, method: str, Xc: Any, Xx: Any, batch_size: int) -> tuple[list[Any], Any, list[Any], Any, Any, Errors]:
    """Stream the rows once: each batch goes to the champion, then to the (isolated) challenger.

    Returns ``(champion blocks, champion latency, challenger blocks, ok mask, challenger latency, errors)``.
    """
    import numpy as np

    fc, fx = getattr(champ.obj, method), getattr(chall.obj, method)
    n = len(Xc)
    c_lat, x_lat = np.empty(n, dtype=float), np.empty(n, dtype=float)
    ok = np.ones(n, dtype=bool)
    c_blocks: list[Any] = []
    x_blocks: list[Any] = []
    errors: Errors = []
    clock = time.perf_counter
    take_c, take_x = Xc.iloc, Xx.iloc
    shared = Xx is Xc
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        part = take_c[start:stop]
        t0 = clock()
        c_blocks.append(fc(part))  # the champion's exceptions propagate: it is what serves
        c_lat[start:stop] = (clock() - t0) * 1000.0 / (stop - start)
        call_isolated(fx, part if shared else take_x[start:stop], take_x, start, stop, x_lat, ok, x_blocks, errors)
    return c_blocks, c_lat, x_blocks, ok, x_lat, errors


def _assemble(blocks: list[Any], n: int, ok: Any, method: str) -> Any:
    """Concatenate challenger blocks, filling failed rows with NaN (proba) or None."""
    import numpy as np

    good = [np.asarray(b) for b in blocks if b is not None]
    if ok.all():
        return np.concatenate(good) if good else np.empty(0)
    if not good:
        return np.full(n, None, dtype=object)
    sample = good[0]
    out: Any = np.full((n, sample.shape[1]), np.nan) if sample.ndim == 2 else np.full(n, None, dtype=object)
    out[ok] = np.concatenate(good)
    return out


def _concat_champion(blocks: list[Any]) -> Any:
    import numpy as np

    if len(blocks) == 1:
        return blocks[0]
    first = blocks[0]
    if hasattr(first, "iloc"):  # pandas output stays pandas
        import pandas as pd

        return pd.concat(blocks)
    return np.concatenate([np.asarray(b) for b in blocks])


def _agree(a: Any, b: Any, tolerance: float) -> Any:
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    if np.issubdtype(a.dtype, np.floating) and np.issubdtype(b.dtype, np.floating):
        return np.abs(a - b) <= tolerance
    return a == b


def _slices(names: Any, agree_full: Any, ok: Any) -> list[SliceStat]:
    import numpy as np
    import pandas as pd

    inv, uniq = pd.factorize(names if isinstance(names, pd.Series) else np.asarray(names), use_na_sentinel=False)
    rows = np.bincount(inv, minlength=len(uniq))
    answered = np.bincount(inv, weights=ok.astype(float), minlength=len(uniq))
    agreed = np.bincount(inv, weights=(agree_full & ok).astype(float), minlength=len(uniq))
    out = []
    for i, name in enumerate(uniq):
        agreement = float(agreed[i] / answered[i]) if answered[i] else None
        out.append(SliceStat(str(name), int(rows[i]), agreement, int(answered[i] - agreed[i]), int(rows[i] - answered[i])))
    out.sort(key=lambda s: (s.agreement if s.agreement is not None else -1.0, s.name))
    return out


@dataclass(frozen=True)
class _Rows:
    """The rows to score, split into what each model sees and the side columns."""

    Xc: Any
    Xx: Any
    y: Any
    keys: Any
    slice_values: Any
    slice_col: str | None


def _rows(frame: Any, champ: ModelHandle, chall: ModelHandle, y: Any, key: Any, slice_by: Any) -> _Rows:
    y_arr, y_col = column_or_array(frame, y, "y")
    key_arr, key_col = column_or_array(frame, key, "key")
    slice_col: str | None = None
    if isinstance(slice_by, str):  # keep the column as a Series: factorising it is faster than via NumPy
        column_or_array(frame.iloc[:0], slice_by, "slice_by")
        slice_arr, slice_col = frame[slice_by], slice_by
    else:
        slice_arr, _ = column_or_array(frame, slice_by, "slice_by")
    drop = [c for c in (y_col, key_col, slice_col) if c is not None]
    Xc = feature_frame(champ, frame, drop)
    same = list(getattr(chall.obj, "feature_names_in_", Xc.columns)) == list(Xc.columns)
    Xx = Xc if same else feature_frame(chall, frame, drop)
    return _Rows(Xc, Xx, y_arr, key_arr, slice_arr, slice_col)


def _slicing(rows: _Rows, agree_full: Any, ok: Any) -> tuple[list[SliceStat], str | None]:
    """Agreement per slice: by ``slice_by`` when given, else by key bucket, else none."""
    import numpy as np

    if rows.slice_values is not None:
        return _slices(rows.slice_values, agree_full, ok), f"column {rows.slice_col}" if rows.slice_col else "slice_by"
    if rows.keys is not None:
        names = np.char.add("bucket ", (buckets(list(rows.keys)) // 1000).astype(str))
        return _slices(names, agree_full, ok), "key bucket (10 buckets of the canary hash)"
    return [], None


def _model_metrics(
    champ: ModelHandle, chall: ModelHandle, meth: str, fns: Any, y_arr: Any, champion_output: Any, c_labels: Any,
    challenger_output: Any, ok: Any,
) -> tuple[dict[str, dict[str, float]], int]:
    """Both models' metrics on the labelled rows (the challenger's on those it answered)."""
    import numpy as np

    model_metrics: dict[str, dict[str, float]] = {"champion": {}, "challenger": {}}
    if y_arr is None:
        return model_metrics, 0
    lab = labelled_mask(y_arr)
    yl = y_arr[lab]
    try:
        yl = yl.astype(np.asarray(c_labels).dtype)
    except (TypeError, ValueError):
        pass
    c_scores = scores_of(champion_output, meth)
    model_metrics["champion"] = compute_metrics(fns, yl, np.asarray(c_labels)[lab], None if c_scores is None else c_scores[lab])
    both = lab & ok
    if both.any():
        x_scores = scores_of(challenger_output[both], meth) if meth == "predict_proba" else None
        x_lab = labels_of(chall, challenger_output[both], meth)
        yb = y_arr[both]
        try:
            yb = yb.astype(np.asarray(x_lab).dtype)
        except (TypeError, ValueError):
            pass
        model_metrics["challenger"] = compute_metrics(fns, yb, x_lab, x_scores)
    return model_metrics, int(lab.sum())


def _agreement(champ: ModelHandle, chall: ModelHandle, meth: str, c_labels: Any, challenger_output: Any, ok: Any,
               tolerance: float) -> tuple[Any, float | None]:
    """Per-row agreement (False where the challenger failed) and its share over answered rows."""
    import numpy as np

    agree_full = np.zeros(len(ok), dtype=bool)
    if ok.any():
        x_labels_ok = labels_of(chall, challenger_output[ok], meth)
        agree_full[ok] = _agree(np.asarray(c_labels)[ok], x_labels_ok, tolerance)
    answered = int(ok.sum())
    return agree_full, float(agree_full.sum() / answered) if answered else None


def shadow(
    champion: Any,
    challenger: Any,
    data: Any,
    *,
    y: Any = None,
    key: Any = None,
    slice_by: Any = None,
    metrics: Sequence[str] | Mapping[str, Any] = ("accuracy", "roc_auc"),
    sla: Sla | Mapping[str, Any] | None = None,
    method: str = "auto",
    batch_size: int = 1000,
    tolerance: float = 0.0,
    latency_rows: int = LATENCY_ROWS,
    record: bool = True,
    experiment: str = "shadow",
    settings: Settings | None = None,
    store: Store | None = None,
) -> ShadowResult:
    """Run a shadow test: both models see every row; the champion's outputs are returned unchanged.

    Args:
        champion: the serving model: a fitted model, a loaded bundle, a bundle path or ``MODEL@ALIAS``.
        challenger: the candidate, same forms.
        data: rows to score: a DataFrame, an array, or a ``.csv`` / ``.parquet`` path.
        y: labels: a column name of ``data`` or an aligned array; missing values = unlabelled rows.
        key: row keys (column name or array); key buckets slice the disagreements when
            ``slice_by`` is not given, and errors name the key.
        slice_by: a categorical column (or array) to slice agreement by.
        metrics: metric names (accuracy, roc_auc, mae, rmse) or ``{name: fn(y, pred, score)}``.
        sla: thresholds for the challenger (default: ``[tool.nbtoolkit.sla]``).
        method: ``"auto"`` (``predict_proba`` when both models have it), ``"predict"`` or ``"predict_proba"``.
        batch_size: rows per model call (see the module docstring for the latency method).
        tolerance: numeric outputs agree when they differ by at most this.
        latency_rows: rows timed one by one for the latency percentiles when ``batch_size > 1``.
        record: record a run of kind ``shadow`` in the project store.
        experiment: experiment name of the recorded run.

    Returns:
        A :class:`ShadowResult`.

    Raises:
        InputError: bad data, columns or options. Exceptions of the champion propagate.
    """
    if batch_size < 1:
        raise InputError("batch_size must be at least 1.")
    if store is None and (record or any(isinstance(m, str) and "@" in m for m in (champion, challenger))):
        store = open_store(settings)
    champ, chall = as_model(champion, store=store), as_model(challenger, store=store)
    rows = _rows(frame := load_frame(data), champ, chall, y, key, slice_by)
    meth, rule, n = choose_method(method, champ, chall), as_sla(sla, settings), len(frame)
    t_start = time.time()
    c_blocks, c_lat, x_blocks, ok, x_lat, raw_errors = _call_both(champ, chall, meth, rows.Xc, rows.Xx, batch_size)
    champion_output = _concat_champion(c_blocks)
    challenger_output = _assemble(x_blocks, n, ok, meth)
    c_labels = labels_of(champ, champion_output, meth)
    agree_full, agreement = _agreement(champ, chall, meth, c_labels, challenger_output, ok, tolerance)
    slices, slice_kind = _slicing(rows, agree_full, ok)
    model_metrics, labelled = _model_metrics(
        champ, chall, meth, metric_fns(metrics), rows.y, champion_output, c_labels, challenger_output, ok,
    )
    latency = _latency(champ, chall, meth, rows, batch_size, latency_rows, (c_lat, x_lat, ok))
    error_count = n - int(ok.sum())
    errors = [RowError(i, None if rows.keys is None else _plain(rows.keys[i]), e, m) for i, e, m in raw_errors[:MAX_ERRORS_KEPT]]
    measured = {**model_metrics["challenger"], **latency["challenger"], "error_rate": error_count / n if n else 0.0}
    if agreement is not None:
        measured["agreement"] = agreement
    report = rule.check(measured)
    summary: dict[str, Any] = {
        "schema": "nbtoolkit.shadow.v1", "champion": {"label": champ.label, **champ.source},
        "challenger": {"label": chall.label, **chall.source}, "rows": n, "labelled": labelled, "method": meth,
        "batch_size": batch_size, "latency_method": LATENCY_METHOD, "agreement": agreement,
        "slices": {"by": slice_kind, "items": [s.__dict__ for s in slices[:MAX_SLICES_KEPT]], "total": len(slices)},
        "latency": latency,
        "errors": {"count": error_count, "by_type": _count_types(raw_errors), "first": [e.__dict__ for e in errors[:20]]},
        "metrics": model_metrics, "measured": measured, "sla": report.to_dict(), "seconds": time.time() - t_start,
    }
    run_id = _record(store, experiment, summary, model_metrics, latency, agreement, error_count, n) if record and store is not None else None
    return ShadowResult(
        champion_output, challenger_output, agreement, slices, latency, errors, error_count, model_metrics, report,
        n, labelled, run_id, summary,
    )


def _latency(champ: ModelHandle, chall: ModelHandle, meth: str, rows: _Rows, batch_size: int, latency_rows: int,
             batched: tuple[Any, Any, Any]) -> dict[str, dict[str, float]]:
    """Per-row latency percentiles of both models (see the module docstring), plus the batch-amortised mean."""
    c_lat, x_lat, ok = batched
    if batch_size == 1:
        c_row, x_row = c_lat, x_lat[ok]
    else:
        positions = sample_positions(len(c_lat), max(1, latency_rows))
        c_row, _ = time_rows(getattr(champ.obj, meth), rows.Xc, positions)
        x_all, x_ok = time_rows(getattr(chall.obj, meth), rows.Xx, positions)
        x_row = x_all[x_ok]
    out = {"champion": latency_stats(c_row), "challenger": latency_stats(x_row)}
    for who, lat in (("champion", c_lat), ("challenger", x_lat[ok])):
        if len(lat):
            out[who]["latency_batch_row_ms"] = float(lat.mean())
    return out


def _count_types(raw_errors: Errors) -> dict[str, int]:
    by_type: dict[str, int] = {}
    for _, e, _ in raw_errors:
        by_type[e] = by_type.get(e, 0) + 1
    return by_type


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _record(store: Store, experiment: str, summary: dict[str, Any], model_metrics: Mapping[str, Mapping[str, float]],
            latency: Mapping[str, Mapping[str, float]], agreement: float | None, errors: int, n: int) -> str:
    now = time.time()
    run_id = store.create_run(experiment=experiment, kind="shadow", source="script", extra={"shadow": summary})
    rows = [("rows", float(n), None, now), ("challenger.errors", float(errors), None, now),
            ("challenger.error_rate", errors / n if n else 0.0, None, now)]
    if agreement is not None:
        rows.append(("agreement", agreement, None, now))
    for who in ("champion", "challenger"):
        for name, value in {**model_metrics.get(who, {}), **latency.get(who, {})}.items():
            rows.append((f"{who}.{name}", float(value), None, now))
    store.log_metrics(run_id, rows)
    store.finish_run(run_id, status="finished")
    return run_id


def shadow_section_html(summary: Mapping[str, Any]) -> str:
    """The shadow report section (also the notebook output) from a run's ``extra["shadow"]``.

    Every value coming from data or models is escaped.
    """
    if not summary:
        return "<p>No shadow test recorded.</p>"
    sla = SlaReport.from_dict(summary.get("sla") or {})
    agree = summary.get("agreement")
    head = (
        f'<div class="nbtk-shadow"><h3>Shadow test</h3><p>champion <b>{esc(summary["champion"]["label"])}</b> vs '
        f'challenger <b>{esc(summary["challenger"]["label"])}</b> on {summary.get("rows", 0)} rows '
        f'({summary.get("labelled", 0)} labelled); agreement <b>{_pct(agree)}</b>; '
        f'challenger errors <b>{summary.get("errors", {}).get("count", 0)}</b>; SLA '
        f'<b style="color:{colour("ok" if sla.ok else "breach")}">{"ok" if sla.ok else "breached"}</b></p>'
    )
    lat_rows = []
    for who in ("champion", "challenger"):
        lat = summary.get("latency", {}).get(who, {})
        met = summary.get("metrics", {}).get(who, {})
        cells = "".join(f"<td>{fmt_number(lat.get(k))}</td>" for k in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms"))
        mets = ", ".join(f"{esc(k)}={fmt_number(v)}" for k, v in met.items()) or "—"
        lat_rows.append(f"<tr><td>{who}</td>{cells}<td>{mets}</td></tr>")
    table = (
        "<table><thead><tr><th>model</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>metrics (labelled rows)</th></tr></thead>"
        f"<tbody>{''.join(lat_rows)}</tbody></table><p style=\"color:{PALETTE['grey']};font-size:smaller\">{esc(summary.get('latency_method', ''))}</p>"
    )
    sl = summary.get("slices", {})
    slice_html = ""
    if sl.get("items"):
        rows = "".join(
            f"<tr><td>{esc(s['name'])}</td><td>{s['rows']}</td><td>{_pct(s['agreement'])}</td>"
            f"<td>{s['disagreements']}</td><td>{s['errors']}</td></tr>"
            for s in sl["items"]
        )
        slice_html = (
            f"<h4>Agreement by {esc(sl.get('by'))}</h4><table><thead><tr><th>slice</th><th>rows</th><th>agreement</th>"
            f"<th>disagreements</th><th>challenger errors</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    errs = summary.get("errors", {})
    err_html = ""
    if errs.get("count"):
        items = "".join(
            f"<li>row {e['row']}{_key_text(e.get('key'))}: {esc(e['error'])}: {esc(e['message'])}</li>"
            for e in errs.get("first", [])
        )
        kinds = ", ".join(f"{esc(k)} × {v}" for k, v in errs.get("by_type", {}).items())
        err_html = f"<h4>Challenger errors ({errs['count']}: {kinds})</h4><ul>{items}</ul>"
    return padded(head + table + "<h4>SLA (challenger)</h4>" + sla_table_html(sla) + slice_html + err_html + "</div>")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _key_text(key: Any) -> str:
    return "" if key is None else f" (key {esc(key)})"


def report_section(record: Any, store: Any) -> tuple[str, str] | None:
    """Run-report section for runs of kind ``shadow`` (entry point ``nbtoolkit.report_sections``)."""
    summary = record.extra.get("shadow") if record.kind == "shadow" else None
    return ("Shadow test", shadow_section_html(summary)) if summary else None
