"""Packaging consistency: environment.yml mirrors pyproject.toml; templates ship in the wheel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# conda-forge names where they differ from PyPI
CONDA_NAMES = {
    "dask[distributed]": ["dask", "distributed"],
    "jupyter_server": ["jupyter_server"],
    "moto[server]": ["moto"],
    "psycopg2-binary": ["psycopg2"],
}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", requirement.split(";")[0].strip())  # markers aside
    assert match, requirement
    return match.group(1), match.group(2).replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = data["project"]["optional-dependencies"]
    reqs = list(data["project"]["dependencies"]) + list(extras["dev"]) + list(extras.get("team", []))
    out: dict[str, str] = {}
    for req in reqs:
        name, bound = _split(req)
        for conda_name in CONDA_NAMES.get(name, [name]):
            out[conda_name.lower().replace("_", "-")] = bound
    return out


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    pip_section = [d for dep in env["dependencies"] if isinstance(dep, dict) for d in dep.get("pip", [])]
    conda = [dep for dep in env["dependencies"] if isinstance(dep, str) and not dep.startswith(("python", "pip", "nodejs"))]
    for dep in conda + [d.split("#")[0] for d in pip_section if not d.startswith("-")]:  # pip: only what conda lacks
        name, bound = _split(dep)
        out[name.lower().replace("_", "-")] = bound
    return out


def test_environment_yml_mirrors_pyproject_lower_bounds() -> None:
    assert _environment_requirements() == _pyproject_requirements()


def test_every_runtime_dependency_has_a_lower_bound() -> None:
    for name, bound in _pyproject_requirements().items():
        assert bound.startswith(">="), f"{name} needs a lower bound"


def test_templates_and_demo_notebooks_are_shipped_in_the_wheel() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    force = data["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert force["templates"] == "nbtoolkit/templates"
    assert force["notebooks"] == "nbtoolkit/demo_notebooks"
    assert any((ROOT / "templates").iterdir())
