"""``nbtk baseline set|show|unset`` and ``nbtk sweeps``: which runs stand for what."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import click

from nbtoolkit._format import iso
from nbtoolkit.baselines import (
    describe_sweep_best,
    pin_baseline,
    resolve_baseline,
    sweep_best,
    unpin_baseline,
)
from nbtoolkit.cli import cli, store_from
from nbtoolkit.errors import InputError, RunNotFoundError
from nbtoolkit.redact import public_json
from nbtoolkit.store.kinds import KIND_LABELS, lineage_kind


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


@cli.group("baseline")
def baseline() -> None:
    """Pin, show or unpin the run an experiment name means as a baseline."""


@baseline.command("set")
@click.argument("experiment")
@click.argument("run")
@click.option("--by", default=_default_user, show_default="your user name", help="Who pins it (recorded).")
@click.option("--note", default="", help="Why (recorded).")
@click.pass_context
def baseline_set(ctx: click.Context, experiment: str, run: str, by: str, note: str) -> None:
    """Pin RUN as the baseline that EXPERIMENT resolves to (instead of its latest supported run)."""
    pin = pin_baseline(store_from(ctx), experiment, run, by=by, note=note)
    click.echo(f"Baseline of {experiment} pinned to run {pin.run_id[:8]} by {pin.by} at {iso(pin.created)}")


@baseline.command("show")
@click.argument("experiment")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def baseline_show(ctx: click.Context, experiment: str, as_json: bool) -> None:
    """Show the run EXPERIMENT resolves to as a baseline, and whether it is pinned."""
    store = store_from(ctx)
    if experiment not in store.experiment_names():
        raise InputError(f"No experiment is called {experiment!r}; list them with `nbtk runs`.")
    pin = store.baseline_pin(experiment)
    run_id, reason = resolve_baseline(store, experiment)
    if as_json:
        click.echo(public_json({"experiment": experiment, "run_id": run_id, "reason": reason,
                                "pinned": pin.to_dict() if pin else None}, indent=2))
        return
    if pin is not None:
        note = f" ({pin.note})" if pin.note else ""
        click.echo(f"{experiment}: run {pin.run_id[:8]}, pinned by {pin.by} at {iso(pin.created)}{note}")
    elif run_id is not None:
        click.echo(f"{experiment}: run {run_id[:8]}, its latest supported original run (not pinned)")
    else:
        click.echo(f"{experiment}: no baseline: {reason}")


@baseline.command("unset")
@click.argument("experiment")
@click.pass_context
def baseline_unset(ctx: click.Context, experiment: str) -> None:
    """Remove EXPERIMENT's pin: it resolves to its latest supported original run again."""
    if unpin_baseline(store_from(ctx), experiment):
        click.echo(f"Baseline pin of {experiment} removed.")
    else:
        click.echo(f"{experiment} had no pinned baseline.")


def sweep_rows(store: Any, sweeps: list[Any]) -> list[dict[str, Any]]:
    """One summary per sweep: id, notebook, created, status, counts and the best run."""
    counts = store.sweep_counts([s.sweep_id for s in sweeps])
    rows = []
    for s in sweeps:
        c = counts[s.sweep_id]
        rows.append({
            "sweep_id": s.sweep_id, "notebook": s.notebook, "status": s.status, "created": iso(s.created),
            "ended": iso(s.ended), "points": len(s.spec.get("points") or []), "done": c.done, "failed": c.failed,
            "cached": c.cached, "running": c.running, "best": describe_sweep_best(sweep_best(store, s.sweep_id)),
        })
    return rows


@cli.command("sweeps")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most N newest sweeps.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def sweeps_cmd(ctx: click.Context, limit: int | None, as_json: bool) -> None:
    """List sweeps, newest first: points done / failed / cached and the best run by the target metric."""
    from rich.console import Console
    from rich.table import Table

    store = store_from(ctx)
    rows = sweep_rows(store, store.list_sweeps(limit=limit))
    if as_json:
        click.echo(public_json(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} sweep(s)")
    for col in ("sweep", "notebook", "created", "status", "points", "done", "failed", "cached", "best run"):
        table.add_column(col, no_wrap=col != "notebook")
    for r in rows:
        best = r["best"]
        best_text = f"{best['run_id'][:8]} {best['metric']}={best['value']:.4g} ({best['goal']})" if best else ""
        table.add_row(r["sweep_id"][:8], Path(r["notebook"]).name, (r["created"] or "")[:16].replace("T", " "),
                      r["status"], str(r["points"]), str(r["done"]), str(r["failed"]), str(r["cached"]), best_text)
    Console(highlight=False, soft_wrap=False, width=160).print(table)


def find_sweep(store: Any, ref: str) -> Any:
    """The sweep whose id starts with ``ref`` (at least 4 characters), or ``None``."""
    if len(ref) < 4:
        return None
    found = store.find_sweeps(ref.strip().lower(), limit=2)
    return found[0] if len(found) == 1 else None


def show_sweep(store: Any, sweep: Any, *, as_json: bool) -> None:
    """Print one sweep: its summary, spec and every child with kind, status, verdict and parameters."""
    summary = sweep_rows(store, [sweep])[0]
    children = store.get_runs(store.sweep_child_ids(sweep.sweep_id))
    kids = [{"run_id": r.run_id, "index": r.extra.get("sweep_index"), "kind": lineage_kind(r.kind), "status": r.status,
             "verdict": r.verdict, "params": r.params, "metrics": r.metrics,
             "cached_from": r.origin_run_id if r.kind == "cached" else None} for r in children]
    kids.sort(key=lambda k: (k["index"] is None, k["index"] or 0))
    if as_json:
        click.echo(public_json({**summary, "spec": sweep.spec, "children": kids}, indent=2))
        return
    best = summary["best"]
    click.echo(f"sweep {sweep.sweep_id}  {summary['status']}")
    click.echo(f"  notebook: {sweep.notebook}")
    click.echo(f"  created: {summary['created']}   ended: {summary['ended']}")
    click.echo(f"  points: {summary['points']}   done: {summary['done']}   failed: {summary['failed']}   "
               f"cached: {summary['cached']}   running: {summary['running']}")
    grid = sweep.spec.get("grid") or {}
    if grid:
        click.echo("  grid: " + "; ".join(f"{k}={json.dumps(v, default=str)}" for k, v in grid.items()))
    if best:
        click.echo(f"  best: run {best['run_id'][:8]} {best['metric']}={best['value']:.6g} ({best['goal']})  "
                   f"use it as a baseline with --baseline sweep:{sweep.sweep_id[:8]}:best")
    for k in kids:
        note = f"  cached from {k['cached_from'][:8]}" if k["cached_from"] else ""
        click.echo(f"  #{k['index']} {k['run_id'][:8]} {KIND_LABELS.get(k['kind'], k['kind'])} {k['status']} "
                   f"{k['verdict'] or ''} {json.dumps(k['params'], default=str)}{note}")


def missing_run_or_sweep(ref: str) -> RunNotFoundError:
    """The error of ``nbtk show REF`` when REF names neither a run nor a sweep."""
    return RunNotFoundError(ref, "It is neither a run id nor a sweep id; list them with `nbtk runs` and `nbtk sweeps`.")


def lineage_lines(d: dict[str, Any]) -> list[str]:
    """``nbtk show`` lines for a run's kind, lineage, code version and baseline (from ``to_dict()``)."""
    lin = d.get("lineage") or {}
    kind = lin.get("label") or d.get("kind")
    if lin.get("sweep_id"):
        point = f" (point #{lin['sweep_index']})" if lin.get("sweep_index") is not None else ""
        kind = f"{kind} of sweep {lin['sweep_id'][:8]}{point}"
    if lin.get("cached_from"):
        kind = f"{kind} of run {lin['cached_from'][:8]} (served from the run cache, not re-executed)"
    if lin.get("reproduces"):
        kind = f"{kind} of run {lin['reproduces'][:8]}"
    lines = [f"kind: {kind}"]
    for rep in lin.get("reproduced_by") or []:
        lines.append(f"reproduced by run {rep['run_id'][:8]}: {rep['result'] or rep['status']} ({rep['started']})")
    code = d.get("code") or {}
    if code.get("commit"):
        dirty = " (dirty)" if code.get("dirty") else ""
        diff = code.get("diff_artifact")
        diff_text = f", diff artifact {diff['name']} sha256 {diff['sha256'][:12]}" if diff else ""
        lines.append(f"code: git {code['commit'][:12]} on {code.get('branch') or 'detached HEAD'}{dirty}{diff_text}")
    else:
        lines.append("code: no git commit recorded")
    base = d.get("baseline") or {}
    if base.get("ref"):
        target = f"run {base['run_id'][:8]}" if base.get("run_id") else "no run (nothing qualified)"
        lines.append(f"baseline: {base['ref']} -> {target}")
    return lines
