"""Opening and closing runs, the stack of active runs, and the ``log_*`` API.

A run is opened by the ``%%experiment`` magic, by :func:`start_run` in scripts, or adopted from a
runner (``nbtk run`` pre-creates the run and passes ``NBTOOLKIT_RUN_ID`` to the kernel, so the
kernel's data and the runner's data are one run). The run itself, its buffered metrics and its
verdict at closing live in :mod:`nbtoolkit.active_run`.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

from nbtoolkit import _json
from nbtoolkit.active_run import ActiveRun, check_name, clean_params, jsonable_param
from nbtoolkit.baselines import resolve_baseline
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.declaration import Declaration, make_declaration
from nbtoolkit.envlock import EnvLock, capture_lock
from nbtoolkit.errors import InputError, NbToolkitWarning, NoActiveRunError
from nbtoolkit.notebook import notebook_hash
from nbtoolkit.store import DataRef, Store, open_store

__all__ = [
    "ActiveRun", "NbToolkitWarning", "check_name", "close_run", "current_run", "jsonable_param",
    "log", "log_metric", "log_params", "open_run", "resolve_baseline", "seed", "set_tags",
    "start_run", "status_for",
]

_stack: list[ActiveRun] = []
_pending_seeds: dict[str, int] = {}


def current_run() -> ActiveRun | None:
    """The innermost active run in this process, or ``None``."""
    return _stack[-1] if _stack else None


def _require(function: str) -> ActiveRun:
    run = current_run()
    if run is None:
        raise NoActiveRunError(function)
    return run


def _injected_from_env() -> tuple[str | None, dict[str, Any]]:
    run_id = os.environ.get("NBTOOLKIT_RUN_ID") or None
    params = _json.loads(os.environ.get("NBTOOLKIT_PARAMS"), {})
    return run_id, params if isinstance(params, dict) else {}


def _runner_pid() -> int | None:
    """The pid of the ``nbtk run`` process that started this kernel (``NBTOOLKIT_RUNNER_PID``)."""
    value = os.environ.get("NBTOOLKIT_RUNNER_PID", "")
    return int(value) if value.isdigit() else None


_adopted: set[str] = set()


def open_run(
    declaration: Declaration,
    *,
    source: str = "script",
    notebook_path: str | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    store: Store | None = None,
) -> ActiveRun:
    """Start recording a run (used by :func:`start_run` and the magic).

    Resolves the baseline first, so an unknown baseline fails before anything runs. Captures the
    environment lock, stores it (deduplicated) with the uncommitted git diff, and either creates
    a run or adopts the one a runner created for this kernel.
    """
    settings = settings or load_settings()
    store = store or open_store(settings)
    baseline_run_id, baseline_reason = resolve_baseline(store, declaration.baseline)
    seeds = dict(_pending_seeds)
    if declaration.seed is not None:
        seeds["seed"] = declaration.seed
        _apply_seed(declaration.seed)
    lock = capture_lock(settings, notebook_path=notebook_path, seeds=seeds)
    store.put_lock(lock.hash, lock.to_dict())
    run_id, recorded = _create_or_adopt(
        store, declaration, source=source, notebook_path=notebook_path, params=params,
        baseline_run_id=baseline_run_id, lock_hash=lock.hash)
    run = ActiveRun(run_id=run_id, experiment=declaration.experiment, store=store,
                    settings=settings, declaration=declaration, baseline_run_id=baseline_run_id,
                    baseline_reason=baseline_reason, lock=lock,
                    runner_pid=_runner_pid() if recorded is None else None)
    try:
        _record_context(run, lock, seeds)
        if recorded is not None:
            run.params.update(recorded)  # stored with the new run
        elif params:
            run.log_params(params)  # an adopted run: log them now
    except BaseException:
        # never leave a run 'running' when opening it failed half-way
        store.finish_run(run_id, status="failed", error=traceback.format_exc(), only_if_running=True)
        raise
    _pending_seeds.clear()
    _stack.append(run)
    run._start_flusher()
    return run


def _create_or_adopt(
    store: Store,
    declaration: Declaration,
    *,
    source: str,
    notebook_path: str | None,
    params: Mapping[str, Any] | None,
    baseline_run_id: str | None,
    lock_hash: str,
) -> tuple[str, dict[str, Any] | None]:
    """Create the run row, or adopt the one a runner created for this kernel.

    Returns:
        ``(run_id, the params recorded with a new run)``; ``None`` for an adopted run, whose
        params are still to log.
    """
    nb_hash = None
    if notebook_path:
        with contextlib.suppress(OSError, ValueError):
            nb_hash = notebook_hash(notebook_path)
    runner_run_id, _ = _injected_from_env()
    decl = declaration.to_dict()
    if runner_run_id and runner_run_id not in _adopted and store.run_exists(runner_run_id):
        _adopted.add(runner_run_id)
        columns: dict[str, Any] = {"declaration": decl, "baseline_ref": declaration.baseline,
                                   "baseline_run_id": baseline_run_id, "lock_hash": lock_hash}
        if nb_hash:  # keep the runner's hash when the kernel cannot read the notebook
            columns["notebook_hash"] = nb_hash
        store.adopt_run(runner_run_id, experiment=declaration.experiment, **columns)
        return runner_run_id, None
    recorded = clean_params(params or {})
    run_id = store.create_run(
        experiment=declaration.experiment,
        declaration=decl,
        source=source,
        baseline_ref=declaration.baseline,
        baseline_run_id=baseline_run_id,
        notebook_path=str(notebook_path) if notebook_path else None,
        notebook_hash=nb_hash,
        lock_hash=lock_hash,
        params=recorded,
    )
    return run_id, recorded


def _record_context(run: ActiveRun, lock: EnvLock, seeds: Mapping[str, int]) -> None:
    """Store what surrounds a new run: the git diff, DVC data, declared tags and seeds."""
    store, run_id = run.store, run.run_id
    if lock.git_diff:
        store.put_text_artifact(run_id, name="git.diff", kind="diff", text=lock.git_diff, media_type="text/x-diff")
    dvc_refs = [
        DataRef(str(d["path"]), str(d.get("source", "dvc")), str(d["md5"]), "md5", d.get("size"))
        for d in (lock.data.get("data") or [])
        if d.get("md5")
    ]
    store.add_datasets(run_id, dvc_refs)
    if run.declaration.tags:
        run.set_tags(run.declaration.tags)
    if seeds:
        store.merge_extra(run_id, {"seeds": seeds})


def close_run(run: ActiveRun, status: str, *, error: str | None = None) -> None:
    """Close ``run`` with ``status`` and pop it from the active stack."""
    try:
        run.close(status, error=error)
    finally:
        if run in _stack:
            _stack.remove(run)


def status_for(exc: BaseException | None) -> str:
    """Map how a block ended to a run status."""
    if exc is None:
        return "finished"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return "finished"
    return "failed"


@contextlib.contextmanager
def start_run(
    experiment: str,
    *,
    hypothesis: str = "",
    success: str | list[str] | tuple[str, ...] = (),
    scope: str = "",
    owner: str = "",
    until: str | None = None,
    baseline: str | None = None,
    tags: Mapping[str, str] | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    description: str = "",
) -> Iterator[ActiveRun]:
    """Record a run around a block of code, outside IPython or inside it.

    Example::

        with nbtk.start_run("churn-gbm", success="roc_auc >= 0.9", baseline="churn-logreg") as run:
            nbtk.log(roc_auc=0.93)
        print(run.verdict)

    Raises:
        CriteriaError: a success criterion does not parse (before the block runs).
        RunNotFoundError: the baseline names nothing known (before the block runs).
    """
    declaration = make_declaration(
        experiment,
        hypothesis=hypothesis,
        success=[success] if isinstance(success, str) else list(success),
        scope=scope,
        owner=owner,
        until=until,
        baseline=baseline,
        tags=dict(tags or {}),
        seed=seed,
        description=description,
    )
    run = open_run(declaration, source="script", params=params)
    try:
        yield run
    except BaseException as exc:
        status = status_for(exc)
        close_run(run, status, error=None if status == "finished" else traceback.format_exc())
        raise
    else:
        close_run(run, "finished")


# ---------------------------------------------------------------------------- public log API
def log(**metrics: Any) -> None:
    """Log metric values by keyword: ``nbtk.log(roc_auc=0.91, fit_seconds=3.2)``."""
    run = _require("log")
    for name, value in metrics.items():
        run.log_metric(name, value)


def log_metric(name: str, value: Any, step: int | None = None) -> None:
    """Log one metric value, optionally as step ``step`` of a series (buffered, fast)."""
    _require("log_metric").log_metric(name, value, step)


def log_params(params: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Record parameters: ``nbtk.log_params({"lr": 0.1})`` or ``nbtk.log_params(lr=0.1)``."""
    values = dict(params or {})
    values.update(kwargs)
    _require("log_params").log_params(values)


def set_tags(tags: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Attach string tags to the active run."""
    values = dict(tags or {})
    values.update(kwargs)
    _require("set_tags").set_tags(values)


def _apply_seed(n: int) -> dict[str, int]:
    random.seed(n)
    applied = {"python": n}
    try:
        import numpy as np

        np.random.seed(n % (2**32))
        applied["numpy"] = n
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(n)
        applied["torch"] = n
    return applied


def seed(n: int) -> int:
    """Seed Python's ``random``, NumPy (and torch when imported) and record the seed with the run."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"seed needs a non-negative integer, got {n!r}.")
    _apply_seed(n)
    run = current_run()
    if run is None:
        _pending_seeds["seed"] = n
    else:
        run.store.merge_extra(run.run_id, {"seeds": {"seed": n}})
        run.log_params({"seed": n})
    return n
