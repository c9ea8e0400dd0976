"""``nbtk run``, ``nbtk sweep``, ``nbtk reproduce``, ``nbtk test``: thin adapters over :mod:`nbtoolkit.execute`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from nbtoolkit.cli import cli, settings_from, store_from
from nbtoolkit.redact import public_json

EXIT_INTERRUPTED = 130


def _interrupt_on_sigterm() -> None:
    """``kill PID`` stops like Ctrl-C: the kernel is shut down and the run recorded interrupted."""
    import signal

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _err(message: str) -> None:
    click.echo(message, err=True)


def _flags(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} must look like NAME=VALUE", param_hint="--flag")
        out[name.strip()] = value
    return out


def _params(files: tuple[str, ...], yamls: tuple[str, ...], pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    from nbtoolkit.execute.params import merge_parameters

    return merge_parameters(files=files, yaml_texts=yamls, pairs=pairs)


@cli.command("run")
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("-p", "--parameter", "pairs", nargs=2, multiple=True, metavar="NAME VALUE", help="Parameter, typed like papermill (int, float, True/False, None, else str).")
@click.option("-f", "--parameters-file", "files", multiple=True, type=click.Path(dir_okay=False), help="YAML file of parameters.")
@click.option("-y", "--parameters-yaml", "yamls", multiple=True, help="YAML string of parameters (lists, dicts).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the executed notebook here (it is stored with the run either way).")
@click.option("-k", "--kernel", help="Kernel name (default: the notebook's kernelspec).")
@click.option("--cwd", type=click.Path(file_okay=False), help="Kernel working directory (default: the notebook's folder).")
@click.option("--timeout", type=float, help="Per-cell timeout in seconds; the run ends timed_out.")
@click.option("--flag", "flag_items", multiple=True, metavar="NAME=VALUE", help="Feature flag, passed as NBTOOLKIT_FLAG_<NAME> and recorded.")
@click.option("--allow-unknown", is_flag=True, help="Inject parameters the notebook does not define.")
@click.option("--force", is_flag=True, help="Execute even when the run cache holds a finished run with the same inputs.")
@click.option("--help-notebook", is_flag=True, help="List the notebook's parameters (type, default, help) like papermill, and exit.")
@click.pass_context
def run_cmd(ctx: click.Context, notebook: str, pairs: tuple[tuple[str, str], ...], files: tuple[str, ...], yamls: tuple[str, ...], output: str | None, kernel: str | None, cwd: str | None, timeout: float | None, flag_items: tuple[str, ...], allow_unknown: bool, force: bool, help_notebook: bool) -> None:
    """Execute NOTEBOOK with papermill and record it as one run.

    A finished run with the same notebook code, parameters, flags, environment and data is
    reused from the run cache (recorded as a cached copy); --force executes anyway.
    """
    from nbtoolkit.execute.papermill_run import run_notebook
    from nbtoolkit.execute.params import check_parameters, describe_parameters

    if help_notebook:
        if not Path(notebook).is_file():
            raise click.BadParameter(f"{notebook} does not exist; pass the path of an .ipynb file.", param_hint="NOTEBOOK")
        click.echo(ctx.command.get_usage(ctx))
        click.echo("")
        click.echo(describe_parameters(notebook))
        return
    params = _params(files, yamls, pairs)
    if Path(notebook).is_file():
        for warning in check_parameters(notebook, params, allow_unknown=allow_unknown):
            _err(f"Warning: {warning}")
    store = store_from(ctx)
    _interrupt_on_sigterm()
    try:
        outcome = run_notebook(
            notebook, parameters=params, output=output, cwd=cwd, kernel=kernel, timeout=timeout,
            flags=_flags(flag_items), allow_unknown=allow_unknown, force=force, store=store, settings=settings_from(ctx),
        )
    except KeyboardInterrupt:
        _err("Interrupted: the run was recorded as interrupted.")
        sys.exit(EXIT_INTERRUPTED)
    verdict = f", verdict {outcome.verdict}" if outcome.verdict else ""
    if outcome.cached_from:
        click.echo(f"run {outcome.run_id[:8]} cached{verdict}: same inputs as run {outcome.cached_from[:8]}, not re-executed "
                   f"(--force executes anyway)  (nbtk show {outcome.run_id[:8]})")
    else:
        click.echo(f"run {outcome.run_id[:8]} {outcome.status}{verdict} in {outcome.duration:.1f}s  (nbtk show {outcome.run_id[:8]})")
    if outcome.output_path:
        click.echo(f"output notebook: {outcome.output_path}")
    if not outcome.ok:
        _err(outcome.describe_failure())
        sys.exit(1)


class _RichProgress:
    def __init__(self, total_hint: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("done {task.fields[done]}  failed {task.fields[failed]}  cached {task.fields[cached]}  running {task.fields[running]}"),
            TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
            console=Console(stderr=True), transient=False,
        )
        self.task: Any = None
        self.label = total_hint

    def __enter__(self) -> _RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, p: Any) -> None:
        if self.task is None:
            self.task = self.progress.add_task(self.label, total=p.total, done=0, failed=0, cached=0, running=0)
        self.progress.update(self.task, completed=p.done + p.failed, done=p.done, failed=p.failed, cached=p.cached, running=p.running)


def _summary(outcome: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from nbtoolkit import _json

    table = Table(title=f"sweep {outcome.sweep_id[:8] if outcome.sweep_id else '(dry run)'}: {outcome.status}")
    for col in ("#", "run", "status", "verdict", "parameters", "note"):
        table.add_column(col, overflow="fold")
    if outcome.sweep_id is None:
        for i, p in enumerate(outcome.points):
            table.add_row(str(i), "", "planned", "", _json.dumps(p), "")
    for i, o in sorted(outcome.runs.items()):
        note = f"cached from {o.cached_from[:8]}" if o.cached_from else ("" if o.ok else (f"{o.ename or ''}: {o.evalue or ''}"[:80]))
        table.add_row(str(i), o.run_id[:8], o.status, o.verdict or "", _json.dumps(o.parameters), note)
    if outcome.skipped:
        table.caption = f"{len(outcome.skipped)} point(s) already finished before --resume"
    Console(highlight=False).print(table)


@cli.command("sweep")
@click.argument("notebook", type=click.Path(dir_okay=False), required=False)
@click.option("--grid", "grid", multiple=True, metavar="NAME=V1,V2", help="Values (or uniform(a,b) / loguniform(a,b) / randint(a,b) with --random).")
@click.option("--random", "random_n", type=click.IntRange(min=1), help="Sample N points instead of the full grid.")
@click.option("--seed", type=int, help="Seed of --random sampling.")
@click.option("-f", "--parameters-file", "files", multiple=True, type=click.Path(dir_okay=False), help="YAML of base parameters for every point.")
@click.option("-y", "--parameters-yaml", "yamls", multiple=True, help="YAML string of base parameters.")
@click.option("-p", "--parameter", "pairs", nargs=2, multiple=True, metavar="NAME VALUE", help="Base parameter for every point.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Children at once (default: CPUs, or cluster threads).")
@click.option("--executor", default="local", show_default=True, help="local or dask (or a plugin).")
@click.option("--address", help="Dask scheduler, tcp://HOST:PORT.")
@click.option("--ship", "ship", multiple=True, metavar="PATH", help="File or folder next to the notebook sent with every task to Dask workers without the project (helper modules, small config).")
@click.option("--timeout", type=float, help="Per-cell timeout of each child.")
@click.option("-k", "--kernel", help="Kernel name.")
@click.option("--flag", "flag_items", multiple=True, metavar="NAME=VALUE", help="Feature flag for every child.")
@click.option("--dry-run", is_flag=True, help="Show the points; run nothing.")
@click.option("--resume", metavar="SWEEP_ID", help="Re-run only the points of SWEEP_ID that did not finish.")
@click.option("--force", is_flag=True, help="Ignore the run cache.")
@click.option("--allow-unknown", is_flag=True, help="Inject parameters the notebook does not define.")
@click.pass_context
def sweep_cmd(ctx: click.Context, notebook: str | None, grid: tuple[str, ...], random_n: int | None, seed: int | None, files: tuple[str, ...], yamls: tuple[str, ...], pairs: tuple[tuple[str, str], ...], jobs: int | None, executor: str, address: str | None, ship: tuple[str, ...], timeout: float | None, kernel: str | None, flag_items: tuple[str, ...], dry_run: bool, resume: str | None, force: bool, allow_unknown: bool) -> None:
    """Run NOTEBOOK over a parameter grid (or random sample) in parallel fresh kernels."""
    from nbtoolkit.execute.sweeps import sweep

    if notebook is None and not resume:
        raise click.UsageError("Give a NOTEBOOK, or --resume SWEEP_ID.")
    base = _params(files, yamls, pairs)
    store = store_from(ctx)
    label = Path(notebook).name if notebook else f"resume {resume}"
    kwargs = dict(
        grid=grid, random=random_n, seed=seed, base=base, jobs=jobs, executor=executor, address=address, ship=ship,
        timeout=timeout, kernel=kernel, flags=_flags(flag_items), force=force, resume=resume,
        allow_unknown=allow_unknown, store=store, settings=settings_from(ctx),
    )
    if dry_run:
        outcome = sweep(notebook, dry_run=True, **kwargs)
        for w in outcome.warnings:
            _err(f"Warning: {w}")
        _summary(outcome)
        return
    _interrupt_on_sigterm()
    with _RichProgress(label) as bar:
        outcome = sweep(notebook, progress=bar, **kwargs)
    for w in outcome.warnings:
        _err(f"Warning: {w}")
    _summary(outcome)
    if outcome.status == "interrupted":
        _err(f"Interrupted. Resume with: nbtk sweep --resume {outcome.sweep_id}")
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"sweep {outcome.sweep_id}: {len(outcome.runs)} run(s), {len(outcome.failed)} failed, {len(outcome.cached)} cached")
    if not outcome.ok:
        sys.exit(1)


@cli.command("reproduce")
@click.argument("run")
@click.option("--rtol", type=float, default=1e-6, show_default=True, help="Relative tolerance of metric agreement.")
@click.option("--atol", type=float, default=1e-9, show_default=True, help="Absolute tolerance of metric agreement.")
@click.option("--strict", is_flag=True, help="Exit 1 on any drift, not only on diverging metrics.")
@click.option("--ignore", "ignore", multiple=True, metavar="METRIC", help="Do not compare this metric (timing metrics never are).")
@click.option("--timeout", type=float, help="Per-cell timeout.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def reproduce_cmd(ctx: click.Context, run: str, rtol: float, atol: float, strict: bool, ignore: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """Re-execute RUN at its recorded commit and report metric agreement and drift."""
    from nbtoolkit.execute.reproduction import reproduce

    rep = reproduce(run, rtol=rtol, atol=atol, ignore_metrics=ignore, timeout=timeout, store=store_from(ctx), settings=settings_from(ctx))
    if as_json:
        click.echo(public_json(rep.to_dict(), indent=2))
    else:
        for line in rep.summary_lines():
            click.echo(line)
    if rep.result == "diverged" or (strict and rep.result != "reproduced"):
        sys.exit(1)


@cli.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Notebooks at once (default: CPUs).")
@click.option("--timeout", type=float, default=600, show_default=True, help="Per-cell timeout.")
@click.pass_context
def test_cmd(ctx: click.Context, paths: tuple[str, ...], jobs: int | None, timeout: float) -> None:
    """Smoke-test notebooks (default: notebooks/) with their metadata.nbtoolkit.smoke parameters."""
    from nbtoolkit.execute.nbtest import test_notebooks

    settings = settings_from(ctx)
    targets = list(paths) or [str(settings.root / "notebooks")]
    results = test_notebooks(targets, jobs=jobs, timeout=timeout, store=store_from(ctx), settings=settings)
    failed = [r for r in results if not r.passed]
    for r in results:
        click.echo(f"{'PASS' if r.passed else 'FAIL'}  {r.notebook}  ({r.reason}; run {r.outcome.run_id[:8]})")
    for r in failed:
        _err("")
        _err(r.describe())
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        sys.exit(1)
