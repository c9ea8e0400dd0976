"""``%%experiment``: a thin IPython adapter over :mod:`nbtoolkit.tracking`.

Parses the declaration, opens a run, executes the cell body in the user namespace, records
parameters and metrics, closes the run and displays its verdict card. User mistakes in the
declaration raise :class:`IPython.core.error.UsageError` before the body runs.
"""

from __future__ import annotations

import ast
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from nbtoolkit import _json
from nbtoolkit.declaration import (
    LiteralAssignment,
    build_declaration,
    literal_assignment_nodes,
    literal_assignments,
)
from nbtoolkit.display import RunSummary
from nbtoolkit.errors import InputError
from nbtoolkit.notebook import (
    PAPERMILL_INJECTED_HEADER,
    parameter_names,
    parameters_cell,
)
from nbtoolkit.tracking import close_run, open_run, status_for
from nbtoolkit.widgets.progress import attach_progress


def detect_notebook_path(user_ns: dict[str, Any]) -> str | None:
    """Best guess of the notebook file this kernel runs (runner, JupyterLab or VS Code)."""
    for candidate in (
        os.environ.get("NBTOOLKIT_NOTEBOOK"),
        user_ns.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
        user_ns.get("__vsc_ipynb_file__"),
    ):
        if candidate and str(candidate).endswith(".ipynb") and Path(candidate).is_file():
            return str(candidate)
    matches = _notebooks_matching_history(user_ns)
    return matches[0] if len(matches) == 1 else None


def _notebooks_matching_history(user_ns: dict[str, Any], *, limit: int = 50) -> list[str]:
    """Notebooks in the working folder whose ``parameters`` cell this kernel has executed.

    nbclient / ``jupyter nbconvert --execute`` tell the kernel nothing about the notebook file;
    the executed parameters cell (in ``In``) identifies it among the folder's notebooks.
    """
    history = {s.strip() for s in user_ns.get("In", []) or [] if isinstance(s, str) and s.strip()}
    if not history:
        return []
    found = []
    for path in sorted(Path.cwd().glob("*.ipynb"))[:limit]:
        try:
            source = parameters_cell(path)
        except (OSError, ValueError):
            continue
        if source and source.strip() in history:
            found.append(str(path))
    return found


def injected_parameters(user_ns: dict[str, Any]) -> dict[str, Any]:
    """Parameter values a runner injected: ``NBTOOLKIT_PARAMS`` or papermill's ``# Parameters`` cell."""
    values: dict[str, Any] = {}
    for source in user_ns.get("In", []) or []:
        if isinstance(source, str) and source.lstrip().startswith(PAPERMILL_INJECTED_HEADER):
            values.update(literal_assignments(source))
    env = _json.loads(os.environ.get("NBTOOLKIT_PARAMS"), {})
    if isinstance(env, dict):
        values.update(env)
    return values


def notebook_parameters(user_ns: dict[str, Any], notebook_path: str | None, injected: dict[str, Any]) -> dict[str, Any]:
    """Names of the ``parameters`` cell with their current values, plus injected ones."""
    names: list[str] = []
    for path in [notebook_path] if notebook_path else _notebooks_matching_history(user_ns):
        try:
            names += [n for n in parameter_names(path) or [] if n not in names]
        except (OSError, ValueError):
            continue
    out = {n: user_ns[n] for n in names if n in user_ns}
    for name, value in injected.items():
        out[name] = user_ns.get(name, value)
    return out


def _assigned_name(node: ast.stmt) -> str | None:
    """The one plain name a statement assigns (``a = ...`` or ``a: T = ...``), else ``None``."""
    target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
        node.target if isinstance(node, ast.AnnAssign) else None)
    return target.id if isinstance(target, ast.Name) else None


def _apply_cell_literals(tree: ast.Module | None, literals: list[LiteralAssignment],
                         injected: dict[str, Any], params: dict[str, Any],
                         user_ns: dict[str, Any]) -> None:
    """Record the cell's top literals as params; the runner's injected values win over them.

    An injected name's assignment is replaced by ``pass`` in ``tree`` so the cell's default
    does not overwrite the runner's value.
    """
    dropped = {(a.lineno, a.name) for a in literals if a.name in injected}
    for a in literals:
        if a.name in injected:
            params[a.name] = user_ns[a.name] = injected[a.name]
        else:
            params[a.name] = a.value
    if tree is None or not dropped:
        return
    for index, node in enumerate(tree.body):
        if (node.lineno, _assigned_name(node)) in dropped:
            tree.body[index] = ast.Pass(lineno=node.lineno, col_offset=node.col_offset)


def run_experiment_cell(shell: Any, line: str, cell: str) -> Any:
    """Execute an ``%%experiment`` cell in ``shell`` and record it as a run.

    Returns:
        The :class:`~nbtoolkit.display.RunSummary` that was displayed.
    """
    try:
        declaration, body = build_declaration(line, cell)
    except InputError as exc:
        raise UsageError(str(exc)) from None

    user_ns = shell.user_ns
    literals = literal_assignment_nodes(body)
    # IPython syntax in the body (%time, !cmd) becomes plain Python, line numbers unchanged
    body = shell.transform_cell(body) if hasattr(shell, "transform_cell") else body
    try:
        tree = ast.parse(body)
    except SyntaxError:
        tree = None  # let Python report the syntax error with the cell's own line numbers

    injected = injected_parameters(user_ns)
    notebook_path = detect_notebook_path(user_ns)
    params = notebook_parameters(user_ns, notebook_path, injected)
    _apply_cell_literals(tree, literals, injected, params, user_ns)

    source = "papermill" if os.environ.get("NBTOOLKIT_RUN_ID") else "kernel"
    try:
        run = open_run(declaration, source=source, notebook_path=notebook_path, params=params)
    except InputError as exc:
        raise UsageError(str(exc)) from None

    progress = attach_progress(run)  # live step-metric display, created on the first step
    filename = shell.compile.cache(cell) if hasattr(shell, "compile") else "<experiment>"
    exc_info: BaseException | None = None
    try:
        if tree is None:
            compile(body, filename, "exec")  # raises the SyntaxError
        else:
            _execute(shell, tree, filename)
    except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised unchanged
        exc_info = exc

    status = status_for(exc_info)
    _capture_success_variables(run, user_ns)
    error = None
    if exc_info is not None and status != "finished":
        error = "".join(traceback.format_exception(exc_info))
    close_run(run, status, error=error)
    if progress is not None:
        progress.finish()
    summary = RunSummary(run.record())
    display(summary)
    if exc_info is not None and not (isinstance(exc_info, SystemExit) and status == "finished"):
        raise exc_info
    return summary


def _execute(shell: Any, tree: ast.Module, filename: str) -> None:
    """Run the body like a cell: statements, then display the value of a trailing expression."""
    body = list(tree.body)
    tail = body[-1] if body else None
    last = tail if isinstance(tail, ast.Expr) else None
    if last is not None:
        body.pop()
    if body:
        exec(compile(ast.Module(body=body, type_ignores=[]), filename, "exec"), shell.user_ns)
    if last is not None:
        value = eval(compile(ast.Expression(body=last.value), filename, "eval"), shell.user_ns)
        if value is not None:
            shell.displayhook(value)


def _capture_success_variables(run: Any, user_ns: dict[str, Any]) -> None:
    """Every metric named in Success that exists as a number in the namespace becomes a metric."""
    for criterion in run.declaration.criteria:
        name = criterion.metric
        if name in run.metrics or name not in user_ns:
            continue
        value = user_ns[name]
        if isinstance(value, bool):
            continue
        try:
            run.log_metric(name, value)
        except InputError:
            print(f"nbtoolkit: {name!r} is named in Success but is not a number; not recorded.", file=sys.stderr)


@magics_class
class ExperimentMagics(Magics):
    """Provides ``%%experiment``."""

    @cell_magic
    def experiment(self, line: str, cell: str) -> None:
        """Record this cell as an experiment run.

        Usage::

            %%experiment NAME [--baseline REF] [--hypothesis TEXT] [--success CRIT]...
                              [--scope TEXT] [--owner NAME] [--until YYYY-MM-DD]
                              [--tag K=V]... [--seed N]

        The cell's leading docstring may declare Hypothesis, Success, Scope, Owner and Until.
        """
        run_experiment_cell(self.shell, line, cell)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtoolkit``."""
    ipython.register_magics(ExperimentMagics)
