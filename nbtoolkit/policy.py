"""Release policy: service-level agreements and promotion cadence, read from the project's settings.

SLA (``[tool.nbtoolkit.sla]``; both spellings work, TOML reads ``min.roc_auc`` as a nested table)::

    [tool.nbtoolkit.sla]
    min.roc_auc = 0.85
    max.latency_p95_ms = 50
    max.error_rate = 0.01

An SLA is checked at export (:func:`check_export_sla`), at promotion, and by shadow and canary
runs. A metric that was not measured is listed as *missing*; it is not a breach unless the
check is strict (``strict = true`` in the table, or ``strict=True``).

Cadence (``[tool.nbtoolkit.policy]``)::

    [tool.nbtoolkit.policy]
    min_days_between_promotions = 7     # per model and alias; rollbacks do not count
    max_open_experiments = 5
    clean_git_aliases = ["production"]  # aliases that refuse bundles from a dirty git tree

A promotion is **blocked by cadence** while the last promotion of that model and alias is more
recent than ``min_days_between_promotions`` (:func:`cadence_block`).

This module is a leaf: it reads settings and checks numbers; the export gates and the
promotion stage both use it.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbtoolkit.config import Settings, load_settings
from nbtoolkit.errors import ConfigError
from nbtoolkit.html import PALETTE, colour, esc, fmt_number

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord

BOUNDS = ("min", "max")


@dataclass(frozen=True)
class SlaRule:
    """One threshold: ``metric`` must be ``>= limit`` (min) or ``<= limit`` (max)."""

    metric: str
    bound: str
    limit: float

    @property
    def key(self) -> str:
        return f"{self.bound}.{self.metric}"

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.limit if self.bound == "min" else value <= self.limit


@dataclass(frozen=True)
class SlaBreach:
    """A rule that did not hold: ``observed`` vs ``allowed``."""

    metric: str
    bound: str
    observed: float
    allowed: float

    def describe(self) -> str:
        op = "<" if self.bound == "min" else ">"
        return f"{self.metric} = {self.observed:.6g} {op} {self.bound} {self.allowed:.6g}"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "bound": self.bound, "observed": _finite(self.observed), "allowed": self.allowed}


def _finite(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


@dataclass(frozen=True)
class SlaReport:
    """The outcome of checking metrics against an SLA.

    Attributes:
        rules: the rules checked.
        breaches: rules that did not hold, by metric name.
        missing: metrics named by a rule that were not measured.
        observed: the measured values of the metrics the rules name.
        strict: whether a missing metric fails the check.
    """

    rules: tuple[SlaRule, ...] = ()
    breaches: tuple[SlaBreach, ...] = ()
    missing: tuple[str, ...] = ()
    observed: Mapping[str, float] = field(default_factory=dict)
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not self.breaches and not (self.strict and self.missing)

    def problems(self) -> list[str]:
        """One line per breach (and per missing metric when strict), for error messages."""
        lines = [f"SLA breach: {b.describe()}" for b in self.breaches]
        if self.strict:
            lines += [f"SLA metric {m!r} was not measured" for m in self.missing]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rules": {r.key: r.limit for r in self.rules},
            "breaches": [b.to_dict() for b in self.breaches],
            "missing": list(self.missing),
            "observed": {k: _finite(v) for k, v in self.observed.items()},
            "strict": self.strict,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SlaReport:
        rules = tuple(SlaRule(k.split(".", 1)[1], k.split(".", 1)[0], float(v)) for k, v in (d.get("rules") or {}).items())
        breaches = tuple(
            SlaBreach(b["metric"], b["bound"], float(b["observed"]), float(b["allowed"])) for b in d.get("breaches") or []
        )
        observed = {k: float(v) for k, v in (d.get("observed") or {}).items()}
        return cls(rules, breaches, tuple(d.get("missing") or ()), observed, bool(d.get("strict")))

    def __repr__(self) -> str:
        if not self.rules:
            return "<SlaReport no SLA configured>"
        state = "ok" if self.ok else "; ".join(b.describe() for b in self.breaches) or "missing metrics"
        return f"<SlaReport {len(self.rules)} rules: {state}>"

    def _repr_html_(self) -> str:
        return sla_table_html(self)


def padded(html_text: str) -> str:
    """Give the plain tables of a generated section compact borders and cell padding.

    Safe on generated HTML only: user text in it is escaped, so no literal tags come from data.
    """
    cell = f'style="padding:2px 10px;text-align:left;border-bottom:1px solid {PALETTE["border"]}"'
    return (
        html_text.replace("<table>", '<table style="border-collapse:collapse;margin:4px 0">')
        .replace("<td>", f"<td {cell}>")
        .replace("<th>", f"<th {cell}>")
    )


def sla_table_html(report: SlaReport) -> str:
    """An HTML table: one row per rule with observed, allowed and pass/breach (escaped)."""
    if not report.rules:
        return f'<p style="color:{PALETTE["grey"]}">No SLA configured ([tool.nbtoolkit.sla]).</p>'
    breached = {(b.metric, b.bound) for b in report.breaches}
    rows = []
    for r in report.rules:
        if r.metric in report.missing:
            state = "not measured"
        elif (r.metric, r.bound) in breached:
            state = "breach"
        else:
            state = "ok"
        op = "≥" if r.bound == "min" else "≤"
        rows.append(
            f"<tr><td>{esc(r.metric)}</td><td>{fmt_number(report.observed.get(r.metric))}</td>"
            f"<td>{op} {fmt_number(r.limit)}</td><td><b style=\"color:{colour(state)}\">{esc(state)}</b></td></tr>"
        )
    return padded(
        "<table><thead><tr><th>metric</th><th>observed</th>"
        "<th>allowed</th><th>SLA</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


@dataclass(frozen=True)
class Sla:
    """A set of :class:`SlaRule` objects."""

    rules: tuple[SlaRule, ...] = ()
    strict: bool = False

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any] | None, *, where: str = "[tool.nbtoolkit.sla]") -> Sla:
        """Build from ``{"min": {"roc_auc": 0.85}}`` or ``{"min.roc_auc": 0.85}`` (both may mix)."""
        rules: dict[str, SlaRule] = {}
        strict = False
        for key, value in dict(table or {}).items():
            if key == "strict":
                strict = bool(value)
                continue
            if key in BOUNDS and isinstance(value, Mapping):
                items = [(key, str(m), v) for m, v in value.items()]
            elif "." in key and key.split(".", 1)[0] in BOUNDS:
                bound, metric = key.split(".", 1)
                items = [(bound, metric, value)]
            else:
                raise ConfigError(
                    f"{where}: key {key!r} is not understood; write min.METRIC = NUMBER or max.METRIC = NUMBER."
                )
            for bound, metric, v in items:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ConfigError(f"{where}: {bound}.{metric} must be a number, got {v!r}.")
                rules[f"{bound}.{metric}"] = SlaRule(metric, bound, float(v))
        return cls(tuple(rules.values()), strict)

    def to_dict(self) -> dict[str, float]:
        return {r.key: r.limit for r in self.rules}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def check(self, metrics: Mapping[str, Any], *, strict: bool | None = None) -> SlaReport:
        """Check measured ``metrics`` (name -> number) against every rule.

        Args:
            metrics: the measured values; non-numbers count as not measured.
            strict: a missing metric fails the check (default: the table's ``strict``).

        Returns:
            An :class:`SlaReport` listing breaches by name with observed vs allowed.
        """
        breaches, missing, observed = [], [], {}
        for rule in self.rules:
            value = metrics.get(rule.metric)
            try:
                fval = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                missing.append(rule.metric)
                continue
            observed[rule.metric] = fval
            if not rule.holds(fval):
                breaches.append(SlaBreach(rule.metric, rule.bound, fval, rule.limit))
        return SlaReport(self.rules, tuple(breaches), tuple(dict.fromkeys(missing)), observed, self.strict if strict is None else strict)


def load_sla(settings: Settings | None = None) -> Sla:
    """The project's SLA from ``[tool.nbtoolkit.sla]`` (empty when not configured)."""
    settings = settings or load_settings()
    return Sla.from_mapping(settings.section("sla"))


def as_sla(sla: Sla | Mapping[str, Any] | None, settings: Settings | None = None) -> Sla:
    """Normalise an ``sla=`` argument: an :class:`Sla`, a mapping, or ``None`` (the project's)."""
    if isinstance(sla, Sla):
        return sla
    if sla is None:
        return load_sla(settings)
    return Sla.from_mapping(sla, where="sla=")


def check_export_sla(record: RunRecord, settings: Settings | None = None) -> SlaReport:
    """Check a run's recorded metrics against the project's SLA (for the export stage).

    Args:
        record: a :class:`~nbtoolkit.store.RunRecord` (or anything with a ``metrics`` mapping).
        settings: resolved settings (default: the current project's).

    Returns:
        The :class:`SlaReport`; the caller refuses the export when ``not report.ok``.
    """
    return load_sla(settings).check(dict(record.metrics))


# ---------------------------------------------------------------- cadence
DAY = 86400.0


@dataclass(frozen=True)
class Policy:
    """The resolved ``[tool.nbtoolkit.policy]`` table."""

    min_days_between_promotions: float = 0.0
    max_open_experiments: int | None = None
    clean_git_aliases: tuple[str, ...] = ("production",)


def load_policy(settings: Settings | None = None) -> Policy:
    """Read ``[tool.nbtoolkit.policy]`` (defaults: no cadence limit, production needs clean git)."""
    table = (settings or load_settings()).section("policy")
    days = table.get("min_days_between_promotions", 0)
    if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
        raise ConfigError("[tool.nbtoolkit.policy] min_days_between_promotions must be a number >= 0.")
    max_open = table.get("max_open_experiments")
    if max_open is not None and (isinstance(max_open, bool) or not isinstance(max_open, int) or max_open < 0):
        raise ConfigError("[tool.nbtoolkit.policy] max_open_experiments must be an integer >= 0.")
    clean = table.get("clean_git_aliases", ["production"])
    if isinstance(clean, str):
        clean = [clean]
    if not isinstance(clean, list) or not all(isinstance(c, str) for c in clean):
        raise ConfigError("[tool.nbtoolkit.policy] clean_git_aliases must be a list of alias names.")
    return Policy(float(days), max_open, tuple(clean))


def utc_date(ts: float) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM UTC``."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def cadence_block(moves: Sequence[Any], policy: Policy, now: float) -> str | None:
    """Why a promotion at ``now`` is blocked by cadence (``None`` when allowed).

    Args:
        moves: the alias's history (objects with ``action``, ``created``, ``to_version``, ``model``, ``alias``).
    """
    if policy.min_days_between_promotions <= 0:
        return None
    promotes = [m for m in moves if m.action == "promote"]
    if not promotes:
        return None
    last = promotes[-1]
    next_ok = last.created + policy.min_days_between_promotions * DAY
    if now >= next_ok:
        return None
    return (
        f"cadence: {last.model}@{last.alias} was last promoted on {utc_date(last.created)} (to {last.to_version}); "
        f"the policy needs {policy.min_days_between_promotions:g} days between promotions (next on {utc_date(next_ok)})"
    )
