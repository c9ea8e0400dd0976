"""Notebook-file helpers shared by capture and re-execution (plain JSON; no kernel needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
    return notebook_content_hash(Path(path).read_bytes())


def notebook_content_hash(content: bytes) -> str:
    """:func:`notebook_hash` of a notebook file's bytes (what a runner read once and ships)."""
    nb = json.loads(content.decode("utf-8"))
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


def without_outputs(content: bytes) -> bytes:
    """A notebook file's bytes with every code cell's outputs and execution count cleared.

    What a runner hands to its kernels and ships to Dask workers: papermill clears the outputs
    before executing anyway, while a notebook saved with its plots can weigh megabytes that every
    task of a sweep would otherwise carry through the scheduler. The code (and so
    :func:`notebook_content_hash`) and the metadata are unchanged.

    Raises:
        ValueError: the bytes are not a JSON notebook.
    """
    nb = json.loads(content.decode("utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def parameters_cell(path: str | Path) -> str | None:
    """Source of the cell tagged ``parameters`` (papermill's convention), or ``None``."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            return _cell_source(cell)
    return None


@dataclass(frozen=True)
class NotebookParameter:
    """One parameter as papermill infers it from the ``parameters`` cell.

    ``type_name`` comes from an annotation (``a: float = 1``) or a ``# type: T`` comment and is
    ``None`` when the cell does not say; ``default`` is the source text of the value; ``help`` is
    the trailing comment.
    """

    name: str
    type_name: str | None
    default: str
    help: str


def inspect_parameters(path: str | Path) -> list[NotebookParameter] | None:
    """The notebook's parameters as :func:`papermill.inspect_notebook` reads them.

    Annotated (``a: float = 2.25  # help``) and commented (``# type: List[str] help``) cells
    are understood; lines papermill cannot introspect are skipped, as papermill does. A notebook
    without ``metadata.kernelspec`` is read with the Python translator (it runs on ``python3``).

    Returns:
        The parameters in cell order, or ``None`` when no cell is tagged ``parameters``.
    """
    import papermill
    from papermill.translators import PythonTranslator

    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cell = next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"
                 and PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return None
    spec = nb.get("metadata", {}).get("kernelspec")
    if isinstance(spec, dict) and spec.get("name"):
        found = list(papermill.inspect_notebook(str(path)).values())
    else:
        import nbformat

        cell = nbformat.from_dict({**cell, "source": _cell_source(cell)})
        found = [p._asdict() for p in PythonTranslator.inspect(cell)]
    return [NotebookParameter(name=p["name"], default=p["default"], help=p["help"],
                              type_name=None if p["inferred_type_name"] == "None" else p["inferred_type_name"])
            for p in found]


def parameter_names(path: str | Path) -> list[str] | None:
    """Names papermill finds in the notebook's ``parameters`` cell; ``None`` when it has none."""
    params = inspect_parameters(path)
    return None if params is None else [p.name for p in params]


def kernel_for(path: str | Path) -> tuple[str, str]:
    """The kernel name and language to run a notebook with.

    Both come from ``metadata.kernelspec`` (language also from ``language_info``); a notebook
    saved without them runs on the current environment's ``python3`` kernel, which
    jupyter_client always provides when ipykernel is installed.

    Returns:
        ``(kernel_name, language)``.
    """
    meta = json.loads(Path(path).read_text(encoding="utf-8")).get("metadata", {})
    spec = meta.get("kernelspec") if isinstance(meta.get("kernelspec"), dict) else {}
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    name = spec.get("name")
    language = spec.get("language") or info.get("name")
    return (name if isinstance(name, str) and name else "python3",
            language if isinstance(language, str) and language else "python")


def notebook_metadata(path: str | Path) -> dict[str, Any]:
    """The notebook's ``metadata["nbtoolkit"]`` (empty when absent)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    meta = nb.get("metadata", {}).get("nbtoolkit", {})
    return meta if isinstance(meta, dict) else {}
