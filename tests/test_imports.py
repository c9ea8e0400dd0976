"""``import nbtoolkit`` stays cheap: no heavy library is imported until it is used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("IPython", "pandas", "matplotlib", "papermill", "sqlalchemy", "dvc", "jinja2", "ipywidgets", "numpy")


def _modules_after(code: str) -> set[str]:
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_nbtoolkit_imports_no_heavy_library() -> None:
    loaded = _modules_after("import nbtoolkit as nbtk\nassert nbtk.__version__")
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == []
    assert "nbtoolkit" in loaded


def test_the_probe_can_fail() -> None:
    """The check above sees modules that are imported: using the API does load them."""
    loaded = _modules_after("import nbtoolkit as nbtk\nnbtk.runs")
    assert "nbtoolkit.query" in loaded
    loaded = _modules_after("import nbtoolkit as nbtk\nnbtk.RunRecord\nimport nbtoolkit.store\nnbtoolkit.store.Store")
    assert "sqlalchemy" in loaded
