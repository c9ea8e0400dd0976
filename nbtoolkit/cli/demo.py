"""``nbtk demo``: the demo experiment end to end."""

from __future__ import annotations

from pathlib import Path

import click

from nbtoolkit.cli import cli


@cli.command()
@click.option("-o", "--output", "folder", type=click.Path(file_okay=False, path_type=Path), default=Path("nbtk-demo"), show_default=True, help="Folder for the demo project.")
@click.option("--force", is_flag=True, help="Replace the folder when it exists.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Parallel sweep children.")
def demo(folder: Path, force: bool, jobs: int) -> None:
    """Run the demo end to end: notebooks, sweep, reproduce, reports, export, promote."""
    from nbtoolkit.config import load_settings
    from nbtoolkit.demo import run_demo
    from nbtoolkit.store import open_store
    from nbtoolkit.store.card import run_card_text

    result = run_demo(folder, force=force, jobs=jobs, echo=click.echo)
    store = open_store(load_settings(result.folder, store=result.folder / ".nbtoolkit"))
    click.echo("")
    for run_id in result.runs.values():
        click.echo(run_card_text(store.get_run(run_id)))
        click.echo("")
    for kind, path in result.reports.items():
        click.echo(f"report ({kind}): {path}")
    click.echo(f"bundle: {result.extra['bundle']}  ({result.extra['verified_files']} files verified)")
    click.echo(f"\nDemo project: {result.folder}  (cd there and try `nbtk runs`, `nbtk show RUN`, `nbtk registry`)")
