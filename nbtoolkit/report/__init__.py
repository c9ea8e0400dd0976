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
from nbtoolkit.envlock.written import record_written
from nbtoolkit.report.compare import compare
from nbtoolkit.report.render import render
from nbtoolkit.report.run import run_context
from nbtoolkit.report.tables import index_context, run_report_name, sweep_context

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
    record_written(target)  # the report never makes the git tree dirty
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


def _is_folder(path: str | Path) -> bool:
    """``-o DIR/`` (trailing slash) or an existing folder means "write a set of pages here"."""
    return str(path).endswith(("/", "\\")) or Path(path).is_dir()


def _existing_reports(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("run-*.html")} if folder.is_dir() else set()


def _write_run_pages(store: Store, run_ids: list[str], folder: Path) -> list[Path]:
    """Write one run report per id as ``folder/run-<id>.html``."""
    written = []
    for run_id in dict.fromkeys(run_ids):
        written.append(write_run_report(run_id, folder / run_report_name(run_id), store=store))
    return written


def render_sweep_report(sweep_id: str, *, store: Store | None = None, sort: str | None = None,
                        run_links: bool = False) -> str:
    """Render the sweep report: the spec, children sorted by the target metric with a line on each
    verdict, seed groups, plots (``run_links``: link each child to ``run-<id>.html`` beside it)."""
    return render("report_sweep.html.j2", **sweep_context(_store(store), sweep_id, sort=sort, run_links=run_links))


def write_sweep_report(sweep_id: str, path: str | Path, *, store: Store | None = None,
                       sort: str | None = None) -> Path:
    """Write the sweep report to ``path`` atomically.

    With a folder (``reports/``: trailing slash, or an existing folder) the sweep page
    ``sweep-<id>.html`` is written there together with one report per child
    (``run-<id>.html``), each linked from the sweep page. With a file name, children link to
    the ``run-<id>.html`` files that already sit next to it.

    Args:
        sweep_id: the sweep id (or a unique prefix).
        path: the HTML file, or a folder for the sweep page plus one page per child.
        store: the project store (default: the current project's).
        sort: sort by this metric instead of the first criterion's metric.

    Returns:
        The sweep page written.

    Raises:
        RunNotFoundError: no sweep has this id.
    """
    store = _store(store)
    if not _is_folder(path):
        target = Path(path)
        context = sweep_context(store, sweep_id, sort=sort, run_links=True)
        have = _existing_reports(target.parent)
        for r in context["runs"]:
            r["report"] = r["report"] if r["report"] in have else None
        return _write(target, render("report_sweep.html.j2", **context))
    folder = Path(path)
    context = sweep_context(store, sweep_id, sort=sort, run_links=True)
    _write_run_pages(store, [r["run_id"] for r in context["runs"]], folder)
    return _write(folder / f"sweep-{context['sweep_id'][:12]}.html", render("report_sweep.html.j2", **context))


def render_index_report(*, store: Store | None = None, reports: set[str] | frozenset[str] = frozenset()) -> str:
    """Render the experiment log (every experiment, searchable offline).

    ``reports``: run report file names beside the log; those runs link to them.
    """
    return render("report_index.html.j2", inline_script=INDEX_SCRIPT,
                  **index_context(_store(store), reports=reports))


def write_index_report(path: str | Path, *, store: Store | None = None) -> Path:
    """Write the experiment log to ``path`` atomically.

    With a folder (``log/``: trailing slash, or an existing folder) ``index.html`` is written
    there together with a report for every run the log lists (``run-<id>.html``), linked from
    it. With a file name, runs link to ``run-<id>.html`` files that already exist next to it.

    Returns:
        The experiment log written.
    """
    store = _store(store)
    if not _is_folder(path):
        target = Path(path)
        return _write(target, render_index_report(store=store, reports=_existing_reports(target.parent)))
    folder = Path(path)
    listed = index_context(store)
    run_ids = [r["run_id"] for e in listed["experiments"] for r in e["runs"]]
    pages = _write_run_pages(store, run_ids, folder)
    return _write(folder / "index.html", render_index_report(store=store, reports={p.name for p in pages}))
