"""``ExperimentForm``: fill in a declaration and insert a ready ``%%experiment`` cell.

The text generation and validation are plain functions (:func:`criterion_text`,
:func:`experiment_cell`, :func:`check_form`) that the widget calls on every change. The
widget inserts the cell through the nbtoolkit JupyterLab extension: it opens a comm on the
target ``nbtoolkit.insert_cell`` with ``{"source": text}``; the extension inserts the cell
below the active cell and answers ``{"inserted": true}``. A button callback runs outside an
execute request, so IPython's ``set_next_input`` cannot do this. Without the extension
(classic Notebook, VS Code) the comm is closed unanswered and the form says to copy the
cell text from its preview.
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import NbToolkitError
from nbtoolkit.html import colour, coloured, esc

if TYPE_CHECKING:
    from nbtoolkit.store import Store

COMM_TARGET = "nbtoolkit.insert_cell"
OPERATORS = (">=", "<=", ">", "<", "==")
DEFAULT_BODY = (
    "# Your experiment code. Assign or nbtk.log_metric() the metrics named in Success;\n"
    "# the verdict is computed when the cell ends.\n"
)


@dataclass(frozen=True)
class CriterionRow:
    """One criterion as entered in the form.

    Attributes:
        metric: the metric name.
        op: one of ``>= <= > < ==``.
        mode: ``"value"`` (compare with ``target``) or ``"baseline"`` (with the baseline's
            value of the same metric plus ``delta``).
        target: the absolute target, as typed.
        delta: the offset added to the baseline's value, as typed (may be empty).
    """

    metric: str
    op: str = ">="
    mode: str = "value"
    target: str = ""
    delta: str = ""


def criterion_text(row: CriterionRow) -> str:
    """The criterion source for a row, validated.

    Returns:
        The normalised criterion text, e.g. ``"roc_auc >= baseline.roc_auc + 0.02"``.

    Raises:
        CriteriaError: the row does not make a valid criterion (``reason`` says why).
    """
    from nbtoolkit.criteria import parse_criterion
    from nbtoolkit.errors import CriteriaError

    metric = row.metric.strip()
    if not metric:
        raise CriteriaError("", "the metric name is empty")
    if row.mode == "baseline":
        delta = row.delta.strip()
        if delta and not delta.startswith(("+", "-")):
            delta = f"+ {delta}"
        elif delta:
            delta = f"{delta[0]} {delta[1:].strip()}"
        text = f"{metric} {row.op} baseline.{metric} {delta}".strip()
    else:
        if not row.target.strip():
            raise CriteriaError(f"{metric} {row.op}", "the target value is empty")
        text = f"{metric} {row.op} {row.target.strip()}"
    return parse_criterion(text).text


def _doc_text(value: str) -> str:
    """One line of docstring text that evaluates back to ``value`` (backslashes, quotes kept)."""
    flat = " ".join(value.split())
    return flat.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def experiment_cell(
    name: str,
    *,
    hypothesis: str = "",
    criteria: list[str] | tuple[str, ...] = (),
    scope: str = "",
    owner: str = "",
    until: str = "",
    baseline: str | None = None,
    body: str = DEFAULT_BODY,
) -> str:
    """The source of an ``%%experiment`` cell with the declaration in its docstring.

    Args:
        name: the experiment name.
        hypothesis: what the experiment should show.
        criteria: criterion texts (one ``Success:`` line each).
        scope: what the result applies to.
        owner: who is responsible.
        until: decision date ``YYYY-MM-DD``.
        baseline: run id or experiment name, passed as ``--baseline``.
        body: the code after the docstring.
    """
    line = f"%%experiment {shlex.quote(name)}"
    if baseline:
        line += f" --baseline {shlex.quote(baseline)}"
    doc = []
    if hypothesis.strip():
        doc.append(f"Hypothesis: {_doc_text(hypothesis)}")
    doc += [f"Success: {_doc_text(c)}" for c in criteria]
    for key, value in (("Scope", scope), ("Owner", owner), ("Until", until)):
        if value.strip():
            doc.append(f"{key}: {_doc_text(value)}")
    text = line + "\n"
    if doc:
        text += '"""\n' + "\n".join(doc) + '\n"""\n'
    return text + (body if body.endswith("\n") or not body else body + "\n")


@dataclass
class FormCheck:
    """Result of validating the form.

    Attributes:
        cell: the generated cell text (``""`` when invalid).
        errors: field name -> reason, e.g. ``{"name": ..., "criterion 2": ...}``.
        criteria: the normalised criteria of the valid rows.
        row_errors: per criterion row, ``None`` or the reason it is refused.
    """

    cell: str
    errors: dict[str, str]
    criteria: list[str]
    row_errors: list[str | None]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_form(
    name: str,
    rows: list[CriterionRow],
    *,
    hypothesis: str = "",
    scope: str = "",
    owner: str = "",
    until: str = "",
    baseline: str | None = None,
    body: str = DEFAULT_BODY,
) -> FormCheck:
    """Validate the form's values and build the cell; the cell is re-parsed as the magic would.

    Returns:
        A :class:`FormCheck`; ``ok`` is true when the cell is ready to insert.
    """
    from nbtoolkit.declaration import build_declaration, validate_name

    errors: dict[str, str] = {}
    try:
        validate_name(name.strip())
    except NbToolkitError as exc:
        errors["name"] = str(exc)
    criteria: list[str] = []
    row_errors: list[str | None] = []
    for i, row in enumerate(rows, start=1):
        if not row.metric.strip() and not row.target.strip() and not row.delta.strip():
            row_errors.append(None)  # an empty row is ignored
            continue
        try:
            criteria.append(criterion_text(row))
            if row.mode == "baseline" and not baseline:
                raise ValueError("compares with the baseline, but no baseline is picked")
            row_errors.append(None)
        except (NbToolkitError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            row_errors.append(reason)
            errors[f"criterion {i}"] = reason
    if until.strip():
        try:
            datetime.date.fromisoformat(until.strip())
        except ValueError:
            errors["until"] = f"{until.strip()!r} is not a date; write YYYY-MM-DD."
    cell = ""
    if not errors:
        cell = experiment_cell(name.strip(), hypothesis=hypothesis, criteria=criteria, scope=scope,
                               owner=owner, until=until.strip(), baseline=baseline, body=body)
        try:
            first, _, rest = cell.partition("\n")
            build_declaration(first[len("%%experiment"):], rest)
        except NbToolkitError as exc:  # e.g. a baseline name the magic refuses
            errors["cell"] = str(exc)
            cell = ""
    return FormCheck(cell=cell, errors=errors, criteria=criteria, row_errors=row_errors)


def baseline_choices(store: Store | None, *, limit: int = 30) -> list[tuple[str, str]]:
    """``(label, value)`` options for the baseline picker: experiments, then recent finished runs."""
    from nbtoolkit.server.data import run_summaries

    options: list[tuple[str, str]] = [("(no baseline)", "")]
    if store is None:
        return options
    for exp in store.experiment_names():
        options.append((f"experiment {exp} (latest supported run)", exp))
    for run in run_summaries(store, status="finished", limit=limit):
        label = f"run {run['run_id'][:8]} · {run['experiment']} · {run['verdict'] or 'no verdict'}"
        options.append((label, run["run_id"][:12]))
    return options


class ExperimentForm:
    """A form that writes a ready ``%%experiment`` cell below the active cell.

    Fields: name, hypothesis, criteria rows (metric, operator, absolute target or baseline +
    delta), scope, owner, until, a baseline picker filled from the store and the cell body.
    Every change re-validates; a malformed field or criterion row shows its reason and
    disables "Insert cell". Display the form in a notebook (it has ``_ipython_display_``).

    Args:
        store: the store the baseline picker reads (default: the project's, when it exists).
        name: initial experiment name.
        rows: number of empty criterion rows to start with.
    """

    def __init__(self, *, store: Store | None = None, name: str = "", rows: int = 1) -> None:
        import ipywidgets as W

        if store is None:
            from nbtoolkit.server.data import open_project_store

            store = open_project_store(".")
        self.store = store
        layout = W.Layout(width="auto")
        self.name = W.Text(value=name, description="Name", placeholder="churn-gbm", layout=layout)
        self.hypothesis = W.Textarea(description="Hypothesis", placeholder="What should this show?",
                                     layout=W.Layout(width="auto", height="3.5em"))
        self.scope = W.Text(description="Scope", placeholder="what the result applies to", layout=layout)
        self.owner = W.Text(description="Owner", layout=layout)
        self.until = W.Text(description="Until", placeholder="YYYY-MM-DD", layout=layout)
        self.baseline = W.Dropdown(description="Baseline", options=baseline_choices(store), value="",
                                   layout=layout)
        self.body = W.Textarea(value=DEFAULT_BODY, description="Code",
                               layout=W.Layout(width="auto", height="5em"))
        self.rows: list[dict[str, Any]] = []
        self.rows_box = W.VBox()
        self.add_row_button = W.Button(description="Add criterion", icon="plus")
        self.insert_button = W.Button(description="Insert cell", button_style="primary", icon="arrow-down")
        self.messages = W.HTML()
        self.preview = W.Textarea(description="Cell", disabled=True,
                                  layout=W.Layout(width="auto", height="10em"))
        self.status = W.HTML()
        for w, cls in ((self.name, "name"), (self.hypothesis, "hypothesis"), (self.scope, "scope"),
                       (self.owner, "owner"), (self.until, "until"), (self.baseline, "baseline"),
                       (self.body, "body"), (self.add_row_button, "add-row"),
                       (self.insert_button, "insert"), (self.messages, "messages"),
                       (self.preview, "preview"), (self.status, "status")):
            w.add_class(f"nbtk-form-{cls}")
        for w in (self.name, self.hypothesis, self.scope, self.owner, self.until, self.baseline, self.body):
            w.observe(self._changed, names="value")
        self.add_row_button.on_click(lambda _: self.add_row())
        self.insert_button.on_click(lambda _: self.insert())
        for _ in range(max(1, rows)):
            self.add_row()
        head = W.HTML("<b>New experiment</b> &mdash; fills an <code>%%experiment</code> cell")
        self.widget = W.VBox([
            head, self.name, self.hypothesis,
            W.HTML("<b>Success criteria</b>"), self.rows_box, self.add_row_button,
            self.scope, self.owner, self.until, self.baseline, self.body,
            self.messages, self.preview, W.HBox([self.insert_button, self.status]),
        ])
        self.widget.add_class("nbtk-experiment-form")
        self.check = self.validate()

    # ------------------------------------------------------------------ rows
    def add_row(self, metric: str = "", op: str = ">=", *, mode: str = "value", target: str = "",
                delta: str = "") -> dict[str, Any]:
        """Add a criterion row (its widgets are returned, keyed by field)."""
        import ipywidgets as W

        row = {
            "metric": W.Text(value=metric, placeholder="metric", layout=W.Layout(width="10em")),
            "op": W.Dropdown(options=OPERATORS, value=op, layout=W.Layout(width="5em")),
            "mode": W.Dropdown(options=[("value", "value"), ("baseline +", "baseline")], value=mode,
                               layout=W.Layout(width="8em")),
            "target": W.Text(value=target, placeholder="0.9", layout=W.Layout(width="7em")),
            "delta": W.Text(value=delta, placeholder="+0.02", layout=W.Layout(width="7em")),
            "status": W.HTML(layout=W.Layout(width="auto")),
            "remove": W.Button(icon="trash", tooltip="Remove", layout=W.Layout(width="3em")),
        }
        for key, w in row.items():
            w.add_class(f"nbtk-crit-{key}")
            if key not in ("status", "remove"):
                w.observe(self._changed, names="value")
        box = W.HBox([row[k] for k in ("metric", "op", "mode", "target", "delta", "remove", "status")])
        box.add_class("nbtk-criterion-row")
        row["box"] = box
        row["remove"].on_click(lambda _: self.remove_row(row))
        self.rows.append(row)
        self.rows_box.children = [r["box"] for r in self.rows]
        self._sync_mode(row)
        if hasattr(self, "widget"):
            self.check = self.validate()
        return row

    def remove_row(self, row: dict[str, Any]) -> None:
        """Remove a criterion row."""
        if row in self.rows:
            self.rows.remove(row)
            self.rows_box.children = [r["box"] for r in self.rows]
            self.check = self.validate()

    @staticmethod
    def _sync_mode(row: dict[str, Any]) -> None:
        baseline = row["mode"].value == "baseline"
        row["target"].layout.display = "none" if baseline else None
        row["delta"].layout.display = None if baseline else "none"

    def criterion_rows(self) -> list[CriterionRow]:
        """The rows' current values."""
        return [CriterionRow(r["metric"].value, r["op"].value, r["mode"].value, r["target"].value,
                             r["delta"].value) for r in self.rows]

    # ------------------------------------------------------------------ validation
    def _changed(self, change: Any = None) -> None:
        for row in self.rows:
            self._sync_mode(row)
        self.check = self.validate()

    def validate(self) -> FormCheck:
        """Re-check every field, mark invalid rows and refresh the preview."""
        check = check_form(self.name.value, self.criterion_rows(), hypothesis=self.hypothesis.value,
                           scope=self.scope.value, owner=self.owner.value, until=self.until.value,
                           baseline=self.baseline.value or None, body=self.body.value)
        for row, reason in zip(self.rows, check.row_errors, strict=True):
            empty = not row["metric"].value.strip()
            if reason:
                row["status"].value = coloured(f"✘ {reason}", "fail", bold=False, css_class="nbtk-invalid")
            elif empty:
                row["status"].value = ""
            else:
                row["status"].value = coloured("✔", "pass", bold=False, css_class="nbtk-valid")
        shown = {k: v for k, v in check.errors.items() if k != "name" or self.name.value}
        self.messages.value = "".join(
            f'<div class="nbtk-invalid" style="color:{colour("fail")}">{esc(k)}: {esc(v)}</div>'
            for k, v in shown.items())
        self.preview.value = check.cell
        self.insert_button.disabled = not check.ok
        return check

    # ------------------------------------------------------------------ insertion
    def insert(self) -> bool:
        """Ask the JupyterLab extension to insert the cell below the active cell.

        Returns:
            ``False`` when the form is invalid (nothing is sent). The answer arrives later and
            updates ``status``; without the extension, the status says to copy the preview.
        """
        check = self.validate()
        if not check.ok:
            self.status.value = coloured("Fix the marked fields first.", "fail", bold=False, css_class="nbtk-invalid")
            return False
        from comm import create_comm

        answered = {"done": False}
        self.status.value = '<span class="nbtk-pending">Inserting…</span>'

        def on_msg(msg: dict[str, Any]) -> None:
            answered["done"] = True
            if msg.get("content", {}).get("data", {}).get("inserted"):
                self.status.value = coloured("Inserted below the active cell.", "pass", bold=False, css_class="nbtk-inserted")
            else:
                self._copy_hint()

        def on_close(msg: dict[str, Any]) -> None:
            if not answered["done"]:
                self._copy_hint()

        comm = create_comm(target_name=COMM_TARGET, data={"source": check.cell, "schema": "nbtoolkit.insert_cell.v1"})
        comm.on_msg(on_msg)
        comm.on_close(on_close)
        return True

    def _copy_hint(self) -> None:
        self.status.value = ('<span class="nbtk-copy">The nbtoolkit JupyterLab extension did not insert '
                             "the cell: copy it from the preview above.</span>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = "ready" if self.check.ok else f"{len(self.check.errors)} problem(s)"
        return f"<ExperimentForm name={self.name.value!r} {state}>"
