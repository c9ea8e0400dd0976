"""Reproduce a recorded run: same commit, same uncommitted diff, same parameters, fresh kernel.

Steps:

1. ``git worktree add --detach`` a temporary checkout of the commit recorded in the run's lock
   and ``git apply`` the recorded uncommitted diff (artifact ``git.diff``).
2. Data: git does not carry data that DVC or ``nbtk.track_data`` tracks outside git. For each
   DVC-tracked *file* in the lock, the recorded version is restored from the project's DVC cache
   (``.dvc/cache``) when it is there; otherwise, and for DVC folders and files the run recorded
   with ``track_data``, the project's current copy is linked in. Every data path whose content
   differs from the recorded hash is reported as data drift. Other untracked files are not copied.
3. Execute the recorded notebook (its path relative to the git root) with the recorded
   parameters through papermill in a fresh kernel; the run is recorded with
   ``kind="reproduction"`` and ``origin_run_id`` = the original.
4. Compare every metric of the original with ``math.isclose(rtol, atol)``; metrics that measure
   time (``*_seconds``, ``*_time``, ``duration``, ...) are reported but not compared. Drift =
   :meth:`EnvLock.diff` (branch names ignored) + parameter differences + data differences.

Result: ``diverged`` (a metric differs or is missing, or the execution failed), ``drifted``
(metrics agree, something in the environment, code or data differs) or ``reproduced``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json
from nbtoolkit.errors import ExecutionError, InputError
from nbtoolkit.execute.cache import cache_key
from nbtoolkit.execute.jobs import RunJob, RunOutcome
from nbtoolkit.execute.papermill_run import execute_job, finalize_run, prepare_run
from nbtoolkit.execute.params import known_parameters

if TYPE_CHECKING:
    from nbtoolkit.config import Settings
    from nbtoolkit.store import RunRecord, Store

__all__ = ["MetricComparison", "Reproduction", "reproduce"]

TIMING_METRIC = re.compile(r"(^|_)(seconds|secs|time|duration|elapsed|runtime)$")


@dataclass(frozen=True)
class MetricComparison:
    """One metric: original value, reproduced value and whether they agree."""

    name: str
    original: float
    reproduced: float | None
    ok: bool
    ignored: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "original": self.original, "reproduced": self.reproduced, "ok": self.ok, "ignored": self.ignored}


@dataclass
class Reproduction:
    """The outcome of :func:`reproduce`.

    Attributes:
        result: ``reproduced``, ``drifted`` or ``diverged``.
        run_id: the reproduction run.
        origin_run_id: the run reproduced.
        metrics: one :class:`MetricComparison` per metric of the original.
        drift: one line per difference in environment, code, parameters or data.
    """

    result: str
    run_id: str
    origin_run_id: str
    status: str
    metrics: list[MetricComparison] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    error: str | None = None
    outcome: RunOutcome | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "run_id": self.run_id,
            "origin_run_id": self.origin_run_id,
            "status": self.status,
            "metrics": [m.to_dict() for m in self.metrics],
            "drift": list(self.drift),
            "error": self.error,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"{self.result}: run {self.run_id[:8]} reproduces {self.origin_run_id[:8]} (status {self.status})"]
        for m in self.metrics:
            mark = "ignored (timing)" if m.ignored else ("ok" if m.ok else "DIFFERS")
            lines.append(f"  metric {m.name}: {m.original!r} -> {m.reproduced!r}  {mark}")
        lines.extend(f"  drift: {d}" for d in self.drift)
        if self.error:
            lines.append(f"  error: {self.error.strip().splitlines()[-1]}")
        return lines

    def __repr__(self) -> str:
        return f"<Reproduction {self.result} {self.run_id[:8]} of {self.origin_run_id[:8]} drift={len(self.drift)}>"

    def _repr_html_(self) -> str:
        from html import escape

        return "<pre>" + escape("\n".join(self.summary_lines())) + "</pre>"


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if proc.returncode != 0:
        raise ExecutionError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - DVC's content hash, not security
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sha256_path(path: Path) -> str | None:
    from nbtoolkit._io import sha256_file

    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(x for x in path.rglob("*") if x.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode() + b"\n")
    return h.hexdigest()


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        return
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)


def _restore_data(record: RunRecord, lock_data: dict[str, Any], git_root: Path, project_root: Path, tree: Path) -> tuple[list[str], list[str]]:
    """Put the run's data into the worktree. Returns (drift lines, notes)."""
    drift: list[str] = []
    notes: list[str] = []
    rel_project = project_root.resolve().relative_to(git_root) if project_root.resolve().is_relative_to(git_root) else Path()
    cache_dirs = [project_root / ".dvc" / "cache" / "files" / "md5", project_root / ".dvc" / "cache"]
    for entry in lock_data.get("data") or []:
        rel, md5 = str(entry.get("path", "")), str(entry.get("md5") or "")
        if "://" in rel or not rel:
            continue
        dst = tree / rel_project / rel
        src = project_root / rel
        if dst.exists():
            continue
        restored = False
        if md5 and not md5.endswith(".dir"):
            for cache in cache_dirs:
                blob = cache / md5[:2] / md5[2:]
                if blob.is_file():
                    _place(blob, dst)
                    restored = True
                    notes.append(f"data {rel}: restored md5 {md5[:12]} from the DVC cache")
                    break
        if not restored and src.exists():
            _place(src, dst)
            current = _md5(src) if src.is_file() else None
            if src.is_file() and md5 and current != md5:
                drift.append(f"data ~ {rel}: {md5[:12]} -> {current[:12] if current else 'none'} (recorded version not in the DVC cache)")
            notes.append(f"data {rel}: current copy used")
        elif not restored:
            drift.append(f"data - {rel}: not available (run `dvc pull` first)")
    for ref in record.data:
        if ref.source != "track_data":
            continue
        tracked = Path(ref.path)
        src = tracked if tracked.is_absolute() else project_root / tracked
        dst = src if tracked.is_absolute() else tree / rel_project / tracked
        if not tracked.is_absolute() and not dst.exists() and src.exists():
            _place(src, dst)
            notes.append(f"data {ref.path}: current copy used")
        current = _sha256_path(dst)
        if current != ref.digest:
            drift.append(f"data ~ {ref.path}: {ref.digest[:12]} -> {current[:12] if current else 'missing'}")
    return drift, notes


def _injected_params(record: RunRecord, notebook: Path) -> dict[str, Any]:
    runner = (record.extra or {}).get("runner") or {}
    if isinstance(runner.get("parameters"), dict):
        return dict(runner["parameters"])
    names, _ = known_parameters(notebook)
    return {k: v for k, v in record.params.items() if k in names}


def reproduce(
    run_ref: str,
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    timeout: float | None = None,
    kernel: str | None = None,
    ignore_metrics: tuple[str, ...] = (),
    store: Store | None = None,
    settings: Settings | None = None,
) -> Reproduction:
    """Re-execute a recorded run at its recorded commit and report agreement and drift.

    Args:
        run_ref: run id or unique prefix.
        rtol: relative tolerance of metric agreement.
        atol: absolute tolerance of metric agreement.
        timeout: per-cell timeout.
        kernel: kernel name (default: the notebook's).
        ignore_metrics: metric names not compared (timing metrics are never compared).
        store: the project store.
        settings: project settings.

    Returns:
        A :class:`Reproduction`; the original run's ``extra.reproduction`` points to it.

    Raises:
        InputError: the run has no lock, no git commit or no notebook to re-execute.
    """
    from nbtoolkit.config import load_settings
    from nbtoolkit.store import open_store

    settings = settings or load_settings()
    store = store or open_store(settings)
    original = store.get_run(run_ref)
    commit, git_root, nb_abs, nb_rel = _locate(original, settings)
    tmp = Path(tempfile.mkdtemp(prefix="nbtk-reproduce-"))
    tree = tmp / "tree"
    _git(git_root, "worktree", "add", "--detach", "--quiet", str(tree), commit)
    try:
        data_drift = _prepare_tree(store, original, git_root, settings.root, tree, tmp)
        notebook = tree / nb_rel
        if not notebook.is_file():
            raise InputError(f"{nb_rel} does not exist at commit {commit[:12]}; it was never committed.")
        run_id, outcome = _run_in_tree(store, settings, original, tree, notebook, nb_abs, git_root,
                                       kernel=kernel, timeout=timeout)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=git_root, capture_output=True)
        subprocess.run(["git", "worktree", "prune"], cwd=git_root, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)

    new = store.get_run(run_id)
    comparisons = _compare(original.metrics, new.metrics, rtol=rtol, atol=atol, ignore=set(ignore_metrics))
    drift = _drift(original, new, data_drift)
    if new.status != "finished" or not all(c.ok for c in comparisons):
        result = "diverged"
    elif drift:
        result = "drifted"
    else:
        result = "reproduced"
    rep = Reproduction(result, run_id, original.run_id, new.status, comparisons, drift, error=new.error, outcome=outcome)
    store.merge_extra(run_id, {"reproduction": {**rep.to_dict(), "rtol": rtol, "atol": atol}})
    store.merge_extra(original.run_id, {"reproduction": {"result": result, "run_id": run_id, "drift": len(drift)}})
    return rep


def _locate(original: RunRecord, settings: Settings) -> tuple[str, Path, Path, Path]:
    """The recorded commit, the git root, and the notebook's absolute and repository paths.

    Raises:
        InputError: the run has no lock with a commit, no notebook, or one outside the repository.
    """
    lock = original.lock()
    git = (lock.data.get("git") or {}) if lock is not None else {}
    if lock is None or not git.get("commit"):
        raise InputError(f"Run {original.run_id[:8]} has no environment lock with a git commit; only runs recorded in a git repository can be reproduced.")
    if not original.notebook_path:
        raise InputError(f"Run {original.run_id[:8]} records no notebook; only notebook runs can be reproduced.")
    git_root = Path(git.get("root") or settings.root).resolve()
    nb_abs = Path(original.notebook_path)
    if not nb_abs.is_absolute():
        nb_abs = settings.root / nb_abs
    try:
        nb_rel = nb_abs.resolve().relative_to(git_root)
    except ValueError:
        raise InputError(f"The notebook {original.notebook_path} is outside the git repository {git_root}.") from None
    return str(git["commit"]), git_root, nb_abs, nb_rel


def _prepare_tree(store: Store, original: RunRecord, git_root: Path, project_root: Path, tree: Path,
                  tmp: Path) -> list[str]:
    """Apply the run's recorded uncommitted changes and restore its data; returns data drift."""
    diff = original.artifact("git.diff")
    if diff is not None:
        patch = tmp / "recorded.diff"
        patch.write_bytes(store.artifacts.read_bytes(diff.digest))
        if patch.stat().st_size:
            _git(tree, "apply", "--whitespace=nowarn", str(patch))
    lock = original.lock()
    data_drift, _notes = _restore_data(original, lock.data if lock is not None else {}, git_root,
                                       project_root, tree)
    return data_drift


def _run_in_tree(store: Store, settings: Settings, original: RunRecord, tree: Path, notebook: Path,
                 nb_abs: Path, git_root: Path, *, kernel: str | None,
                 timeout: float | None) -> tuple[str, RunOutcome]:
    """Execute the notebook of the prepared worktree as a ``reproduction`` run of ``original``.

    Returns:
        ``(new run id, execution outcome)``.
    """
    from nbtoolkit.envlock import capture_lock
    from nbtoolkit.notebook import notebook_hash

    params = _injected_params(original, notebook)
    root = settings.root.resolve()
    project_rel = root.relative_to(git_root) if root.is_relative_to(git_root) else Path()
    tree_settings = settings.with_overrides(root=tree / project_rel)
    new_lock = capture_lock(tree_settings, notebook_path=notebook)
    nb_hash = notebook_hash(notebook)
    run_id = prepare_run(
        store, tree_settings, notebook, params, lock=new_lock, nb_hash=nb_hash, key=cache_key(nb_hash, params, new_lock),
        kind="reproduction", origin_run_id=original.run_id, extra={"reproduction_of": original.run_id},
    )
    store.update_run(run_id, experiment=original.experiment, notebook_path=str(nb_abs))
    job = RunJob(
        run_id=run_id, notebook=str(notebook), parameters=params, store_path=store.location,
        cwd=str(notebook.parent), kernel=kernel, timeout=timeout,
        max_output_bytes=tree_settings.max_output_bytes, artifacts=store.artifacts_location,
    )
    outcome = finalize_run(store, job, execute_job(job))
    store.update_run(run_id, kind="reproduction", notebook_path=str(nb_abs))
    return run_id, outcome


def _compare(original: dict[str, float], new: dict[str, float], *, rtol: float, atol: float, ignore: set[str]) -> list[MetricComparison]:
    out = []
    for name, value in sorted(original.items()):
        got = new.get(name)
        if name in ignore or TIMING_METRIC.search(name):
            out.append(MetricComparison(name, value, got, True, ignored=True))
            continue
        if got is None:
            ok = False
        elif math.isnan(value) or math.isnan(got):
            ok = math.isnan(value) and math.isnan(got)
        else:
            ok = math.isclose(value, got, rel_tol=rtol, abs_tol=atol)
        out.append(MetricComparison(name, value, got, ok))
    return out


def _drift(original: RunRecord, new: RunRecord, data_drift: list[str]) -> list[str]:
    lines: list[str] = []
    a, b = original.lock(), new.lock()
    if a is not None and b is not None:
        diff = a.diff(b)
        diff = dataclasses.replace(diff, code={k: v for k, v in diff.code.items() if k != "branch"})
        lines.extend(diff.summary_lines())
    for name in sorted(set(original.params) | set(new.params)):
        if name in original.params and original.params.get(name) != new.params.get(name):
            lines.append(f"param ~ {name}: {_json.dumps(original.params.get(name))} -> {_json.dumps(new.params.get(name))}")
    lines.extend(data_drift)
    return lines
