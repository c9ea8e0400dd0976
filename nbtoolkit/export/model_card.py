"""The model card: ``model_card.md`` and ``model_card.html``, generated from the run.

Sections: summary and verdict, hypothesis, intended use (the declaration's Scope), metrics
with confidence intervals (where the stats stage computed one for a criterion), input
signature, data versions, environment, limitations, approvals and any forced override.
Templates live in ``templates/model_card.{md,html}.j2``; the HTML one is autoescaped and the
Markdown one escapes ``<``, ``>``, ``&`` and table pipes, so run content never becomes markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nbtoolkit._format import MISSING, fmt_interval, metric_decimals
from nbtoolkit._resources import templates_dir
from nbtoolkit.html import PALETTE, fmt_number
from nbtoolkit.verdict import criterion_cells

if TYPE_CHECKING:
    from nbtoolkit.stats.interval import Interval
    from nbtoolkit.store import RunRecord
    from nbtoolkit.verdict import Verdict

__all__ = ["card_context", "render_model_card"]


def _num(value: Any) -> str:
    return fmt_number(value)


def _interval(interval: Interval | None, decimals: int) -> str:
    """``95% bootstrap interval [-0.0123, +0.0456]`` in the row's shared decimals; ``""`` if none."""
    if interval is None:
        return ""
    bounds = fmt_interval(interval.low, interval.high, decimals)
    return f"{interval.level * 100:g}% {interval.method} interval {bounds}"


def _criteria(verdict: Verdict | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for r in verdict.results if verdict is not None else ():
        cells = criterion_cells(r)
        rows.append({
            "text": r.criterion.text,
            "metric": r.criterion.metric,
            "observed": cells["observed"],
            "baseline": cells["baseline"] if r.baseline is not None else "",
            "difference": cells["difference"] if r.difference is not None else "",
            "interval": _interval(r.interval, metric_decimals(r.observed, r.bar, r.baseline)),
            "status": r.status,
            "reason": r.reason,
        })
    return rows


def _limitations(
    record: RunRecord, criteria: Sequence[Mapping[str, Any]], signature: Mapping[str, Any], model_info: Mapping[str, Any]
) -> list[str]:
    decl = record.declaration
    out: list[str] = []
    for key in ("limitations", "limits"):  # free keys some teams store with the declaration
        if decl.extra.get(key):
            out.append(str(decl.extra[key]))
    if decl.scope:
        out.append(f"Validated only within its declared scope: {decl.scope}. Do not use it outside that scope without a new experiment.")
    else:
        out.append("No scope was declared: the conditions under which the model was validated are not documented.")
    for c in criteria:
        if c["status"] != "pass":
            out.append(f"Criterion '{c['text']}' did not pass ({c['status']}): {c['reason']}")
    if criteria and not any(c["interval"] for c in criteria):
        out.append("Metrics are point estimates on one test split; no confidence interval was computed (log predictions to get one).")
    if decl.until:
        out.append(f"The experiment was declared valid until {decl.until.isoformat()}; re-evaluate the model after that date.")
    if signature.get("kind") == "unknown":
        out.append("No sample input was logged with the model: its input signature is unknown and inputs cannot be validated.")
    if not model_info.get("safe", True):
        out.append(f"The model is stored with {model_info.get('serializer')}, which runs code when loaded: load it only from a trusted source (trust=True).")
    if not record.data:
        out.append("No data versions were recorded (track data with DVC or nbtk.track_data).")
    return out


def card_context(
    record: RunRecord,
    *,
    model: str,
    version: str,
    created: str,
    model_info: Mapping[str, Any],
    signature: Mapping[str, Any],
    forced: bool,
    reason: str | None,
    unmet: Sequence[str],
    lock_data: Mapping[str, Any] | None,
    nbtoolkit_version: str,
) -> dict[str, Any]:
    """Everything the model card templates show, as plain JSON-like values."""
    from nbtoolkit._format import iso

    decl = record.declaration
    detail = record.verdict_detail
    criteria = _criteria(detail)
    judged = {c["metric"]: c["observed"] for c in criteria}  # same text as the criteria table
    metrics = [{"name": k, "value": judged[k] if judged.get(k, MISSING) != MISSING else _num(v),
                "criterion": k in judged} for k, v in sorted(record.metrics.items())]
    lock = lock_data or {}
    git = lock.get("git") or {}
    packages = lock.get("packages") or {}
    return {
        "model": model,
        "version": version,
        "created": created,
        "run_id": record.run_id,
        "experiment": record.experiment,
        "status": record.status,
        "verdict": record.verdict or "none",
        "verdict_reason": detail.reason if detail is not None else "",
        "hypothesis": decl.hypothesis,
        "scope": decl.scope,
        "description": decl.description,
        "owner": decl.owner,
        "until": decl.until.isoformat() if decl.until else "",
        "baseline": record.baseline_ref or "",
        "baseline_run_id": record.baseline_run_id or "",
        "criteria": criteria,
        "metrics": metrics,
        "params": [{"name": k, "value": str(v)} for k, v in sorted(record.params.items())],
        "data": [d.to_dict() for d in record.data],
        "signature": dict(signature),
        "model_info": dict(model_info),
        "limitations": _limitations(record, criteria, signature, model_info),
        "approvals": [{"by": a.by, "note": a.note, "created": iso(a.created)} for a in record.approvals],
        "forced": bool(forced),
        "reason": reason or "",
        "unmet": list(unmet),
        "environment": {
            "python": (lock.get("python") or {}).get("version", ""),
            "platform": " ".join(str((lock.get("platform") or {}).get(k, "")) for k in ("system", "machine")).strip(),
            "packages": len(packages),
            "git_commit": str(git.get("commit") or "")[:12],
            "git_dirty": bool(git.get("dirty")),
            "lock_hash": record.lock_hash or "",
        },
        "nbtoolkit_version": nbtoolkit_version,
    }


def _md(value: Any) -> str:
    """Escape text for Markdown prose: no raw HTML."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(value: Any) -> str:
    """Escape text for a Markdown table cell (one line, no pipes, no raw HTML)."""
    return " ".join(_md(value).split()).replace("|", "\\|")


def _md_code(value: Any) -> str:
    """Text for inside a Markdown code span: literal, so only backticks, newlines and pipes matter."""
    return " ".join(str(value).replace("`", "'").split()).replace("|", "\\|")


def render_model_card(context: Mapping[str, Any]) -> tuple[str, str]:
    """Render ``(markdown, html)`` from :func:`card_context` output."""
    import jinja2

    loader = jinja2.FileSystemLoader(str(templates_dir()))
    md_env = jinja2.Environment(loader=loader, autoescape=False, keep_trailing_newline=True,
                                undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    md_env.filters["md"] = _md
    md_env.filters["cell"] = _md_cell
    md_env.filters["code"] = _md_code
    html_env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)
    html_env.globals["palette"] = PALETTE
    md = md_env.get_template("model_card.md.j2").render(**context)
    page = html_env.get_template("model_card.html.j2").render(**context)
    return md, page
