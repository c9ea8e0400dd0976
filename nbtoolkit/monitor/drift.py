"""Input drift per feature against the training reference: PSI and the two-sample KS test.

PSI (population stability index) compares the share of rows per bin: numeric features use ten
bins at the reference's deciles, categorical features one bin per category (categories unseen
in the reference share one bin). Shares are floored at 1e-4 so an empty bin does not give an
infinite index. The usual reading: below 0.1 stable, 0.1-0.2 moderate, at or above 0.2 drift.
KS (``scipy.stats.ks_2samp``) applies to numeric features only.

A feature is flagged as drifted when ``PSI >= 0.2`` or the KS p-value is below 0.01.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

PSI_DRIFT = 0.2
KS_ALPHA = 0.01
BINS = 10
_FLOOR = 1e-4
Array = Any


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature in one window.

    Attributes:
        feature: the input column.
        kind: ``"numeric"`` or ``"categorical"``.
        psi: population stability index against the reference.
        ks: KS statistic (numeric only); ks_pvalue: its p-value.
        n: rows in the window with a value; n_reference: rows in the reference.
        drifted: ``psi >= 0.2`` or ``ks_pvalue < 0.01``.
    """

    feature: str
    kind: str
    psi: float
    ks: float | None
    ks_pvalue: float | None
    n: int
    n_reference: int

    @property
    def drifted(self) -> bool:
        return self.psi >= PSI_DRIFT or (self.ks_pvalue is not None and self.ks_pvalue < KS_ALPHA)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        def fin(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {"feature": self.feature, "kind": self.kind, "psi": fin(self.psi), "ks": fin(self.ks),
                "ks_pvalue": fin(self.ks_pvalue), "n": self.n, "n_reference": self.n_reference, "drifted": self.drifted}


def psi(expected: Array, actual: Array) -> float:
    """PSI of two share vectors over the same bins: ``sum((a - e) * ln(a / e))``."""
    import numpy as np

    e = np.maximum(np.asarray(expected, dtype=float), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=float), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_shares(reference: Array, current: Array) -> tuple[Array, Array]:
    import numpy as np

    edges = np.unique(np.quantile(reference, np.linspace(0, 1, BINS + 1)[1:-1]))
    ref_bins = np.searchsorted(edges, reference, side="right")
    cur_bins = np.searchsorted(edges, current, side="right")
    k = len(edges) + 1
    return (np.bincount(ref_bins, minlength=k) / len(reference), np.bincount(cur_bins, minlength=k) / len(current))


def _categorical_shares(reference: Array, current: Array) -> tuple[Array, Array]:
    import numpy as np

    cats = sorted(set(reference.tolist()))
    index = {c: i for i, c in enumerate(cats)}
    other = len(cats)
    ref = np.bincount([index[c] for c in reference.tolist()], minlength=other + 1)
    cur = np.bincount([index.get(c, other) for c in current.tolist()], minlength=other + 1)
    return ref / len(reference), cur / len(current)


def feature_drift(feature: str, reference: pd.Series, current: pd.Series) -> FeatureDrift | None:
    """PSI (and KS for numbers) of one feature; None when either side has no values."""
    import pandas as pd
    from scipy.stats import ks_2samp

    ref, cur = reference.dropna(), current.dropna()
    if ref.empty or cur.empty:
        return None
    ref_num, cur_num = pd.to_numeric(ref, errors="coerce"), pd.to_numeric(cur, errors="coerce")
    numeric = bool(ref_num.notna().all() and cur_num.notna().all() and not pd.api.types.is_bool_dtype(ref))
    if numeric:
        r, c = ref_num.to_numpy(dtype=float), cur_num.to_numpy(dtype=float)
        e, a = _numeric_shares(r, c)
        test = ks_2samp(r, c)
        return FeatureDrift(feature, "numeric", psi(e, a), float(test.statistic), float(test.pvalue), len(c), len(r))
    e, a = _categorical_shares(ref.astype(str).to_numpy(), cur.astype(str).to_numpy())
    return FeatureDrift(feature, "categorical", psi(e, a), None, None, len(cur), len(ref))


def inputs_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The logged inputs of the rows as a frame (one column per feature); empty when none were logged."""
    import pandas as pd

    records = [i for i in rows["inputs"] if isinstance(i, dict)]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


def drift_table(reference: pd.DataFrame, current: pd.DataFrame) -> list[FeatureDrift]:
    """Drift of every feature the reference and the current rows share, in the reference's column order."""
    out = []
    for column in reference.columns:
        if column in current.columns:
            result = feature_drift(str(column), reference[column], current[column])
            if result is not None:
                out.append(result)
    return out
