"""The run card: how a stored run looks under a cell, in HTML and in plain text.

It lives with the records so that :meth:`RunRecord._repr_html_` needs nothing to the store's
right; markup helpers and colours come from the leaf :mod:`nbtoolkit.html`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbtoolkit.html import PALETTE, colour, esc, fmt_number, verdict_badge
from nbtoolkit.verdict import criterion_cells

if TYPE_CHECKING:
    from nbtoolkit.store.records import RunRecord
    from nbtoolkit.verdict import Verdict

GREY = PALETTE["grey"]


_CRITERIA_HEAD = ("", "criterion", "observed", "target", "baseline", "difference", "interval", "why")
#: run states that carry a verdict; a failed, interrupted or crashed run has none
_JUDGED = ("finished", "running")


def no_verdict_reason(status: str) -> str:
    """Why a run that did not finish has no verdict (cards, CLI, reports say the same)."""
    return f"No verdict: the run {status.replace('_', ' ')} before its criteria could be judged."


def criteria_rows_html(verdict: Verdict | None) -> str:
    """One row per criterion: observed, target, baseline value, difference, interval, reason."""
    results = verdict.results if verdict is not None else ()
    if not results:
        reason = "no success criteria declared"
        return f'<tr><td colspan="{len(_CRITERIA_HEAD)}" style="color:{GREY}">{esc(reason)}</td></tr>'
    rows = []
    for r in results:
        mark = {"pass": "✔", "fail": "✘"}.get(r.status, "?")
        color = colour(r.status)
        cells = criterion_cells(r)
        nums = "".join(f'<td class="nbtk-{k}" style="text-align:right;font-variant-numeric:tabular-nums">'
                       f"{esc(cells[k])}</td>"
                       for k in ("observed", "target", "baseline", "difference", "interval"))
        rows.append(
            "<tr>"
            f'<td style="color:{color};font-weight:700">{mark}</td>'
            f"<td><code>{esc(r.criterion.text)}</code></td>{nums}"
            f'<td style="color:{GREY}">{esc(r.reason)}</td>'
            "</tr>"
        )
    return "".join(rows)


def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{esc(k)}={esc(fmt_number(v))}" for k, v in sorted(values.items()))


def run_card_html(record: RunRecord) -> str:
    """The summary card shown under an ``%%experiment`` cell (and as a RunRecord's HTML repr)."""
    hypothesis = record.declaration.hypothesis
    params = record.params or {}
    metrics = record.metrics or {}
    head = (
        f'<div style="font-size:1.05em"><b>{esc(record.experiment)}</b> '
        f"{verdict_badge(record.verdict, record.status)} "
        f'<span style="color:{GREY};font-family:monospace">run {esc(record.run_id[:12])}</span></div>'
    )
    hyp = f'<div style="margin-top:4px"><i>{esc(hypothesis)}</i></div>' if hypothesis else ""
    baseline = ""
    if record.baseline_ref:
        target = record.baseline_run_id[:12] if record.baseline_run_id else "not found"
        baseline = f'<div style="color:{GREY}">baseline: {esc(record.baseline_ref)} (run {esc(target)})</div>'
    if record.kind == "cached" and record.origin_run_id:
        baseline += (f'<div style="color:{GREY}">cached copy of run {esc(record.origin_run_id[:12])} '
                     "(served from the run cache, not re-executed)</div>")
    crit = (
        '<table style="margin-top:6px;border-collapse:collapse">'
        "<tr>" + "".join(f"<th>{h}</th>" for h in _CRITERIA_HEAD) + "</tr>"
        f"{criteria_rows_html(record.verdict_detail)}</table>"
    )
    if record.status not in _JUDGED:
        crit = f'<div class="nbtk-no-verdict" style="color:{GREY}">{esc(no_verdict_reason(record.status))}</div>'
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
    state = f"{record.status}: {record.verdict or 'no verdict'}" if record.status in _JUDGED else record.status
    lines = [f"{record.experiment}  [{state}]  run {record.run_id[:12]}"]
    if record.status not in _JUDGED:
        lines.append(f"  {no_verdict_reason(record.status)}")
    if record.declaration.hypothesis:
        lines.append(f"  hypothesis: {record.declaration.hypothesis}")
    if record.kind == "cached" and record.origin_run_id:
        lines.append(f"  cached copy of run {record.origin_run_id[:12]} (served from the run cache, not re-executed)")
    if record.baseline_ref:
        target = f"run {record.baseline_run_id[:12]}" if record.baseline_run_id else "no run found"
        lines.append(f"  baseline: {record.baseline_ref} ({target})")
    for r in record.verdict_detail.results if record.verdict_detail is not None else ():
        mark = {"pass": "PASS", "fail": "FAIL"}.get(r.status, "????")
        cells = criterion_cells(r)
        numbers = f"observed {cells['observed']}  target {cells['target']}"
        if r.criterion.baseline_metric:
            numbers += (f"  baseline {cells['baseline']}  difference {cells['difference']}"
                        f"  interval {cells['interval']}")
        lines.append(f"  {mark} {r.criterion.text}")
        lines.append(f"       {numbers}")
        if r.status != "pass":
            lines.append(f"       {r.reason}")
    if record.params:
        lines.append("  params: " + ", ".join(f"{k}={fmt_number(v)}" for k, v in sorted(record.params.items())))
    if record.metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={fmt_number(v)}" for k, v in sorted(record.metrics.items())))
    return "\n".join(lines)
