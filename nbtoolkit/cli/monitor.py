"""``nbtk monitor | abtest``: thin adapters over :mod:`nbtoolkit.monitor`."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import click

from nbtoolkit._io import atomic_write_text
from nbtoolkit.cli import cli, settings_from, store_from
from nbtoolkit.errors import InputError
from nbtoolkit.html import fmt_number
from nbtoolkit.monitor import monitor
from nbtoolkit.monitor.abtest import abtest, render_abtest
from nbtoolkit.monitor.dashboard import render_dashboard
from nbtoolkit.monitor.record import (
    filter_log,
    read_log,
    read_table,
    record_abtest,
    record_monitor,
    training_reference,
)
from nbtoolkit.monitor.record import rollback_on_breach as roll_back_alias
from nbtoolkit.monitor.windows import parse_duration
from nbtoolkit.policy import load_sla
from nbtoolkit.redact import public_json
from nbtoolkit.stats import resolve_metric


def parse_time(text: str | None, *, now: float | None = None) -> float | None:
    """``--since``/``--until``: a duration back from now (``24h``), an ISO date-time (UTC if no zone) or epoch seconds."""
    if text is None:
        return None
    now = time.time() if now is None else now
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text)
        except InputError:
            raise InputError(f"{text!r} is not a time; write a duration back from now (24h), an ISO date-time "
                             "(2026-12-01T10:00) or epoch seconds.") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _load_log(ctx: click.Context, model: str, log: str | None, version: str | None, since: float | None,
              until: float | None) -> Any:
    if log is not None:
        return filter_log(read_table(log, what="Log"), model=model, version=version, since=since, until=until)
    return read_log(store_from(ctx), model, version=version, since=since, until=until)


def _summary_lines(result: Any) -> list[str]:
    lines = []
    for w in result.overall:
        t = w.traffic
        quality = ", ".join(f"{k} {fmt_number(v.value)}{' (est.)' if v.estimated else ''}" for k, v in w.quality.items())
        lines.append(f"  {w.version}: {t.rows} rows, error rate {fmt_number(t.error_rate)}, p50/p95/p99 "
                     f"{fmt_number(t.latency_p50_ms)}/{fmt_number(t.latency_p95_ms)}/{fmt_number(t.latency_p99_ms)} ms, "
                     f"labelled {t.labelled}" + (f"; {quality}" if quality else ""))
        lines += [f"    slice gap {s.metric} over {s.column}: {fmt_number(s.gap)} (worst {s.worst})" for s in w.slices]
    drifted = [f for f in result.drift_overall if f.drifted]
    if result.drift_overall:
        lines.append("  drift: " + (", ".join(f"{f.feature} (PSI {fmt_number(f.psi)})" for f in drifted) or "none"))
    return lines


@cli.command("monitor")
@click.argument("model")
@click.option("--version", "version", default=None, help="Only this model version.")
@click.option("--window", default="1h", show_default=True, help="Window length (90s, 15m, 1h, 1d).")
@click.option("--since", default=None, help="Start: a duration back from now (24h), an ISO date-time or epoch seconds.")
@click.option("--until", default=None, help="End (same forms as --since).")
@click.option("--slice", "slices", multiple=True, help="Input column to compute per-slice metrics over (repeatable).")
@click.option("--metric", "metrics", multiple=True, help="Quality metric to compute (repeatable; default: all computable).")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="Training data for drift (.parquet, .csv, .jsonl); default: the data file the serving version's run tracked.")
@click.option("--log", type=click.Path(dir_okay=False), default=None, help="Read an exported prediction log file instead of the store.")
@click.option("--rollback-on-breach", is_flag=True, help="Roll the alias back when the version it serves breaches the SLA.")
@click.option("--alias", default="production", show_default=True, help="Alias to roll back.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the HTML dashboard here.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.pass_context
def monitor_cmd(ctx: click.Context, model: str, version: str | None, window: str, since: str | None, until: str | None,
                slices: tuple[str, ...], metrics: tuple[str, ...], reference: str | None, log: str | None,
                rollback_on_breach: bool, alias: str, output: str | None, as_json: bool) -> None:
    """Traffic, latency, quality (measured or estimated), fairness, drift and the SLA of MODEL per window.

    Exits 1 when a window breaches [tool.nbtoolkit.sla]. Each invocation is recorded as a run of
    kind `monitor` in experiment `monitor:MODEL`.
    """
    unknown = [m for m in metrics if resolve_metric(m) is None]
    if unknown:
        raise InputError(f"Unknown metric(s) {', '.join(unknown)}; use e.g. accuracy, roc_auc, f1, log_loss, rmse.")
    settings = settings_from(ctx)
    start, end = parse_time(since), parse_time(until)
    frame = _load_log(ctx, model, log, version, start, end)
    ref, ref_source = (read_table(reference, what="Reference"), Path(reference).name) if reference else (None, None)
    if ref is None:  # the training data the serving version's run tracked, when it is still there unchanged
        tracked = training_reference(store_from(ctx), model, alias=alias, settings=settings)
        ref, ref_source = tracked if tracked is not None else (None, None)
    names = [resolve_metric(m).name for m in metrics] if metrics else None  # type: ignore[union-attr]
    result = monitor(frame, model=model, window=window, reference=ref, slices=slices, sla=load_sla(settings), metrics=names)
    store = store_from(ctx)
    source = {"log": Path(log).name if log else "store", "version": version, "since": start, "until": end,
              "window": window, "slices": list(slices), "alias": alias, "reference": ref_source}
    run_id = record_monitor(store, result, source=source)
    moved = roll_back_alias(result, alias=alias, run_id=run_id, store=store, settings=settings) if rollback_on_breach and not result.ok else None
    if output:
        atomic_write_text(Path(output), render_dashboard(result, run_id=run_id, rollback=moved))
    if as_json:
        click.echo(public_json({**result.to_dict(), "run_id": run_id, "rollback": moved}, indent=2))
    else:
        click.echo(f"{model}: {sum(w.traffic.rows for w in result.overall)} rows in {len(result.windows)} window report(s); "
                   f"monitor run {run_id}")
        if not result.overall:
            click.echo(f"  no logged rows for {model} in this period (serve it with `nbtk serve`, or check --since/--version)")
        for line in _summary_lines(result):
            click.echo(line)
        if ref_source:
            click.echo(f"  drift reference: {ref_source}")
        for b in result.breaches:
            click.echo(f"SLA breach: {b.describe()}")
        if moved:
            click.echo(f"Rolled back {model}@{moved['alias']}: {moved['from_version']} -> {moved['to_version']}")
        if output:
            click.echo(f"Dashboard: {output}")
    if not result.ok:
        ctx.exit(1)


@cli.command("abtest")
@click.argument("model")
@click.option("--a", "a", required=True, help="Version A (the baseline).")
@click.option("--b", "b", required=True, help="Version B (the challenger).")
@click.option("--success", "success", multiple=True, required=True,
              help='Criterion in the experiments\' language, a. naming version A: "accuracy >= a.accuracy + 0.01" (repeatable).')
@click.option("--metric", "metrics", multiple=True, help="Metric to show besides the criteria's (repeatable).")
@click.option("--since", default=None, help="Start: a duration back from now (24h), an ISO date-time or epoch seconds.")
@click.option("--until", default=None, help="End (same forms as --since).")
@click.option("--log", type=click.Path(dir_okay=False), default=None, help="Read an exported prediction log file instead of the store.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write the HTML report here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def abtest_cmd(ctx: click.Context, model: str, a: str, b: str, success: tuple[str, ...], metrics: tuple[str, ...],
               since: str | None, until: str | None, log: str | None, output: str | None, as_json: bool) -> None:
    """Compare versions A and B of MODEL on their logged, labelled outcomes; exit 0 when supported, 1 otherwise."""
    frame = _load_log(ctx, model, log, None, parse_time(since), parse_time(until))
    result = abtest(frame, model=model, a=a, b=b, success=success, metrics=metrics or None)
    run_id = record_abtest(store_from(ctx), result)
    if output:
        atomic_write_text(Path(output), render_abtest(result))
    if as_json:
        click.echo(public_json({**result.to_dict(), "run_id": run_id}, indent=2))
    else:
        how = f"paired on {result.n_pairs} shared rows" if result.paired else f"unpaired: {result.n_a} vs {result.n_b} rows"
        click.echo(f"{model} {b} vs {a} ({how})")
        for c in result.comparisons:
            iv = f" [{fmt_number(c.interval.low)}, {fmt_number(c.interval.high)}]" if c.interval else ""
            click.echo(f"  {c.metric}: A {fmt_number(c.value_a)}  B {fmt_number(c.value_b)}  B-A {fmt_number(c.difference)}{iv}")
        click.echo(repr(result.verdict))
        click.echo(f"A/B test run {run_id}")
        if output:
            click.echo(f"Report: {output}")
    if result.verdict.status != "supported":
        ctx.exit(1)
