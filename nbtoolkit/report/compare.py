"""The comparison of two runs, shared by the HTML reports and ``nbtk.compare(a, b)``.

``a`` is the reference (usually the baseline) and ``b`` the candidate: every difference is
``b - a``. "Only what changed" comes first: changed parameters, metric differences (with paired
bootstrap intervals where both runs logged predictions on the same examples), environment,
code and data drift; unchanged parameters are listed last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit import evidence, stats
from nbtoolkit._format import fmt_fixed, fmt_interval, fmt_signed, metric_decimals
from nbtoolkit.errors import ArtifactStoreUnavailableError

if TYPE_CHECKING:
    from nbtoolkit.stats import Interval, McNemarResult, Predictions
    from nbtoolkit.store import RunRecord, Store

_MISSING = object()


@dataclass(frozen=True)
class ParamChange:
    """One parameter in two runs; ``status`` is ``changed``, ``added``, ``removed`` or ``same``."""

    name: str
    a: Any
    b: Any
    status: str


@dataclass(frozen=True)
class MetricChange:
    """One metric in two runs.

    Attributes:
        name: the metric name.
        a: the reference run's value (``None`` if absent).
        b: the candidate's value (``None`` if absent).
        difference: ``b - a`` of the logged values.
        interval: paired bootstrap interval of the difference, computed from predictions.
        paired_difference: ``b - a`` recomputed from the predictions (what the interval is about).
        higher_is_better: the metric's direction when known.
    """

    name: str
    a: float | None
    b: float | None
    difference: float | None
    interval: Interval | None = None
    paired_difference: float | None = None
    higher_is_better: bool | None = None
    no_interval_reason: str | None = None

    @property
    def significant(self) -> bool:
        """Whether the interval excludes zero."""
        return self.interval is not None and (self.interval.low > 0 or self.interval.high < 0)


@dataclass
class Comparison:
    """What differs between run ``a`` (reference) and run ``b`` (candidate).

    Build one with :func:`compare`. Displays inline in a notebook (``_repr_html_``) with the same
    template fragment the HTML comparison report uses.
    """

    a: RunRecord
    b: RunRecord
    params: list[ParamChange] = field(default_factory=list)
    metrics: list[MetricChange] = field(default_factory=list)
    paired_metrics: list[MetricChange] = field(default_factory=list)
    mcnemar: McNemarResult | None = None
    shared_examples: int = 0
    predictions: tuple[bool, bool] = (False, False)
    env_changes: list[str] = field(default_factory=list)
    env_available: bool = False
    code_changes: list[tuple[str, str, str]] = field(default_factory=list)
    data_changes: list[tuple[str, str, str]] = field(default_factory=list)
    stats_error: str | None = None
    #: the candidate's and the reference's predictions, when both were read (for curves)
    pred_b: Predictions | None = field(default=None, repr=False)
    pred_a: Predictions | None = field(default=None, repr=False)

    @property
    def task(self) -> str | None:
        """The prediction task (``binary``, ``multiclass``, ``regression``) when known."""
        return self.pred_b.task if self.pred_b is not None else None

    @property
    def mcnemar_note(self) -> str:
        """McNemar's result in words, naming which run is right alone; or why there is none.

        The test runs on (candidate, reference): ``only_a`` counts the examples only the
        candidate classifies correctly, ``only_b`` those only the reference does.
        """
        m = self.mcnemar
        if m is not None:
            return (f"Accuracy: {m.describe()}: the candidate alone is right on {m.only_a} "
                    f"example{'s' if m.only_a != 1 else ''}, the reference alone on {m.only_b}.")
        if not self.shared_examples:
            return ""
        if self.task == "regression":
            return ("McNemar's test does not apply: these are regression predictions, and the "
                    "test compares which examples each classifier gets right.")
        return "McNemar's test does not apply: the predictions hold no class labels."

    @property
    def recommendation(self) -> str:
        """One plain line: which run to keep, why, and how sure (see :func:`recommend`)."""
        return recommend(self)

    def plots(self) -> dict[str, str | None]:
        """Both runs' curves overlaid: stepped metrics, and ROC / precision-recall when binary."""
        from nbtoolkit.report import plots

        labels = (f"candidate ({self.b.run_id[:8]})", f"reference ({self.a.run_id[:8]})")
        names = sorted(n for n in self.b.metric_steps.keys() | self.a.metric_steps.keys()
                       if self.b.metric_steps.get(n) is not None or self.a.metric_steps.get(n) is not None)
        series = {n: self.b.metric_history(n) for n in names}
        base = {n: self.a.metric_history(n) for n in names}
        curves = {label: p for label, p in zip(labels, (self.pred_b, self.pred_a), strict=True)
                  if p is not None}
        return {"steps": plots.safe_plot(plots.step_curves, series, baseline=base, labels=labels),
                "curves": plots.safe_plot(plots.roc_pr_curves, curves) if curves else None}

    @property
    def changed_params(self) -> list[ParamChange]:
        return [p for p in self.params if p.status != "same"]

    @property
    def same_params(self) -> list[ParamChange]:
        return [p for p in self.params if p.status == "same"]

    @property
    def interval_note(self) -> str:
        """A plain sentence on whether differences carry intervals."""
        if self.stats_error:
            return f"No interval: the predictions could not be read ({self.stats_error})."
        if self.shared_examples:
            return (f"Intervals: paired bootstrap over the {self.shared_examples} examples both "
                    "runs predicted (95%, 1,000 resamples, fixed seed).")
        missing = [label for label, has in zip(("reference", "candidate"), self.predictions,
                                               strict=True) if not has]
        if missing:
            return ("No interval: only single metric values exist (the " + " and ".join(missing)
                    + " run logged no predictions), so differences are point values.")
        return ("No interval: the runs' predictions share no examples (or their labels "
                "disagree), so differences are point values.")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary."""
        return {
            "a": self.a.run_id, "b": self.b.run_id,
            "params": [vars(p) for p in self.changed_params],
            "metrics": [{"name": m.name, "a": m.a, "b": m.b, "difference": m.difference,
                         "interval": m.interval.to_dict() if m.interval else None}
                        for m in self.metrics],
            "env": self.env_changes, "code": self.code_changes, "data": self.data_changes,
            "mcnemar": vars(self.mcnemar) if self.mcnemar else None,
            "task": self.task, "recommendation": self.recommendation,
        }

    def html_fragment(self) -> str:
        """The comparison as an HTML fragment (no page wrapper, no script)."""
        from nbtoolkit.report.render import environment

        return environment().get_template("report_comparison_body.html.j2").render(c=self)

    def _repr_html_(self) -> str:
        from nbtoolkit.report.render import environment

        css = environment().get_template("report_style.css.j2").render()
        return f'<div class="nbtk-report"><style>{css}</style>{self.html_fragment()}</div>'

    def __repr__(self) -> str:
        lines = [f"Comparison {self.a.run_id[:8]} ({self.a.experiment}) -> "
                 f"{self.b.run_id[:8]} ({self.b.experiment})"]
        for p in self.changed_params:
            lines.append(f"  param {p.name}: {p.a!r} -> {p.b!r} ({p.status})")
        for m in self.metrics:
            if m.difference is not None:
                d = metric_decimals(m.a, m.b)
                extra = (f" {fmt_interval(m.interval.low, m.interval.high, d, level=m.interval.level)}"
                         if m.interval else "")
                lines.append(f"  metric {m.name}: {fmt_fixed(m.a, d)} -> {fmt_fixed(m.b, d)} "
                             f"(diff {fmt_signed(m.difference, d)}{extra})")
        lines += [f"  env {line}" for line in self.env_changes]
        lines += [f"  code {k}: {x} -> {y}" for k, x, y in self.code_changes]
        lines += [f"  data {k}: {x} -> {y}" for k, x, y in self.data_changes]
        lines.append(f"  recommendation: {self.recommendation}")
        return "\n".join(lines)


def _evidence(m: MetricChange) -> str:
    """``roc_auc +0.0412 (95% interval [+0.0213, +0.0608])`` for one metric."""
    d = metric_decimals(m.a, m.b)
    iv = m.interval
    tail = f" (95% interval {fmt_interval(iv.low, iv.high, d)})" if iv is not None else ""
    return f"{m.name} {fmt_signed(m.paired_difference if iv is not None else m.difference, d)}{tail}"


def _how_sure(directed: list[MetricChange], decisive: list[MetricChange]) -> str:
    if decisive:
        return "sure: the paired 95% interval excludes zero"
    if any(m.interval is not None for m in directed):
        return "not sure: the paired 95% intervals include zero"
    return "not sure: single metric values only, no intervals (log predictions with ids for them)"


def recommend(c: Comparison) -> str:
    """Which run to keep, why, and how sure: one plain sentence for the end of the report.

    The candidate is recommended when its verdict is ``supported`` and no metric with a known
    direction is significantly worse; the reference is kept when the candidate did not finish,
    was rejected, or is significantly worse somewhere; otherwise there is no clear winner.
    "Sure" means a paired bootstrap interval excludes zero.
    """
    cand, ref = f"candidate {c.b.run_id[:8]}", f"reference {c.a.run_id[:8]}"
    if c.b.status != "finished":
        return f"Keep the {ref}: the {cand} {c.b.status} and has no verdict."
    directed = [m for m in c.metrics + c.paired_metrics
                if m.higher_is_better is not None and m.difference is not None]
    better = [m for m in directed if m.significant and (m.interval.low > 0) == m.higher_is_better]  # type: ignore[union-attr]
    worse = [m for m in directed if m.significant and m not in better]
    if worse or c.b.verdict == "rejected":
        why = (f"it is worse on {', '.join(_evidence(m) for m in worse[:2])}" if worse
               else "its verdict is rejected")
        return f"Keep the {ref}: {why}; {_how_sure(directed, worse)}."
    if c.b.verdict == "supported":
        why = (f"its verdict is supported and it is better on "
               f"{', '.join(_evidence(m) for m in better[:2])}" if better
               else "its verdict is supported")
        return f"Adopt the {cand}: {why}; {_how_sure(directed, better)}."
    shown = ", ".join(_evidence(m) for m in directed[:2])
    return (f"No clear winner between the {cand} and the {ref}: its verdict is "
            f"{c.b.verdict or 'missing'}{' (' + shown + ')' if shown else ''}; "
            f"{_how_sure(directed, better)}.")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _short(v: Any) -> str:
    return "—" if v is None else str(v)[:12]


def param_changes(a: dict[str, Any], b: dict[str, Any]) -> list[ParamChange]:
    """Parameters of two runs, changed/added/removed first (by name), then unchanged ones."""
    rows = []
    for name in sorted(a.keys() | b.keys()):
        va, vb = a.get(name, _MISSING), b.get(name, _MISSING)
        status = ("added" if va is _MISSING else "removed" if vb is _MISSING
                  else "same" if va == vb else "changed")
        rows.append(ParamChange(name, None if va is _MISSING else va, None if vb is _MISSING else vb, status))
    rows.sort(key=lambda p: p.status == "same")
    return rows


def _env(comp: Comparison, a: RunRecord, b: RunRecord) -> None:
    la, lb = a.lock(), b.lock()
    if la is None or lb is None:
        return
    comp.env_available = True
    diff = la.diff(lb)
    comp.env_changes = [line for line in diff.summary_lines() if not line.startswith(("code ", "data "))]
    for key, value in diff.code.items():
        if key == "diff_changed":
            comp.code_changes.append(("uncommitted changes", "", "differ"))
        elif key == "untracked":
            comp.code_changes.append(("untracked files", "", ", ".join(value)))
        elif isinstance(value, (list, tuple)) and len(value) == 2:
            comp.code_changes.append((key, _short(value[0]), _short(value[1])))


def _paired(comp: Comparison, store: Store) -> dict[str, Any]:
    """Read both runs' predictions into ``comp`` and pair them: differences by metric name.

    Unreadable predictions leave the comparison on point values with ``stats_error`` saying why.
    """
    try:
        comp.pred_b = evidence.load_predictions(store, comp.b)
        comp.pred_a = evidence.load_predictions(store, comp.a)
        if comp.pred_b is None or comp.pred_a is None:
            return {}
        diffs, comp.mcnemar, comp.shared_examples = stats.paired_differences(comp.pred_b, comp.pred_a)
        return diffs
    except ArtifactStoreUnavailableError:
        raise  # the store itself cannot be used: no comparison that silently lacks its statistics
    except Exception as exc:  # unreadable predictions: compare on point values, say why
        comp.stats_error = f"{type(exc).__name__}: {exc}"
        return {}


def compare(a: str | RunRecord, b: str | RunRecord, *, store: Store | None = None) -> Comparison:
    """Compare run ``b`` (candidate) with run ``a`` (reference), "only what changed" first.

    Args:
        a: the reference run (id, unique prefix or record), usually the baseline.
        b: the candidate run.
        store: the project store (default: the current project's).

    Returns:
        A :class:`Comparison`; display it in a notebook or render it into a report.

    Raises:
        RunNotFoundError: a run id matches nothing.
    """
    if store is None:
        from nbtoolkit.store import open_store

        store = open_store()
    ra = a if not isinstance(a, str) else store.get_run(a)
    rb = b if not isinstance(b, str) else store.get_run(b)
    comp = Comparison(a=ra, b=rb, params=param_changes(ra.params, rb.params))
    comp.predictions = (bool(ra.artifacts_of("predictions")), bool(rb.artifacts_of("predictions")))
    diffs = _paired(comp, store) if all(comp.predictions) else {}
    used: set[str] = set()
    for name in sorted(ra.metrics.keys() | rb.metrics.keys()):
        va, vb = _num(ra.metrics.get(name)), _num(rb.metrics.get(name))
        spec = stats.resolve_metric(name)
        pd = diffs.get(spec.name) if spec is not None else None
        if pd is not None:
            used.add(spec.name)  # type: ignore[union-attr]
        diff = vb - va if va is not None and vb is not None else None
        if diff is not None and math.isnan(diff):
            diff = None
        why = None
        if pd is None and comp.pred_b is not None and comp.shared_examples:
            why = stats.why_not(comp.pred_b, name)
        comp.metrics.append(MetricChange(
            name, va, vb, diff, pd.interval if pd else None, pd.difference if pd else None,
            spec.higher_is_better if spec else None, why))
    for name, pd in diffs.items():
        if name not in used:
            comp.paired_metrics.append(MetricChange(name, pd.value_b, pd.value_a, pd.difference,
                                                    pd.interval, pd.difference, pd.higher_is_better))
    comp.metrics.sort(key=lambda m: (m.difference is None or m.difference == 0, m.name))
    _env(comp, ra, rb)
    da = {d.path: d.digest for d in ra.data}
    db = {d.path: d.digest for d in rb.data}
    for path in sorted(da.keys() | db.keys()):
        if da.get(path) != db.get(path):
            comp.data_changes.append((path, _short(da.get(path)), _short(db.get(path))))
    if ra.notebook_hash != rb.notebook_hash and (ra.notebook_hash or rb.notebook_hash):
        if not any(k == "notebook" for k, _, _ in comp.code_changes):
            comp.code_changes.append(("notebook code", _short(ra.notebook_hash), _short(rb.notebook_hash)))
    return comp
