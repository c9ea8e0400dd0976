"""``RunBrowser`` (``nbtk.browse()``): filter runs, compare two, write a run's HTML report."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import NbToolkitError
from nbtoolkit.html import PALETTE, coloured, esc, fmt_number, verdict_badge
from nbtoolkit.report.compare import compare

if TYPE_CHECKING:
    from nbtoolkit.store import Store

ALL = "(all)"
MAX_ROWS = 200


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def runs_table_html(runs: list[dict[str, Any]], *, max_metrics: int = 4) -> str:
    """An HTML table of run summaries (see :func:`nbtoolkit.server.data.run_summaries`)."""
    if not runs:
        return f'<div class="nbtk-browser-empty" style="color:{PALETTE["grey"]}">No runs match the filters.</div>'
    names: list[str] = []
    for run in runs:
        for name in run["metrics"]:
            if name not in names:
                names.append(name)
    names = names[:max_metrics]
    head = "".join(f"<th>{esc(n)}</th>" for n in ["run", "experiment", "verdict", "started", *names])
    body = []
    for run in runs:
        cells = [
            f'<td style="font-family:monospace">{esc(run["run_id"][:8])}</td>',
            f"<td>{esc(run['experiment'])}</td>",
            f"<td>{verdict_badge(run['verdict'], run['status'])}</td>",
            f"<td>{esc(_when(run['started']))}</td>",
            *(f"<td>{esc(fmt_number(run['metrics'].get(n)))}</td>" for n in names),
        ]
        body.append(f'<tr class="nbtk-browser-row" data-run-id="{esc(run["run_id"])}">{"".join(cells)}</tr>')
    return (
        '<table class="nbtk-runs-table" style="border-collapse:collapse;font-size:12px">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def compare_html(store: Store, a: str, b: str) -> str:
    """HTML comparing two runs (:func:`nbtoolkit.compare`'s rich output)."""
    return compare(store.get_run(a), store.get_run(b), store=store)._repr_html_()


def report_link(path: Path) -> str:
    """A link to a written report: relative to the working folder when inside it."""
    try:
        href = os.path.relpath(path, Path.cwd())
        if href.startswith(".."):
            href = path.resolve().as_uri()
    except ValueError:  # another drive on Windows
        href = path.resolve().as_uri()
    return (f'<a class="nbtk-report-link" href="{esc(href)}" target="_blank" rel="noopener">'
            f"{esc(path.name)}</a> ({esc(path)})")


class RunBrowser:
    """Browse the project's runs in a notebook.

    Filters: experiment, verdict, status and free text (id, experiment, hypothesis, a
    ``param=value`` pair or a metric name). Pick two runs and press "Compare" for the inline
    comparison (:func:`nbtoolkit.compare` when available), or one run and "Report" to write its
    HTML report into the store's ``reports/`` folder and get a link.

    Args:
        store: the store to browse (default: the project's).
        experiment: initial experiment filter.
    """

    def __init__(self, *, store: Store | None = None, experiment: str | None = None) -> None:
        import ipywidgets as W

        if store is None:
            from nbtoolkit.store import open_store

            store = open_store()
        self.store = store
        self.experiment = W.Dropdown(description="Experiment", options=[ALL])
        self.verdict = W.Dropdown(description="Verdict",
                                  options=[ALL, "supported", "rejected", "inconclusive", "none"])
        from nbtoolkit.store import STATUSES

        self.status_filter = W.Dropdown(description="Status", options=[ALL, *STATUSES])
        self.text = W.Text(description="Search", placeholder="id, name, hypothesis, lr=0.1…",
                           continuous_update=True)
        self.refresh_button = W.Button(description="Refresh", icon="refresh")
        self.table = W.HTML()
        self.picker = W.SelectMultiple(description="Pick", options=[], rows=6, layout=W.Layout(width="auto"))
        self.compare_button = W.Button(description="Compare", icon="columns", disabled=True)
        self.report_button = W.Button(description="Report", icon="file", disabled=True)
        self.message = W.HTML()
        self.output = W.HTML()
        for w, cls in ((self.experiment, "experiment"), (self.verdict, "verdict"),
                       (self.status_filter, "status"), (self.text, "text"), (self.refresh_button, "refresh"),
                       (self.table, "table"), (self.picker, "picker"), (self.compare_button, "compare"),
                       (self.report_button, "report"), (self.message, "message"), (self.output, "output")):
            w.add_class(f"nbtk-browser-{cls}")
        self.runs: list[dict[str, Any]] = []
        self.refresh()
        if experiment is not None and experiment in self.experiment.options:
            self.experiment.value = experiment
        for w in (self.experiment, self.verdict, self.status_filter, self.text):
            w.observe(lambda _: self.apply_filters(), names="value")
        self.picker.observe(lambda _: self._picked(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.compare_button.on_click(lambda _: self.compare())
        self.report_button.on_click(lambda _: self.write_report())
        self.widget = W.VBox([
            W.HBox([self.experiment, self.verdict]),
            W.HBox([self.status_filter, self.text, self.refresh_button]),
            self.table, self.picker, W.HBox([self.compare_button, self.report_button]),
            self.message, self.output,
        ])
        self.widget.add_class("nbtk-run-browser")
        self.apply_filters()

    # ------------------------------------------------------------------ data
    def refresh(self) -> None:
        """Re-read experiment names and runs from the store."""
        names = [ALL, *self.store.experiment_names()]
        current = self.experiment.value
        self.experiment.options = names
        self.experiment.value = current if current in names else ALL
        if hasattr(self, "widget"):
            self.apply_filters()

    def filters(self) -> dict[str, Any]:
        """The current filters as keyword arguments of ``run_summaries``."""
        def pick(widget: Any) -> Any:
            return None if widget.value == ALL else widget.value

        return {"experiment": pick(self.experiment), "verdict": pick(self.verdict),
                "status": pick(self.status_filter), "text": self.text.value.strip() or None}

    def apply_filters(self) -> list[dict[str, Any]]:
        """Re-query with the current filters, refresh the table and the picker."""
        from nbtoolkit.server.data import run_summaries

        self.runs = run_summaries(self.store, limit=MAX_ROWS, **self.filters())
        self.table.value = runs_table_html(self.runs)
        keep = [v for v in self.picker.value if any(r["run_id"] == v for r in self.runs)]
        self.picker.options = [
            (f"{r['run_id'][:8]} · {r['experiment']} · {r['verdict'] or r['status']} · {_when(r['started'])}",
             r["run_id"]) for r in self.runs]
        self.picker.value = tuple(keep)
        self._picked()
        return self.runs

    def _picked(self) -> None:
        n = len(self.picker.value)
        self.compare_button.disabled = n != 2
        self.report_button.disabled = n < 1

    # ------------------------------------------------------------------ actions
    def select(self, *run_ids: str) -> None:
        """Pick runs by id or prefix (as if clicked in the list)."""
        ids = [self.store.resolve_run_id(r) for r in run_ids]
        self.picker.value = tuple(ids)

    def compare(self) -> str:
        """Show the comparison of the two picked runs; returns its HTML."""
        picked = list(self.picker.value)
        if len(picked) != 2:
            self.message.value = '<span class="nbtk-invalid">Pick exactly two runs to compare.</span>'
            return ""
        older, newer = sorted(self.store.get_runs(picked), key=lambda r: r.started)
        try:
            html = compare_html(self.store, older.run_id, newer.run_id)  # the older run is the reference
        except NbToolkitError as exc:
            self.message.value = coloured(str(exc), "fail", bold=False, css_class="nbtk-invalid")
            return ""
        self.message.value = ""
        self.output.value = f'<div class="nbtk-browser-comparison">{html}</div>'
        return html

    def write_report(self) -> Path | None:
        """Write the HTML report of the (first) picked run and show a link to it."""
        from nbtoolkit.server.data import write_report

        picked = list(self.picker.value)
        if not picked:
            self.message.value = '<span class="nbtk-invalid">Pick a run first.</span>'
            return None
        try:
            path = write_report(self.store, picked[0], refresh=True)
        except NbToolkitError as exc:
            self.message.value = coloured(str(exc), "fail", bold=False, css_class="nbtk-invalid")
            return None
        self.message.value = f"Report written: {report_link(path)}"
        return path

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"<RunBrowser {len(self.runs)} runs shown>"


def browse(*, store: Store | None = None, experiment: str | None = None) -> RunBrowser:
    """Open a :class:`RunBrowser` on the project's runs (display it, or end a cell with it)."""
    return RunBrowser(store=store, experiment=experiment)
