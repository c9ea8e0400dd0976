"""``nbtk serve | feedback | comment``: thin adapters over :mod:`nbtoolkit.serve`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nbtoolkit.cli import cli, settings_from, store_from


@cli.command("serve")
@click.argument("ref")
@click.option("--port", required=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--canary", default=None, metavar="MODEL@ALIAS", help="Challenger answering a share of the keys.")
@click.option("--percent", default=5.0, show_default=True, type=click.FloatRange(0, 100), help="Challenger share (percent of keys).")
@click.option("--key", default=None, help="Routing key column of the requests (default: their ids).")
@click.option("--plan", is_flag=True, help="Walk the steps of the challenger bundle's release.json plan.")
@click.option("--no-promote", "no_promote", is_flag=True,
              help="With --plan: hold the challenger at 100 % when the plan completes (default: promote it to the champion's alias).")
@click.option("--log-inputs", is_flag=True, default=False, help="Store each row's inputs (sensitive columns dropped).")
@click.option("--trust-type", "trusted", multiple=True, metavar="TYPE", help="Trust this skops type (after reviewing it).")
@click.option("--flag", default="canary", show_default=True, help="Feature flag that switches the canary off or sets its share.")
@click.pass_context
def serve_cmd(ctx: click.Context, ref: str, port: int, host: str, canary: str | None, percent: float, key: str | None,
              plan: bool, no_promote: bool, log_inputs: bool, trusted: tuple[str, ...], flag: str) -> None:
    """Serve REF (MODEL@ALIAS, MODEL@VERSION or a bundle path) over HTTP (MLflow's scoring protocol)."""
    from nbtoolkit.serve.app import build_app, run_app
    from nbtoolkit.serve.launch import prepare

    service, controller = prepare(ref, canary=canary, percent=percent, key=key, plan=plan, promote=not no_promote,
                                  log_inputs=log_inputs or None,
                                  trusted_types=trusted, flag=flag, settings=settings_from(ctx), store=store_from(ctx))
    who = f"{service.champion.model} {service.champion.version}"
    if service.challenger is not None and service.router is not None:
        who += f", canary {service.challenger.version} at {service.router.percent:g} % by {key or 'ids'}"
    click.echo(f"Serving {who} on http://{host}:{port} (verified {service.champion.path})", err=True)
    run_app(build_app(service, controller), host=host, port=port)
    click.echo(f"Stopped; {service.writer.written} prediction rows logged.", err=True)


@cli.command("feedback")
@click.argument("model")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", default=None, help="Join by this key column (every unlabelled row of the key).")
@click.option("--id", "row_id", default=None, help="Join by this row-id column (the ids sent with the requests).")
@click.option("--label", required=True, help="Outcome column.")
@click.option("--ts", default=None, help="Column with the unix time of each outcome (default: now).")
@click.pass_context
def feedback_cmd(ctx: click.Context, model: str, file: Path, key: str | None, row_id: str | None, label: str, ts: str | None) -> None:
    """Join outcomes from FILE (.csv/.parquet) to MODEL's prediction log."""
    from nbtoolkit.serve.feedback import feedback_rows

    rows = feedback_rows(file, label=label, key=key, row_id=row_id, ts=ts)
    labelled = store_from(ctx).add_feedback(model, rows)
    click.echo(f"{labelled} logged predictions of {model} labelled from {len(rows)} outcomes.")


@cli.command("comment")
@click.argument("ref")
@click.option("--by", "by", default=None, help="Who comments (recorded).")
@click.option("--text", default=None, help="The comment.")
@click.option("--rating", default=None, type=click.IntRange(1, 5), help="Rating from 1 to 5.")
@click.option("--list", "list_", is_flag=True, help="List the comments on REF instead.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def comment_cmd(ctx: click.Context, ref: str, by: str | None, text: str | None, rating: int | None, list_: bool, as_json: bool) -> None:
    """Comment on (or --list comments of) a run, MODEL@VERSION or an experiment."""
    from nbtoolkit.errors import InputError
    from nbtoolkit.serve.feedback import add_comment, list_comments

    store = store_from(ctx)
    if list_:
        found = list_comments(ref, store=store)
        if as_json:
            click.echo(json.dumps([c.to_dict() for c in found], indent=2))
            return
        if not found:
            click.echo(f"No comments on {ref}.")
        for c in found:
            stars = f" [{c.rating}/5]" if c.rating is not None else ""
            click.echo(f"{c.to_dict()['created']}  {c.by}{stars}: {c.text}")
        return
    if not by or not text:
        raise InputError("comment needs --by NAME and --text TEXT (or --list to read comments).")
    c = add_comment(ref, by=by, text=text, rating=rating, store=store)
    click.echo(json.dumps(c.to_dict()) if as_json else f"Comment {c.id} on {c.target_kind} {c.target} recorded.")
