"""Notebook smoke tests: ``nbtk test`` and the ``pytest --nbtk`` plugin share this module.

Each notebook runs once in a fresh kernel with its smoke parameters
(``metadata["nbtoolkit"]["smoke"]``, e.g. fewer estimators) and is recorded as a run of kind
``test`` (never chosen as a baseline). It fails when a cell raises, the kernel dies or times
out, or its ``%%experiment`` verdict is ``rejected``.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import InputError
from nbtoolkit.execute.cache import cache_key
from nbtoolkit.execute.executors import EXECUTORS
from nbtoolkit.execute.jobs import JobResult, RunJob, RunOutcome
from nbtoolkit.execute.papermill_run import execute_job, finalize_run, prepare_run
from nbtoolkit.execute.params import check_parameters

if TYPE_CHECKING:
    from nbtoolkit.config import Settings
    from nbtoolkit.store import Store

__all__ = ["NotebookTestResult", "collect_notebooks", "smoke_parameters", "test_notebooks"]


@dataclass(frozen=True)
class NotebookTestResult:
    """One notebook's smoke test."""

    notebook: str
    passed: bool
    reason: str
    outcome: RunOutcome

    def describe(self) -> str:
        """Readable failure text: cell index, source excerpt and traceback (or the verdict)."""
        if self.passed:
            return f"{self.notebook}: passed"
        if self.outcome.ok:
            return f"{self.notebook}: {self.reason}"
        return self.outcome.describe_failure()

    def __repr__(self) -> str:
        return f"<NotebookTestResult {Path(self.notebook).name} {'passed' if self.passed else 'FAILED'}: {self.reason}>"


def smoke_parameters(path: str | Path) -> dict[str, Any]:
    """The notebook's ``metadata.nbtoolkit.smoke`` parameters (empty when absent)."""
    from nbtoolkit.notebook import notebook_metadata

    smoke = notebook_metadata(path).get("smoke") or {}
    if not isinstance(smoke, dict):
        raise InputError(f"{path}: metadata.nbtoolkit.smoke must be a mapping of parameter names to values.")
    return dict(smoke)


def collect_notebooks(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders into the ``*.ipynb`` files below them (checkpoints skipped), sorted."""
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(
                sorted(f for f in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in f.parts and not f.name.startswith("."))
            )
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{p} does not exist; pass notebooks or folders holding them.")
    return [f.resolve() for f in dict.fromkeys(found)]


def _experiments(path: Path) -> tuple[set[str], set[str]]:
    """(experiment names a notebook records, baselines its ``%%experiment`` lines name)."""
    import json
    import shlex

    names: set[str] = set()
    baselines: set[str] = set()
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        src = cell.get("source", "")
        first = ("".join(src) if isinstance(src, list) else str(src)).lstrip().split("\n", 1)[0]
        if cell.get("cell_type") != "code" or not first.startswith("%%experiment"):
            continue
        try:
            words = shlex.split(first)[1:]
        except ValueError:
            continue
        if words and not words[0].startswith("-"):
            names.add(words[0])
        for i, word in enumerate(words):
            if word == "--baseline" and i + 1 < len(words):
                baselines.add(words[i + 1])
            elif word.startswith("--baseline="):
                baselines.add(word.split("=", 1)[1])
    return names, baselines


def _waves(notebooks: list[Path]) -> list[list[int]]:
    """Indices in dependency order: a notebook whose baseline another one records runs after it."""
    info = [_experiments(nb) for nb in notebooks]
    remaining = list(range(len(notebooks)))
    waves: list[list[int]] = []
    while remaining:
        provided = {n for i in remaining for n in info[i][0]}
        wave = [i for i in remaining if not (info[i][1] & provided - info[i][0])]
        if not wave:  # a cycle: run the rest together
            wave = list(remaining)
        waves.append(wave)
        remaining = [i for i in remaining if i not in wave]
    return waves


def _judge(outcome: RunOutcome) -> tuple[bool, str]:
    if not outcome.ok:
        where = f" in cell {outcome.cell_index}" if outcome.cell_index is not None else ""
        return False, f"{outcome.status}{where}: {outcome.ename or ''} {outcome.evalue or ''}".strip()
    if outcome.verdict == "rejected":
        return False, "the experiment's verdict is rejected (a Success criterion failed)"
    return True, "finished" + (f", verdict {outcome.verdict}" if outcome.verdict else "")


def test_notebooks(
    paths: Iterable[str | Path],
    *,
    jobs: int | None = None,
    timeout: float | None = 600,
    kernel: str | None = None,
    store: Store | None = None,
    settings: Settings | None = None,
) -> list[NotebookTestResult]:
    """Smoke-test notebooks in parallel, each in a fresh kernel.

    Args:
        paths: notebooks or folders (default callers pass ``notebooks/``).
        jobs: notebooks at once (default: CPUs; 1 runs in this process).
        timeout: per-cell timeout.
        kernel: kernel name (default: each notebook's).
        store: the project store.
        settings: project settings.

    Returns:
        One :class:`NotebookTestResult` per notebook, in path order.
    """
    from nbtoolkit.config import load_settings
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.notebook import notebook_hash
    from nbtoolkit.store import open_store

    notebooks = collect_notebooks(paths)
    if not notebooks:
        return []
    settings = settings or load_settings()
    store = store or open_store(settings)
    jobs_list: list[RunJob] = []
    for nb in notebooks:
        params = smoke_parameters(nb)
        check_parameters(nb, params)
        lock = capture_lock(settings, notebook_path=nb)
        nb_hash = notebook_hash(nb)
        run_id = prepare_run(store, settings, nb, params, lock=lock, nb_hash=nb_hash, key=cache_key(nb_hash, params, lock), kind="test")
        jobs_list.append(RunJob(run_id=run_id, notebook=str(nb), parameters=params, store_path=store.location, cwd=str(nb.parent), kernel=kernel, timeout=timeout, max_output_bytes=settings.max_output_bytes, artifacts=store.artifacts_location))
    # notebooks whose baseline another notebook records run after it (a fresh store has no
    # baseline experiment otherwise); within a wave they run in parallel
    results: list[JobResult | None] = [None] * len(jobs_list)
    n = max(1, min(jobs or len(jobs_list), len(jobs_list)))
    session = EXECUTORS.get("local").open(jobs=n, address=None) if n > 1 else None
    try:
        for wave in _waves(notebooks):
            if session is None:
                for i in wave:
                    results[i] = execute_job(jobs_list[i])
                continue
            futures = {i: session.submit(jobs_list[i]) for i in wave}
            cf.wait(list(futures.values()))
            for i, f in futures.items():
                try:
                    results[i] = f.result()
                except Exception as exc:  # a lost worker
                    j = jobs_list[i]
                    results[i] = JobResult(run_id=j.run_id, status="crashed", duration=0.0, error=str(exc), ename=type(exc).__name__, evalue=str(exc))
    finally:
        if session is not None:
            session.close()
    out = []
    for job, result in zip(jobs_list, results, strict=True):
        assert result is not None
        outcome = finalize_run(store, job, result)
        passed, reason = _judge(outcome)
        out.append(NotebookTestResult(job.notebook, passed, reason, outcome))
    return out


test_notebooks.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
