"""Regenerate the re-execution test notebooks: ``python tests/notebooks/make_execute_notebooks.py``.

Each notebook is tiny and checks one behaviour of ``nbtk run`` / ``nbtk sweep`` / ``nbtk test``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def write(name: str, *cells: str, parameters: str | None = None, smoke: dict | None = None,
          kernelspec: bool = True) -> None:
    nb = nbformat.v4.new_notebook()
    if kernelspec:
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if smoke is not None:
        nb.metadata["nbtoolkit"] = {"smoke": smoke}
    if parameters is not None:
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(nbformat.v4.new_code_cell(c) for c in cells)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"
    nbformat.write(nb, HERE / name)


def main() -> None:
    write(
        "params_all_types.ipynb",
        "%load_ext nbtoolkit\nimport json",
        '%%experiment param-types\n"""\nSuccess: score >= 0\n"""\nlr = 0.1\nscore = count + ratio',
        'types = {k: type(globals()[k]).__name__ for k in ["count", "ratio", "flag", "nothing", "name", "items", "mapping", "lr"]}\n'
        'print("TYPES " + json.dumps(types, sort_keys=True))\n'
        'print("VALUES " + json.dumps({"items": items, "mapping": mapping, "name": name, "lr": lr}, sort_keys=True))',
        parameters='count = 1\nratio = 0.5\nflag = False\nnothing = "x"\nname = "a"\nitems = [1]\nmapping = {"k": 1}',
    )
    write("no_parameters_cell.ipynb", "x = 41\nprint('answer', x + 1)")
    write(
        "no_kernelspec.ipynb",
        "%load_ext nbtoolkit",
        '%%experiment no-kernelspec\n"""\nSuccess: passes >= 1\n"""\npasses = epochs * 2',
        parameters="epochs: int = 3  # passes over the data\nlabel = 'base'  # type: str run label",
        kernelspec=False,
    )
    write(
        "fails_in_cell_2.ipynb",
        "print('cell 1 ok')",
        "raise ValueError('boom in cell 2')",
        "print('never printed')",
        parameters="n = 1",
    )
    write("failing_line_magic.ipynb", "%this_magic_does_not_exist", "print('never printed')")
    write("sys_exit_zero.ipynb", "print('before exit')", "import sys\nsys.exit(0)", parameters="n = 1")
    write("sys_exit_one.ipynb", "import sys\nsys.exit(1)", parameters="n = 1")
    write(
        "keyboard_interrupt.ipynb",
        "%load_ext nbtoolkit",
        '%%experiment interrupted-inside\nstep = 1\nraise KeyboardInterrupt',
        parameters="n = 1",
    )
    write(
        "kills_own_kernel.ipynb",
        "print('cell 1 ran')",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "print('never printed')",
        parameters="n = 1",
    )
    write("sleeps_past_timeout.ipynb", "print('started')", "import time\ntime.sleep(60)", parameters="n = 1")
    # the sweep / cache / resume / dask / nbtk test workhorse
    write(
        "small_experiment.ipynb",
        "%load_ext nbtoolkit\nimport time",
        '%%experiment small\n"""\nHypothesis: doubling x gives at least 2.\nSuccess: score >= 2\n"""\n'
        "time.sleep(pause)\n"
        "if fail:\n    raise RuntimeError(f'asked to fail with x={x}')\n"
        "score = x * 2",
        parameters="x = 1\nfail = False\npause = 0.0",
        smoke={"x": 1},
    )
    write(
        "rejected_verdict.ipynb",
        "%load_ext nbtoolkit",
        '%%experiment always-rejected\n"""\nSuccess: score >= 10\n"""\nscore = x',
        parameters="x = 1",
        smoke={"x": 2},
    )


if __name__ == "__main__":
    main()
