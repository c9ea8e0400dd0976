"""Numbers formatted for people: one place for every card, report and CLI line.

A leaf module (standard library only). Rules:

* :func:`fmt_number` — a lone value with 4 significant digits, never in scientific notation
  for ordinary magnitudes (``12345.6`` is ``12346``, not ``1.235e+04``); only values below
  ``1e-4`` or from ``1e15`` up use an exponent.
* :func:`metric_decimals` — the decimals a row of related numbers share (a metric, its target,
  the baseline's value, the difference and its interval): 4 significant digits of the largest
  of the *values*, so an accuracy row reads ``0.9689 / 0.9588 / +0.0101 [-0.0230, +0.0000]``
  and a tiny interval bound prints as ``+0.0000``, not ``3.521e-06``.
* :func:`fmt_fixed` and :func:`fmt_interval` write numbers with those shared decimals;
  :func:`fmt_trimmed` does it for running text (trailing zeros dropped).
* :func:`iso` — a stored time (epoch seconds) as ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

MISSING = "—"
SIGNIFICANT = 4
MAX_DECIMALS = 10


def _real(value: Any) -> float | None:
    """``value`` as a float when it is a real number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _special(x: float) -> str | None:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return None


def fmt_number(value: Any, digits: int = SIGNIFICANT) -> str:
    """A lone number with ``digits`` significant digits; ``—`` for ``None``; text as is.

    Integers print in full; floats drop trailing zeros (``0.5``), use no exponent between
    ``1e-4`` and ``1e15``, and read NaN and infinities as words.
    """
    if value is None:
        return MISSING
    x = _real(value)
    if x is None:
        return str(value)
    if isinstance(value, int):
        return str(value)
    special = _special(x)
    if special is not None:
        return special
    if x == 0 or not 1e-4 <= abs(x) < 1e15:
        return f"{x:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def metric_decimals(*values: Any, significant: int = SIGNIFICANT) -> int:
    """Decimals that give the largest of ``values`` ``significant`` digits (values in (0, 1]
    get 4 decimals by default).

    ``None``, NaN and non-numbers are ignored; with nothing left the answer is ``significant``.
    """
    finite = [abs(x) for v in values if (x := _real(v)) is not None and math.isfinite(x)]
    ref = max(finite, default=0.0)
    if ref == 0:
        return significant
    return max(0, min(MAX_DECIMALS, significant - math.ceil(math.log10(ref))))


def fmt_fixed(value: Any, decimals: int, *, signed: bool = False) -> str:
    """``value`` with exactly ``decimals`` decimals (``+`` in front of non-negatives if ``signed``).

    A value that rounds to zero keeps its sign (``-0.0000`` for ``-3e-7``): an interval that
    ends just below zero must not read as one that reaches it.
    """
    if value is None:
        return MISSING
    x = _real(value)
    if x is None:
        return str(value)
    special = _special(x)
    if special is not None:
        return special
    text = f"{abs(x):.{decimals}f}"
    sign = "-" if x < 0 or (x == 0 and math.copysign(1.0, x) < 0) else ("+" if signed else "")
    return sign + text


def fmt_trimmed(value: Any, decimals: int) -> str:
    """``value`` with at most ``decimals`` decimals, trailing zeros dropped (``0.93``, ``12346``).

    For running text (a verdict's reason): no exponent for tiny values as long as ``decimals``
    reaches them (``0.0000035``); a non-zero value that would read as ``0`` falls back to
    :func:`fmt_number`.
    """
    text = fmt_fixed(value, decimals)
    if _real(value) is None or _special(float(value)) is not None:
        return text
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("0", "-0") and float(value) != 0:
        return fmt_number(value)
    return "0" if text == "-0" else text


def fmt_signed(value: Any, decimals: int | None = None) -> str:
    """A difference: ``+0.0101``; shared ``decimals`` when given, else from its own size."""
    if _real(value) is None:
        return fmt_number(value)
    return fmt_fixed(value, metric_decimals(value) if decimals is None else decimals, signed=True)


def fmt_interval(low: Any, high: Any, decimals: int | None = None, *,
                 level: float | None = None) -> str:
    """``[-0.0230, +0.0000]`` (and `` 95%`` when ``level`` is given), both ends signed alike.

    Args:
        low: the lower bound.
        high: the upper bound.
        decimals: shared decimals (see :func:`metric_decimals`); default: 3 significant digits
            of the larger bound (``[-0.02304, 3.521e-06]`` reads ``[-0.0230, +0.0000]``).
        level: the confidence level (0.95) to append, if any.
    """
    d = metric_decimals(low, high, significant=3) if decimals is None else decimals
    text = f"[{fmt_fixed(low, d, signed=True)}, {fmt_fixed(high, d, signed=True)}]"
    return text if level is None else f"{text} {level * 100:g}%"


def iso(ts: float | None) -> str | None:
    """Epoch seconds -> ISO 8601 UTC string (``None`` stays ``None``)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).isoformat(timespec="milliseconds")
