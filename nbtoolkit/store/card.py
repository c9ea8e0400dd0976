"""The run card: how a stored run looks under a cell, in HTML and in plain text.

It lives with the records so that :meth:`RunRecord._repr_html_` needs nothing to the store's
right; markup helpers and colours come from the leaf :mod:`nbtoolkit.html`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbtoolkit.html import PALETTE, colour, esc, fmt_number, verdict_badge

if TYPE_CHECKING:
    from nbtoolkit.store.records import RunRecord

GREY = PALETTE["grey"]


def criteria_rows_html(detail: Mapping[str, Any] | None) -> str:
    """Table rows, one per criterion result of a stored verdict."""
    results = (detail or {}).get("results", [])
    if not results:
        reason = "no success criteria declared"
        return f'<tr><td colspan="5" style="color:{GREY}">{esc(reason)}</td></tr>'
    rows = []
    for r in results:
        crit = r.get("criterion", {})
        status = r.get("status", "")
        mark = {"pass": "✔", "fail": "✘", "inconclusive": "?"}.get(status, "?")
        color = colour(status if status in ("pass", "fail") else "inconclusive")
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
            f'<td style="color:{GREY}">{esc(diff)} {esc(r.get("reason", ""))}</td>'
            "</tr>"
        )
    return "".join(rows)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{esc(k)}={esc(fmt_number(v))}" for k, v in sorted(values.items()))


def run_card_html(record: RunRecord) -> str:
    """The summary card shown under an ``%%experiment`` cell (and as a RunRecord's HTML repr)."""
    decl = record.declaration or {}
    params = record.params or {}
    metrics = record.metrics or {}
    head = (
        f'<div style="font-size:1.05em"><b>{esc(record.experiment)}</b> '
        f"{verdict_badge(record.verdict, record.status)} "
        f'<span style="color:{GREY};font-family:monospace">run {esc(record.run_id[:12])}</span></div>'
    )
    hyp = f'<div style="margin-top:4px"><i>{esc(decl.get("hypothesis", ""))}</i></div>' if decl.get("hypothesis") else ""
    baseline = ""
    if record.baseline_ref:
        target = record.baseline_run_id[:12] if record.baseline_run_id else "not found"
        baseline = f'<div style="color:{GREY}">baseline: {esc(record.baseline_ref)} (run {esc(target)})</div>'
    if record.kind == "cached" and record.origin_run_id:
        baseline += (f'<div style="color:{GREY}">cached copy of run {esc(record.origin_run_id[:12])} '
                     "(served from the run cache, not re-executed)</div>")
    crit = (
        '<table style="margin-top:6px;border-collapse:collapse">'
        "<tr><th></th><th style=\"text-align:left\">criterion</th><th>observed</th><th>target</th><th></th></tr>"
        f"{criteria_rows_html(record.verdict_detail)}</table>"
    )
    extra = ""
    if params:
        extra += f'<div style="margin-top:4px"><b>params</b> {_pairs(params)}</div>'
    if metrics:
        extra += f"<div><b>metrics</b> {_pairs(metrics)}</div>"
    if record.error and record.status != "finished":
        last = record.error.strip().splitlines()[-1] if record.error.strip() else ""
        extra += f'<div style="color:{PALETTE["red"]}"><b>error</b> {esc(last)}</div>'
    return (
        f'<div class="nbtk-run-card" style="border:1px solid {PALETTE["border"]};border-radius:6px;padding:8px 12px;'
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
