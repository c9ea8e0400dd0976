"""The Jinja2 environment of the report templates, with filters that format and escape.

Templates live in the top-level ``templates/`` folder of the repository, shipped inside the
wheel as ``nbtoolkit/templates``. Autoescaping is on for every template; JSON placed inside a
``<script>`` element goes through :func:`json_for_script`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import hashlib
import json
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit._format import (
    fmt_fixed,
    fmt_interval,
    fmt_signed,
    metric_decimals,
)
from nbtoolkit._format import fmt_number as fmt_num
from nbtoolkit._resources import templates_dir
from nbtoolkit._version import __version__
from nbtoolkit.html import PALETTE
from nbtoolkit.redact import MASK, count_masks, default_redactor
from nbtoolkit.verdict import criterion_cells

if TYPE_CHECKING:
    import jinja2

#: Content-Security-Policy of every report: nothing is fetched, no script runs (except the
#: index page's search box, allowed by its hash)
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {script}; "
       "base-uri 'none'; form-action 'none'")

_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                   "\u2029": "\\u2029"}


def json_for_script(value: Any) -> str:
    """JSON text safe inside ``<script>``: ``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""
    text = _json.dumps_strict(value, sort_keys=True)
    return "".join(_SCRIPT_ESCAPES.get(ch, ch) for ch in text)


def script_hash(script: str) -> str:
    """The CSP source expression (``'sha256-...'``) allowing exactly this inline script."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return f"'sha256-{digest}'"


def fmt_time(ts: Any) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM UTC``."""
    if ts is None:
        return "—"
    try:
        return _dt.datetime.fromtimestamp(float(ts), tz=_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError, OverflowError):
        return str(ts)


def fmt_date(ts: Any) -> str:
    """Epoch seconds as ``YYYY-MM-DD``."""
    return fmt_time(ts)[:10] if ts is not None else "—"


def fmt_duration(seconds: Any) -> str:
    """Seconds as ``1h 02m``, ``3m 05s`` or ``4.2s``."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def fmt_size(n: Any) -> str:
    """Bytes as ``12.3 kB``."""
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def fmt_value(value: Any) -> str:
    """A parameter value as short text (JSON for containers)."""
    if isinstance(value, float):
        return fmt_num(value, 6)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, ensure_ascii=False)
    if value is None:
        return "None"
    return str(value)


@functools.cache
def environment() -> jinja2.Environment:
    """The (cached) Jinja2 environment over :func:`templates_dir`, autoescape on."""
    import jinja2
    import markupsafe

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, signed=fmt_signed, fixed=fmt_fixed, when=fmt_time,
                       date=fmt_date, duration=fmt_duration, size=fmt_size, value=fmt_value,
                       criterion_cells=criterion_cells,
                       json_script=lambda v: markupsafe.Markup(json_for_script(v)))
    env.globals.update(decimals=metric_decimals, interval_text=fmt_interval, palette=PALETTE)
    return env


def render(template: str, **context: Any) -> str:
    """Render one report template with ``context``."""
    import markupsafe

    env = environment()
    script = context.pop("inline_script", None)
    context["inline_script"] = markupsafe.Markup(script) if script else None
    context["csp"] = CSP.format(script=script_hash(script) if script else "'none'")
    context.setdefault("generated", _dt.datetime.now(tz=_dt.UTC).timestamp())
    context.setdefault("tool_version", __version__)
    return redact_html(env.get_template(template).render(**context))


#: Where the base template says how many secrets the page shows masked.
REDACTION_MARKER = "<!--nbtk:redactions-->"


def redact_html(html: str) -> str:
    """Scrub secrets from a rendered page and say, by count only, how many are masked.

    Every report is written through here: the values of secret-named environment variables,
    URL credentials and well-known token shapes become ``***`` even when a value slipped past
    the store; the footer then states how many masked values the page holds.
    """
    clean = default_redactor().redact_text(html)
    masked = count_masks(clean)
    note = (f" {masked} secret value{'s' if masked != 1 else ''} masked as <code>{MASK}</code>."
            if masked else "")
    return clean.replace(REDACTION_MARKER, note, 1)
