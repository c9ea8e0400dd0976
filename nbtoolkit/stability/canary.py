"""Canary simulation: replay historical traffic, route a growing hash-of-key share to the challenger.

The stream is replayed in order and cut into one consecutive segment per step. In the segment
of a step at ``pct`` %, the rows whose key satisfies
``int(sha256(f"{salt}:{key}").hexdigest()[:8], 16) % 10000 < pct * 100`` go to the challenger,
the rest to the champion; shares grow monotonically, so a key once routed to the challenger
stays there. After each step the SLA is evaluated on the challenger's share of that step
(latency p50/p95/p99, error rate, and metrics on its labelled rows). The first breach halts the
canary: later steps do not run, traffic returns to the champion, and when the registry alias
(``model``/``alias``) points at the challenger's version it is rolled back.

:func:`nbtoolkit.export.release.release_plan` builds the plan the export stage writes into a bundle's ``release.json``
(``export_bundle(..., release=plan)``); ``canary(..., bundle=PATH)`` replays with that plan.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtoolkit import registry
from nbtoolkit.config import Settings
from nbtoolkit.errors import InputError
from nbtoolkit.export.load import load_bundle
from nbtoolkit.export.release import DEFAULT_SALT, DEFAULT_STEPS, check_steps, release_plan
from nbtoolkit.export.verify import verify_bundle
from nbtoolkit.html import PALETTE, colour, esc, fmt_number
from nbtoolkit.policy import Sla, SlaReport, as_sla, load_sla, padded
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
from nbtoolkit.stability.batches import call_batches
from nbtoolkit.stability.promotion import rollback
from nbtoolkit.store import Store, open_store


@dataclass(frozen=True)
class CanaryStep:
    """One step of the canary: its share, traffic and SLA outcome on the challenger's rows."""

    index: int
    pct: float
    rows: int
    challenger_rows: int
    measured: dict[str, float]
    sla: SlaReport | None
    status: str  # pass | breach | no traffic | not run

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "pct": self.pct, "rows": self.rows, "challenger_rows": self.challenger_rows,
                "measured": self.measured, "sla": None if self.sla is None else self.sla.to_dict(), "status": self.status}


@dataclass
class CanaryResult:
    """The outcome of :func:`canary`.

    Attributes:
        steps: every planned step (those after a halt have status ``not run``).
        halted: whether an SLA breach stopped the canary.
        halted_at: the share (pct) of the step that breached, or ``None``.
        routed: per row of the stream, True when the challenger served it.
        rollback: the registry move that restored the previous version, when one was made.
        plan: the release plan used.
        run_id: the recorded run of kind ``canary``.
    """

    steps: list[CanaryStep]
    halted: bool
    halted_at: float | None
    routed: Any
    rollback: dict[str, Any] | None
    plan: dict[str, Any]
    run_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    png: bytes = b""

    @property
    def completed(self) -> bool:
        return not self.halted

    @property
    def breaches(self) -> list[str]:
        return [b.describe() for s in self.steps if s.sla is not None for b in s.sla.breaches]

    def __repr__(self) -> str:
        state = f"halted at {self.halted_at:g}%" if self.halted and self.halted_at is not None else "completed"
        rb = f", rolled back to {self.rollback['to_version']}" if self.rollback else ""
        return f"<CanaryResult {state} steps={[s.pct for s in self.steps]}{rb}>"

    def _repr_html_(self) -> str:
        return canary_section_html(self.summary, self.png)


def _bundle_plan(bundle: str | Path) -> dict[str, Any]:
    path = Path(bundle)
    if path.is_dir():
        verify_bundle(path)  # the plan is read from a bundle only after its hashes check out
        rel = path / "release.json"
        if rel.is_file():
            plan: dict[str, Any] = json.loads(rel.read_text(encoding="utf-8"))
            return plan
        return {}
    try:
        release = load_bundle(path).release
    except Exception:  # noqa: BLE001 - an archive without a readable plan: defaults apply
        return {}
    return dict(release) if isinstance(release, Mapping) else {}


@dataclass(frozen=True)
class _Traffic:
    """The replayed stream, ready to route: features per model, keys' buckets, labels."""

    Xc: Any
    Xx: Any
    bucket_of: Any
    y: Any
    labelled: Any
    key_col: str | None
    rows: int


def _traffic(frame: Any, champ: ModelHandle, chall: ModelHandle, key: Any, y: Any, salt: str) -> _Traffic:
    key_arr, key_col = column_or_array(frame, key, "key")
    y_arr, y_col = column_or_array(frame, y, "y")
    drop = [c for c in (key_col, y_col) if c is not None]
    return _Traffic(
        feature_frame(champ, frame, drop), feature_frame(chall, frame, drop), buckets(list(key_arr), salt=salt),
        y_arr, labelled_mask(y_arr) if y_arr is not None else None, key_col, len(frame),
    )


def _step_metrics(chall: ModelHandle, meth: str, fns: Any, traffic: _Traffic, to_x: Any, blocks: list[Any], ok: Any) -> dict[str, float]:
    """Metrics of the challenger's answers on the labelled rows it served."""
    import numpy as np

    if traffic.labelled is None or not ok.any():
        return {}
    out = np.concatenate([np.asarray(b) for b in blocks if b is not None])
    rows_ok = to_x[ok]
    lab = traffic.labelled[rows_ok]
    if not lab.any():
        return {}
    preds = labels_of(chall, out, meth)[lab]
    scores = scores_of(out, meth)
    yt = traffic.y[rows_ok][lab]
    try:
        yt = yt.astype(np.asarray(preds).dtype)
    except (TypeError, ValueError):
        pass
    return dict(compute_metrics(fns, yt, preds, None if scores is None else scores[lab]))


def _run_steps(
    champ: ModelHandle, chall: ModelHandle, traffic: _Traffic, plan_steps: Sequence[float], rule: Sla, meth: str,
    fns: Any, batch_size: int,
) -> tuple[list[CanaryStep], float | None, Any]:
    """Replay the stream one segment per step; halt at the first SLA breach.

    Returns the steps, the share that breached (or ``None``) and the per-row routing mask.
    """
    import numpy as np

    segments = np.array_split(np.arange(traffic.rows), len(plan_steps))
    routed = np.zeros(traffic.rows, dtype=bool)
    results: list[CanaryStep] = []
    halted_at: float | None = None
    for i, (pct, seg) in enumerate(zip(plan_steps, segments, strict=True)):
        if halted_at is not None:
            results.append(CanaryStep(i, pct, len(seg), 0, {}, None, "not run"))
            continue
        to_x = seg[traffic.bucket_of[seg] < pct * 100]
        to_c = seg[traffic.bucket_of[seg] >= pct * 100]
        routed[to_x] = True
        if len(to_c):
            call_batches(champ, meth, traffic.Xc.iloc[to_c], max(batch_size, 256), isolate=False)  # the champion serves
        if not len(to_x):
            results.append(CanaryStep(i, pct, len(seg), 0, {}, None, "no traffic"))
            continue
        blocks, ok, lat, _errors = call_batches(chall, meth, traffic.Xx.iloc[to_x], batch_size, isolate=True)
        measured: dict[str, float] = {"error_rate": (len(to_x) - int(ok.sum())) / len(to_x)}
        measured.update(latency_stats(lat[ok]) if ok.any() else {})
        measured.update(_step_metrics(chall, meth, fns, traffic, to_x, blocks, ok))
        report = rule.check(measured)
        results.append(CanaryStep(i, pct, len(seg), len(to_x), measured, report, "pass" if report.ok else "breach"))
        if not report.ok:
            halted_at = pct
    return results, halted_at, routed


def canary(
    champion: Any,
    challenger: Any,
    stream: Any,
    *,
    steps: Sequence[float] | None = None,
    key: Any = None,
    y: Any = None,
    sla: Sla | Mapping[str, Any] | None = None,
    bundle: str | Path | None = None,
    salt: str | None = None,
    metrics: Sequence[str] | Mapping[str, Any] = ("accuracy", "roc_auc"),
    method: str = "auto",
    batch_size: int = 1,
    model: str | None = None,
    alias: str = "production",
    version: str | None = None,
    by: str = "canary",
    record: bool = True,
    experiment: str = "canary",
    settings: Settings | None = None,
    store: Store | None = None,
) -> CanaryResult:
    """Simulate a canary release on historical traffic.

    Args:
        champion: the serving model (model object, bundle, bundle path or ``MODEL@ALIAS``).
        challenger: the candidate (same forms).
        stream: historical rows in arrival order (DataFrame or ``.csv`` / ``.parquet``).
        steps: challenger shares in percent (default: the bundle's plan, else 1, 5, 25, 50, 100).
        key: routing key column (or aligned array) — required.
        y: labels column or array (missing values = unlabelled); enables metric SLAs.
        sla: thresholds (default: the current ``[tool.nbtoolkit.sla]``, else the bundle's frozen
            plan; see :func:`sla_in_effect` and ``summary["sla_source"]``).
        bundle: a challenger bundle whose ``release.json`` supplies steps, SLA and salt.
        salt: bucketing salt (default: the plan's, else ``"nbtoolkit"``).
        batch_size: rows per challenger call (1 = per-request latency).
        model: registry model; on a halt, ``alias`` is rolled back when it points at the challenger.
        alias: the registry alias the canary releases to.
        version: the challenger's registry version (default: found from its bundle path or ref).
        by: recorded as who rolled back.
        record: record a run of kind ``canary`` with the timeline figure.

    Returns:
        A :class:`CanaryResult`.
    """
    plan_in = _bundle_plan(bundle) if bundle is not None else {}
    if challenger is None and bundle is not None:
        challenger = bundle
    plan_steps = check_steps(steps if steps is not None else plan_in.get("steps") or DEFAULT_STEPS)
    rule, sla_source = sla_in_effect(sla, plan_in.get("sla") or None, settings)
    salt = salt or (plan_in.get("routing") or {}).get("salt") or DEFAULT_SALT
    if key is None:
        raise InputError("canary needs key=COLUMN (or an array): the routing key hashed into buckets.")
    if batch_size < 1:
        raise InputError("batch_size must be at least 1.")
    if store is None and (record or model is not None or any(isinstance(m, str) and "@" in m for m in (champion, challenger))):
        store = open_store(settings)
    champ, chall = as_model(champion, store=store), as_model(challenger, store=store)
    traffic = _traffic(load_frame(stream), champ, chall, key, y, salt)
    t0 = time.time()
    results, halted_at, routed = _run_steps(
        champ, chall, traffic, plan_steps, rule, choose_method(method, champ, chall), metric_fns(metrics), batch_size,
    )
    rollback_move = None
    if halted_at is not None and model is not None and store is not None:
        breach = next(s for s in results if s.status == "breach")
        source = {**chall.source, **({"version": version} if version is not None else {})}
        rollback_move = _registry_rollback(store, settings, model, alias, source, by, breach)
    plan = release_plan(None, steps=plan_steps, sla=rule, key=traffic.key_col, salt=salt)
    if model is not None:
        plan["rollback_target"] = (rollback_move and {"model": model, "alias": alias, "version": rollback_move["to_version"]}) or plan_in.get("rollback_target")
    summary = {
        "schema": "nbtoolkit.canary.v1", "champion": {"label": champ.label, **champ.source},
        "challenger": {"label": chall.label, **chall.source}, "rows": traffic.rows, "salt": salt, "batch_size": batch_size,
        "steps": [s.to_dict() for s in results], "halted": halted_at is not None, "halted_at": halted_at,
        "rollback": rollback_move, "plan": plan, "seconds": time.time() - t0,
        "sla_source": sla_source, "frozen_plan_sla": plan_in.get("sla") if bundle is not None else None,
    }
    png = timeline_png(results, sla=rule)
    run_id = _record(store, experiment, summary, results, png) if record and store is not None else None
    return CanaryResult(results, halted_at is not None, halted_at, routed, rollback_move, plan, run_id, summary, png)


#: where the SLA a canary checks came from (``summary["sla_source"]``)
SLA_SOURCES = {
    "argument": "given explicitly (sla= / --sla)",
    "policy": "the current [tool.nbtoolkit.sla]",
    "plan": "the bundle's frozen release.json plan (no [tool.nbtoolkit.sla] configured)",
    "none": "none: no SLA configured and no release.json plan",
}


def sla_in_effect(sla: Sla | Mapping[str, Any] | None, plan_sla: Mapping[str, Any] | None,
                  settings: Settings | None) -> tuple[Sla, str]:
    """The SLA a canary checks and its source (a key of :data:`SLA_SOURCES`).

    A release is judged by the project's policy as it is now, not as it was at export: an
    explicit ``sla`` first, then the current ``[tool.nbtoolkit.sla]``; the SLA frozen in the
    bundle's ``release.json`` applies only when no policy is configured.
    """
    if sla is not None:
        return as_sla(sla, settings), "argument"
    current = load_sla(settings)
    if current:
        return current, "policy"
    if plan_sla:
        return as_sla(plan_sla, settings), "plan"
    return current, "none"


def _registry_rollback(store: Store, settings: Settings | None, model: str, alias: str, source: Mapping[str, Any], by: str,
                       step: CanaryStep) -> dict[str, Any] | None:
    version = source.get("version")
    if version is None and source.get("path"):
        for entry in registry.models(model, store=store):
            for v in entry.versions:
                if str(Path(v.path).resolve()) == str(Path(source["path"]).resolve()):
                    version = v.version
    if version is None or registry.current(model, alias, store=store) != version:
        return None
    breaches = "; ".join(b.describe() for b in (step.sla.breaches if step.sla is not None else ()))
    move = rollback(model, alias=alias, by=by, reason=f"canary halted at {step.pct:g}%: {breaches}", store=store, settings=settings)
    return move.to_dict()


def timeline_png(steps: Sequence[CanaryStep], *, sla: Sla | None = None) -> bytes:
    """A PNG timeline: challenger share per step, coloured by outcome, with challenger p95 latency
    (and its SLA limit as a dashed line when one is set)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.subplots()
    colors = {"pass": colour("pass"), "breach": colour("breach"), "no traffic": colour("no traffic"),
              "not run": PALETTE["border"]}
    xs = list(range(len(steps)))
    ax.bar(xs, [s.pct for s in steps], color=[colors[s.status] for s in steps])
    ax.set_xticks(xs, [f"{s.pct:g}%\n{s.status}" for s in steps], fontsize=8)
    ax.set_ylabel("challenger share %")
    ax.set_ylim(0, 105)
    ax.set_title("Canary timeline")
    lat = [s.measured.get("latency_p95_ms") for s in steps]
    if any(v is not None for v in lat):
        ax2 = ax.twinx()
        ax2.plot([x for x, v in zip(xs, lat, strict=True) if v is not None], [v for v in lat if v is not None], "o-", color=PALETTE["blue"])
        ax2.set_ylabel("challenger p95 ms", color=PALETTE["blue"])
        limit = next((r.limit for r in (sla.rules if sla else ()) if r.key == "max.latency_p95_ms"), None)
        if limit is not None:
            ax2.axhline(limit, color=PALETTE["blue"], linestyle="--", linewidth=1)
            ax2.set_ylim(0, max([limit, *(v for v in lat if v is not None)]) * 1.15)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _record(store: Store, experiment: str, summary: dict[str, Any], steps: Sequence[CanaryStep], png: bytes) -> str:
    now = time.time()
    run_id = store.create_run(experiment=experiment, kind="canary", source="script", extra={"canary": summary})
    rows: list[tuple[str, float, int | None, float]] = []
    for s in steps:
        if s.status in ("pass", "breach"):
            rows += [(f"challenger.{k}", float(v), s.index, now) for k, v in s.measured.items()]
            rows.append(("challenger_share_pct", s.pct, s.index, now))
    rows.append(("halted", 1.0 if summary["halted"] else 0.0, None, now))
    store.log_metrics(run_id, rows)
    digest, size = store.artifacts.put_bytes(png)
    store.add_artifact(run_id, name="canary_timeline.png", kind="figure", digest=digest, size=size, media_type="image/png")
    store.finish_run(run_id, status="finished")
    return run_id


def canary_section_html(summary: Mapping[str, Any], png: bytes = b"") -> str:
    """The canary report section (steps table, timeline image); all text escaped."""
    import base64

    if not summary:
        return "<p>No canary recorded.</p>"
    state = f"halted at {summary['halted_at']:g} %" if summary.get("halted") else "completed all steps"
    rb = summary.get("rollback")
    rb_html = f"; rolled back {esc(rb['model'])}@{esc(rb['alias'])} to {esc(rb['to_version'])}" if rb else ""
    rows = []
    for s in summary.get("steps", []):
        m = s.get("measured", {})
        breaches = "; ".join(
            f"{b['metric']} {b['observed']:.4g} vs {b['bound']} {b['allowed']:.4g}" if isinstance(b["observed"], float) else b["metric"]
            for b in ((s.get("sla") or {}).get("breaches") or [])
        )
        rows.append(
            f"<tr><td>{s['pct']:g}&nbsp;%</td><td>{s['challenger_rows']}/{s['rows']}</td><td>{fmt_number(m.get('latency_p95_ms'))}</td>"
            f"<td>{fmt_number(m.get('error_rate'))}</td><td>{esc(', '.join(f'{k}={fmt_number(v)}' for k, v in m.items() if not k.startswith('latency') and k != 'error_rate'))}</td>"
            f"<td>{esc(s['status'])}</td><td>{esc(breaches)}</td></tr>"
        )
    img = f'<img alt="canary timeline" src="data:image/png;base64,{base64.b64encode(png).decode()}">' if png else ""
    rules = ", ".join(f"{esc(k)} {fmt_number(v)}" for k, v in ((summary.get("plan") or {}).get("sla") or {}).items()) or "none configured"
    source = f" — {esc(SLA_SOURCES[summary['sla_source']])}" if summary.get("sla_source") in SLA_SOURCES else ""
    return padded(
        f'<div class="nbtk-canary"><h3>Canary</h3><p>{esc(summary["challenger"]["label"])} vs {esc(summary["champion"]["label"])}: '
        f"<b>{esc(state)}</b>{rb_html}</p>"
        "<table><thead><tr><th>share</th><th>challenger rows</th><th>p95 ms</th><th>error rate</th><th>metrics</th><th>status</th><th>breaches</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{img}<p>SLA: {rules}{source}</p></div>"
    )


def report_section(record: Any, store: Any) -> tuple[str, str] | None:
    """Run-report section for runs of kind ``canary`` (entry point ``nbtoolkit.report_sections``)."""
    summary = record.extra.get("canary") if record.kind == "canary" else None
    if not summary:
        return None
    art = record.artifact("canary_timeline.png")
    png = store.artifacts.read_bytes(art.digest) if art is not None else b""
    return "Canary simulation", canary_section_html(summary, png)
