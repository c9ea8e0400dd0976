"""Plain functions behind the REST API and the notebook widgets (no tornado, no IPython).

They read the project store and return JSON-compatible values; the server handlers and
:mod:`nbtoolkit.widgets` are thin adapters over them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nbtoolkit import _json
from nbtoolkit.config import load_settings
from nbtoolkit.errors import InputError
from nbtoolkit.report import write_run_report
from nbtoolkit.store import Store, open_store

RUN_REF = re.compile(r"[0-9a-f]{4,32}")
REPORTS_DIRNAME = "reports"


def check_run_ref(ref: str) -> str:
    """Return ``ref`` lower-cased when it is a hexadecimal run id or prefix (4-32 characters).

    Raises:
        InputError: anything else (path separators, dots, other characters), so a reference
            can never name a file outside the store.
    """
    value = str(ref).strip().lower()
    if not RUN_REF.fullmatch(value):
        raise InputError(f"{str(ref)[:80]!r} is not a run id; run ids are 4-32 hexadecimal characters.")
    return value


def open_project_store(root: str | Path) -> Store | None:
    """The store of the project holding ``root``; ``None`` when it has not been created yet.

    Listing runs must not create a ``.nbtoolkit/`` folder in whatever folder Jupyter serves.
    """

    settings = load_settings(Path(root))
    if settings.store_url is None and not (settings.store_path / "store.db").is_file():
        return None
    return open_store(settings)


def _row_summary(row: dict[str, Any], params: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    decl = _json.loads(row.get("declaration"), {}) or {}
    return {
        "run_id": row["run_id"],
        "experiment": row["experiment"],
        "status": row["status"],
        "verdict": row["verdict"],
        "started": row["started"],
        "ended": row["ended"],
        "kind": row["kind"],
        "hypothesis": str(decl.get("hypothesis", "") or ""),
        "baseline": decl.get("baseline"),
        "params": params,
        "metrics": metrics,
    }


def _matches(summary: dict[str, Any], text: str) -> bool:
    needle = text.lower()
    haystack = [summary["run_id"], summary["experiment"], summary["hypothesis"], summary["status"],
                summary["verdict"] or "", summary["kind"]]
    haystack += [f"{k}={v}" for k, v in summary["params"].items()]
    haystack += list(summary["metrics"])
    return any(needle in str(h).lower() for h in haystack)


def run_summaries(
    store: Store,
    *,
    experiment: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    verdict: str | Sequence[str] | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Runs newest first as JSON-compatible dicts.

    Each dict has ``run_id``, ``experiment``, ``status``, ``verdict``, ``started``, ``ended``
    (epoch seconds), ``kind``, ``hypothesis``, ``baseline``, ``params`` and ``metrics``.

    Args:
        store: the project store.
        experiment: keep these experiments.
        status: keep these statuses.
        verdict: keep these verdicts (``"none"`` selects runs without a verdict).
        text: case-insensitive substring of the id, experiment, hypothesis, status, verdict,
            a ``param=value`` pair or a metric name.
        limit: at most this many runs (after filtering).
    """
    rows, param_rows, metric_rows = store.query_runs(experiment=experiment or None, status=status or None)
    params: dict[str, dict[str, Any]] = {}
    for p in param_rows:
        params.setdefault(p["run_id"], {})[p["name"]] = _json.loads(p["value"])
    metrics: dict[str, dict[str, float]] = {}
    for m in metric_rows:
        metrics.setdefault(m["run_id"], {})[m["name"]] = _json.from_special(m["value"], m["special"])
    wanted = {verdict} if isinstance(verdict, str) else set(verdict or ())
    out = []
    for row in rows:
        if wanted and (row["verdict"] or "none") not in wanted:
            continue
        summary = _row_summary(row, params.get(row["run_id"], {}), metrics.get(row["run_id"], {}))
        if text and not _matches(summary, text):
            continue
        out.append(summary)
        if limit is not None and len(out) >= limit:
            break
    return out


def experiment_summaries(store: Store | None, *, recent: int = 5) -> dict[str, Any]:
    """Experiments (most recently run first) with run counts and their ``recent`` latest runs.

    Returns:
        ``{"experiments": [{"name", "hypothesis", "runs", "recent": [run summary...]}],
        "signature": str, "store": str | None}``. ``signature`` changes whenever a run is
        added or changes status or verdict, so a client re-renders only then.
    """
    if store is None:
        return {"experiments": [], "signature": "empty", "store": None}
    runs = run_summaries(store)
    groups: dict[str, dict[str, Any]] = {}
    for run in runs:  # newest first
        group = groups.setdefault(run["experiment"], {
            "name": run["experiment"], "hypothesis": run["hypothesis"], "runs": 0, "recent": []})
        group["runs"] += 1
        if len(group["recent"]) < recent:
            group["recent"].append({k: v for k, v in run.items() if k not in ("params", "metrics")})
    state = [(r["run_id"], r["status"], r["verdict"]) for r in runs]
    signature = hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]
    return {"experiments": list(groups.values()), "signature": signature, "store": store.location_display}


def reports_dir(store: Store) -> Path:
    """The store's ``reports/`` folder, where generated run reports are kept."""
    return store.path / REPORTS_DIRNAME


def write_report(store: Store, ref: str, *, refresh: bool = False) -> Path:
    """Write (or reuse) the HTML report of a run into the store's ``reports/`` folder.

    The file is regenerated when missing, when the run is still running, when the run ended or
    was approved after the file was written, or when ``refresh`` is true.

    Args:
        store: the project store.
        ref: run id or unique hexadecimal prefix.
        refresh: always regenerate.

    Returns:
        The report's path, ``<store>/reports/<run_id>.html``.

    Raises:
        InputError: ``ref`` is not a hexadecimal id.
        RunNotFoundError: no run matches ``ref``.
    """
    record = store.get_run(check_run_ref(ref))
    folder = reports_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{check_run_ref(record.run_id)}.html"
    if path.is_file() and not refresh and record.status != "running":
        changed = max([record.ended or 0.0, *(a.created for a in record.approvals)])
        if path.stat().st_mtime >= changed:
            return path
    return Path(write_run_report(record, path, store=store))


def run_comments(store: Store, ref: str) -> dict[str, Any]:
    """Reviewers' comments on a run and on its experiment (for the sidebar), oldest first."""
    record = store.get_run(ref)
    found = store.comments("run", record.run_id) + store.comments("experiment", record.experiment)
    return {"run_id": record.run_id, "comments": [c.to_dict() for c in sorted(found, key=lambda c: (c.created, c.id))]}
