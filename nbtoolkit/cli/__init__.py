"""``nbtk``: a thin click adapter over the library.

Each pipeline stage keeps its commands in its own module; the group loads a module only when
one of its commands runs (click's lazy-loading pattern), so ``nbtk --help`` stays fast.
Errors: a user mistake prints one line and exits 2; failed work exits 1; no raw tracebacks.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from nbtoolkit._version import __version__
from nbtoolkit.errors import NbToolkitError

#: command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "init": "nbtoolkit.cli.capture:init",
    "new": "nbtoolkit.cli.capture:new",
    "runs": "nbtoolkit.cli.capture:runs_cmd",
    "show": "nbtoolkit.cli.capture:show",
    "baseline": "nbtoolkit.cli.lineage:baseline",
    "sweeps": "nbtoolkit.cli.lineage:sweeps_cmd",
    "env": "nbtoolkit.cli.capture:env",
    "demo": "nbtoolkit.cli.demo:demo",
    "run": "nbtoolkit.cli.execute:run_cmd",
    "sweep": "nbtoolkit.cli.execute:sweep_cmd",
    "reproduce": "nbtoolkit.cli.execute:reproduce_cmd",
    "test": "nbtoolkit.cli.execute:test_cmd",
    "report": "nbtoolkit.cli.report:report",
    "registry": "nbtoolkit.cli.stability:registry_cmd",
    "promote": "nbtoolkit.cli.stability:promote",
    "rollback": "nbtoolkit.cli.stability:rollback",
    "history": "nbtoolkit.cli.stability:history",
    "shadow": "nbtoolkit.cli.stability:shadow",
    "canary": "nbtoolkit.cli.stability:canary",
    "status": "nbtoolkit.cli.stability:status",
    "monitor": "nbtoolkit.cli.monitor:monitor_cmd",
    "abtest": "nbtoolkit.cli.monitor:abtest_cmd",
    "approve": "nbtoolkit.cli.handoff:approve",
    "export": "nbtoolkit.cli.handoff:export_cmd",
    "verify": "nbtoolkit.cli.handoff:verify_cmd",
    "fetch": "nbtoolkit.cli.handoff:fetch_cmd",
    "serve": "nbtoolkit.cli.serve:serve_cmd",
    "feedback": "nbtoolkit.cli.serve:feedback_cmd",
    "comment": "nbtoolkit.cli.serve:comment_cmd",
    "store": "nbtoolkit.cli.store:store_cmd",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attr = COMMANDS[cmd_name].split(":")
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NbToolkitError as exc:
            fail(str(exc), exc.exit_code)
        except Exception as exc:
            # a raw database error (sqlite3 / SQLAlchemy) is typed here, never a traceback
            if not _is_database_error(exc):
                raise
            from nbtoolkit.store.engine import typed_store_error

            typed = typed_store_error(exc)
            if typed is None:
                raise
            fail(str(typed), typed.exit_code)


def _is_database_error(exc: BaseException) -> bool:
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and isinstance(exc, sqlite3.DatabaseError):
        return True
    return type(exc).__module__.startswith("sqlalchemy")


def fail(message: str, code: int = 2) -> None:
    """Print ``Error: message`` to stderr and exit with ``code``."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbtk")
@click.option(
    "--store",
    type=str,
    envvar="NBTOOLKIT_STORE",
    help="Store folder or database URL, e.g. postgresql://user@host/db (default: .nbtoolkit/ in the project root).",
)
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """nbtoolkit: reproducible, reviewable notebook experiments."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store


def settings_from(ctx: click.Context) -> Any:
    from nbtoolkit.config import load_settings

    return load_settings(store=(ctx.obj or {}).get("store"))


def store_named(ctx: click.Context) -> bool:
    """True when ``--store`` was given on the command line (not only through NBTOOLKIT_STORE)."""
    return ctx.find_root().get_parameter_source("store") is click.core.ParameterSource.COMMANDLINE


def store_from(ctx: click.Context) -> Any:
    from nbtoolkit.store import open_store

    return open_store(settings_from(ctx))


def main() -> None:
    """Console-script entry point."""
    from nbtoolkit._lean import skip_unused_optional_imports

    skip_unused_optional_imports()
    cli(obj={})
