"""The one home of HTML helpers: escaping, number text, badges and the colour palette.

Every rich output (run cards, verdict tables, widgets, server pages, stability summaries), the
report and model-card templates (as ``palette`` in Jinja) and the lab extension's CSS use these
colours, so a state looks the same everywhere. This module is a leaf: it imports nothing of the
package but the leaf :mod:`nbtoolkit._format` (number text), so any stage (the store included)
may use it.
"""

from __future__ import annotations

import html
from typing import Any

from nbtoolkit._format import fmt_number

__all__ = ["PALETTE", "SERIES_COLOURS", "STATE_COLOURS", "badge", "colour", "coloured", "esc",
           "fmt_number", "verdict_badge"]

#: Named colours (GitHub Primer light), used by Python outputs and templates.
PALETTE: dict[str, str] = {
    "green": "#1a7f37",
    "green_bg": "#dafbe1",
    "red": "#cf222e",
    "red_bg": "#ffebe9",
    "amber": "#9a6700",
    "amber_bg": "#fff8c5",
    "blue": "#0969da",
    "blue_bg": "#ddf4ff",
    "purple": "#8250df",
    "grey": "#57606a",
    "grey_light": "#8c959f",
    "grey_bg": "#f6f8fa",
    "border": "#d0d7de",
    "text": "#1f2328",
    "white": "#ffffff",
}

_GOOD = (PALETTE["green"], PALETTE["green_bg"])
_BAD = (PALETTE["red"], PALETTE["red_bg"])
_UNSURE = (PALETTE["amber"], PALETTE["amber_bg"])
_NEUTRAL = (PALETTE["grey"], PALETTE["grey_bg"])

#: ``(foreground, background)`` for every verdict, criterion result and run status shown.
STATE_COLOURS: dict[str, tuple[str, str]] = {
    "supported": _GOOD, "pass": _GOOD, "ok": _GOOD,
    "rejected": _BAD, "fail": _BAD, "breach": _BAD,
    "inconclusive": _UNSURE, "no traffic": _UNSURE, "not measured": _UNSURE,
    "running": (PALETTE["blue"], PALETTE["blue_bg"]),
    "failed": (PALETTE["red"], PALETTE["grey_bg"]),
    "crashed": (PALETTE["red"], PALETTE["grey_bg"]),
    "interrupted": (PALETTE["amber"], PALETTE["grey_bg"]),
    "timed_out": (PALETTE["amber"], PALETTE["grey_bg"]),
    "none": _NEUTRAL,
}

#: Plot line colours, in order.
SERIES_COLOURS = (PALETTE["blue"], PALETTE["red"], PALETTE["green"], PALETTE["purple"],
                  PALETTE["amber"], PALETTE["grey"])


def esc(value: Any) -> str:
    """HTML-escape any value's text form (quotes included)."""
    return html.escape(str(value), quote=True)


def colour(state: str | None) -> str:
    """The foreground colour of a verdict, result or status (grey when unknown)."""
    return STATE_COLOURS.get(state or "none", _NEUTRAL)[0]


def badge(text: str, state: str | None) -> str:
    """A rounded pill with ``text`` (escaped) in the colours of ``state``."""
    fg, bg = STATE_COLOURS.get(state or "none", _NEUTRAL)
    return (
        f'<span style="display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;'
        f'color:{fg};background:{bg};border:1px solid {fg}">{esc(text)}</span>'
    )


def verdict_badge(verdict: str | None, status: str = "finished") -> str:
    """The badge of a run: its status when it did not finish, else its verdict."""
    if status not in ("finished", "running"):
        return badge(status, status)
    return badge(verdict or "no verdict", verdict)


def coloured(text: str, state: str | None, *, bold: bool = True, css_class: str = "") -> str:
    """``text`` (escaped) in the colour of ``state``, e.g. a result word in a table cell."""
    weight = ";font-weight:bold" if bold else ""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f'<span{cls} style="color:{colour(state)}{weight}">{esc(text)}</span>'
