"""McNemar's test on paired correctness, and per-group metrics with the worst-group gap."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nbtoolkit.stats.metrics import metric_value, resolve_metric
from nbtoolkit.stats.predictions import Predictions, take


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness of two classifiers.

    Attributes:
        only_a: examples that only ``a`` classified correctly.
        only_b: examples that only ``b`` classified correctly.
        statistic: the test statistic (chi-square with continuity correction, or the smaller
            count for the exact test).
        pvalue: two-sided p-value.
        method: ``"exact"`` (binomial, fewer than 25 discordant pairs) or ``"chi2"``.
        n: the number of paired examples.
    """

    only_a: int
    only_b: int
    statistic: float
    pvalue: float
    method: str
    n: int

    def describe(self) -> str:
        """Return e.g. ``"McNemar p=0.012 (exact; 14 vs 3 discordant of 500)"``."""
        return (f"McNemar p={self.pvalue:.3g} ({self.method}; {self.only_a} vs {self.only_b} "
                f"discordant of {self.n})")


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of ``k`` successes in ``n`` fair trials (k <= n/2)."""
    tail = sum(math.comb(n, i) for i in range(0, min(k, n - k) + 1)) / 2.0**n
    return min(1.0, 2 * tail)


def mcnemar(a: Predictions, b: Predictions) -> McNemarResult | None:
    """McNemar's test of whether two aligned runs differ in accuracy; ``None`` if not labels.

    Fewer than 25 discordant pairs use the exact binomial test, more the chi-square statistic
    with continuity correction (1 degree of freedom). Computed with :mod:`math` (same values as
    ``scipy.stats.binomtest`` / ``scipy.stats.chi2.sf``; the tests check that) so a report does
    not pay for importing ``scipy.stats``.
    """
    va, vb = a.view("labels"), b.view("labels")
    if va is None or vb is None:
        return None
    right_a, right_b = va[0] == va[1], vb[0] == vb[1]
    only_a = int((right_a & ~right_b).sum())
    only_b = int((~right_a & right_b).sum())
    k = only_a + only_b
    if k == 0:
        return McNemarResult(only_a, only_b, 0.0, 1.0, "exact", len(a))
    if k < 25:
        low = min(only_a, only_b)
        return McNemarResult(only_a, only_b, float(low), _binom_two_sided(low, k), "exact", len(a))
    stat = (abs(only_a - only_b) - 1) ** 2 / k
    return McNemarResult(only_a, only_b, float(stat), math.erfc(math.sqrt(stat / 2)), "chi2", len(a))


@dataclass(frozen=True)
class GroupMetrics:
    """One metric per group of examples.

    Attributes:
        metric: the metric name.
        overall: the metric on all examples.
        groups: ``(group, n, value)`` per group, worst first (``value`` ``None`` if undefined).
        worst: the worst group's name.
        gap: the worst-group gap: best group minus worst group (absolute, >= 0).
    """

    metric: str
    overall: float | None
    groups: tuple[tuple[str, int, float | None], ...]
    worst: str | None
    gap: float | None


def group_metrics(pred: Predictions, metric: str) -> GroupMetrics | None:
    """Per-group values of ``metric`` and the worst-group gap; ``None`` when no groups."""
    import numpy as np

    spec = resolve_metric(metric)
    if spec is None or pred.groups is None or spec.prepare(pred) is None:
        return None
    rows = []
    for g in np.unique(pred.groups):
        idx = np.nonzero(pred.groups == g)[0]
        rows.append((str(g), len(idx), metric_value(take(pred, idx), spec)))
    sign = 1.0 if spec.higher_is_better else -1.0
    rows.sort(key=lambda r: (r[2] is None, sign * (r[2] if r[2] is not None else 0.0)))
    defined = [(g, float(v)) for g, _, v in rows if v is not None]
    worst = min(defined, key=lambda gv: sign * gv[1]) if defined else None
    best = max(defined, key=lambda gv: sign * gv[1]) if defined else None
    gap = abs(best[1] - worst[1]) if worst is not None and best is not None else None
    return GroupMetrics(metric, metric_value(pred, spec), tuple(rows),
                        worst[0] if worst is not None else None, gap)


