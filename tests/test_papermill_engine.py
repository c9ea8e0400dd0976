"""nbtoolkit's papermill engine is found through papermill's ``papermill.engine`` entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared_engines() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return dict(project.get("entry-points", {}).get("papermill.engine", {}))


def _papermill_engine_from(site: Path, engines: dict[str, str]) -> str:
    """Install only metadata (a dist-info with these entry points) and ask papermill's registry."""
    info = site / "nbtk_probe-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nbtk-probe\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in engines.items())
    (info / "entry_points.txt").write_text(f"[papermill.engine]\n{lines}")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site)!r})
        from papermill.engines import PapermillEngines
        registry = PapermillEngines()
        registry.register_entry_points()
        engine = registry.get_engine("nbtoolkit")
        print(engine.__module__ + ":" + engine.__qualname__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_pyproject_declares_the_engine_for_papermill(tmp_path: Path) -> None:
    engines = _declared_engines()
    assert engines == {"nbtoolkit": "nbtoolkit.execute.papermill_engine:NbToolkitEngine"}
    found = _papermill_engine_from(tmp_path / "site", engines)
    assert found == "nbtoolkit.execute.papermill_engine:NbToolkitEngine"


def test_the_installed_package_registers_the_engine_for_papermill() -> None:
    # a fresh interpreter that never imports nbtoolkit: papermill alone finds the engine
    code = (
        "import sys; from papermill.engines import papermill_engines;"
        "e = papermill_engines.get_engine('nbtoolkit');"
        "print(e.__module__ + ':' + e.__qualname__, 'nbtoolkit.execute.engine' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["nbtoolkit.execute.papermill_engine:NbToolkitEngine", "False"]


def test_the_probe_fails_without_the_entry_point() -> None:
    code = textwrap.dedent("""
        import sys
        from importlib import metadata
        from papermill.engines import PapermillEngines
        registry = PapermillEngines()
        for ep in metadata.entry_points(group="papermill.engine"):
            if ep.name != "nbtoolkit":
                registry.register(ep.name, ep.load())
        try:
            registry.get_engine("nbtoolkit")
        except Exception as exc:
            print(exc)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "No engine named 'nbtoolkit'" in done.stdout
