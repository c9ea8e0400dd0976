"""Sweep and index reports: many runs at once, read through the store's fast tabular query."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.declaration import Declaration
from nbtoolkit.errors import InputError, RunNotFoundError

if TYPE_CHECKING:
    from nbtoolkit.store import Store

SEED_NAMES = ("seed", "random_state", "random_seed", "rng_seed")


def is_seed_param(name: str) -> bool:
    """Whether a parameter name denotes a random seed (``seed``, ``random_state``, ``*_seed``)."""
    low = name.lower()
    return low in SEED_NAMES or low.endswith("_seed")


def _tabular(store: Store, **query: Any) -> list[dict[str, Any]]:
    """Runs as dicts with ``params``, ``metrics`` and the ``declaration`` (a Declaration)."""
    rows, params, metrics = store.query_runs(**query)
    by_id = {r["run_id"]: {**r, "params": {}, "metrics": {}} for r in rows}
    for p in params:
        if p["run_id"] in by_id:
            by_id[p["run_id"]]["params"][p["name"]] = _json.loads(p["value"])
    for m in metrics:
        if m["run_id"] in by_id:
            by_id[m["run_id"]]["metrics"][m["name"]] = _json.from_special(m["value"], m["special"])
    return list(by_id.values())


def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


_LOWER_IS_BETTER = ("loss", "error", "err", "mse", "mae", "rmse", "seconds", "time", "latency",
                    "duration", "cost", "regret")


def metric_direction(name: str) -> bool:
    """Whether higher is better for a metric: known metrics, else a name heuristic."""
    from nbtoolkit.stats import resolve_metric

    spec = resolve_metric(name)
    if spec is not None:
        return spec.higher_is_better
    words = name.lower().replace(".", "_").replace("-", "_").split("_")
    return not any(w in _LOWER_IS_BETTER for w in words)


def target_metric(runs: list[dict[str, Any]], sort: str | None) -> tuple[str | None, bool]:
    """The metric to sort by and whether higher is better.

    ``sort`` wins (``METRIC``, ``METRIC:asc`` or ``METRIC:desc``); else the first criterion of
    the children's declaration (its operator gives the direction); else the first metric name.
    Without an explicit direction, known metrics use theirs and names such as ``*_loss``,
    ``*_seconds`` or ``*_error`` sort ascending.
    """
    if sort:
        name, _, order = sort.partition(":")
        if order and order not in ("asc", "desc"):
            raise InputError(f"--sort {sort!r}: the order after ':' must be 'asc' or 'desc'.")
        return name, (order == "desc") if order else metric_direction(name)
    for r in runs:
        crits = r["declaration"].criteria
        if crits:
            c = crits[0]
            return c.metric, c.op in (">=", ">") or (c.op == "==" and metric_direction(c.metric))
    names = sorted({m for r in runs for m in r["metrics"]})
    return (names[0], metric_direction(names[0])) if names else (None, True)


def run_report_name(run_id: str) -> str:
    """File name of a run's report written next to a sweep page or the experiment log."""
    return f"run-{run_id[:12]}.html"


def spec_rows(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The sweep spec as ``(what, name, values)`` rows a reader can scan."""
    rows: list[tuple[str, str, str]] = []
    for name, axis in (spec.get("grid") or {}).items():
        if isinstance(axis, list) or (isinstance(axis, dict) and "choice" in axis):
            values = axis if isinstance(axis, list) else axis["choice"]
            rows.append(("grid", name, ", ".join(_json.dumps(v) for v in values)))
        elif isinstance(axis, dict) and "dist" in axis:
            rows.append(("sampled", name, f"{axis['dist']} from {axis.get('low')} to {axis.get('high')}"))
    for name, value in (spec.get("base") or {}).items():
        rows.append(("fixed", name, _json.dumps(value)))
    points = spec.get("points")
    if isinstance(points, list):
        how = f"{spec['random']} random samples (seed {spec.get('seed')})" if spec.get("random") else "every grid combination"
        rows.append(("runs", "points", f"{len(points)}: {how}"))
    for key, label in (("jobs", "parallel jobs"), ("executor", "executor"), ("timeout", "cell timeout (s)"),
                       ("kernel", "kernel"), ("flags", "feature flags")):
        if spec.get(key):
            rows.append(("settings", label, _json.dumps(spec[key]) if isinstance(spec[key], dict) else str(spec[key])))
    return rows


def _why(store: Store, run: dict[str, Any], metric: str | None) -> str:
    """One line explaining a child's verdict: its failure, its verdict reason, or why there is none."""
    if run["status"] != "finished":
        rec = store.get_run(run["run_id"])
        last = (rec.error or "").strip().splitlines()[-1:] or ["no error recorded"]
        return f"{run['status']}: {last[0][:200]}"
    verdict = store.get_run(run["run_id"]).verdict_detail
    detail: dict[str, Any] = verdict.to_dict() if verdict is not None else {}
    parts = [f"{(r.get('criterion') or {}).get('text') or '?'}: {r.get('reason') or r.get('status')}"
             for r in detail.get("results") or [] if isinstance(r, dict)]
    if parts:
        return "; ".join(parts)
    if detail.get("reason"):
        return str(detail["reason"])
    if run.get("verdict"):
        return f"verdict {run['verdict']}"
    return "no success criteria were declared, so there is no verdict" + (
        f"; ranked by {metric}" if metric else "")


def sweep_context(store: Store, sweep_id: str, *, sort: str | None = None,
                  run_links: bool = False) -> dict[str, Any]:
    """Everything the sweep template shows: spec, sorted children with verdict lines, seed groups, plots.

    ``run_links``: each child links to ``run-<id>.html`` (:func:`run_report_name`) next to the page.
    """
    from nbtoolkit.report import plots

    found = store.find_sweeps(sweep_id)
    if len(found) > 1:
        raise InputError(f"Sweep id prefix {sweep_id!r} matches {len(found)} sweeps; give more characters.")
    sweep = found[0] if found else None
    full_id = sweep.sweep_id if sweep else sweep_id
    runs = _tabular(store, parent_id=full_id)
    if not runs and sweep is None:
        raise RunNotFoundError(sweep_id, "No sweep has this id; list sweeps with `nbtk runs` "
                               "(children show their sweep id) and pass it to --sweep.")
    metric, higher = target_metric(runs, sort)

    def key(r: dict[str, Any]) -> tuple[bool, float]:
        v = _finite(r["metrics"].get(metric)) if metric else None
        return (v is None, -(v or 0.0) if higher else (v or 0.0))

    runs.sort(key=key)
    names = sorted({p for r in runs for p in r["params"]})
    varying = [p for p in names if len({_json.dumps(r["params"].get(p)) for r in runs}) > 1]
    shown = varying or names
    seeds = [p for p in varying if is_seed_param(p)]
    groups: list[dict[str, Any]] = []
    if seeds:
        buckets: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in runs:
            rest = {k: v for k, v in r["params"].items() if k not in seeds}
            buckets[_json.dumps(rest)].append(r)
        for members in buckets.values():
            values = [v for v in (_finite(m["metrics"].get(metric)) for m in members) if v is not None]
            if len(members) < 2:
                continue
            groups.append({
                "params": {k: v for k, v in members[0]["params"].items() if k in varying and k not in seeds},
                "n": len(members), "n_values": len(values),
                "mean": statistics.fmean(values) if values else None,
                "spread": statistics.stdev(values) if len(values) > 1 else None,
                "min": min(values) if values else None, "max": max(values) if values else None,
                "run_ids": [m["run_id"] for m in members],
            })
        groups.sort(key=lambda g: (g["mean"] is None, -float(g["mean"] or 0) if higher else float(g["mean"] or 0)))
    plot_params = [p for p in varying if not is_seed_param(p)] or varying
    statuses: dict[str, int] = defaultdict(int)
    for r in runs:
        statuses[r["status"]] += 1
        r["why"] = _why(store, r, metric)
        r["report"] = run_report_name(r["run_id"]) if run_links else None
    other_metrics = sorted({m for r in runs for m in r["metrics"]} - {metric})[:8]
    return {
        "kind": "sweep",
        "title": f"Sweep {full_id[:12]}",
        "sweep_id": full_id,
        "sweep": sweep,
        "spec": sweep.spec if sweep else {},
        "spec_rows": spec_rows(sweep.spec) if sweep else [],
        "runs": runs,
        "metric": metric,
        "higher": higher,
        "params": shown,
        "other_metrics": other_metrics,
        "seed_params": seeds,
        "seed_groups": groups,
        "statuses": dict(statuses),
        "plot": plots.safe_plot(plots.param_vs_metric, runs, plot_params, metric, higher=higher)
        if metric and plot_params else None,
        "parallel_plot": plots.safe_plot(plots.parallel_coordinates, runs, plot_params, metric, higher=higher)
        if metric and len(plot_params) >= 3 else None,
    }


def index_context(store: Store, *, reports: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """The experiment log: one entry per experiment, newest activity first, plus search data.

    ``reports``: run report file names that exist next to the log; those runs link to them.
    """
    runs = _tabular(store)
    for r in runs:
        name = run_report_name(r["run_id"])
        r["report"] = name if name in reports else None
    by_exp: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        by_exp[r["experiment"]].append(r)
    experiments: list[dict[str, Any]] = []
    for name, members in by_exp.items():
        members.sort(key=lambda r: r["started"], reverse=True)
        top = [r for r in members if r["kind"] in ("experiment", "papermill") and not r.get("parent_id")] or members
        latest = top[0] if top else None
        finished = [r for r in top if r["status"] == "finished" and r.get("verdict")]
        decl = latest["declaration"] if latest else Declaration.from_stored({})
        experiments.append({
            "name": name,
            "hypothesis": decl.hypothesis,
            "owner": decl.owner,
            "scope": decl.scope,
            "until": decl.until.isoformat() if decl.until else None,
            "verdict": finished[0]["verdict"] if finished else None,
            "verdict_run": finished[0]["run_id"] if finished else None,
            "verdict_report": finished[0]["report"] if finished else None,
            "first": min((r["started"] for r in members), default=None),
            "last": max((r["started"] for r in members), default=None),
            "n_runs": len(members),
            "latest": latest,
            "runs": members[:10],
            "notebook": next((r.get("notebook_path") for r in members if r.get("notebook_path")), None),
        })
    experiments.sort(key=lambda e: e["last"] or 0, reverse=True)
    search = [" ".join([e["name"], e["hypothesis"], e["owner"], e["scope"], e["verdict"] or "",
                        *(r["run_id"] for r in e["runs"])]).lower() for e in experiments]
    return {"kind": "index", "title": "Experiment log", "experiments": experiments,
            "search": search, "n_runs": len(runs)}
