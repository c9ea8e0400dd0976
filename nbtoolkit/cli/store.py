"""``nbtk store check|backup|copy``: a thin adapter over :mod:`nbtoolkit.store.maintenance`."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from nbtoolkit.cli import cli, settings_from
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.errors import InputError, StoreCorruptError
from nbtoolkit.store import Store, open_store
from nbtoolkit.store.maintenance import CheckResult, check_sqlite_file


@cli.group("store")
def store_cmd() -> None:
    """Check, back up or copy the store (SQLite folder or PostgreSQL database).

    \b
    nbtk store check                          database integrity, schema, write access, artifact hashes
    nbtk store backup DEST                    online backup of a SQLite store (safe while runs are written)
    nbtk store copy SRC DST                   whole store between backends, e.g. .nbtoolkit -> postgresql://...
    """


def _settings_for(location: str, ctx: click.Context, artifacts: str | None = None) -> Settings:
    """Settings of the store at ``location`` (a folder or a database URL) in this project.

    Artifacts: ``artifacts`` when given; else a folder store's own ``artifacts/`` folder, and
    for a database URL the project's configured location (``NBTOOLKIT_ARTIFACTS`` or
    ``[tool.nbtoolkit] artifacts``).
    """
    settings = load_settings(settings_from(ctx).root, store=location)
    if artifacts is not None:
        return replace(settings, artifacts=artifacts)
    if settings.store_url is None:
        return replace(settings, artifacts=None)
    return settings


def _open_checked(settings: Settings) -> Store | CheckResult:
    """Open the store; a damaged SQLite file yields its check result instead (file untouched)."""
    if settings.store_url is None:
        damaged = check_sqlite_file(settings.store_path / "store.db", str(settings.store_path))
        if damaged is not None:
            return damaged
        if not (settings.store_path / "store.db").is_file():
            raise InputError(f"{settings.store_path} holds no store (no store.db); check the path or --store.")
    try:
        return open_store(settings)
    except StoreCorruptError as exc:
        return CheckResult(settings.store_display, problems=[f"database: {exc.finding}"])


def _print_check(result: CheckResult) -> None:
    click.echo(f"store: {result.location}")
    for fact in result.facts:
        click.echo(f"  {fact}")
    if result.counts:
        click.echo("  rows: " + ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items()) if v))
    for digest in result.orphans[:50]:
        click.echo(f"  orphan blob (no artifact row): {digest}")
    if len(result.orphans) > 50:
        click.echo(f"  ... and {len(result.orphans) - 50} more orphan blobs")
    for problem in result.problems:
        click.echo(f"  PROBLEM: {problem}")
    click.echo("OK" if result.ok else f"{len(result.problems)} problem(s) found")


@store_cmd.command("check")
@click.option("--against", metavar="SRC", help="Also check that this store holds every row and blob of SRC (after a copy).")
@click.option("--against-artifacts", metavar="LOCATION", help="Artifact location of SRC (folder or URL such as s3://bucket/prefix).")
@click.pass_context
def check_cmd(ctx: click.Context, against: str | None, against_artifacts: str | None) -> None:
    """Check the database and every artifact; exit 1 when anything is wrong."""
    opened = _open_checked(settings_from(ctx))
    if isinstance(opened, CheckResult):
        _print_check(opened)
        sys.exit(1)
    source = None
    if against is not None:
        other = _open_checked(_settings_for(against, ctx, against_artifacts))
        if isinstance(other, CheckResult):
            _print_check(other)
            sys.exit(1)
        source = other
    result = opened.check(against=source)
    _print_check(result)
    if not result.ok:
        sys.exit(1)


@store_cmd.command("backup")
@click.argument("dest", type=click.Path(file_okay=False))
@click.pass_context
def backup_cmd(ctx: click.Context, dest: str) -> None:
    """Back up a SQLite store (database and artifacts) into the new folder DEST."""
    opened = _open_checked(settings_from(ctx))
    if isinstance(opened, CheckResult):
        _print_check(opened)
        sys.exit(1)
    db = opened.backup(Path(dest))
    click.echo(f"backed up {opened.location_display} to {db.parent} (open it with --store {db.parent})")


@store_cmd.command("copy")
@click.argument("src")
@click.argument("dst")
@click.option("--src-artifacts", metavar="LOCATION", help="Artifact location of SRC (folder or URL such as s3://bucket/prefix).")
@click.option("--dst-artifacts", metavar="LOCATION", help="Artifact location of DST (folder or URL such as s3://bucket/prefix).")
@click.pass_context
def copy_cmd(ctx: click.Context, src: str, dst: str, src_artifacts: str | None, dst_artifacts: str | None) -> None:
    """Copy the whole store SRC into DST (folders or database URLs); safe to repeat.

    Ids, times, lineage, registry history and approvals are kept; rows already in DST are
    skipped; blobs are copied (and verified) first. A folder store's blobs are in its own
    artifacts/ folder; a database URL's are at --src-artifacts/--dst-artifacts, else at
    NBTOOLKIT_ARTIFACTS. Verify afterwards with `nbtk --store DST store check --against SRC`.
    """
    source = _open_checked(_settings_for(src, ctx, src_artifacts))
    if isinstance(source, CheckResult):
        _print_check(source)
        sys.exit(1)
    target_settings = _settings_for(dst, ctx, dst_artifacts)
    if target_settings.store_url is None:
        damaged = check_sqlite_file(target_settings.store_path / "store.db", str(target_settings.store_path))
        if damaged is not None:
            _print_check(damaged)
            sys.exit(1)
    target = open_store(target_settings)
    result = source.copy_into(target)
    added = sum(result.added.values())
    click.echo(
        f"copied {source.location_display} -> {target.location_display}: {added} rows added, "
        f"{sum(result.present.values())} already there, {result.blobs} blobs copied"
    )
    for table, count in sorted(result.added.items()):
        if count:
            click.echo(f"  {table}: +{count}")
    for conflict in result.conflicts:
        click.echo(f"  CONFLICT (left as in the destination): {conflict}")
    if result.conflicts:
        sys.exit(1)
