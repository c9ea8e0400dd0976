"""One palette: Python outputs, report/model-card templates and the lab extension CSS agree."""

from __future__ import annotations

import re
from pathlib import Path

from nbtoolkit.html import PALETTE, STATE_COLOURS, badge, colour, esc, fmt_number, verdict_badge

ROOT = Path(__file__).resolve().parents[1]
LAB_CSS = ROOT / "extensions" / "nbtoolkit-labextension" / "style" / "index.css"
HEX = re.compile(r"#[0-9a-fA-F]{6}\b")


def _lab_badges(css: str) -> dict[str, tuple[str, str]]:
    """``{state: (color, background)}`` from ``.nbtk-badge-<state>`` rules."""
    found: dict[str, tuple[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        names = re.findall(r"\.nbtk-badge-([\w-]+)", selectors)
        fg = re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", body)
        bg = re.search(r"background:\s*(#[0-9a-fA-F]{6})", body)
        if names and fg and bg:
            found.update({n: (fg.group(1).lower(), bg.group(1).lower()) for n in names})
    return found


def test_lab_extension_badges_use_the_python_state_colours() -> None:
    badges = _lab_badges(LAB_CSS.read_text(encoding="utf-8"))
    assert {"supported", "rejected", "inconclusive", "running", "failed", "none"} <= set(badges)
    for state, colours in badges.items():
        assert colours == STATE_COLOURS[state], state


def test_lab_extension_css_uses_only_palette_colours() -> None:
    used = {h.lower() for h in HEX.findall(LAB_CSS.read_text(encoding="utf-8"))}
    assert used and used <= set(PALETTE.values())


def test_templates_name_colours_only_through_the_palette() -> None:
    templates = sorted((ROOT / "templates").glob("*.j2"))
    assert templates
    for path in templates:
        assert HEX.findall(path.read_text(encoding="utf-8")) == [], path.name


def test_python_modules_name_colours_only_through_the_palette() -> None:
    offenders = []
    for path in sorted((ROOT / "nbtoolkit").rglob("*.py")):
        if path.name == "html.py" and path.parent.name == "nbtoolkit":
            continue
        rel = path.relative_to(ROOT).as_posix()
        if HEX.search(path.read_text(encoding="utf-8")):
            offenders.append(rel)
    assert offenders == []


def test_the_palette_checks_can_fail() -> None:
    assert _lab_badges(".nbtk-badge-x, .nbtk-badge-y { color: #ABCDEF; background: #000000; }") == {
        "x": ("#abcdef", "#000000"), "y": ("#abcdef", "#000000")}


def test_helpers_escape_and_colour() -> None:
    assert esc('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert fmt_number(float("nan")) == "NaN" and fmt_number(None) == "—"
    assert fmt_number(0.123456789) == "0.1235"
    assert colour("supported") == PALETTE["green"] and colour("zzz") == PALETTE["grey"]
    assert "&lt;b&gt;" in badge("<b>", "rejected") and PALETTE["red"] in badge("x", "rejected")
    failed = verdict_badge("supported", "failed")
    assert ">failed<" in failed and PALETTE["red"] in failed
    assert ">no verdict<" in verdict_badge(None) and PALETTE["grey"] in verdict_badge(None)
