"""``nbtk run`` under stress, with real kernels and real processes: files a reader polls are never
torn, output floods and hung cells are bounded, and a killed runner never leaves a run ``finished``."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from conftest import make_notebook, nbtk_cli

from nbtoolkit._io import atomic_write_text, new_file_mode
from nbtoolkit.config import DEFAULT_MAX_OUTPUT_BYTES, load_settings
from nbtoolkit.errors import ConfigError

pytestmark = pytest.mark.slow

# polls PATH until STOP exists; counts whole-notebook parses and every failure to parse
READER = textwrap.dedent(
    """
    import json, os, sys, nbformat
    path, stop = sys.argv[1], sys.argv[2]
    reads, failures, sizes = 0, [], set()
    while not os.path.exists(stop):
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            continue
        reads += 1
        sizes.add(len(text))
        try:
            nbformat.reads(text, as_version=4)
        except Exception as exc:
            failures.append(f"{len(text)} bytes: {type(exc).__name__}: {str(exc)[:80]}")
    print(json.dumps({"reads": reads, "failures": failures, "sizes": len(sizes)}))
    """
)


@pytest.fixture
def default_umask() -> Iterator[None]:
    """Run with the usual ``022`` umask (inherited by the ``nbtk`` subprocesses)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _kernels_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


# ---------------------------------------------------------------------------------- 6. never torn
def test_output_notebook_is_never_torn_while_papermill_saves_it(project: Path, store: Any, default_umask: None) -> None:
    cells = [f"print('cell {i} ' + 'x' * 200_000)\nimport time; time.sleep(0.05)" for i in range(40)]
    nb = make_notebook(project / "many_cells.ipynb", *cells)
    out, stop = project / "out" / "many_cells.ipynb", project / "stop"
    out.parent.mkdir()
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        res = nbtk_cli("run", str(nb), "-o", str(out), cwd=project)
    finally:
        stop.touch()
        seen = json.loads(reader.communicate(timeout=60)[0])
    assert res.returncode == 0, res.stderr
    print(f"reader: {seen['reads']} reads of {seen['sizes']} distinct sizes, {len(seen['failures'])} failures")
    assert seen["failures"] == []
    assert seen["reads"] > 20 and seen["sizes"] > 5, seen  # it really read the file as it grew
    final = nbformat.read(out, as_version=4)
    assert "cell 39 " in final.cells[-1].outputs[0].text
    assert _mode(out) == 0o644  # the user's normal mode, not mkstemp's 0600
    assert not [p.name for p in out.parent.iterdir() if p.name != out.name]  # no temporary files left


def test_report_gets_the_users_normal_mode(project: Path, store: Any, default_umask: None) -> None:
    nb = make_notebook(project / "tiny.ipynb", "print('hi')")
    assert nbtk_cli("run", str(nb), cwd=project).returncode == 0
    run_id = store.query_runs()[0][0]["run_id"]
    res = nbtk_cli("report", run_id, "-o", str(project / "report.html"), cwd=project)
    assert res.returncode == 0, res.stderr
    assert _mode(project / "report.html") == 0o644
    assert "<html" in (project / "report.html").read_text(encoding="utf-8").lower()


def test_atomic_writes_keep_an_existing_mode_and_follow_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    kept.write_text("old", encoding="utf-8")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert kept.read_text(encoding="utf-8") == "new" and _mode(kept) == 0o640
    old = os.umask(0o027)
    try:
        assert new_file_mode(tmp_path / "fresh.txt") == 0o640
        atomic_write_text(tmp_path / "fresh.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "fresh.txt") == 0o640


# ---------------------------------------------------------------------------------- 7. floods, hangs
def test_a_flooding_cell_is_capped_and_its_timeout_holds(project: Path, store: Any) -> None:
    cap = 1_000_000
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0"\n\n[tool.nbtoolkit]\nmax_output_bytes = {cap}\n', encoding="utf-8"
    )
    nb = make_notebook(project / "flood.ipynb", "x = 1", "while True:\n    print('flood ' * 20)")
    out = project / "flood_out.ipynb"
    started = time.monotonic()
    res = nbtk_cli("run", str(nb), "--timeout", "20", "-o", str(out), cwd=project)
    wall, ended = time.monotonic() - started, time.time()
    size = out.stat().st_size
    cell = next(c for c in nbformat.read(out, as_version=4).cells if "while True" in c.source)
    cell_started = datetime.fromisoformat(cell.metadata["papermill"]["start_time"]).timestamp()
    overrun = ended - (cell_started + 20)
    print(f"flood with --timeout 20: runner exited {overrun:.1f} s after the cell's deadline "
          f"({wall:.1f} s wall, kernel start included); output {size:,} bytes")
    assert res.returncode == 1 and "timed_out" in res.stdout, res.stderr
    assert 0 < overrun < 8  # a few seconds: the kernel is stopped and the capped notebook saved
    assert cap // 2 < size < cap + 200_000  # the head of the flood up to the cap, plus the notebook's JSON
    meta = cell.metadata["nbtoolkit"]
    assert meta["ended"] == {"status": "timed_out", "timeout_s": 20.0}
    assert meta["output_truncated"]["limit_bytes"] == cap and meta["output_truncated"]["dropped_bytes"] > cap
    assert any("[nbtoolkit] output truncated" in o.get("text", "") for o in cell.outputs)
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "timed_out"
    assert rec.extra["runner"]["output_truncated_cells"] == [1] and rec.extra["runner"]["max_output_bytes"] == cap
    stored = store.artifacts.read_bytes(rec.artifact("output.ipynb").digest).decode("utf-8")
    assert "[nbtoolkit] output truncated" in stored and len(stored) < cap + 200_000


def test_output_under_the_cap_is_kept_whole(project: Path, store: Any) -> None:
    nb = make_notebook(project / "chatty.ipynb", "for i in range(2000):\n    print('line', i)")
    out = project / "chatty_out.ipynb"
    assert nbtk_cli("run", str(nb), "-o", str(out), cwd=project).returncode == 0
    cell = nbformat.read(out, as_version=4).cells[-1]
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert "line 0\n" in text and "line 1999\n" in text and "truncated" not in text
    assert "output_truncated" not in cell.metadata.get("nbtoolkit", {})


def test_max_output_bytes_setting_is_checked(project: Path) -> None:
    assert load_settings(project).max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES
    (project / "pyproject.toml").write_text('[tool.nbtoolkit]\nmax_output_bytes = "lots"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="max_output_bytes must be a whole number of bytes"):
        load_settings(project)


# ---------------------------------------------------------------------------------- 9. status tells the truth
# a secret in the runner's environment that the notebook prints: no save of the -o file may hold it
PLANTED_TOKEN = "hf_PlantedPartialNotebookToken0123456789"


def _start_runner(project: Path, nb: Path, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nbtoolkit", "run", str(nb), "-o", str(out)],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_TOKEN": PLANTED_TOKEN},
    )


def _wait_for_verdict(store: Any, proc: subprocess.Popen[str], deadline_s: float = 120) -> str:
    """Wait until the kernel's %%experiment cell closed the run (verdict recorded); return its id."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        runs = store.query_runs()[0]
        if runs and store.get_run(runs[0]["run_id"]).verdict is not None:
            return str(runs[0]["run_id"])
        time.sleep(0.2)
    raise AssertionError("the %%experiment cell never finished")


def _experiment_then_sleep(project: Path) -> Path:
    return make_notebook(
        project / "long_tail.ipynb",
        "%load_ext nbtoolkit\nimport os, time\nprint('token', os.environ['HF_TOKEN'])",
        '%%experiment long-tail\n"""\nSuccess: score >= 1\n"""\nscore = 2\nprint("EXPERIMENT DONE")',
        "time.sleep(120)",
        "print('never reached')",
    )


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGKILL, "crashed"), (signal.SIGTERM, "interrupted"), (signal.SIGINT, "interrupted")],
)
def test_a_runner_stopped_after_the_experiment_cell_never_leaves_the_run_finished(
    project: Path, store: Any, sig: signal.Signals, status: str
) -> None:
    nb = _experiment_then_sleep(project)
    out = project / "long_tail_out.ipynb"
    proc = _start_runner(project, nb, out)
    kernels: list[psutil.Process] = []
    try:
        run_id = _wait_for_verdict(store, proc)
        rec = store.get_run(run_id)
        assert (rec.status, rec.verdict) == ("running", "supported")  # the notebook is not done yet
        time.sleep(1.0)  # the sleeping cell has started (and papermill saved the notebook)
        kernels = _kernels_of(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for kernel in kernels or _kernels_of(proc.pid):
            if kernel.is_running():
                kernel.kill()
    if sig != signal.SIGKILL:
        assert proc.returncode == 130, proc.stderr.read() if proc.stderr else ""
    assert nbtk_cli("runs", cwd=project).returncode == 0  # a fresh process opening the store recovers dead runs
    rec = store.get_run(run_id)
    assert rec.status == status, (rec.status, rec.error)
    assert rec.verdict is None  # a run that did not finish has no verdict, whatever its cells found
    partial = nbformat.read(out, as_version=4)  # the partial executed notebook is kept, whole
    text = "".join(o.get("text", "") for c in partial.cells for o in c.get("outputs", []))
    assert "EXPERIMENT DONE" in text and "never reached" not in text
    assert "token ***" in text and PLANTED_TOKEN not in out.read_text(encoding="utf-8")  # every save is scrubbed
    if sig != signal.SIGKILL:
        sleeping = next(c for c in partial.cells if c.source == "time.sleep(120)")
        assert sleeping.metadata["nbtoolkit"]["ended"] == {"status": "interrupted"}
        assert rec.artifact("output.ipynb") is not None


def test_a_completed_notebook_still_ends_finished_with_its_verdict(project: Path, store: Any) -> None:
    nb = make_notebook(
        project / "short.ipynb",
        "%load_ext nbtoolkit",
        '%%experiment short\n"""\nSuccess: score >= 1\n"""\nscore = 2',
        "print('after the experiment')",
    )
    res = nbtk_cli("run", str(nb), cwd=project)
    assert res.returncode == 0, res.stderr
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert (rec.status, rec.verdict, rec.experiment) == ("finished", "supported", "short")


def test_bundle_files_get_the_users_normal_mode(project: Path, store: Any, default_umask: None) -> None:
    from test_export import make_run

    import nbtoolkit as nbtk

    run_id = make_run()
    nbtk.approve(run_id, by="rita")
    folder = nbtk.export_bundle(run_id, model="m", out_dir="b").path
    archive = nbtk.export_bundle(run_id, model="m", out_dir="b", archive=True, new_version=True).path
    modes = {p.relative_to(folder).as_posix(): _mode(p) for p in folder.rglob("*")}
    assert modes and all(m == (0o755 if (folder / name).is_dir() else 0o644) for name, m in modes.items()), modes
    assert _mode(folder) == 0o755 and _mode(archive) == 0o644
    os.umask(0o077)  # a private umask is honoured as well
    private = nbtk.export_bundle(run_id, model="m", out_dir="b", archive=True, new_version=True).path
    assert _mode(private) == 0o600
