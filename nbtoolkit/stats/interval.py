"""The confidence interval type produced by :mod:`nbtoolkit.stats.bootstrap` and read by verdicts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nbtoolkit._format import fmt_interval


@dataclass(frozen=True)
class Interval:
    """A confidence interval, e.g. of the difference between a run's metric and its baseline's."""

    low: float
    high: float
    level: float = 0.95
    method: str = "bootstrap"
    n_resamples: int | None = None

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"interval low {self.low} is above its high {self.high}")

    def describe(self) -> str:
        """Return e.g. ``"95% interval [-0.0230, +0.0000]"`` (no exponents, both ends signed)."""
        return f"{self.level * 100:g}% interval {fmt_interval(self.low, self.high)}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Interval:
        """Rebuild from :meth:`to_dict` output."""
        return cls(low=float(d["low"]), high=float(d["high"]), level=float(d.get("level", 0.95)),
                   method=str(d.get("method", "bootstrap")), n_resamples=d.get("n_resamples"))
