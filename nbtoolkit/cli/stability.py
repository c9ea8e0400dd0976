"""``nbtk registry | promote | rollback | history | shadow | canary | status``: thin adapters."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nbtoolkit import registry
from nbtoolkit._io import atomic_write_bytes
from nbtoolkit.cli import cli, settings_from, store_from
from nbtoolkit.envlock.written import record_written
from nbtoolkit.errors import InputError
from nbtoolkit.redact import public_json
from nbtoolkit.stability import promotion
from nbtoolkit.stability.cadence import status as get_status
from nbtoolkit.stability.canary import SLA_SOURCES
from nbtoolkit.stability.canary import canary as run_canary
from nbtoolkit.stability.shadow import shadow as run_shadow


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@cli.command("registry")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def registry_cmd(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """List models, their exported versions and aliases (staging, production, custom)."""
    entries = registry.models(name, store=store_from(ctx))
    if as_json:
        click.echo(public_json([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo(f"No exported versions of {name!r}." if name else "No models yet: export a run with `nbtk export RUN --model NAME`.")
        return
    for e in entries:
        click.echo(f"{e.model}  " + ("  ".join(f"{a}={v}" for a, v in e.aliases.items()) or "(no aliases)"))
        by_version: dict[str, list[str]] = {}
        for alias, target in e.aliases.items():
            by_version.setdefault(target, []).append(alias)
        for mv in e.versions:
            tags = f"  [{', '.join(sorted(by_version[mv.version]))}]" if mv.version in by_version else ""
            forced = "  (forced export)" if mv.forced else ""
            click.echo(f"  {mv.version:<12} run {mv.run_id[:8]}  {_when(mv.created)}  {mv.path}{tags}{forced}")


@cli.command()
@click.argument("name")
@click.argument("version")
@click.option("--to", "alias", required=True, help="Alias to move (staging, production, or any name).")
@click.option("--by", "by", required=True, help="Who promotes (recorded).")
@click.option("--reason", required=True, help="Why (recorded).")
@click.option("--override-cadence", default=None, metavar="REASON", help="Promote although the cadence policy blocks it (reason recorded).")
@click.pass_context
def promote(ctx: click.Context, name: str, version: str, alias: str, by: str, reason: str, override_cadence: str | None) -> None:
    """Point ALIAS of model NAME at VERSION after the gates pass (bundle, SLA, cadence, clean git)."""
    move = promotion.promote(name, version, to=alias, by=by, reason=reason, override_cadence=override_cadence,
                                      settings=settings_from(ctx), store=store_from(ctx))
    forced = " (cadence overridden)" if move.forced_cadence else ""
    click.echo(f"{name}@{move.alias}: {move.from_version or '(none)'} -> {move.to_version}{forced}")


@cli.command()
@click.argument("name")
@click.option("--alias", default="production", show_default=True, help="Alias to roll back.")
@click.option("--to", "to", default=None, help="Version from the alias's history (default: the previous one).")
@click.option("--by", "by", default=None, help="Who rolls back (default: the current user).")
@click.option("--reason", default="", help="Why (recorded).")
@click.pass_context
def rollback(ctx: click.Context, name: str, alias: str, to: str | None, by: str | None, reason: str) -> None:
    """Move ALIAS of model NAME back to the version it pointed to before."""
    move = promotion.rollback(name, alias=alias, to=to, by=by, reason=reason, settings=settings_from(ctx), store=store_from(ctx))
    click.echo(f"{name}@{move.alias}: {move.from_version} -> {move.to_version} (rolled back)")


@cli.command()
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def history(ctx: click.Context, name: str, alias: str | None, as_json: bool) -> None:
    """Every move of model NAME's aliases: who, when, why."""
    moves = registry.history(name, alias=alias, store=store_from(ctx))
    if as_json:
        click.echo(public_json([m.to_dict() for m in moves], indent=2))
        return
    if not moves:
        click.echo(f"No alias of {name!r} was ever moved.")
        return
    for m in moves:
        forced = f"  [cadence override: {m.extra.get('cadence_override')}]" if m.forced_cadence else ""
        click.echo(f"{_when(m.created)}  {m.action:<8} {m.alias:<11} {m.from_version or '(none)'} -> {m.to_version}  by {m.by}: {m.reason}{forced}")


@cli.command()
@click.argument("champion")
@click.argument("challenger")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--label", default=None, help="Label column (unlabelled rows may be empty).")
@click.option("--key", default=None, help="Row key column.")
@click.option("--slice", "slice_by", default=None, help="Categorical column to slice agreement by.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1), help="Rows per model call.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def shadow(ctx: click.Context, champion: str, challenger: str, data: Path, label: str | None, key: str | None,
           slice_by: str | None, batch_size: int, as_json: bool) -> None:
    """Shadow-test CHALLENGER against CHAMPION (bundle paths or MODEL@ALIAS) on DATA (.csv/.parquet).

    Exits 1 when the challenger breaches the SLA.
    """
    result = run_shadow(champion, challenger, data, y=label, key=key, slice_by=slice_by, batch_size=batch_size,
                        settings=settings_from(ctx), store=store_from(ctx))
    if as_json:
        click.echo(public_json(result.to_dict(), indent=2))
    else:
        s = result.summary
        agree = "n/a" if result.agreement is None else f"{100 * result.agreement:.2f} %"
        click.echo(f"Shadow run {result.run_id}: {s['rows']} rows ({s['labelled']} labelled), agreement {agree}, challenger errors {result.error_count}")
        for who in ("champion", "challenger"):
            lat = result.latency.get(who, {})
            mets = ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.get(who, {}).items())
            click.echo(f"  {who:<10} p50 {lat.get('latency_p50_ms', float('nan')):.3f} ms  p95 {lat.get('latency_p95_ms', float('nan')):.3f} ms  p99 {lat.get('latency_p99_ms', float('nan')):.3f} ms  {mets}")
        for sl in result.slices[:5]:
            click.echo(f"  slice {sl.name}: agreement {'n/a' if sl.agreement is None else f'{100 * sl.agreement:.2f} %'} over {sl.rows} rows, {sl.errors} errors")
        click.echo("SLA: ok" if result.sla.ok else "SLA breached:\n" + "\n".join(f"  - {p}" for p in result.sla.problems()))
    if not result.sla.ok:
        sys.exit(1)


@cli.command()
@click.argument("champion")
@click.argument("challenger")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", required=True, help="Routing key column.")
@click.option("--label", default=None, help="Label column.")
@click.option("--steps", default=None, help="Challenger shares in percent, e.g. 1,5,25,50,100 (default: the bundle's plan).")
@click.option("--model", default=None, help="Registry model: roll its alias back on a halt.")
@click.option("--alias", default="production", show_default=True, help="Registry alias of the release.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the timeline PNG here.")
@click.option("--sla", "sla_rules", multiple=True, metavar="BOUND.METRIC=NUMBER",
              help="SLA rule instead of [tool.nbtoolkit.sla], e.g. max.latency_p95_ms=50 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def canary(ctx: click.Context, champion: str, challenger: str, data: Path, key: str, label: str | None, steps: str | None,
           model: str | None, alias: str, plot: Path | None, sla_rules: tuple[str, ...], as_json: bool) -> None:
    """Simulate a canary release of CHALLENGER over DATA replayed in order. Exits 1 when it halts.

    The SLA is --sla, else the current [tool.nbtoolkit.sla], else the
    bundle's frozen release.json plan; the output says which one is in effect.
    """
    sla: dict[str, float] | None = None
    if sla_rules:
        sla = {}
        for text in sla_rules:
            name, _, value = text.partition("=")
            try:
                sla[name.strip()] = float(value)
            except ValueError:
                raise InputError(f"--sla {text!r} must be BOUND.METRIC=NUMBER, e.g. max.error_rate=0.01.") from None
    step_values = None
    if steps:
        try:
            step_values = [float(s) for s in steps.split(",") if s.strip()]
        except ValueError:
            raise InputError(f"--steps {steps!r} must be numbers separated by commas, e.g. 1,5,25,50,100.") from None
    bundle: str | None = challenger if Path(challenger).exists() else None
    if bundle is None and "@" in challenger:  # a registry ref: its bundle's release.json is the plan
            bundle = registry.resolve(challenger, store=store_from(ctx)).path
    result = run_canary(champion, challenger, data, key=key, y=label, steps=step_values, bundle=bundle, model=model,
                        alias=alias, sla=sla, settings=settings_from(ctx), store=store_from(ctx))
    if plot is not None:
        atomic_write_bytes(plot, result.png)
        record_written(plot)  # the plot never makes the git tree dirty
    if as_json:
        click.echo(public_json({**result.summary, "run_id": result.run_id}, indent=2))
    else:
        rules = ", ".join(f"{k} {v:g}" for k, v in result.plan["sla"].items()) or "no rules"
        click.echo(f"SLA in effect: {SLA_SOURCES[result.summary['sla_source']]}: {rules}")
        frozen = result.summary.get("frozen_plan_sla")
        if frozen and result.summary["sla_source"] != "plan" and frozen != result.plan["sla"]:
            click.echo("  (the bundle's frozen release.json plan differs and is not in effect: "
                       + ", ".join(f"{k} {v:g}" for k, v in frozen.items()) + ")")
        for s in result.steps:
            extra = "; ".join(b.describe() for b in (s.sla.breaches if s.sla is not None else ()))
            click.echo(f"  {s.pct:>5g} %  {s.challenger_rows:>6}/{s.rows:<6} {s.status}{'  ' + extra if extra else ''}")
        state = f"halted at {result.halted_at:g} %" if result.halted and result.halted_at is not None else "completed"
        click.echo(f"Canary run {result.run_id}: {state}")
        if result.rollback:
            click.echo(f"Rolled back {result.rollback['model']}@{result.rollback['alias']} to {result.rollback['to_version']}")
    if result.halted:
        sys.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Open and past-due experiments, promotions blocked by cadence, current aliases."""
    report = get_status(settings=settings_from(ctx), store=store_from(ctx))
    if as_json:
        click.echo(public_json(report.to_dict(), indent=2))
        return
    for line in report.lines():
        click.echo(line)
