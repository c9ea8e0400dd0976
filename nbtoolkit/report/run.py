"""The run report: everything a reviewer needs about one run, in one offline HTML file."""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbtoolkit import evidence, stats
from nbtoolkit._format import fmt_number
from nbtoolkit.errors import ArtifactStoreUnavailableError
from nbtoolkit.verdict import criterion_cells

if TYPE_CHECKING:
    from nbtoolkit.report.compare import Comparison
    from nbtoolkit.store import RunRecord, Store
    from nbtoolkit.verdict import Verdict

CHILD_TIMEOUT_S = 600
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"}


def criteria_rows(record: RunRecord, store: Store, baseline: RunRecord | None) -> tuple[Verdict | None, bool]:
    """The verdict to show: the stored one, or re-evaluated against an explicit other baseline.

    Returns:
        ``(verdict or None, recomputed)``.
    """
    if record.status != "finished":  # a failed or interrupted run has no verdict
        return None, False
    declared = record.baseline_run_id
    stored = record.verdict_detail
    if stored and (baseline is None or baseline.run_id == declared):
        return stored, False
    if "success" in record.declaration.extra:
        return stored, False  # stored criteria this version cannot read: show what was stored
    reason = None if baseline is not None else "no baseline run to compare with"
    verdict = evidence.evaluate_run(store, record.declaration.criteria, record.metrics,
                                    run_id=record.run_id,
                                    baseline_run_id=baseline.run_id if baseline else None,
                                    baseline_reason=reason)
    return verdict, True


def time_box(record: RunRecord) -> dict[str, Any]:
    """The declared decision date and whether it has passed."""
    until = record.declaration.until
    info: dict[str, Any] = {"until": until.isoformat() if until else None, "overdue": False,
                            "days_left": None}
    if until is not None:
        today = _dt.datetime.now(tz=_dt.UTC).date()
        info["days_left"] = (until - today).days
        info["overdue"] = until < today and record.verdict not in ("supported", "rejected")
    return info


def environment_summary(record: RunRecord) -> list[tuple[str, str]]:
    """Rows of (label, value) describing the run's environment lock."""
    lock = record.lock()
    if lock is None:
        return []
    data = lock.data
    py = data.get("python") or {}
    plat = data.get("platform") or {}
    git = data.get("git") or {}
    rows = [
        ("Python", " ".join(str(py.get(k, "")) for k in ("implementation", "version")).strip() or "?"),
        ("Platform", " ".join(str(plat.get(k, "")) for k in ("system", "release", "machine")).strip() or "?"),
        ("Packages", f"{len(lock.packages)} installed"),
        ("Git", (f"{str(git.get('commit') or 'no commit')[:12]} on {git.get('branch') or 'detached HEAD'}"
                 + (" (uncommitted changes)" if git.get("dirty") else "")) if git else "not a git repository"),
        ("Lock", str(record.lock_hash or "")[:16]),
    ]
    seeds = data.get("seeds") or record.extra.get("seeds")
    if seeds:
        rows.append(("Seeds", ", ".join(f"{k}={v}" for k, v in sorted(dict(seeds).items()))))
    conda = data.get("conda") or {}
    if conda:
        rows.append(("Conda", str(conda.get("name") or conda.get("prefix") or "")))
    return rows


def reproduction(record: RunRecord) -> dict[str, Any] | None:
    """The re-execution outcome recorded on the run, or ``None`` ("not reproduced yet")."""
    rep = record.extra.get("reproduction")
    return dict(rep) if isinstance(rep, dict) else None


def figures(record: RunRecord, store: Store) -> list[dict[str, str]]:
    """Logged figures as data URIs (a missing or damaged blob gets a note instead).

    Raises:
        ArtifactStoreUnavailableError: the artifact store cannot be used at all; a report
            that silently lacks its figures would look complete (and be cached as such).
    """
    from nbtoolkit.report.plots import data_uri

    result = []
    for art in record.artifacts_of("figure"):
        media = art.media_type or "image/png"
        if media not in IMAGE_TYPES:
            continue
        try:
            result.append({"name": art.name, "uri": data_uri(store.artifacts.read_bytes(art.digest), media)})
        except ArtifactStoreUnavailableError:
            raise  # the store itself cannot be used: no report that looks complete without its figures
        except Exception as exc:  # a missing or damaged blob must not stop the report
            result.append({"name": art.name, "uri": "", "error": f"could not read the figure: {exc}"})
    return result


def _notebook_source(record: RunRecord, store: Store) -> tuple[str | None, str]:
    """``(notebook JSON text or None, note)``: the executed copy, else the saved file.

    Raises:
        ArtifactStoreUnavailableError: the artifact store cannot be used at all.
    """
    arts = record.artifacts_of("notebook")
    try:
        if arts:
            text = store.artifacts.read_bytes(arts[-1].digest).decode("utf-8")
            return text, f"executed notebook ({arts[-1].name})"
        if record.notebook_path and _path(record).is_file():
            return (_path(record).read_text(encoding="utf-8"),
                    f"notebook file {record.notebook_path} (as saved; not the executed copy)")
    except ArtifactStoreUnavailableError:
        raise  # the store itself cannot be used: fail the report rather than leave the notebook out
    except Exception as exc:  # unreadable blob or file: say so instead of failing the report
        return None, f"the notebook could not be read: {type(exc).__name__}: {exc}"
    why = ("no executed notebook was stored with this run"
           + (f" and {record.notebook_path} no longer exists" if record.notebook_path else ""))
    return None, why


def _render_notebook(text: str, note: str) -> dict[str, str]:
    import nbformat

    from nbtoolkit.report.sanitize import notebook_to_html

    try:
        return {"html": notebook_to_html(nbformat.reads(text, as_version=4)), "note": note}
    except Exception as exc:  # a damaged notebook: say so instead of failing the report
        return {"html": "", "note": f"the notebook could not be rendered: {type(exc).__name__}: {exc}"}


def _render_in_child(text: str, note: str, conn: Any) -> None:
    conn.send(_render_notebook(text, note))
    conn.close()


def notebook_section(record: RunRecord, store: Store, *, parallel: bool = False) -> Callable[[], dict[str, str]]:
    """Start rendering the executed notebook as inert HTML; call the result to get it.

    With ``parallel`` (the CLI sets it) and ``fork`` available, nbconvert runs in a forked child
    process while the caller computes statistics and plots, so a report costs about as much
    wall time as nbconvert alone on a machine with two cores. Any trouble with the child falls
    back to rendering in this process.

    Returns:
        A function returning ``{"html": ..., "note": ...}`` (``html`` empty with a note saying
        why when there is no notebook).
    """
    import multiprocessing

    text, note = _notebook_source(record, store)
    if text is None:
        return lambda: {"html": "", "note": note}
    if not parallel or "fork" not in multiprocessing.get_all_start_methods():
        return lambda: _render_notebook(text, note)
    try:
        ctx = multiprocessing.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_render_in_child, args=(text, note, sender), daemon=True)
        child.start()
        sender.close()
    except (OSError, ValueError):
        return lambda: _render_notebook(text, note)

    def result() -> dict[str, str]:
        try:
            if receiver.poll(CHILD_TIMEOUT_S):
                value: dict[str, str] = receiver.recv()
                return value
        except (EOFError, OSError):
            pass
        finally:
            receiver.close()
            child.join(timeout=5)
            if child.is_alive():
                child.kill()
        return _render_notebook(text, note)

    return result


def _predictions(store: Store, record: RunRecord) -> Any:
    """A run's predictions, or ``None`` when absent or unreadable (the report still renders).

    Raises:
        ArtifactStoreUnavailableError: the artifact store cannot be used at all.
    """
    try:
        return evidence.load_predictions(store, record)
    except ArtifactStoreUnavailableError:
        raise  # the store itself cannot be used: fail the report rather than leave the evidence out
    except Exception:  # a damaged or missing blob must not stop the report
        return None


def _prediction_metrics(pred: Any) -> list[tuple[str, float | None]]:
    """The metrics that mean something for the predictions' task, computed from them."""
    if pred is None:
        return []
    try:
        return [(name, stats.metric_value(pred, name)) for name in stats.computable_metrics(pred)]
    except Exception:  # odd arrays in an old artifact: the logged metrics still show
        return []


def metric_rows(record: RunRecord, verdict: Verdict | None) -> list[tuple[str, str]]:
    """The logged metrics as ``(name, text)``: a metric a criterion judges reads exactly as in
    the criteria table (that row's shared decimals); any other one with 4 significant digits."""
    judged = {r.criterion.metric: criterion_cells(r)["observed"]
              for r in (verdict.results if verdict is not None else ()) if r.observed is not None}
    return [(name, judged.get(name) or fmt_number(value))
            for name, value in sorted(record.metrics.items())]


def _notebook_css() -> Any:
    import markupsafe

    from nbtoolkit.report.sanitize import notebook_css

    return markupsafe.Markup(notebook_css())


def _path(record: RunRecord) -> Any:
    from pathlib import Path

    return Path(str(record.notebook_path))


def run_context(record: RunRecord, store: Store, baseline: RunRecord | None, *,
                embed_notebook: bool = True, parallel: bool = False) -> dict[str, Any]:
    """Everything the run template shows (``parallel``: see :func:`notebook_section`)."""
    from nbtoolkit.report import plots
    from nbtoolkit.report.compare import compare
    from nbtoolkit.report.sections import extra_sections

    notebook = (notebook_section(record, store, parallel=parallel) if embed_notebook
                else (lambda: {"html": "", "note": "not embedded"}))
    verdict, recomputed = criteria_rows(record, store, baseline)
    comparison: Comparison | None = compare(baseline, record, store=store) if baseline else None
    step_names = [n for n, s in record.metric_steps.items() if s is not None]
    series = {n: record.metric_history(n) for n in sorted(step_names)}
    base_series = {n: baseline.metric_history(n) for n in series} if baseline else None
    pred = _predictions(store, record)
    base_pred = _predictions(store, baseline) if baseline else None
    curves: dict[str, Any] = {f"this run ({record.run_id[:8]})": pred}
    if base_pred is not None and baseline is not None:
        curves[f"baseline ({baseline.run_id[:8]})"] = base_pred
    groups: list[stats.GroupMetrics] = []
    if pred is not None and pred.groups is not None:
        wanted = [r.criterion.metric for r in verdict.results] if verdict else []
        names = [m for m in dict.fromkeys([*wanted, *stats.computable_metrics(pred)[:2]]) if m]
        for name in names:
            gm = stats.group_metrics(pred, name)
            if gm is not None and all(g.metric != gm.metric for g in groups):
                groups.append(gm)
            if len(groups) >= 3:
                break
    params = comparison.params if comparison else [
        {"name": k, "a": None, "b": v, "status": "same"} for k, v in sorted(record.params.items())]
    return {
        "kind": "run",
        "title": f"{record.experiment} — run {record.run_id[:8]}",
        "r": record,
        "decl": record.declaration,
        "baseline": baseline,
        "baseline_is_declared": baseline is None or baseline.run_id == record.baseline_run_id,
        "verdict": verdict,
        "verdict_recomputed": recomputed,
        "comparison": comparison,
        "params": params,
        "metrics": metric_rows(record, verdict),
        "step_plot": plots.safe_plot(plots.step_curves, series, baseline=base_series),
        "curves_plot": plots.safe_plot(plots.roc_pr_curves, curves) if pred is not None else None,
        "predictions_rows": len(pred) if pred is not None else None,
        "predictions_task": pred.task if pred is not None else None,
        "predictions_classes": len(pred.classes) if pred is not None else 0,
        "prediction_metrics": _prediction_metrics(pred),
        "groups": groups,
        "figures": figures(record, store),
        "time_box": time_box(record),
        "env_rows": environment_summary(record),
        "reproduction": reproduction(record),
        "notebook": notebook(),
        "other_artifacts": [a for a in record.artifacts if a.kind not in ("figure", "notebook")],
        "now": time.time(),
        "notebook_css": _notebook_css(),
        "flags": record.extra.get("flags") or {},
        "sections": extra_sections(record, store),
    }
