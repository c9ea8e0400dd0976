"""JSON conversion for values users log (numpy scalars, paths, dates, non-finite floats)."""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import PurePath
from typing import Any


class NotSerializable(TypeError):
    """A value has no faithful JSON form."""


def to_jsonable(value: Any) -> Any:
    """Return a JSON-compatible version of ``value`` or raise :class:`NotSerializable`.

    numpy scalars and arrays become Python numbers and lists; tuples become lists; paths and
    dates become strings. Non-finite floats are kept (``json`` writes them as NaN/Infinity).
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)):
                raise NotSerializable(f"dict key {k!r} is not a string")
            out[str(k)] = to_jsonable(v)
        return out
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalar / 0-d array
    if callable(item) and getattr(value, "shape", None) == ():
        return to_jsonable(item())
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist) and hasattr(value, "dtype"):
        return to_jsonable(tolist())
    raise NotSerializable(f"{type(value).__name__} is not JSON-serialisable")


def dumps(value: Any) -> str:
    """Serialise already JSON-compatible data compactly (NaN/Infinity allowed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    """Serialise with sorted keys: the form that is hashed."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def loads(text: str | None, default: Any = None) -> Any:
    """Parse JSON text; ``None`` or empty gives ``default``."""
    if not text:
        return default
    return json.loads(text)


def float_or_special(value: float) -> tuple[float | None, str | None]:
    """Split a float into (finite value, None) or (None, 'nan'|'inf'|'-inf')."""
    if math.isnan(value):
        return None, "nan"
    if math.isinf(value):
        return None, "inf" if value > 0 else "-inf"
    return value, None


def from_special(value: float | None, special: str | None) -> float:
    """Inverse of :func:`float_or_special`."""
    if special:
        return float(special)
    return float(value) if value is not None else math.nan
