"""``nbtk abtest``: two served versions compared on their logged, labelled outcomes.

A live A/B test ends the way a notebook experiment does: the success criteria are written in
the experiments' criteria language with ``a.`` naming version A (the baseline) and the bare or
``b.``-prefixed metric naming version B, and the verdict comes from the same
:func:`nbtoolkit.verdict.evaluate`. The interval of ``metric(B) - metric(A)`` is the paired
bootstrap of :mod:`nbtoolkit.stats` when both versions answered the same rows (shadow traffic:
shared row ids, else shared keys), otherwise an unpaired bootstrap that resamples each
version's rows on its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtoolkit.criteria import Criterion, parse_criteria
from nbtoolkit.errors import InputError
from nbtoolkit.monitor.quality import Labelled, labelled_rows
from nbtoolkit.monitor.windows import check_frame
from nbtoolkit.report.render import render
from nbtoolkit.stats import (
    DEFAULT_LEVEL,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    METRICS,
    MetricSpec,
    Predictions,
    align,
    paired_bootstrap,
)
from nbtoolkit.stats.interval import Interval
from nbtoolkit.verdict import Verdict, evaluate

if TYPE_CHECKING:
    import pandas as pd

#: fewer shared rows than this and the comparison falls back to the unpaired bootstrap
MIN_PAIRS = 20
_A = re.compile(r"(?<![\w.])a\.")
_B = re.compile(r"(?<![\w.])b\.")


def translate_criterion(text: str) -> str:
    """``accuracy >= a.accuracy + 0.01`` in the criteria language: ``a.`` -> ``baseline.``, ``b.`` dropped."""
    return _B.sub("", _A.sub("baseline.", text))


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class MetricComparison:
    """One metric of both versions with the interval of B - A."""

    metric: str
    value_a: float
    value_b: float
    interval: Interval | None

    @property
    def difference(self) -> float:
        return self.value_b - self.value_a

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"metric": self.metric, "value_a": _finite(self.value_a), "value_b": _finite(self.value_b),
                "difference": _finite(self.difference), "interval": self.interval.to_dict() if self.interval else None}


@dataclass(frozen=True)
class AbTestResult:
    """The outcome of an A/B test between two versions of a model.

    Attributes:
        model / a / b: the model and the two versions (A is the baseline).
        n_a / n_b: labelled answered rows of each version.
        paired: whether the interval is paired (rows both versions answered).
        n_pairs: rows both answered (0 when unpaired).
        comparisons: per metric values of A and B and the interval of B - A.
        success: the criteria as written; verdict: their verdict.
    """

    model: str
    a: str
    b: str
    n_a: int
    n_b: int
    paired: bool
    n_pairs: int
    comparisons: tuple[MetricComparison, ...]
    success: tuple[str, ...]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"schema": "nbtoolkit.abtest.v1", "model": self.model, "a": self.a, "b": self.b, "n_a": self.n_a,
                "n_b": self.n_b, "paired": self.paired, "n_pairs": self.n_pairs, "success": list(self.success),
                "comparisons": [c.to_dict() for c in self.comparisons], "verdict": self.verdict.to_dict()}

    def __repr__(self) -> str:
        how = f"paired on {self.n_pairs} rows" if self.paired else f"unpaired, {self.n_a} vs {self.n_b} rows"
        return f"<AbTestResult {self.model} {self.b} vs {self.a} ({how}): {self.verdict.status}>"

    def _repr_html_(self) -> str:
        return render_abtest(self)


def _pairs(rows_a: pd.DataFrame, rows_b: pd.DataFrame) -> tuple[str, list[Any]]:
    """The column the two versions share rows on (``row_id``, else ``key``) and the shared values."""
    for column in ("row_id", "key"):
        a = rows_a[column].dropna()
        b = rows_b[column].dropna()
        if a.is_unique and b.is_unique:
            shared = sorted(set(a) & set(b), key=str)
            if len(shared) >= MIN_PAIRS:
                return column, shared
    return "", []


def _with_ids(data: Labelled, ids: Any) -> tuple[Predictions, Predictions | None]:
    scores = data.scores
    return (Predictions(data.labels.y_true, data.labels.y_pred, ids=ids),
            None if scores is None else Predictions(scores.y_true, scores.y_pred, ids=ids))


def _unpaired(spec: MetricSpec, va: tuple[Any, Any], vb: tuple[Any, Any], *, resamples: int, level: float, seed: int) -> Interval | None:
    import numpy as np

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        wa = np.bincount(rng.integers(0, len(va[0]), len(va[0])), minlength=len(va[0]))[None, :].astype(float)
        wb = np.bincount(rng.integers(0, len(vb[0]), len(vb[0])), minlength=len(vb[0]))[None, :].astype(float)
        diffs.append(float(spec.fn(wb, *vb)[0] - spec.fn(wa, *va)[0]))
    d = np.array(diffs)
    d = d[~np.isnan(d)]
    if len(d) < resamples // 2:
        return None
    alpha = (1 - level) / 2
    low, high = (float(x) for x in np.quantile(d, [alpha, 1 - alpha]))
    return Interval(low=low, high=high, level=level, method="unpaired bootstrap", n_resamples=int(len(d)))


def _point(spec: MetricSpec, view: tuple[Any, Any]) -> float:
    import numpy as np

    return float(spec.fn(np.ones((1, len(view[0]))), view[0], view[1])[0])


def _view(spec: MetricSpec, labels: Predictions, scores: Predictions | None) -> tuple[Any, Any] | None:
    source = scores if spec.needs in ("scores", "probs") else labels
    return None if source is None else source.view(spec.needs)


def abtest(
    frame: pd.DataFrame, *, model: str, a: str, b: str, success: Sequence[str], metrics: Sequence[str] | None = None,
    resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL, seed: int = DEFAULT_SEED,
) -> AbTestResult:
    """Compare versions ``b`` and ``a`` of ``model`` on the log's labelled rows and judge ``success``.

    Raises:
        InputError: a version has no labelled rows, or a criterion does not parse.
    """
    criteria: list[Criterion] = parse_criteria([translate_criterion(t) for t in success])
    log = check_frame(frame)
    log = log[log["ok"] & log["label"].notna()]
    rows_a, rows_b = log[log["version"] == a], log[log["version"] == b]
    for version, rows in ((a, rows_a), (b, rows_b)):
        if rows.empty:
            raise InputError(f"Version {version!r} of {model} has no labelled rows in the log; join outcomes with "
                             "`nbtk feedback` first (versions with labels: "
                             + (", ".join(sorted(set(log["version"]))) or "none") + ").")
    data_a, data_b = labelled_rows(rows_a), labelled_rows(rows_b)
    assert data_a is not None and data_b is not None  # both have labelled rows
    column, shared = _pairs(rows_a, rows_b)
    la, sa = _with_ids(data_a, rows_a[column].to_numpy() if column else None)
    lb, sb = _with_ids(data_b, rows_b[column].to_numpy() if column else None)
    pairs = (align(lb, la), align(sb, sa) if sa is not None and sb is not None else None) if column else (None, None)
    paired = pairs[0] is not None
    wanted = list(dict.fromkeys([*(metrics or data_b.metric_names()), *(c.metric for c in criteria),
                                 *(str(c.baseline_metric) for c in criteria if c.uses_baseline)]))
    comparisons: list[MetricComparison] = []
    for name in wanted:
        spec = METRICS.get(name)
        if spec is None:
            continue
        va, vb = _view(spec, data_a.labels, data_a.scores), _view(spec, data_b.labels, data_b.scores)
        if va is None or vb is None:
            continue
        pair = pairs[1] if spec.needs in ("scores", "probs") else pairs[0]
        if paired and pair is not None:
            # on the rows both answered: B first, so the difference is B - A
            diff = paired_bootstrap(pair[0], pair[1], [spec], n_resamples=resamples, level=level, seed=seed)
            if spec.name in diff:
                d = diff[spec.name]
                comparisons.append(MetricComparison(name, d.value_b, d.value_a, d.interval))
            continue
        interval = _unpaired(spec, va, vb, resamples=resamples, level=level, seed=seed)
        comparisons.append(MetricComparison(name, _point(spec, va), _point(spec, vb), interval))
    values_a = {c.metric: c.value_a for c in comparisons}
    values_b = {c.metric: c.value_b for c in comparisons}
    by_name = {c.metric: c for c in comparisons}
    intervals = {c.metric: by_name[c.metric].interval for c in criteria
                 if c.uses_baseline and c.metric == c.baseline_metric and c.metric in by_name and by_name[c.metric].interval}
    verdict = evaluate(criteria, values_b, baseline=values_a, intervals=intervals)  # type: ignore[arg-type]
    return AbTestResult(model, a, b, len(data_a), len(data_b), paired, len(shared) if paired else 0,
                        tuple(comparisons), tuple(success), verdict)


def render_abtest(result: AbTestResult) -> str:
    """The A/B test report (self-contained HTML through the report templates; all text escaped)."""
    return render("abtest_report.html.j2", kind="abtest", title=f"A/B test: {result.model} {result.b} vs {result.a}",
                  data=result.to_dict())
