"""Notebook parameters the papermill way: ``-p NAME VALUE`` typing, YAML files and name checks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nbtoolkit.declaration import literal_assignment_nodes
from nbtoolkit.errors import ParameterError
from nbtoolkit.notebook import parameter_names

__all__ = ["check_parameters", "known_parameters", "load_yaml_params", "merge_parameters", "resolve_value"]


def resolve_value(text: str) -> Any:
    """Type a ``-p NAME VALUE`` string exactly like papermill's CLI does.

    ``True``/``False`` become booleans, ``None`` becomes ``None``, integers and floats become
    numbers, everything else stays a string (lists and dicts come from ``-y`` / ``-f``).
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def load_yaml_params(text: str, *, where: str) -> dict[str, Any]:
    """Parse a YAML mapping of parameters (``-y`` text or ``-f`` file contents).

    Raises:
        ParameterError: not YAML, or not a mapping with string keys.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParameterError(f"{where} is not valid YAML ({exc}); write a mapping like 'lr: 0.1'.") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise ParameterError(f"{where} must be a YAML mapping of parameter names to values, e.g. 'lr: 0.1'.")
    return data


def merge_parameters(
    *,
    files: Iterable[str | Path] = (),
    yaml_texts: Iterable[str] = (),
    pairs: Iterable[tuple[str, str]] = (),
    raw_pairs: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Combine parameter sources in papermill's order: files, then ``-y``, then ``-p``, then ``-r``.

    Raises:
        ParameterError: a file is missing or a source is malformed.
    """
    out: dict[str, Any] = {}
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise ParameterError(f"Parameters file {path} does not exist; pass an existing YAML file to -f.")
        out.update(load_yaml_params(path.read_text(encoding="utf-8"), where=f"Parameters file {path}"))
    for text in yaml_texts:
        out.update(load_yaml_params(text, where="-y YAML"))
    for name, value in pairs:
        out[name] = resolve_value(value)
    for name, value in raw_pairs:
        out[name] = value
    return out


def _experiment_literals(source: str) -> list[str]:
    """Leading ``name = literal`` names of an ``%%experiment`` cell body (after its docstring)."""
    lines = source.splitlines(keepends=True)
    if not lines or not lines[0].lstrip().startswith("%%experiment"):
        return []
    return [a.name for a in literal_assignment_nodes("".join(lines[1:]))]


def known_parameters(path: str | Path) -> tuple[list[str], bool]:
    """Names a run may set: the ``parameters`` cell's plus the ``%%experiment`` cells' top literals.

    Returns:
        ``(names, has_parameters_cell)``.
    """
    cell_names = parameter_names(path)
    names = list(cell_names or [])
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else str(src)
        for name in _experiment_literals(src):
            if name not in names:
                names.append(name)
    return names, cell_names is not None


def check_parameters(path: str | Path, parameters: Mapping[str, Any], *, allow_unknown: bool = False) -> list[str]:
    """Refuse parameter names the notebook does not define.

    Returns:
        Warnings for the user (e.g. the notebook has no ``parameters`` cell).

    Raises:
        ParameterError: unknown names, listing the known ones (unless ``allow_unknown``).
    """
    names, has_cell = known_parameters(path)
    warnings: list[str] = []
    if not has_cell:
        warnings.append(
            f"{Path(path).name} has no cell tagged 'parameters': injected values are added in a new "
            "first cell and cannot override later assignments. Tag the cell that holds the defaults "
            "with 'parameters' (JupyterLab: property inspector > Cell Tags)."
        )
    unknown = [n for n in parameters if n not in names]
    for name in parameters:
        if not isinstance(name, str) or not name.isidentifier():
            raise ParameterError(f"Parameter name {name!r} is not a valid Python identifier.")
    if unknown and not allow_unknown:
        known = ", ".join(names) if names else "(none)"
        raise ParameterError(
            f"Unknown parameter(s) for {Path(path).name}: {', '.join(unknown)}. Known: {known}. "
            "Fix the name, or pass --allow-unknown to inject it anyway."
        )
    return warnings
