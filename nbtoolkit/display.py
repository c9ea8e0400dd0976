"""Rich notebook outputs for runs and verdicts.

Outputs are plain HTML with inline styles (no scripts), so they survive in saved notebooks,
papermill output and nbconvert, and carry a versioned JSON payload
(``application/vnd.nbtoolkit.run.v1+json``) that tools can read back from the notebook.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord

RUN_MIMETYPE = "application/vnd.nbtoolkit.run.v1+json"

VERDICT_COLORS = {
    "supported": ("#1a7f37", "#dafbe1"),
    "rejected": ("#cf222e", "#ffebe9"),
    "inconclusive": ("#9a6700", "#fff8c5"),
}
STATUS_COLORS = {"failed": "#cf222e", "interrupted": "#9a6700", "crashed": "#cf222e", "timed_out": "#9a6700"}


def esc(value: Any) -> str:
    """HTML-escape any value's text form."""
    return html.escape(str(value), quote=True)


def fmt_number(value: Any, digits: int = 4) -> str:
    """Compact number text: ``—`` for missing values, readable NaN and infinities."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.{digits}g}"
    return str(value)


def _badge(text: str, fg: str, bg: str) -> str:
    return (
        f'<span style="display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;'
        f'color:{fg};background:{bg};border:1px solid {fg}">{esc(text)}</span>'
    )


def verdict_badge(verdict: str | None, status: str = "finished") -> str:
    if status != "finished" and status != "running":
        return _badge(status, STATUS_COLORS.get(status, "#57606a"), "#f6f8fa")
    fg, bg = VERDICT_COLORS.get(verdict or "", ("#57606a", "#f6f8fa"))
    return _badge(verdict or "no verdict", fg, bg)


def criteria_rows_html(detail: Mapping[str, Any] | None) -> str:
    results = (detail or {}).get("results", [])
    if not results:
        reason = "no success criteria declared"
        return f'<tr><td colspan="5" style="color:#57606a">{esc(reason)}</td></tr>'
    rows = []
    for r in results:
        crit = r.get("criterion", {})
        status = r.get("status", "")
        mark = {"pass": "✔", "fail": "✘", "inconclusive": "?"}.get(status, "?")
        color = {"pass": "#1a7f37", "fail": "#cf222e"}.get(status, "#9a6700")
        interval = r.get("interval")
        diff = ""
        if r.get("difference") is not None:
            diff = f"Δ {fmt_number(r['difference'])}"
            if interval:
                diff += f" [{fmt_number(interval.get('low'))}, {fmt_number(interval.get('high'))}]"
        rows.append(
            "<tr>"
            f'<td style="color:{color};font-weight:700">{mark}</td>'
            f"<td><code>{esc(crit.get('text', ''))}</code></td>"
            f"<td>{esc(fmt_number(r.get('observed')))}</td>"
            f"<td>{esc(fmt_number(r.get('bar')))}</td>"
            f'<td style="color:#57606a">{esc(diff)} {esc(r.get("reason", ""))}</td>'
            "</tr>"
        )
    return "".join(rows)


def run_card_html(record: RunRecord) -> str:
    """The summary card shown under an ``%%experiment`` cell (and as a RunRecord's HTML repr)."""
    decl = record.declaration or {}
    params = record.params or {}
    metrics = record.metrics or {}
    head = (
        f'<div style="font-size:1.05em"><b>{esc(record.experiment)}</b> '
        f"{verdict_badge(record.verdict, record.status)} "
        f'<span style="color:#57606a;font-family:monospace">run {esc(record.run_id[:12])}</span></div>'
    )
    hyp = f'<div style="margin-top:4px"><i>{esc(decl.get("hypothesis", ""))}</i></div>' if decl.get("hypothesis") else ""
    baseline = ""
    if record.baseline_ref:
        target = record.baseline_run_id[:12] if record.baseline_run_id else "not found"
        baseline = f'<div style="color:#57606a">baseline: {esc(record.baseline_ref)} (run {esc(target)})</div>'
    if record.kind == "cached" and record.origin_run_id:
        baseline += (f'<div style="color:#57606a">cached copy of run {esc(record.origin_run_id[:12])} '
                     "(served from the run cache, not re-executed)</div>")
    crit = (
        '<table style="margin-top:6px;border-collapse:collapse">'
        "<tr><th></th><th style=\"text-align:left\">criterion</th><th>observed</th><th>target</th><th></th></tr>"
        f"{criteria_rows_html(record.verdict_detail)}</table>"
    )
    kv = lambda d: ", ".join(f"{esc(k)}={esc(fmt_number(v))}" for k, v in sorted(d.items()))  # noqa: E731
    extra = ""
    if params:
        extra += f'<div style="margin-top:4px"><b>params</b> {kv(params)}</div>'
    if metrics:
        extra += f"<div><b>metrics</b> {kv(metrics)}</div>"
    if record.error and record.status != "finished":
        last = record.error.strip().splitlines()[-1] if record.error.strip() else ""
        extra += f'<div style="color:#cf222e"><b>error</b> {esc(last)}</div>'
    return (
        '<div class="nbtk-run-card" style="border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;'
        f'font-family:system-ui,sans-serif;font-size:13px">{head}{hyp}{baseline}{crit}{extra}</div>'
    )


def run_card_text(record: RunRecord) -> str:
    """Plain-text version of the card (terminals, ``text/plain``)."""
    verdict = record.verdict or "no verdict"
    lines = [f"{record.experiment}  [{record.status}: {verdict}]  run {record.run_id[:12]}"]
    if record.declaration.get("hypothesis"):
        lines.append(f"  hypothesis: {record.declaration['hypothesis']}")
    if record.kind == "cached" and record.origin_run_id:
        lines.append(f"  cached copy of run {record.origin_run_id[:12]} (served from the run cache, not re-executed)")
    if record.baseline_ref:
        target = f"run {record.baseline_run_id[:12]}" if record.baseline_run_id else "no run found"
        lines.append(f"  baseline: {record.baseline_ref} ({target})")
    for r in (record.verdict_detail or {}).get("results", []):
        status = r.get("status")
        mark = {"pass": "PASS", "fail": "FAIL"}.get(status, "????")
        text = r.get("criterion", {}).get("text", "")
        detail = f"observed {fmt_number(r.get('observed'))}" if status == "pass" else r.get("reason", "")
        lines.append(f"  {mark} {text}  ({detail})")
    if record.params:
        lines.append("  params: " + ", ".join(f"{k}={fmt_number(v)}" for k, v in sorted(record.params.items())))
    if record.metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={fmt_number(v)}" for k, v in sorted(record.metrics.items())))
    return "\n".join(lines)


class RunSummary:
    """Display object for a run: HTML card, text, and a versioned JSON payload."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def __repr__(self) -> str:
        return run_card_text(self.record)

    def _repr_html_(self) -> str:
        return run_card_html(self.record)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        r = self.record
        payload = {
            "schema": "nbtoolkit.run.v1",
            "run_id": r.run_id,
            "experiment": r.experiment,
            "status": r.status,
            "verdict": r.verdict,
        }
        return {
            "text/plain": run_card_text(r),
            "text/html": run_card_html(r),
            RUN_MIMETYPE: payload,
        }
