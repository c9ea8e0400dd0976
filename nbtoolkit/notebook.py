"""Notebook-file helpers shared by capture and re-execution (plain JSON; no kernel needed)."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
#: papermill starts the cell it injects with this comment line.
PAPERMILL_INJECTED_HEADER = "# Parameters"


def notebook_hash(path: str | Path) -> str:
    """sha256 of a notebook's *code* (cell types and sources), ignoring outputs and metadata.

    Two saves of the same code, with different outputs or execution counts, hash the same, which
    is what the run cache and reproduction compare.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if INJECTED_TAG in tags:
            continue
        source = cell.get("source", "")
        if isinstance(source, list):
            source = "".join(source)
        digest.update(cell.get("cell_type", "").encode())
        digest.update(b"\0")
        digest.update(source.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def _cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def assigned_names(source: str) -> list[str]:
    """Names bound by top-level ``name = ...`` / ``name: T = ...`` statements, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for t in targets:
            if isinstance(t, ast.Name) and t.id not in names:
                names.append(t.id)
    return names


def literal_values(source: str) -> dict[str, Any]:
    """``name = literal`` assignments anywhere at top level of ``source`` (later ones win)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except (ValueError, SyntaxError, TypeError, RecursionError):
                continue
    return out


def parameters_cell(path: str | Path) -> str | None:
    """Source of the cell tagged ``parameters`` (papermill's convention), or ``None``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return _cell_source(cell)
    return None


def parameter_names(path: str | Path) -> list[str] | None:
    """Names defined in the notebook's ``parameters`` cell; ``None`` when it has none."""
    source = parameters_cell(path)
    return None if source is None else assigned_names(source)


def notebook_metadata(path: str | Path) -> dict[str, Any]:
    """The notebook's ``metadata["nbtoolkit"]`` (empty when absent)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("nbtoolkit", {})
    return meta if isinstance(meta, dict) else {}
