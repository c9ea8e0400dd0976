"""Executed notebooks made inert for embedding in a report.

nbconvert's ``basic`` HTML template renders the cells; before that, outputs that could run code
are turned into text (JavaScript, widgets) and SVG is moved into ``<img>`` data URIs (an SVG
image cannot run scripts). Afterwards nh3, a maintained sanitiser, cleans the whole rendered
HTML: no ``<script>``/``<style>``, no event-handler attributes, no ``javascript:`` URLs, and images
only as ``data:image/...`` URIs, so a report never loads anything from the network.
"""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

#: output MIME types that would run code or need a widget manager; shown as text instead
_ACTIVE_MIME = re.compile(r"javascript|ecmascript|widget|vnd\.jupyter\.|bokehjs|plotly|vega|"
                          r"application/vnd\.holoviews", re.IGNORECASE)
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=\s]*$")
_SAFE_HREF = re.compile(r"^(#|https?://|mailto:)", re.IGNORECASE)
_EXTRA_TAGS = {"section", "input", "label", "main", "svg-placeholder"}


def _active_output_text(mime: str, value: Any) -> str:
    text = value if isinstance(value, str) else "".join(value) if isinstance(value, list) else str(value)
    if "widget" in mime.lower():
        return f"[interactive widget output ({mime}) is not shown in the report]"
    head = text if len(text) <= 2000 else text[:2000] + "\n... (truncated)"
    return f"[{mime} output, not run in the report]\n{head}"


def make_inert(nb: Any) -> Any:
    """Return a copy of ``nb`` whose outputs cannot run code when rendered.

    JavaScript and widget outputs become ``text/plain`` (or disappear behind an existing plain
    text form), SVG becomes an ``<img>`` with a base64 data URI, widget state is dropped.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("widgets", None)
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = out.get("data")
            if not isinstance(data, dict):
                continue
            notes = [_active_output_text(m, data[m]) for m in list(data) if _ACTIVE_MIME.search(m)]
            for m in [m for m in data if _ACTIVE_MIME.search(m)]:
                del data[m]
            svg = data.pop("image/svg+xml", None)
            if svg is not None and "text/html" not in data:
                raw = svg if isinstance(svg, str) else "".join(svg)
                b64 = base64.b64encode(raw.encode("utf-8")).decode("ascii")
                data["text/html"] = f'<img alt="SVG output" src="data:image/svg+xml;base64,{b64}">'
            if notes and not any(k in data for k in ("text/html", "image/png", "image/jpeg")):
                plain = data.get("text/plain")
                plain = "".join(plain) if isinstance(plain, list) else (plain or "")
                data["text/plain"] = "\n".join([*notes, plain] if plain else notes)
            out.get("metadata", {}).pop("application/vnd.jupyter.widget-view+json", None)
    return nb


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "src":
        return value if tag == "img" and _DATA_IMAGE.match(value) else None
    if attr == "href":
        return value if _SAFE_HREF.match(value.strip()) else None
    if attr in ("style", "srcset", "background", "action", "formaction", "xlink:href", "poster"):
        return None
    return value


def clean_html(html: str) -> str:
    """Sanitise an HTML fragment with nh3 for embedding in a report.

    Keeps structure, classes and ids; removes scripts, styles, event handlers and dangerous URLs;
    keeps images only as ``data:image/...`` URIs and links only to ``#``, http(s) or mailto.
    """
    import nh3

    tags = set(nh3.ALLOWED_TAGS) | _EXTRA_TAGS
    attributes = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = {"class", "id", "title", "lang", "dir", "align"}
    attributes["img"] = {"src", "alt", "width", "height"}
    attributes["a"] = {"href", "title"}
    attributes["input"] = {"type", "checked", "disabled"}
    return nh3.clean(
        html,
        tags=tags,
        clean_content_tags={"script", "style", "noscript", "template", "iframe", "object", "embed"},
        attributes=attributes,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "data"},
        strip_comments=True,
        link_rel="noopener noreferrer",
    )


def notebook_to_html(nb: Any) -> str:
    """Render an executed notebook as an inert, sanitised HTML fragment (no page wrapper).

    Args:
        nb: a ``nbformat.NotebookNode`` (version 4).

    Returns:
        HTML safe to place inside a report page.
    """
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    body, _ = exporter.from_notebook_node(make_inert(nb))
    return clean_html(body)


def notebook_css() -> str:
    """Minimal CSS for the embedded notebook (pygments highlighting plus cell layout)."""
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs(".nbtk-notebook .highlight"))
