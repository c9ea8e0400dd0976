"""Verdicts: criteria evaluated against a run's metrics and its baseline.

:func:`evaluate` judges each :class:`~nbtoolkit.criteria.Criterion` on point values or, where a
confidence interval of the difference with the baseline is known, on the whole interval.
It works on plain values and never reads a store: gathering a stored run's metrics, its
baseline's and the paired intervals is :func:`nbtoolkit.evidence.evaluate_run`, which the
``%%experiment`` cell, ``start_run`` and the reports all go through.

Comparisons tolerate float noise (``0.1 + 0.2`` is ``0.30000000000000004``): ``==`` is
``math.isclose(rel_tol=1e-9, abs_tol=1e-12)``, ``>=``/``<=`` also hold when the sides are that
close, and ``>``/``<`` need them to differ by more.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from nbtoolkit._format import (
    MAX_DECIMALS,
    MISSING,
    fmt_fixed,
    fmt_interval,
    fmt_signed,
    fmt_trimmed,
    metric_decimals,
)
from nbtoolkit.criteria import Criterion
from nbtoolkit.errors import NbToolkitError
from nbtoolkit.html import colour, esc
from nbtoolkit.stats.interval import Interval

Status = Literal["pass", "fail", "inconclusive"]
VerdictStatus = Literal["supported", "rejected", "inconclusive"]
VERDICT_SCHEMA_VERSION = 1


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _holds(a: float, op: str, b: float) -> bool:
    close = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if op == "==":
        return close
    if op in (">=", "<="):
        return close or (a >= b if op == ">=" else a <= b)
    return not close and (a > b if op == ">" else a < b)


def _show(x: float, decimals: int, other: float | None = None) -> str:
    """``x`` in the row's shared ``decimals`` (trailing zeros dropped, no exponent for tiny
    values); more decimals, up to full precision, when it would look equal to ``other``."""
    if other is None or x == other:
        return fmt_trimmed(x, decimals)
    for d in range(decimals, MAX_DECIMALS + 1):
        if (text := fmt_trimmed(x, d)) != fmt_trimmed(other, d):
            return text
    return repr(x)


def _as_float(value: Any) -> float | None:
    try:
        return None if isinstance(value, (str, bytes)) else float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class CriterionResult:
    """The outcome of one criterion.

    Attributes:
        criterion: the criterion evaluated.
        observed: this run's value of the metric (``None`` when not recorded).
        baseline: the baseline's value (baseline criteria only).
        bar: the threshold actually compared: the target, or baseline + offset.
        passed: ``True``/``False``, or ``None`` when it cannot be decided.
        status: ``"pass"``, ``"fail"`` or ``"inconclusive"``.
        reason: one human sentence explaining the status.
        difference: observed - baseline (baseline criteria only).
        interval: the confidence interval of the difference, when one was used.
    """

    criterion: Criterion
    observed: float | None
    baseline: float | None
    bar: float | None
    passed: bool | None
    status: Status
    reason: str
    difference: float | None = None
    interval: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict; non-finite numbers become ``None`` (``reason`` keeps them)."""
        return {
            "criterion": self.criterion.to_dict(), "observed": _finite(self.observed),
            "baseline": _finite(self.baseline), "bar": _finite(self.bar), "passed": self.passed,
            "status": self.status, "reason": self.reason, "difference": _finite(self.difference),
            "interval": self.interval.to_dict() if self.interval else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CriterionResult:
        """Rebuild from :meth:`to_dict` output; ``ValueError`` when ``status`` is unknown."""
        if d.get("status") not in get_args(Status):
            raise ValueError(f"invalid criterion result status {d.get('status')!r}")
        interval = Interval.from_dict(d["interval"]) if d.get("interval") else None
        return cls(criterion=Criterion.from_dict(d["criterion"]), observed=d.get("observed"),
                   baseline=d.get("baseline"), bar=d.get("bar"), passed=d.get("passed"),
                   status=d["status"], reason=str(d.get("reason", "")),
                   difference=d.get("difference"), interval=interval)


def criterion_cells(result: CriterionResult) -> dict[str, str]:
    """The numbers of one criterion result as shared-decimal text.

    Returns:
        ``observed``, ``target`` (operator and bar, e.g. ``>= 0.9588``), ``baseline``,
        ``difference`` and ``interval`` (``[-0.0230, +0.0000] 95%``); ``—`` where a number does
        not apply (absolute criteria have no baseline, difference or interval).
    """
    observed, bar, base = result.observed, result.bar, result.baseline
    d = metric_decimals(observed, bar, base)
    interval = result.interval
    return {
        "observed": fmt_fixed(observed, d),
        "target": f"{result.criterion.op} {fmt_fixed(bar, d)}".strip() if bar is not None else MISSING,
        "baseline": fmt_fixed(base, d),
        "difference": fmt_signed(result.difference, d),
        "interval": (fmt_interval(interval.low, interval.high, d, level=interval.level)
                     if interval is not None else MISSING),
    }


def _judge_interval(interval: Interval, op: str, off: float) -> tuple[bool | None, str]:
    """Judge ``difference OP off`` over the whole interval: True, False or None (straddles)."""
    low, high = interval.low, interval.high
    what = f"{interval.describe()} of the difference"
    if math.isnan(low) or math.isnan(high):
        return None, f"{what} has NaN bounds"
    passed: bool | None
    if op in (">=", ">"):
        passed = True if _holds(low, op, off) else (None if _holds(high, op, off) else False)
        side = "clears" if passed else "lies entirely below"
    elif op in ("<=", "<"):
        passed = True if _holds(high, op, off) else (None if _holds(low, op, off) else False)
        side = "clears" if passed else "lies entirely above"
    else:
        on_low, on_high = _holds(low, "==", off), _holds(high, "==", off)
        passed = True if on_low and on_high else (
            None if on_low or on_high or low <= off <= high else False)
        side = "sits on" if passed else "excludes"
    bar = _show(off, metric_decimals(low, high, significant=3))
    return passed, f"{what} {'straddles' if passed is None else side} the bar {bar}"


def _evaluate_one(c: Criterion, metrics: Mapping[str, Any], baseline: Mapping[str, Any] | None,
                  baseline_missing_reason: str | None,
                  intervals: Mapping[str, Interval]) -> CriterionResult:
    def undecided(reason: str, observed: float | None = None) -> CriterionResult:
        return CriterionResult(criterion=c, observed=observed, baseline=None, bar=None,
                               passed=None, status="inconclusive", reason=reason)

    if c.metric not in metrics:
        return undecided(f"metric {c.metric!r} was not recorded")
    observed = _as_float(metrics[c.metric])
    if observed is None:
        return undecided(f"metric {c.metric!r} is not a number "
                         f"(got a {type(metrics[c.metric]).__name__})")
    if math.isnan(observed):
        return undecided(f"metric {c.metric!r} is NaN", observed)
    base: float | None = None
    interval: Interval | None = None
    if c.uses_baseline:
        name = cast(str, c.baseline_metric)
        if baseline is None:
            return undecided(baseline_missing_reason or "no baseline run to compare with",
                             observed)
        if name not in baseline:
            return undecided(f"metric {name!r} was not recorded in the baseline run", observed)
        base = _as_float(baseline[name])
        if base is None or math.isnan(base):
            return undecided(f"the baseline's metric {name!r} is not a number", observed)
        interval = intervals.get(c.metric)
    bar = cast(float, c.target) if base is None else base + c.offset
    diff = None if base is None else observed - base
    passed: bool | None
    if interval is not None:
        passed, reason = _judge_interval(interval, c.op, c.offset)
    else:
        passed = _holds(observed, c.op, bar)
        verb = "meets" if passed else "fails"
        d = metric_decimals(observed, bar, base)
        reason = f"observed {_show(observed, d, bar)} {verb} {c.op} {_show(bar, d, observed)}"
        if base is not None:
            sign = "-" if c.offset < 0 else "+"
            reason += f" (baseline {_show(base, d)} {sign} {_show(abs(c.offset), d)})"
    status: Status = "inconclusive" if passed is None else ("pass" if passed else "fail")
    return CriterionResult(criterion=c, observed=observed, baseline=base, bar=bar, passed=passed,
                           status=status, reason=reason, difference=diff, interval=interval)


@dataclass(frozen=True)
class Verdict:
    """The verdict of a run against its success criteria.

    Attributes:
        status: ``"supported"``, ``"rejected"`` or ``"inconclusive"`` (rules in :func:`evaluate`).
        results: one :class:`CriterionResult` per criterion, in declaration order.
        reason: a one-line summary, e.g. ``"1 of 3 criteria failed: fit_seconds <= 30"``.
    """

    status: VerdictStatus
    results: tuple[CriterionResult, ...]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict carrying ``schema``, the format version."""
        return {"schema": VERDICT_SCHEMA_VERSION, "status": self.status, "reason": self.reason,
                "results": [r.to_dict() for r in self.results]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """Rebuild from :meth:`to_dict` output; warns when written by a newer format version.

        Raises:
            ValueError: the data is not a verdict.
        """
        if int(d.get("schema", 1)) > VERDICT_SCHEMA_VERSION:
            warnings.warn(f"verdict format {d['schema']} is newer than this nbtoolkit reads "
                          f"({VERDICT_SCHEMA_VERSION}); upgrade nbtoolkit", stacklevel=2)
        if d.get("status") not in get_args(VerdictStatus):
            raise ValueError(f"invalid verdict status {d.get('status')!r}")
        results = tuple(CriterionResult.from_dict(r) for r in d.get("results", ()))
        return cls(status=d["status"], results=results, reason=str(d.get("reason", "")))

    @classmethod
    def from_stored(cls, d: Mapping[str, Any] | None) -> Verdict | None:
        """Read a stored verdict back without raising: ``None`` when absent or unreadable.

        An unreadable detail (written by hand or by a pre-release version) is not a reason to
        fail a listing; the run's ``verdict`` status column still says what was decided.
        """
        if not d:
            return None
        try:
            return cls.from_dict(d)
        except (NbToolkitError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def __repr__(self) -> str:
        lines = [f"Verdict: {self.status} - {self.reason}"]
        lines += [f"  [{r.status}] {r.criterion.text}: {r.reason}" for r in self.results]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = esc

        def row(r: CriterionResult) -> str:
            cells = criterion_cells(r)  # one row's numbers share their decimals
            interval = f" {cells['interval']}" if r.interval is not None else ""
            return (f"<tr><td><code>{e(r.criterion.text)}</code></td>"
                    f"<td>{e(cells['observed'])}</td><td>{e(cells['baseline'])}</td>"
                    f"<td>{e(cells['target'])}</td><td>{e(cells['difference'] + interval)}</td>"
                    f'<td style="color:{colour(r.status)};font-weight:bold">'
                    f"{e(r.status)}</td><td>{e(r.reason)}</td></tr>")

        rows = "".join(row(r) for r in self.results)
        head = "".join(f"<th>{h}</th>" for h in
                       ("criterion", "observed", "baseline", "target", "difference", "result", "why"))
        table = (f'<table class="nbtk-criteria"><thead><tr>{head}</tr></thead>'
                 f"<tbody>{rows}</tbody></table>") if rows else ""
        return (f'<div class="nbtk-verdict nbtk-verdict-{e(self.status)}"><p><strong '
                f'style="color:{colour(self.status)}">Verdict: {e(self.status)}'
                f"</strong> &mdash; {e(self.reason)}</p>{table}</div>")


def evaluate(
    criteria: Sequence[Criterion],
    metrics: Mapping[str, float],
    *,
    baseline: Mapping[str, float] | None = None,
    baseline_missing_reason: str | None = None,
    intervals: Mapping[str, Interval] | None = None,
) -> Verdict:
    """Evaluate criteria against a run's metrics (and its baseline's) into a :class:`Verdict`.

    The verdict is ``rejected`` when any criterion definitely fails (one clear failure is enough,
    even if others are undecided), otherwise ``inconclusive`` when any criterion cannot be
    decided, otherwise ``supported``. No criteria at all is ``inconclusive``.

    A criterion is undecided when its metric was not recorded, is not a number or is NaN, or
    when it needs a baseline that is missing (the reason is then ``baseline_missing_reason``
    when given). With ``intervals[criterion.metric]`` given, a baseline criterion
    ``m OP baseline.b + k`` is judged on the interval of ``m - baseline.b``: it passes only when
    every point of the interval satisfies ``OP k``, fails when no point does, and is undecided
    when the interval straddles ``k``; for ``==`` it passes only on a degenerate interval at
    ``k``. Intervals are ignored for absolute criteria.

    Args:
        criteria: parsed criteria (see :func:`parse_criteria`).
        metrics: this run's metrics by name.
        baseline: the baseline run's metrics, or ``None`` when there is no baseline.
        baseline_missing_reason: why there is no baseline, e.g. "no supported run of churn-lr".
        intervals: confidence intervals of the difference (run - baseline) by metric name.

    Returns:
        The :class:`Verdict`, with one result per criterion.
    """
    results = tuple(_evaluate_one(c, metrics, baseline, baseline_missing_reason, intervals or {})
                    for c in criteria)
    if not results:
        return Verdict("inconclusive", (), "no success criteria declared")
    failed = [r.criterion.text for r in results if r.status == "fail"]
    undecided = [r.criterion.text for r in results if r.status == "inconclusive"]
    n = len(results)
    if failed:
        return Verdict("rejected", results, f"{len(failed)} of {n} criteria failed: "
                       + "; ".join(failed))
    if undecided:
        return Verdict("inconclusive", results, f"{len(undecided)} of {n} criteria could not "
                       "be decided: " + "; ".join(undecided))
    summary = f"all {n} criteria hold" if n > 1 else "the criterion holds"
    return Verdict("supported", results, summary)

