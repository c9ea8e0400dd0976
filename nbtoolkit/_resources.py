"""Files shipped with nbtoolkit: the Jinja2 templates and the demo notebooks.

In a wheel they live inside the package (``nbtoolkit/templates``, ``nbtoolkit/demo_notebooks``,
see ``force-include`` in pyproject.toml); in a source checkout or editable install they are the
repository's top-level ``templates/`` and ``notebooks/`` folders.
"""

from __future__ import annotations

from pathlib import Path

from nbtoolkit.errors import NbToolkitError

_PACKAGE = Path(__file__).resolve().parent


def _find(packaged: str, source: str, marker: str) -> Path:
    for candidate in (_PACKAGE / packaged, _PACKAGE.parent / source):
        if (candidate / marker).is_file():
            return candidate
    raise NbToolkitError(
        f"nbtoolkit's {source}/ folder is missing (no {marker} next to the package); reinstall nbtoolkit."
    )


def templates_dir() -> Path:
    """The folder holding the Jinja2 templates (reports, model card, new-experiment notebook)."""
    return _find("templates", "templates", "report_base.html.j2")


def demo_notebooks_dir() -> Path:
    """The folder holding the demo notebooks."""
    return _find("demo_notebooks", "notebooks", "challenger_gbm.ipynb")
