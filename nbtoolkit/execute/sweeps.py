"""Parameter sweeps: expand a space, record a sweep, run children in parallel, resume.

The submitting process owns the records: it writes the ``sweeps`` row, pre-creates each child
run just before dispatching it (so a child that never started has no row), and writes every
terminal state from the results that travel back from the workers. Ctrl-C stops the workers,
marks the children that were running ``interrupted`` and the sweep ``interrupted``;
``resume=SWEEP_ID`` re-runs exactly the points without a finished child.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.errors import InputError, RunNotFoundError
from nbtoolkit.execute.cache import cache_key, copy_cached_run, find_cached_run
from nbtoolkit.execute.executors import EXECUTORS
from nbtoolkit.execute.jobs import JobResult, RunJob, RunOutcome
from nbtoolkit.execute.papermill_run import finalize_run, prepare_run
from nbtoolkit.execute.params import check_parameters
from nbtoolkit.execute.shipping import (
    check_store_reachable,
    read_shipped,
    shipped_digests,
    shipped_names,
)
from nbtoolkit.execute.space import Choice, Distribution, expand_points, parse_grid

if TYPE_CHECKING:
    from nbtoolkit.config import Settings
    from nbtoolkit.store import Store
    from nbtoolkit.store.sweeps import Sweep

__all__ = ["SweepOutcome", "SweepProgress", "sweep"]

SPEC_SCHEMA = "nbtoolkit.sweep.v1"


@dataclass(frozen=True)
class SweepProgress:
    """A progress snapshot handed to the ``progress`` callback after every change."""

    total: int
    done: int
    failed: int
    cached: int
    running: int
    last: RunOutcome | None = None


@dataclass
class SweepOutcome:
    """The result of :func:`sweep`.

    Attributes:
        sweep_id: the sweep record (``None`` for a dry run).
        status: finished, failed (a child did not finish), interrupted, or planned (dry run).
        points: every point's parameters, in order.
        runs: ``{point index: RunOutcome}`` of the children run or cached *in this call*.
        skipped: indices already finished before a ``--resume``.
    """

    sweep_id: str | None
    notebook: str
    status: str
    points: list[dict[str, Any]]
    runs: dict[int, RunOutcome] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in ("finished", "planned")

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.runs.values() if not o.ok]

    @property
    def cached(self) -> list[RunOutcome]:
        return [o for o in self.runs.values() if o.cached_from]

    def __repr__(self) -> str:
        sid = self.sweep_id[:8] if self.sweep_id else "dry-run"
        return (
            f"<SweepOutcome {sid} {Path(self.notebook).name} status={self.status!r} points={len(self.points)} "
            f"ran={len(self.runs)} failed={len(self.failed)} cached={len(self.cached)}>"
        )

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(
            f"<tr><td>{i}</td><td><code>{escape(o.run_id[:8])}</code></td><td>{escape(o.status)}</td>"
            f"<td>{escape(o.verdict or '')}</td><td>{escape(_json.dumps(o.parameters))}</td>"
            f"<td>{'yes' if o.cached_from else ''}</td></tr>"
            for i, o in sorted(self.runs.items())
        )
        return (
            f"<div><b>Sweep {escape(self.sweep_id or 'dry run')}</b> of {escape(Path(self.notebook).name)}: "
            f"{escape(self.status)}<table><tr><th>#</th><th>run</th><th>status</th><th>verdict</th>"
            f"<th>parameters</th><th>cached</th></tr>{rows}</table></div>"
        )


def _find_sweep(store: Store, sweep_id: str) -> Sweep:
    if len(sweep_id) < 4:
        raise InputError(f"Sweep id {sweep_id!r} is too short; give at least 4 characters.")
    rows = store.find_sweeps(sweep_id, limit=2)
    if len(rows) != 1:
        raise RunNotFoundError(sweep_id, "No single sweep matches; the id is printed when a sweep starts.")
    return rows[0]


@dataclass
class _Plan:
    """What a sweep call will run: the sweep record's spec and the points still to do."""

    sweep_id: str
    nb_path: Path
    spec: dict[str, Any]
    points: list[dict[str, Any]]
    todo: list[int]
    skipped: list[int]
    resume: bool
    options: dict[str, Any]  # executor, address, jobs, timeout, kernel, flags, cwd, ship
    warnings: tuple[str, ...] = ()

    @property
    def kernel_folder(self) -> Path:
        return _kernel_folder(self.options, self.nb_path)


def _kernel_folder(options: Mapping[str, Any], nb_path: Path) -> Path:
    """The kernels' working folder on this machine (``--ship`` paths are relative to it)."""
    return Path(options["cwd"]).resolve() if options.get("cwd") else nb_path.parent


def _resume_notebook(found: Sweep, settings: Settings, given: str | Path | None) -> Path:
    """The notebook a resumed sweep runs on this machine.

    The path given now wins; else the same file in this project (the sweep may have started in
    another checkout, on another machine, of a shared store); else the recorded path.
    """
    if given is not None:
        path = Path(given).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"Notebook {given} does not exist; pass the path of an .ipynb file.")
        return path
    candidates = [Path(found.notebook)]
    relative = found.spec.get("notebook_in_project")
    if relative:
        candidates.insert(0, settings.root / relative)
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise InputError(
        f"Sweep {found.sweep_id[:8]}'s notebook {found.notebook} is not on this machine"
        + (f" (nor at {candidates[0]})" if relative else "")
        + f"; pass its path here: nbtk sweep NOTEBOOK --resume {found.sweep_id[:8]}"
    )


def _plan_resume(store: Store, settings: Settings, resume: str, path: str | Path | None,
                 options: dict[str, Any]) -> _Plan:
    """The plan of ``--resume``: the recorded spec; options given now win over recorded ones."""
    found = _find_sweep(store, resume)
    spec = found.spec
    nb_path = _resume_notebook(found, settings, path)
    points = list(spec.get("points", []))
    finished = store.finished_sweep_indices(found.sweep_id)
    merged = dict(options)
    for name in ("timeout", "kernel", "flags", "address", "jobs", "cwd"):
        if merged.get(name) is None or merged.get(name) == {}:
            merged[name] = spec.get(name)
    if options["executor"] == "local":
        merged["executor"] = spec.get("executor", "local")
    merged["flags"] = merged.get("flags") or {}
    plan = _Plan(found.sweep_id, nb_path, spec, points, [i for i in range(len(points)) if i not in finished],
                 sorted(finished), True, merged)
    given = options.get("ship") or ()
    merged["ship"] = shipped_names(given, plan.kernel_folder) if given else list(spec.get("ship") or [])
    return plan


def _plan_new(path: str | Path | None, grid: Iterable[str] | Mapping[str, Any], *, random: int | None, seed: int | None,
              base: Mapping[str, Any] | None, allow_unknown: bool, force: bool, options: dict[str, Any],
              root: Path) -> _Plan:
    """The plan of a new sweep: expand and check the points, build the spec to record."""
    from nbtoolkit.store import new_id

    if path is None:
        raise InputError("sweep needs a notebook path (or resume=SWEEP_ID).")
    nb_path = Path(path).expanduser().resolve()
    if not nb_path.is_file():
        raise InputError(f"Notebook {path} does not exist; pass the path of an .ipynb file.")
    axes: dict[str, Any] = dict(grid) if isinstance(grid, Mapping) else dict(parse_grid(grid))
    axes = {k: v if isinstance(v, (Choice, Distribution)) else Choice(tuple(v)) for k, v in axes.items()}
    points = expand_points(axes, base=base, random_n=random, seed=seed)
    warnings = check_parameters(nb_path, {k: None for p in points for k in p}, allow_unknown=allow_unknown)
    options = {**options, "flags": dict(options.get("flags") or {})}
    options["ship"] = shipped_names(options.get("ship") or (), _kernel_folder(options, nb_path))
    spec = {
        "schema": SPEC_SCHEMA,
        "grid": {k: a.to_dict() for k, a in axes.items()},
        "random": random,
        "seed": seed,
        "base": _json.to_jsonable(dict(base or {})),
        "points": _json.to_jsonable(points),
        **{k: options[k] for k in ("jobs", "executor", "address", "timeout", "kernel", "flags")},
        "cwd": str(options["cwd"]) if options.get("cwd") else None,
        "ship": options["ship"],
        "force": force,
        # lets --resume find the notebook in another checkout of the project
        "notebook_in_project": nb_path.relative_to(root).as_posix() if nb_path.is_relative_to(root) else None,
    }
    return _Plan(new_id(), nb_path, spec, points, list(range(len(points))), [], False, options, tuple(warnings))


def sweep(
    path: str | Path | None = None,
    *,
    grid: Iterable[str] | Mapping[str, Any] = (),
    random: int | None = None,
    seed: int | None = None,
    base: Mapping[str, Any] | None = None,
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    timeout: float | None = None,
    kernel: str | None = None,
    flags: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    ship: Iterable[str | Path] = (),
    force: bool = False,
    dry_run: bool = False,
    resume: str | None = None,
    allow_unknown: bool = False,
    progress: Callable[[SweepProgress], None] | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
) -> SweepOutcome:
    """Run a notebook over a parameter space in parallel, each child in a fresh kernel.

    Args:
        path: the notebook. When resuming it is optional: default the same file in this project
            (the sweep may have started in another checkout), else the recorded path.
        grid: ``["lr=0.1,0.01", "depth=uniform(1,5)"]`` strings, or ``{name: [values]}``.
        random: sample this many points instead of the full grid product.
        seed: seed of the sampling.
        base: parameters every point starts from (``-f base.yaml``).
        jobs: children run at once (default: CPUs for ``local``, cluster threads for ``dask``).
        executor: ``local`` or ``dask`` (or a plugin's name).
        address: the Dask scheduler, ``tcp://HOST:PORT``.
        timeout: per-cell timeout of every child.
        kernel: kernel name for every child.
        flags: feature flags for every child.
        cwd: the kernels' working directory (default: the notebook's folder).
        ship: files or folders inside ``cwd`` sent with every task (helper modules, small
            configuration), for Dask workers without the project; part of the run-cache key.
        force: execute even when the run cache has a finished run with the same inputs.
        dry_run: only expand and validate the points; nothing is recorded or run.
        resume: a sweep id; re-run only its points without a finished child.
        allow_unknown: allow parameter names the notebook does not define.
        progress: called with a :class:`SweepProgress` after every change.
        store: the project store.
        settings: project settings.

    Returns:
        A :class:`SweepOutcome` (status ``interrupted`` after Ctrl-C; the records are consistent).

    Raises:
        ParameterError: a bad grid, unknown names or distributions without ``random``.
        InputError: missing notebook, unknown executor or sweep id.
    """
    from nbtoolkit.config import load_settings
    from nbtoolkit.store import open_store

    settings = settings or load_settings()
    store = store or open_store(settings)
    options: dict[str, Any] = {"jobs": jobs, "executor": executor, "address": address, "timeout": timeout,
                               "kernel": kernel, "flags": dict(flags or {}), "cwd": cwd, "ship": list(ship)}
    if resume:
        plan = _plan_resume(store, settings, resume, path, options)
    else:
        plan = _plan_new(path, grid, random=random, seed=seed, base=base, allow_unknown=allow_unknown, force=force,
                         options=options, root=settings.root.resolve())
    if dry_run:
        return SweepOutcome(None, str(plan.nb_path), "planned", plan.points, skipped=plan.skipped, warnings=plan.warnings)
    session = EXECUTORS.get(plan.options["executor"]).open(jobs=plan.options["jobs"], address=plan.options["address"])
    try:
        plan.warnings += check_store_reachable(store, session.foreign_hosts)
        return _run_sweep(store, settings, session, plan, force=force, progress=progress)
    finally:
        session.close()


class _Tally:
    """The counts behind :class:`SweepProgress`, reported after every change."""

    def __init__(self, total: int, progress: Callable[[SweepProgress], None] | None) -> None:
        self.total, self.progress = total, progress
        self.done = self.failed = self.cached = 0

    def report(self, last: RunOutcome | None, running: int) -> None:
        if self.progress is not None:
            self.progress(SweepProgress(self.total, self.done, self.failed, self.cached, running, last))


def _serve_cached(store: Store, settings: Settings, plan: _Plan, outcome: SweepOutcome, tally: _Tally, *,
                  lock: Any, nb_hash: str, source: bytes, files: dict[str, bytes],
                  force: bool) -> list[tuple[int, str, RunJob]]:
    """Record a cached child for every point the run cache holds; return the jobs left to run."""
    opts = plan.options
    queue: list[tuple[int, str, RunJob]] = []
    for index in plan.todo:
        point = plan.points[index]
        key = cache_key(nb_hash, point, lock, opts["flags"], shipped_digests(files))
        hit = None if force else find_cached_run(store, key, root=settings.root)
        if hit is None:
            template = RunJob(
                run_id="", notebook=str(plan.nb_path), parameters=dict(point), store_path=store.location,
                cwd=str(plan.kernel_folder), kernel=opts["kernel"],
                timeout=opts["timeout"], flags=opts["flags"], max_output_bytes=settings.max_output_bytes,
                artifacts=store.artifacts_location, source=source, files=files,
            )
            queue.append((index, key, template))
            continue
        run_id = copy_cached_run(
            store, hit, parent_id=plan.sweep_id, key=key,
            extra={"sweep_index": index, "runner": {"parameters": _json.to_jsonable(point)}},
        )
        rec = store.get_run(run_id)
        out = RunOutcome(run_id, str(plan.nb_path), "finished", dict(point), 0.0, verdict=rec.verdict, cached_from=hit, store=store)
        outcome.runs[index] = out
        tally.done += 1
        tally.cached += 1
        tally.report(out, 0)
    tally.report(None, 0)
    return queue


def _dispatch(store: Store, settings: Settings, session: Any, plan: _Plan, queue: list[tuple[int, str, RunJob]],
              outcome: SweepOutcome, tally: _Tally, *, lock: Any, nb_hash: str,
              inflight: dict[cf.Future[Any], tuple[int, RunJob]]) -> None:
    """Keep ``session.slots`` children running until the queue is empty; finalize each as it ends."""
    pending = list(queue)
    while pending or inflight:
        while pending and len(inflight) < session.slots:
            index, key, template = pending.pop(0)
            extra: dict[str, Any] = {"sweep_index": index}
            if template.files:
                extra["shipped_files"] = shipped_digests(template.files)
            run_id = prepare_run(
                store, settings, plan.nb_path, template.parameters, lock=lock, nb_hash=nb_hash, key=key,
                parent_id=plan.sweep_id, flags=plan.options["flags"], kind="sweep", extra=extra,
            )
            job = dataclasses.replace(template, run_id=run_id)
            inflight[session.submit(job)] = (index, job)
            tally.report(None, len(inflight))
        done, _ = cf.wait(list(inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
        for fut in done:
            index, job = inflight.pop(fut)
            out = finalize_run(store, job, _result_of(fut, job))
            outcome.runs[index] = out
            if out.ok:
                tally.done += 1
            else:
                tally.failed += 1
            tally.report(out, len(inflight))


def _run_sweep(store: Store, settings: Settings, session: Any, plan: _Plan, *, force: bool,
               progress: Callable[[SweepProgress], None] | None) -> SweepOutcome:
    """Record the sweep, serve cached points, run the rest; Ctrl-C leaves consistent records."""
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.notebook import notebook_content_hash, without_outputs

    source = without_outputs(plan.nb_path.read_bytes())  # every child executes the content hashed here (shipped to workers)
    nb_hash = notebook_content_hash(source)
    files = read_shipped(plan.kernel_folder, plan.options.get("ship") or [])  # refused before anything is recorded
    if plan.resume:
        store.set_sweep_status(plan.sweep_id, "running", ended=False)
    else:
        store.create_sweep(plan.sweep_id, notebook=str(plan.nb_path), spec=plan.spec)
    lock = capture_lock(settings, notebook_path=plan.nb_path)
    outcome = SweepOutcome(plan.sweep_id, str(plan.nb_path), "running", plan.points, skipped=plan.skipped,
                           warnings=plan.warnings)
    tally = _Tally(len(plan.todo), progress)
    queue = _serve_cached(store, settings, plan, outcome, tally, lock=lock, nb_hash=nb_hash, source=source, files=files,
                          force=force)
    inflight: dict[cf.Future[Any], tuple[int, RunJob]] = {}
    try:
        _dispatch(store, settings, session, plan, queue, outcome, tally, lock=lock, nb_hash=nb_hash, inflight=inflight)
    except KeyboardInterrupt:
        _stop(store, session, inflight, outcome)
        store.set_sweep_status(plan.sweep_id, "interrupted", ended=True)
        outcome.status = "interrupted"
        return outcome
    outcome.status = "failed" if tally.failed else "finished"
    store.set_sweep_status(plan.sweep_id, outcome.status, ended=True)
    return outcome


def _result_of(fut: cf.Future[Any], job: RunJob) -> JobResult:
    try:
        result: JobResult = fut.result()
        return result
    except BaseException as exc:  # noqa: BLE001 - a lost worker is a failed child, not a failed sweep
        return JobResult(run_id=job.run_id, status="crashed", duration=0.0, error=f"The worker running this child was lost: {type(exc).__name__}: {exc}", ename=type(exc).__name__, evalue=str(exc))


def _stop(store: Store, session: Any, inflight: dict[cf.Future[Any], tuple[int, RunJob]], outcome: SweepOutcome) -> None:
    """Stop running children; keep their notebooks when they come back in time; mark them interrupted."""
    session.stop()
    deadline = time.monotonic() + 15
    unmarked = dict(inflight)
    try:
        while inflight and time.monotonic() < deadline:
            done, _ = cf.wait(list(inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                index, job = inflight.pop(fut)
                result = _result_of(fut, job)
                if result.notebook_bytes is None:
                    continue  # cancelled, or the worker went away: marked below
                result = dataclasses.replace(result, status="interrupted") if result.status == "crashed" else result
                outcome.runs[index] = finalize_run(store, job, result)
                unmarked.pop(fut)
    except KeyboardInterrupt:
        pass  # a second Ctrl-C: stop waiting, still mark the records
    for index, job in unmarked.values():
        store.finish_run(job.run_id, status="interrupted", error="The sweep was interrupted (Ctrl-C).", only_if_running=True)
        store.merge_extra(job.run_id, {"runner": {"exit": "interrupted", "parameters": _json.to_jsonable(job.parameters)}})
        rec = store.get_run(job.run_id)
        outcome.runs[index] = RunOutcome(job.run_id, job.notebook, rec.status, dict(job.parameters), 0.0, error=rec.error, store=store)
