"""Notebook parameters the papermill way: ``-p NAME VALUE`` typing, YAML files and name checks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nbtoolkit.declaration import literal_assignment_nodes
from nbtoolkit.errors import ParameterError
from nbtoolkit.notebook import inspect_parameters, parameter_names

__all__ = ["check_parameters", "describe_parameters", "known_parameters", "load_yaml_params", "merge_parameters", "resolve_value"]


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


def known_parameters(path: str | Path) -> tuple[list[str], bool]:
    """Names a run may set: papermill's reading of the ``parameters`` cell plus the ``%%experiment`` top literals.

    Returns:
        ``(names, has_parameters_cell)``.
    """
    cell_names = parameter_names(path)
    names = list(cell_names or [])
    names += [n for n in _experiment_defaults(path) if n not in names]
    return names, cell_names is not None


def _experiment_defaults(path: str | Path) -> dict[str, Any]:
    """Top-of-cell literals of every ``%%experiment`` cell, ``{name: default}`` in order."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        src = cell.get("source", "") if cell.get("cell_type") == "code" else ""
        src = "".join(src) if isinstance(src, list) else str(src)
        lines = src.splitlines(keepends=True)
        if lines and lines[0].lstrip().startswith("%%experiment"):
            for a in literal_assignment_nodes("".join(lines[1:])):
                out.setdefault(a.name, a.value)
    return out


def _help_line(definition: str, text: str) -> str:
    """papermill's ``--help-notebook`` layout: help text in a column at 34, or on the next line."""
    if len(definition) > 30:
        return f"{definition}\n{34 * ' '}{text}" if text else definition
    return f"{definition:<34}{text}".rstrip()


def describe_parameters(path: str | Path) -> str:
    """Text listing a notebook's parameters like ``papermill --help-notebook``.

    The ``parameters`` cell is read by papermill (name, type, default, help); the
    ``%%experiment`` cells' top literals, which a run may set too, follow in their own section.
    """
    name = Path(path).name
    lines = [f"Parameters inferred for notebook '{name}':"]
    params = inspect_parameters(path)
    if params is None:
        lines.append("  No cell tagged 'parameters'")
    elif not params:
        lines.append("  Can't infer anything about this notebook's parameters. It may not have any parameter defined.")
    for p in params or []:
        lines.append(_help_line(f"  {p.name}: {p.type_name or 'Unknown type'} (default {p.default})", p.help))
    taken = {p.name for p in params or []}
    extra = {k: v for k, v in _experiment_defaults(path).items() if k not in taken}
    if extra:
        lines.append("")
        lines.append("Also settable (top literals of %%experiment cells):")
        for key, value in extra.items():
            lines.append(_help_line(f"  {key}: {type(value).__name__} (default {value!r})", ""))
    return "\n".join(lines)


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
