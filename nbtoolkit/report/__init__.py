"""Self-contained HTML reports: one run, a comparison, a sweep, or the experiment log.

Every report is one HTML file that opens offline: inline CSS, images as data URIs, no CDN, no
remote fonts, and a Content-Security-Policy that forbids fetching anything and running scripts
(the index page's search box is the only script, allowed by its hash). Files are written
atomically. The modules: :mod:`.render` (Jinja2), :mod:`.plots` (matplotlib), :mod:`.sanitize`
(executed notebooks made inert), :mod:`.compare` (the comparison model, also ``nbtk.compare``),
:mod:`.run`, :mod:`.tables` (sweep and index contexts).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from nbtoolkit._io import atomic_write_text
from nbtoolkit.report.compare import compare
from nbtoolkit.report.render import render
from nbtoolkit.report.run import run_context
from nbtoolkit.report.tables import index_context, sweep_context

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord, Store

__all__ = [
    "render_comparison_report",
    "render_index_report",
    "render_run_report",
    "render_sweep_report",
    "write_comparison_report",
    "write_index_report",
    "write_run_report",
    "write_sweep_report",
]

INDEX_SCRIPT = (
    "(function(){var d=JSON.parse(document.getElementById('nbtk-search-data').textContent);"
    "var rows=document.querySelectorAll('[data-search-index]');"
    "var box=document.getElementById('nbtk-search');var count=document.getElementById('nbtk-count');"
    "box.addEventListener('input',function(){var q=box.value.trim().toLowerCase();var n=0;"
    "rows.forEach(function(r){var hit=!q||d[+r.getAttribute('data-search-index')].indexOf(q)>=0;"
    "r.hidden=!hit;if(hit){n++;}});count.textContent=String(n);});})();"
)


def _store(store: Store | None) -> Store:
    if store is not None:
        return store
    from nbtoolkit.store import open_store  # the store loads SQLAlchemy: only when needed

    return open_store()


def _record(store: Store, run: str | RunRecord) -> RunRecord:
    return store.get_run(run) if isinstance(run, str) else run


def _write(path: str | Path, html: str) -> Path:
    target = Path(path)
    atomic_write_text(target, html)
    return target


def render_run_report(run: str | RunRecord, *, store: Store | None = None,
                      baseline: str | RunRecord | None = None, parallel: bool = False) -> str:
    """Render the review report of one run as an HTML string.

    Args:
        run: run id, unique prefix or record.
        store: the project store (default: the current project's).
        baseline: compare with this run instead of the declared baseline; the criteria are then
            re-evaluated against it.
        parallel: render the embedded notebook in a forked child process meanwhile (used by
            the CLI; leave off inside a Jupyter kernel).

    Returns:
        A complete, self-contained HTML document.

    Raises:
        RunNotFoundError: a run id matches nothing.
    """
    store = _store(store)
    record = _record(store, run)
    base = _record(store, baseline) if baseline is not None else None
    if base is None and record.baseline_run_id and store.run_exists(record.baseline_run_id):
        base = store.get_run(record.baseline_run_id)
    return render("report_run.html.j2", **run_context(record, store, base, parallel=parallel))


def write_run_report(run: str | RunRecord, path: str | Path, *, store: Store | None = None,
                     baseline: str | RunRecord | None = None, parallel: bool = False) -> Path:
    """Write the run report to ``path`` atomically (see :func:`render_run_report`)."""
    return _write(path, render_run_report(run, store=store, baseline=baseline, parallel=parallel))


def render_comparison_report(a: str | RunRecord, b: str | RunRecord, *, store: Store | None = None) -> str:
    """Render the comparison of run ``b`` against reference run ``a`` as an HTML document."""
    comp = compare(a, b, store=_store(store))
    title = f"{comp.b.experiment} {comp.b.run_id[:8]} vs {comp.a.experiment} {comp.a.run_id[:8]}"
    return render("report_comparison.html.j2", kind="comparison", title=title, c=comp)


def write_comparison_report(a: str | RunRecord, b: str | RunRecord, path: str | Path, *,
                            store: Store | None = None) -> Path:
    """Write the comparison report (``b`` against reference ``a``) to ``path`` atomically.

    Args:
        a: the reference run (usually the baseline): id, prefix or record.
        b: the candidate run.
        path: the HTML file to write.
        store: the project store (default: the current project's).

    Returns:
        The path written.
    """
    return _write(path, render_comparison_report(a, b, store=store))


def render_sweep_report(sweep_id: str, *, store: Store | None = None, sort: str | None = None) -> str:
    """Render the sweep report: children sorted by the target metric, seed groups, plots."""
    return render("report_sweep.html.j2", **sweep_context(_store(store), sweep_id, sort=sort))


def write_sweep_report(sweep_id: str, path: str | Path, *, store: Store | None = None,
                       sort: str | None = None) -> Path:
    """Write the sweep report to ``path`` atomically.

    Args:
        sweep_id: the sweep id (or a unique prefix).
        path: the HTML file to write.
        store: the project store (default: the current project's).
        sort: sort by this metric instead of the first criterion's metric.

    Raises:
        RunNotFoundError: no sweep has this id.
    """
    return _write(path, render_sweep_report(sweep_id, store=store, sort=sort))


def render_index_report(*, store: Store | None = None) -> str:
    """Render the experiment log (every experiment, searchable offline)."""
    return render("report_index.html.j2", inline_script=INDEX_SCRIPT, **index_context(_store(store)))


def write_index_report(path: str | Path, *, store: Store | None = None) -> Path:
    """Write the experiment log to ``path`` atomically."""
    return _write(path, render_index_report(store=store))


