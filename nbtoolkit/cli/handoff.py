"""``nbtk approve``, ``nbtk export``, ``nbtk verify``, ``nbtk fetch``: the hand-off stage."""

from __future__ import annotations

from pathlib import Path

import click

from nbtoolkit.cli import cli, store_from


@cli.command()
@click.argument("run")
@click.option("--by", "by", required=True, help="Who approves (reviewer name).")
@click.option("--note", default="", help="Optional comment recorded with the approval.")
@click.pass_context
def approve(ctx: click.Context, run: str, by: str, note: str) -> None:
    """Record a reviewer's sign-off of RUN (id or unique prefix)."""
    from nbtoolkit._format import iso
    from nbtoolkit.export.approvals import approve as approve_run

    approval = approve_run(run, by=by, note=note, store=store_from(ctx))
    click.echo(f"Approved run {approval.run_id[:8]} by {approval.by} at {iso(approval.created)}")


@cli.command("export")
@click.argument("run")
@click.option("--model", "model", required=True, help="Model name, e.g. churn-gbm.")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path), help="Folder that receives the bundle.")
@click.option("--version", "version", default=None, help="Version (default: next patch version of the model).")
@click.option("--archive", is_flag=True, help="Write <model>-<version>.tar.gz instead of a folder.")
@click.option("--force", is_flag=True, help="Export although gates are unmet (needs --reason; recorded).")
@click.option("--reason", default=None, help="Why the gates are overridden.")
@click.option("--dvc", is_flag=True, help="dvc add the bundle (inside a DVC repository).")
@click.option("--new-version", is_flag=True, help="Export a run already exported as this model again, as the next version.")
@click.pass_context
def export_cmd(
    ctx: click.Context, run: str, model: str, output: Path, version: str | None, archive: bool, force: bool,
    reason: str | None, dvc: bool, new_version: bool,
) -> None:
    """Export RUN as a verified handoff bundle; refuses runs that are not vetted."""
    from nbtoolkit.export.bundle import export_bundle

    result = export_bundle(
        run, model=model, out_dir=output, version=version, archive=archive, force=force, reason=reason,
        dvc=dvc, new_version=new_version, store=store_from(ctx),
    )
    m = result.manifest
    click.echo(f"Exported {model} {result.version} ({len(m['files'])} files) to {result.path}")
    if result.forced:
        click.echo(f"FORCED export, reason: {m.get('reason')}", err=True)
        for gate in m.get("unmet_gates", []):
            click.echo(f"  unmet gate: {gate}", err=True)
    for note in m.get("notes", []):
        click.echo(f"  note: {note}")
    if result.dvc_file is not None:
        click.echo(f"DVC: {result.dvc_file} (commit it with git)")


@cli.command("verify")
@click.argument("bundle")
@click.pass_context
def verify_cmd(ctx: click.Context, bundle: str) -> None:
    """Re-hash and validate BUNDLE: a bundle folder, a .tar.gz archive, or MODEL@ALIAS / MODEL@VERSION."""
    from nbtoolkit.export.verify import verify_bundle

    if "@" in bundle and not Path(bundle).exists():
        from nbtoolkit import registry

        bundle = registry.resolve(bundle, store=store_from(ctx)).path
    click.echo(verify_bundle(bundle).summary())


@cli.command("fetch")
@click.argument("ref")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path), help="Folder that receives the bundle.")
@click.option("--archive", is_flag=True, help="Write <model>-<version>.tar.gz instead of a folder.")
@click.pass_context
def fetch_cmd(ctx: click.Context, ref: str, output: Path, archive: bool) -> None:
    """Put a verified copy of the bundle REF (MODEL@ALIAS or MODEL@VERSION) in a folder, from any machine."""
    from nbtoolkit import registry
    from nbtoolkit.export.fetch import copy_bundle

    store = store_from(ctx)
    version = registry.lookup(ref, store=store)
    target = copy_bundle(version, output, archive=archive, store=store)
    click.echo(f"Fetched {version.model} {version.version} (verified) to {target}")
