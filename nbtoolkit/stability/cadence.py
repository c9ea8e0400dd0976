"""Experiment cadence and environments: ``nbtk status``.

The policy itself (``[tool.nbtoolkit.policy]``: ``min_days_between_promotions``,
``max_open_experiments``, ``clean_git_aliases``) is read by :mod:`nbtoolkit.policy`.

Definitions used by :func:`status`:

* an experiment is **open** when its latest experiment run (kind ``experiment``) has no
  conclusive verdict (``supported`` or ``rejected``), or its declared ``Until`` date has not
  passed yet (work is still planned on it);
* an open experiment is **past due** when it has no conclusive verdict and its ``Until`` date
  is in the past;
* a promotion is **blocked by cadence** while the last promotion of that model and alias is
  more recent than ``min_days_between_promotions``; ``nbtk promote --override-cadence REASON``
  promotes anyway and records the reason (``forced_cadence`` in the history).
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit import registry
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.declaration import Declaration
from nbtoolkit.policy import DAY, Policy, cadence_block, load_policy, utc_date
from nbtoolkit.store import Store, open_store

CONCLUSIVE = ("supported", "rejected")


@dataclass(frozen=True)
class OpenExperiment:
    """An open experiment (see the module docstring for the definition)."""

    experiment: str
    run_id: str
    verdict: str | None
    until: str | None
    owner: str
    past_due: bool


@dataclass(frozen=True)
class BlockedPromotion:
    """An alias whose next promotion the cadence policy blocks until ``until``."""

    model: str
    alias: str
    version: str
    last_promoted: float
    until: float


@dataclass(frozen=True)
class StatusReport:
    """What ``nbtk status`` shows."""

    open: tuple[OpenExperiment, ...] = ()
    blocked: tuple[BlockedPromotion, ...] = ()
    policy: Policy = field(default_factory=Policy)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def past_due(self) -> tuple[OpenExperiment, ...]:
        return tuple(e for e in self.open if e.past_due)

    @property
    def over_limit(self) -> bool:
        limit = self.policy.max_open_experiments
        return limit is not None and len(self.open) > limit

    def lines(self) -> list[str]:
        """Plain-text rendering (the CLI prints these)."""
        limit = self.policy.max_open_experiments
        out = [f"Open experiments: {len(self.open)}" + (f" (limit {limit}{', OVER LIMIT' if self.over_limit else ''})" if limit is not None else "")]
        for e in self.open:
            due = "  PAST DUE" if e.past_due else ""
            out.append(f"  {e.experiment:<28} verdict={e.verdict or '-':<12} until={e.until or '-':<10} owner={e.owner or '-'}{due}")
        out.append(f"Past due: {len(self.past_due)}")
        for e in self.past_due:
            out.append(f"  {e.experiment} (until {e.until}, latest run {e.run_id[:8]}, verdict {e.verdict or 'none'})")
        out.append(f"Promotions blocked by cadence: {len(self.blocked)}")
        for b in self.blocked:
            out.append(f"  {b.model}@{b.alias} (at {b.version}, promoted {utc_date(b.last_promoted)}) until {utc_date(b.until)}; override with --override-cadence REASON")
        for model, al in sorted(self.aliases.items()):
            out.append(f"Model {model}: " + ", ".join(f"{a}={v}" for a, v in sorted(al.items())))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "open": [e.__dict__ for e in self.open],
            "past_due": [e.experiment for e in self.past_due],
            "blocked": [{**b.__dict__} for b in self.blocked],
            "max_open_experiments": self.policy.max_open_experiments,
            "over_limit": self.over_limit,
            "aliases": self.aliases,
        }

    def __repr__(self) -> str:
        return f"<StatusReport open={len(self.open)} past_due={len(self.past_due)} blocked={len(self.blocked)}>"


def status(*, store: Store | None = None, settings: Settings | None = None, now: float | None = None) -> StatusReport:
    """Open and past-due experiments, promotions blocked by cadence, and current aliases."""
    settings = settings or load_settings()
    if store is None:
        store = open_store(settings)
    now = time.time() if now is None else now
    today = _dt.datetime.fromtimestamp(now, tz=_dt.UTC).date()
    policy = load_policy(settings)
    runs, _, _ = store.query_runs(kind="experiment")
    latest: dict[str, dict[str, Any]] = {}
    for r in runs:  # newest first
        if r["experiment"] not in latest:
            latest[r["experiment"]] = r

    open_: list[OpenExperiment] = []
    for name, r in sorted(latest.items()):
        decl: Declaration = r["declaration"]
        until = decl.until
        conclusive = r["verdict"] in CONCLUSIVE and r["status"] == "finished"
        if conclusive and (until is None or until < today):
            continue
        open_.append(OpenExperiment(name, r["run_id"], r["verdict"], until.isoformat() if until else None, decl.owner,
                                    past_due=not conclusive and until is not None and until < today))
    blocked: list[BlockedPromotion] = []
    aliases: dict[str, dict[str, str]] = {}
    for entry in registry.models(store=store):
        if entry.aliases:
            aliases[entry.model] = dict(entry.aliases)
        for alias in entry.aliases:
            moves = registry.history(entry.model, alias=alias, store=store)
            if cadence_block(moves, policy, now):
                last = [m for m in moves if m.action == "promote"][-1]
                blocked.append(BlockedPromotion(entry.model, alias, entry.aliases[alias], last.created,
                                                last.created + policy.min_days_between_promotions * DAY))
    return StatusReport(tuple(open_), tuple(blocked), policy, aliases)
