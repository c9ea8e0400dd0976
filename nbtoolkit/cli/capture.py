"""``nbtk init``, ``nbtk runs``, ``nbtk show``, ``nbtk env show|diff``."""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import click

from nbtoolkit._io import atomic_write_text
from nbtoolkit.cli import cli, settings_from, store_from, store_named
from nbtoolkit.cli.lineage import find_sweep, lineage_lines, missing_run_or_sweep, show_sweep
from nbtoolkit.errors import AmbiguousRunIdError, ConfigError, RunNotFoundError
from nbtoolkit.html import fmt_number
from nbtoolkit.redact import public_json
from nbtoolkit.store.kinds import LINEAGE_KINDS

TOOL_SECTION = """
[tool.nbtoolkit]
# store = ".nbtoolkit"                # where runs and artifacts live
# env_allowlist = ["MY_FEATURE_FLAG"] # extra environment variables recorded in locks
# secret_patterns = ["DSN"]           # extra name fragments treated as secrets

[tool.nbtoolkit.export]
require_reproduced = false
"""


def _console() -> Any:
    import sys

    from rich.console import Console

    # a pipe or CI log has no width: give tables room instead of rich's 80-column default
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _num(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return fmt_number(value)


def _add_tool_section(pyproject: Path) -> bool:
    """Add :data:`TOOL_SECTION` to ``pyproject`` unless it has ``[tool.nbtoolkit]``.

    The file is edited with tomlkit, so its formatting and comments stay as they were.

    Returns:
        Whether the section was added.

    Raises:
        ConfigError: the existing file is not valid TOML.
    """
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    text = pyproject.read_text(encoding="utf-8") if pyproject.exists() else ""
    try:
        doc = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML ({exc}); fix it, then run `nbtk init` again.") from None
    tool = doc.get("tool")
    if tool is not None and not isinstance(tool, MutableMapping):
        raise ConfigError(f"`tool` in {pyproject} is not a table; make it one, then run `nbtk init` again.")
    if tool is not None and "nbtoolkit" in tool:
        return False
    section = tomlkit.parse(TOOL_SECTION)["tool"]
    if tool is None:
        doc["tool"] = section
    else:
        tool["nbtoolkit"] = section["nbtoolkit"]
    atomic_write_text(pyproject, tomlkit.dumps(doc))
    return True


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the project store and a [tool.nbtoolkit] section in pyproject.toml."""
    settings = settings_from(ctx)
    store = store_from(ctx)
    pyproject = settings.root / "pyproject.toml"
    if _add_tool_section(pyproject):
        click.echo(f"Added [tool.nbtoolkit] to {pyproject}")
    gitignore = settings.root / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.exists() else []
    if ".nbtoolkit/" not in lines and store.path.resolve().is_relative_to(settings.root.resolve()):
        with open(gitignore, "a", encoding="utf-8") as fh:
            fh.write(("\n" if lines and lines[-1] else "") + ".nbtoolkit/\n")
    click.echo(f"Store ready at {store.location_display} (schema v{store.schema_version})")


@cli.command()
@click.argument("name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Notebook path (default NAME.ipynb).")
@click.option("--baseline", help="Run id, experiment name, sweep:ID:best or registry alias to compare with.")
@click.option("--hypothesis", default="", help="The hypothesis (one line).")
@click.option("--scope", default="", help="The scope (one line).")
@click.option("--owner", default="", help="Who owns the experiment.")
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%d"]), help="Time box (YYYY-MM-DD; default two weeks).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.option("--from-monitor", "from_monitor", default=None, metavar="RUN",
              help="Start from a monitor run's finding: hypothesis, baseline MODEL@production and data window.")
@click.pass_context
def new(ctx: click.Context, name: str, output: str | None, baseline: str | None, hypothesis: str, scope: str, owner: str,
        until: Any, force: bool, from_monitor: str | None) -> None:
    """Create a new experiment notebook NAME.ipynb from the template."""
    from nbtoolkit.baselines import baseline_exists
    from nbtoolkit.scaffold import new_experiment_notebook

    if from_monitor:
        from nbtoolkit.monitor.record import finding

        found = finding(store_from(ctx), from_monitor)
        hypothesis, baseline, scope = hypothesis or found["hypothesis"], baseline or found["baseline"], scope or found["scope"]
    path = new_experiment_notebook(
        name, path=output, baseline=baseline, hypothesis=hypothesis, scope=scope, owner=owner,
        until=until.date() if until else None, force=force,
    )
    click.echo(f"Created {path}: open it in JupyterLab, or run it with `nbtk run {path}`.")
    if baseline and not baseline_exists(store_from(ctx), baseline):
        click.echo(
            f"Warning: the baseline {baseline!r} names no run, experiment, sweep or registry alias in this "
            "store yet; the notebook's run will stop with this error until it exists (see `nbtk runs`).",
            err=True,
        )


@cli.command("runs")
@click.option("--experiment", "-e", multiple=True, help="Only these experiments (repeatable).")
@click.option("--status", multiple=True, help="Only these statuses (repeatable).")
@click.option("--kind", "kinds", multiple=True, type=click.Choice(list(LINEAGE_KINDS)), help="Only these kinds of run (repeatable).")
@click.option("--sweep", "sweep_ref", metavar="SWEEP_ID", help="Only the children of this sweep (id or unique prefix).")
@click.option("--where", help="Filter, e.g. \"metrics.roc_auc >= 0.9 and params.lr == 0.1\".")
@click.option("--limit", "-n", type=click.IntRange(min=1), help="At most N newest runs.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.pass_context
def runs_cmd(ctx: click.Context, experiment: tuple[str, ...], status: tuple[str, ...], kinds: tuple[str, ...], sweep_ref: str | None, where: str | None, limit: int | None, as_json: bool) -> None:
    """List runs, newest first.

    The kind column says where a run came from: experiment (a kernel or `nbtk run`), sweep (a
    sweep child), cached (served from the run cache), reproduction, test or monitor.
    """
    from nbtoolkit.query import run_summaries, runs

    # a sweep to resolve or a store named on the command line opens the store; otherwise runs()
    # lists the configured store (NBTOOLKIT_STORE or pyproject) through its driver alone, without
    # loading SQLAlchemy (nbtoolkit.store.listing), and opens the store only when it must
    store = store_from(ctx) if sweep_ref or store_named(ctx) else None
    sweep_id = None
    if sweep_ref:
        found = find_sweep(store, sweep_ref)
        if found is None:
            raise RunNotFoundError(sweep_ref, "No single sweep matches; list them with `nbtk sweeps`.")
        sweep_id = found.sweep_id
    query: dict[str, Any] = {"status": list(status) or None, "kind": list(kinds) or None, "sweep": sweep_id, "where": where, "limit": limit, "store": store}
    if as_json:  # the same selection as the table, from the per-run summary rows
        click.echo(public_json(run_summaries(list(experiment) or None, **query), indent=2))
        return
    frame = runs(list(experiment) or None, **query)
    from rich.table import Table

    metric_cols = [c for c in frame.columns if c.startswith("metrics.")][:6]
    table = Table(title=f"{len(frame)} run(s)")
    for col in ("run", "experiment", "kind", "status", "verdict", "started"):
        table.add_column(col, no_wrap=True)
    for col in metric_cols:
        table.add_column(col[8:], justify="right", no_wrap=True, overflow="ellipsis")
    for row in frame.to_dict(orient="records"):
        started = row["started"].strftime("%Y-%m-%d %H:%M") if not _missing(row["started"]) else ""
        table.add_row(
            row["run_id"][:8],
            row["experiment"],
            row["kind"],
            row["status"],
            "" if _missing(row["verdict"]) else row["verdict"],
            started,
            *[_num(row.get(c)) for c in metric_cols],
        )
    _console().print(table)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        import pandas as pd

        return bool(pd.isna(value)) if not isinstance(value, (list, dict)) else False
    except (TypeError, ValueError):
        return False


@cli.command()
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the whole record as JSON.")
@click.pass_context
def show(ctx: click.Context, run: str, as_json: bool) -> None:
    """Show everything recorded for RUN (a run id or unique prefix, or a sweep id)."""
    from nbtoolkit.store.card import run_card_text

    store = store_from(ctx)
    try:
        record = store.get_run(run)
    except AmbiguousRunIdError:
        raise
    except RunNotFoundError:
        found = find_sweep(store, run)
        if found is None:
            raise missing_run_or_sweep(run) from None
        show_sweep(store, found, as_json=as_json)
        return
    if as_json:
        click.echo(public_json(record.to_dict(), indent=2))
        return
    click.echo(run_card_text(record))
    d = record.to_dict()
    click.echo(f"  status: {record.status}   started: {d['started']}   ended: {d['ended']}")
    decl = record.declaration
    for key, value in (("scope", decl.scope), ("owner", decl.owner),
                       ("until", decl.until.isoformat() if decl.until else "")):
        if value:
            click.echo(f"  {key}: {value}")
    if record.notebook_path:
        click.echo(f"  notebook: {record.notebook_path}")
    for line in lineage_lines(d):
        click.echo(f"  {line}")
    if record.lock_hash:
        click.echo(f"  environment lock: {record.lock_hash[:12]}  (nbtk env show {record.run_id[:8]})")
    for art in record.artifacts:
        click.echo(f"  artifact {art.kind}: {art.name} ({art.size} bytes, sha256 {art.digest[:12]})")
    for data in record.data:
        click.echo(f"  data ({data.source}): {data.path} {data.algo} {data.digest[:12]}")
    for appr in record.approvals:
        click.echo(f"  approved by {appr.by}: {appr.note}")
    if record.error and record.status != "finished":
        click.echo("  error:\n" + "\n".join("    " + line for line in record.error.rstrip().splitlines()[-8:]))


@cli.group()
def env() -> None:
    """Environment locks: show one, diff two."""


@env.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the whole lock as JSON.")
@click.pass_context
def env_show(ctx: click.Context, run: str, as_json: bool) -> None:
    """Show the environment lock recorded with RUN."""
    record = store_from(ctx).get_run(run)
    lock = record.lock()
    if lock is None:
        raise click.UsageError(f"Run {record.run_id[:8]} has no environment lock.")
    data = lock.to_dict()
    if as_json:
        click.echo(public_json(data, indent=2, sort_keys=True))
        return
    py = data.get("python", {})
    click.echo(f"lock {lock.hash[:12]}  python {py.get('version')}  {data.get('platform', {}).get('system', '')}")
    git = data.get("git") or {}
    if git:
        dirty = " (dirty)" if git.get("dirty") else ""
        click.echo(f"git {git.get('commit', '')[:12]} on {git.get('branch')}{dirty}")
    if data.get("notebook"):
        click.echo(f"notebook {data['notebook'].get('path')} sha256 {str(data['notebook'].get('sha256'))[:12]}")
    for d in data.get("data", []):
        click.echo(f"data {d.get('path')} md5 {d.get('md5')}")
    for name, value in sorted((data.get("env") or {}).items()):
        click.echo(f"env {name}={value}")
    packages = data.get("packages", {})
    click.echo(f"{len(packages)} packages:")
    for name, info in sorted(packages.items()):
        origin = info.get("origin") if isinstance(info, dict) else None
        version = info.get("version") if isinstance(info, dict) else info
        click.echo(f"  {name}=={version}" + (f"  ({origin})" if origin and origin != "index" else ""))


@env.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.pass_context
def env_diff(ctx: click.Context, run_a: str, run_b: str) -> None:
    """What changed in the environment from RUN_A to RUN_B."""
    store = store_from(ctx)
    a, b = store.get_run(run_a), store.get_run(run_b)
    la, lb = a.lock(), b.lock()
    if la is None or lb is None:
        raise click.UsageError("Both runs need an environment lock.")
    diff = la.diff(lb)
    if diff.empty:
        click.echo(f"No environment differences between {a.run_id[:8]} and {b.run_id[:8]}.")
        return
    click.echo(f"Environment changes from {a.run_id[:8]} to {b.run_id[:8]}:")
    for line in diff.summary_lines():
        click.echo(f"  {line}")
