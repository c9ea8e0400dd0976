"""``nbtk run`` / ``run_notebook``: one run per execution and the failure semantics, with real kernels."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from conftest import TEST_NOTEBOOKS, nbtk_cli

from nbtoolkit.execute.papermill_run import run_notebook

pytestmark = pytest.mark.slow


def _nb(project: Path, name: str) -> Path:
    return Path(shutil.copy(TEST_NOTEBOOKS / name, project / name))


def _output(store: Any, run_id: str) -> Any:
    rec = store.get_run(run_id)
    art = rec.artifact("output.ipynb")
    assert art is not None and art.kind == "notebook"
    return nbformat.reads(store.artifacts.read_bytes(art.digest).decode("utf-8"), as_version=4)


def test_run_records_one_run_with_typed_parameters(project: Path, store: Any) -> None:
    nb = _nb(project, "params_all_types.ipynb")
    res = nbtk_cli(
        "run", str(nb), "-p", "count", "7", "-p", "ratio", "2.5", "-p", "flag", "True", "-p", "nothing", "None",
        "-p", "name", "b", "-y", "items: [1, 2]", "-y", "mapping: {a: 2}", "-p", "lr", "0.5",
        "--flag", "FAST_PATH=on", "-o", str(project / "out.ipynb"), cwd=project,
    )
    assert res.returncode == 0, res.stderr
    runs, _, _ = store.query_runs()
    assert len(runs) == 1, "the kernel's %%experiment and the runner must share one run"
    rec = store.get_run(runs[0]["run_id"])
    assert (rec.kind, rec.source, rec.status, rec.verdict) == ("papermill", "papermill", "finished", "supported")
    assert rec.experiment == "param-types"  # adopted by the kernel
    assert rec.params["count"] == 7 and rec.params["ratio"] == 2.5 and rec.params["flag"] is True
    assert rec.params["nothing"] is None and rec.params["items"] == [1, 2] and rec.params["mapping"] == {"a": 2}
    assert rec.params["lr"] == 0.5  # the magic's top-of-cell literal was overridden
    assert rec.metrics["score"] == 9.5
    assert rec.extra["flags"] == {"FAST_PATH": "on"}
    assert rec.extra["runner"]["exit"] == "finished" and rec.extra["runner"]["duration_s"] > 0
    assert rec.lock_hash and rec.cache_key and rec.notebook_hash
    from conftest import outputs_text

    text = outputs_text(nbformat.read(project / "out.ipynb", as_version=4))
    types = next(line for line in text.splitlines() if line.startswith("TYPES"))
    assert json.loads(types[6:]) == {
        "count": "int", "ratio": "float", "flag": "bool", "nothing": "NoneType", "name": "str",
        "items": "list", "mapping": "dict", "lr": "float",
    }
    assert _output(store, rec.run_id).cells  # stored as an artifact too


def test_unknown_parameter_is_an_input_error(project: Path, store: Any) -> None:
    nb = _nb(project, "params_all_types.ipynb")
    res = nbtk_cli("run", str(nb), "-p", "cuont", "3", cwd=project)
    assert res.returncode == 2
    assert "cuont" in res.stderr and "Known: count, ratio, flag" in res.stderr
    assert store.query_runs()[0] == []


def test_no_parameters_cell_warns_and_still_runs(project: Path, store: Any) -> None:
    nb = _nb(project, "no_parameters_cell.ipynb")
    res = nbtk_cli("run", str(nb), "-p", "x", "1", "--allow-unknown", cwd=project)
    assert res.returncode == 0, res.stderr
    assert "Warning: no_parameters_cell.ipynb has no cell tagged 'parameters'" in res.stderr
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "finished" and rec.verdict is None and rec.experiment == "no_parameters_cell"
    assert rec.params == {"x": 1}  # logged although the notebook has no %%experiment cell


def test_failing_cell_fails_the_run_and_marks_the_cell(project: Path, store: Any) -> None:
    nb = _nb(project, "fails_in_cell_2.ipynb")
    res = nbtk_cli("run", str(nb), cwd=project)
    assert res.returncode == 1
    assert "failed in cell 2" in res.stderr and "ValueError: boom in cell 2" in res.stderr
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "failed" and "boom in cell 2" in rec.error
    out = _output(store, rec.run_id)
    marked = [i for i, c in enumerate(out.cells) if "papermill-error-cell-tag" in c.metadata.get("tags", [])]
    assert len(marked) == 2
    assert "boom in cell 2" in out.cells[marked[1] + 1].source
    assert not any("never printed" in json.dumps(c.get("outputs", [])) for c in out.cells)


def test_failing_magic_without_error_output_fails(project: Path, store: Any) -> None:
    out = run_notebook(_nb(project, "failing_line_magic.ipynb"), store=store)
    assert out.status == "failed" and out.cell_index == 0
    assert "this_magic_does_not_exist" in out.evalue
    assert store.get_run(out.run_id).status == "failed"


def test_sys_exit_zero_is_not_a_failure(project: Path, store: Any) -> None:
    out = run_notebook(_nb(project, "sys_exit_zero.ipynb"), store=store)
    assert out.status == "finished" and out.ok
    cells = _output(store, out.run_id).cells
    assert "before exit" in json.dumps(cells[1].outputs)
    assert cells[2].outputs[0]["ename"] == "SystemExit"
    assert store.get_run(out.run_id).status == "finished"


def test_sys_exit_one_is_a_failure(project: Path, store: Any) -> None:
    out = run_notebook(_nb(project, "sys_exit_one.ipynb"), store=store)
    assert out.status == "failed" and out.ename == "SystemExit" and out.evalue == "1"
    assert store.get_run(out.run_id).status == "failed"


def test_keyboard_interrupt_inside_notebook_is_interrupted(project: Path, store: Any) -> None:
    res = nbtk_cli("run", str(_nb(project, "keyboard_interrupt.ipynb")), cwd=project)
    assert res.returncode == 1
    runs = store.query_runs()[0]
    assert len(runs) == 1
    rec = store.get_run(runs[0]["run_id"])
    assert rec.status == "interrupted" and rec.experiment == "interrupted-inside"
    assert "KeyboardInterrupt" in rec.error


def test_kernel_death_is_crashed_and_keeps_the_notebook(project: Path, store: Any) -> None:
    out = run_notebook(_nb(project, "kills_own_kernel.ipynb"), store=store)
    assert out.status == "crashed" and out.cell_index == 2
    rec = store.get_run(out.run_id)
    assert rec.status == "crashed" and "kernel died" in rec.error
    nb = _output(store, out.run_id)
    assert "cell 1 ran" in json.dumps([c.get("outputs", []) for c in nb.cells])
    dead = [c for c in nb.cells if c.metadata.get("nbtoolkit", {}).get("error")]
    assert len(dead) == 1 and "os.kill" in dead[0].source


def test_timeout_is_timed_out_and_keeps_the_notebook(project: Path, store: Any) -> None:
    res = nbtk_cli("run", str(_nb(project, "sleeps_past_timeout.ipynb")), "--timeout", "2", cwd=project)
    assert res.returncode == 1
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "timed_out" and "--timeout 2" in rec.error
    nb = _output(store, rec.run_id)
    assert "started" in json.dumps([c.get("outputs", []) for c in nb.cells])
    assert any(c.metadata.get("nbtoolkit", {}).get("error") == "This cell timed out" for c in nb.cells)


def test_ctrl_c_on_nbtk_run_records_interrupted(project: Path, store: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    nb = _nb(project, "sleeps_past_timeout.ipynb")
    proc = subprocess.Popen([sys.executable, "-m", "nbtoolkit", "run", str(nb)], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 60
    while time.time() < deadline and not store.query_runs()[0]:
        time.sleep(0.2)
    time.sleep(4)  # the kernel is in its sleep
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "interrupted" and rec.artifact("output.ipynb") is not None


def test_adopted_run_leaves_no_provisional_experiment(project: Path, store: Any) -> None:
    """The runner files the run under the notebook's name until the kernel declares its own."""
    outcome = run_notebook(_nb(project, "small_experiment.ipynb"), cwd=project, store=store)
    assert outcome.ok, outcome.describe_failure()
    record = store.get_run(outcome.run_id)
    assert record.experiment != "small_experiment"
    assert store.experiment_names() == [record.experiment]


def test_notebook_without_kernelspec_runs_on_python3(project: Path, store: Any) -> None:
    nb = _nb(project, "no_kernelspec.ipynb")
    assert "kernelspec" not in json.loads(nb.read_text())["metadata"]
    res = nbtk_cli("run", str(nb), "-p", "epochs", "5", cwd=project)
    assert res.returncode == 0, res.stderr
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert (rec.status, rec.verdict, rec.experiment) == ("finished", "supported", "no-kernelspec")
    assert rec.params["epochs"] == 5 and rec.metrics["passes"] == 10


def test_a_notebook_saved_with_outputs_is_handed_to_kernels_and_workers_without_them(project: Path, store: Any, tmp_path: Path) -> None:
    from conftest import make_notebook

    from nbtoolkit.execute.jobs import RunJob
    from nbtoolkit.execute.papermill_run import _workspace
    from nbtoolkit.notebook import notebook_content_hash, without_outputs

    planted = "OLD-OUTPUT-" + "x" * (4 << 20)  # 4 MiB of a plot-heavy save, carried by no task
    path = make_notebook(project / "saved.ipynb", "x = 2", "print('fresh', x * 21)")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        cell.execution_count = 7
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=planted)]
    nbformat.write(nb, path)
    data = path.read_bytes()

    slim = without_outputs(data)
    assert len(slim) < 2_000 < len(data)
    assert notebook_content_hash(slim) == notebook_content_hash(data)  # the run cache sees the same code
    slim_nb = nbformat.reads(slim.decode(), as_version=4)
    assert slim_nb.metadata == nb.metadata and [c.source for c in slim_nb.cells] == [c.source for c in nb.cells]
    assert all(c.outputs == [] and c.execution_count is None for c in slim_nb.cells)

    # a worker that has the same notebook (outputs and all) executes it in place ...
    job = RunJob(run_id="0" * 32, notebook=str(path), parameters={}, store_path=str(project / ".nbtoolkit"),
                 cwd=str(project), source=slim)
    (tmp_path / "w1").mkdir()
    here = _workspace(job, str(tmp_path / "w1"))
    assert (here.notebook, here.shipped) == (str(path), False)
    # ... one whose file holds other code gets the shipped copy
    make_notebook(project / "saved.ipynb", "x = 3")
    (tmp_path / "w2").mkdir()
    elsewhere = _workspace(job, str(tmp_path / "w2"))
    assert elsewhere.shipped and Path(elsewhere.notebook).read_bytes() == slim
    nbformat.write(nb, path)

    # end to end: the run executes the code, its stored notebook holds none of the old outputs
    res = nbtk_cli("run", str(path), cwd=project)
    assert res.returncode == 0, res.stderr
    rec = store.get_run(store.query_runs()[0][0]["run_id"])
    assert rec.status == "finished" and rec.extra["runner"]["notebook_shipped"] is False
    executed = store.artifacts.read_bytes(rec.artifacts_of("notebook")[-1].digest).decode()
    assert "fresh 42" in executed and "OLD-OUTPUT-" not in executed
