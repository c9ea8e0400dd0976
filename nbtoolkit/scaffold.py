"""``nbtk new``: a new experiment notebook from ``templates/new_experiment.ipynb``."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from nbtoolkit._io import atomic_write_text
from nbtoolkit.declaration import build_declaration, check_baseline_ref, validate_name
from nbtoolkit.errors import InputError

TEMPLATE = "new_experiment.ipynb"


def _one_line(value: str, what: str) -> str:
    if "\n" in value or "\r" in value or '"""' in value or "\\" in value:
        raise InputError(f"--{what} must be one line without backslashes or triple quotes; shorten it.")
    return value.strip()


def new_experiment_notebook(
    name: str,
    *,
    path: str | Path | None = None,
    baseline: str | None = None,
    hypothesis: str = "",
    scope: str = "",
    owner: str = "",
    until: _dt.date | None = None,
    force: bool = False,
) -> Path:
    """Write a new experiment notebook (parameters cell, ``%%experiment`` cell with a declaration).

    Args:
        name: the experiment name (validated like ``%%experiment NAME``).
        path: where to write it (default ``NAME.ipynb`` in the working folder).
        baseline: a run id, experiment name, ``sweep:ID:best`` or registry alias to compare with.
        hypothesis: the hypothesis, one line.
        scope: the scope, one line.
        owner: who owns the experiment.
        until: the time box (default: two weeks from today).
        force: overwrite an existing file.

    Returns:
        The path written.

    Raises:
        InputError: a bad name or value, or the file exists and ``force`` is false.
    """
    import jinja2
    import nbformat

    from nbtoolkit._resources import templates_dir
    validate_name(name)
    if baseline:
        baseline = check_baseline_ref(baseline)
    values = {
        "name": name,
        "baseline": baseline or "",
        "hypothesis": _one_line(hypothesis, "hypothesis"),
        "scope": _one_line(scope, "scope"),
        "owner": _one_line(owner, "owner"),
        "until": (until or _dt.date.today() + _dt.timedelta(days=14)).isoformat(),
    }
    target = Path(path) if path is not None else Path(f"{name}.ipynb")
    if target.suffix != ".ipynb":
        raise InputError(f"{target} must end with .ipynb.")
    if target.exists() and not force:
        raise InputError(f"{target} exists; choose another path with -o or pass --force to replace it.")

    nb = nbformat.read(templates_dir() / TEMPLATE, as_version=4)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    for cell in nb.cells:
        cell.source = env.from_string(cell.source).render(**values)
        if cell.source.startswith("%%experiment"):
            line, _, body = cell.source.partition("\n")
            build_declaration(line[len("%%experiment") :], body)  # the generated cell must parse
    nbformat.validate(nb)
    atomic_write_text(target, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return target
