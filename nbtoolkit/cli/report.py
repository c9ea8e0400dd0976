"""``nbtk report``: self-contained HTML reports (a thin adapter over :mod:`nbtoolkit.report`)."""

from __future__ import annotations

from pathlib import Path

import click

from nbtoolkit.cli import cli, fail, store_from


@cli.command("report")
@click.argument("runs", nargs=-1)
@click.option("--baseline", metavar="RUN", help="Compare the run with this run instead of its declared baseline.")
@click.option("--sweep", "sweep_id", metavar="ID", help="Report on every run of this sweep.")
@click.option("--index", "index", is_flag=True, help="The experiment log: every experiment, searchable.")
@click.option("--sort", "sort_metric", metavar="METRIC[:asc|desc]",
              help="Sweep report: sort by this metric (default: the first criterion's metric).")
@click.option("-o", "--output", type=click.Path(), required=True,
              help="HTML file to write; for --sweep and --index a folder (DIR/) also gets one page per run, linked.")
@click.pass_context
def report(ctx: click.Context, runs: tuple[str, ...], baseline: str | None, sweep_id: str | None,
           index: bool, sort_metric: str | None, output: str) -> None:
    """Write a self-contained HTML report.

    \b
    nbtk report RUN -o run.html                 one run (against its declared baseline)
    nbtk report RUN --baseline OTHER -o r.html  one run, compared with OTHER
    nbtk report A B -o compare.html             B compared with A (A is the reference)
    nbtk report --sweep ID -o sweep.html        every run of a sweep, sorted by the target metric
    nbtk report --sweep ID -o reports/          the sweep page plus one linked page per child
    nbtk report --index -o log.html             the experiment log
    nbtk report --index -o log/                 the log plus a linked report for every run it lists
    """
    from nbtoolkit import report as rep

    modes = sum([bool(runs), sweep_id is not None, index])
    if modes != 1:
        fail("give run ids, or --sweep ID, or --index (exactly one of them); see `nbtk report --help`")
    if sort_metric and not sweep_id:
        fail("--sort applies to sweep reports only (--sweep ID)")
    if baseline and len(runs) != 1:
        fail("--baseline goes with exactly one RUN; to compare two runs write `nbtk report A B`")
    store = store_from(ctx)
    if runs and (output.endswith(("/", "\\")) or Path(output).is_dir()):
        fail(f"-o {output} is a folder; run and comparison reports are one file, e.g. -o report.html")
    if index:
        path = rep.write_index_report(output, store=store)
    elif sweep_id is not None:
        path = rep.write_sweep_report(sweep_id, output, store=store, sort=sort_metric)
    elif len(runs) == 1:
        path = rep.write_run_report(runs[0], output, store=store, baseline=baseline, parallel=True)
    elif len(runs) == 2:
        path = rep.write_comparison_report(runs[0], runs[1], output, store=store)
    else:
        fail(f"got {len(runs)} runs; give one run (run report) or two (comparison report)")
        return
    click.echo(str(path))
