"""JSON conversion for values users log (numpy scalars, paths, dates, non-finite floats).

Two directions. Into the store, values are kept faithfully: :func:`dumps` writes NaN and
±Infinity as JSON's common ``NaN``/``Infinity`` extension, so a NaN parameter reads back as NaN.
Out of nbtoolkit (``nbtk runs --json``, ``nbtk show --json``, the REST API) everything goes
through :func:`dumps_strict`, which always produces valid JSON (RFC 8259):

* a non-finite number becomes ``null``, and the nearest *record* holding it -- the document
  itself or an object that is an element of an array (a run in a list of runs) -- gains a
  ``"nonfinite"`` member mapping the JSON Pointer of each such value, relative to that record,
  to ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``:
  ``{"metrics": {"auc": null}, "nonfinite": {"/metrics/auc": "NaN"}}``;
* values JSON has no type for (dates, paths, sets, objects) become their ``str()``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import PurePath
from typing import Any

from nbtoolkit.errors import ParameterError

#: Longest parameter value accepted, in characters of its JSON text (MLflow's limit too).
MAX_PARAM_CHARS = 6000
#: Integers in parameters must fit in a signed 64-bit integer (what SQLite, pandas and most
#: JSON readers hold exactly); log a larger one as a string.
MAX_PARAM_INT = 2**63 - 1
#: The member a record gains when it holds non-finite numbers (see the module docstring).
NONFINITE_KEY = "nonfinite"


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


def check_param(name: str, value: Any) -> str:
    """Check a parameter's JSON-compatible value and return its JSON text.

    Raises:
        ParameterError: an integer beyond 64 bits, or a value whose JSON text is longer than
            :data:`MAX_PARAM_CHARS` characters; the message names the parameter and the fix.
    """
    big = _first_big_int(value)
    if big is not None:
        digits = len(str(abs(big))) if big.bit_length() < 13_000 else f"about {int(big.bit_length() * 0.30103)}"
        raise ParameterError(
            f"Parameter {name!r} holds an integer of {digits} digits, outside the 64-bit range "
            f"(±{MAX_PARAM_INT}); log it as a string (str(value)) or as a float."
        )
    text = dumps(value)
    if len(text) > MAX_PARAM_CHARS:
        raise ParameterError(
            f"Parameter {name!r} is {len(text)} characters long as JSON; the limit is "
            f"{MAX_PARAM_CHARS}. Log large values as an artifact (nbtk.log_artifact) or log a hash of them."
        )
    return text


def _first_big_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if not -MAX_PARAM_INT - 1 <= value <= MAX_PARAM_INT else None
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        found = _first_big_int(child)
        if found is not None:
            return found
    return None


def _special_name(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def strict(value: Any) -> Any:
    """Return ``value`` made valid for strict JSON (see the module docstring for the convention).

    Args:
        value: JSON-like data, possibly with NaN/±inf floats and non-JSON leaves.

    Returns:
        A copy with non-finite numbers replaced by ``null`` and recorded under ``"nonfinite"``
        in their record, tuples and sets as lists, and other leaves as strings.
    """
    return _strict_record(value)


def _strict_record(value: Any) -> Any:
    found: dict[str, str] = {}
    out = _strict(value, "", found)
    if found and isinstance(out, dict):
        out[NONFINITE_KEY] = found
    return out


def _strict(value: Any, pointer: str, found: dict[str, str]) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        found[pointer] = _special_name(value)
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v, f"{pointer}/{_pointer_token(k)}", found) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [
            _strict_record(v) if isinstance(v, dict) else _strict(v, f"{pointer}/{i}", found)
            for i, v in enumerate(items)
        ]
    try:
        return _strict(to_jsonable(value), pointer, found)
    except (NotSerializable, RecursionError):
        return str(value)


def dumps_strict(value: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Serialise ``value`` as valid JSON: the one encoder of every nbtoolkit JSON output.

    Args:
        value: JSON-like data (see :func:`strict`).
        indent: pretty-print with this indent (default compact).
        sort_keys: sort object keys.

    Returns:
        JSON text without NaN/Infinity, safe for strict parsers (browsers, ``jq``).
    """
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(strict(value), indent=indent, sort_keys=sort_keys, separators=separators,
                      ensure_ascii=False, allow_nan=False)
