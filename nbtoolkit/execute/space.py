"""Sweep spaces: ``--grid NAME=V1,V2`` choice sets and ``uniform/loguniform/randint`` distributions.

A grid alone expands to the cartesian product of its choice sets. ``--random N`` samples N
points instead: a choice set is sampled uniformly, ``uniform(a, b)`` and ``loguniform(a, b)``
give floats in ``[a, b)``, ``randint(a, b)`` gives integers in ``[a, b]`` (both ends included,
like :func:`random.randint`).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbtoolkit.errors import ParameterError
from nbtoolkit.execute.params import resolve_value

__all__ = ["Choice", "Distribution", "expand_points", "parse_axis", "parse_grid"]

_DIST = re.compile(r"^\s*(uniform|loguniform|randint)\s*\(\s*([^,]+?)\s*,\s*([^,]+?)\s*\)\s*$")


@dataclass(frozen=True)
class Choice:
    """A finite set of values for one parameter."""

    values: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"choice": list(self.values)}


@dataclass(frozen=True)
class Distribution:
    """A continuous or integer range sampled by ``--random``."""

    kind: str
    low: float
    high: float

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.randint(int(self.low), int(self.high))

    def to_dict(self) -> dict[str, Any]:
        return {"dist": self.kind, "low": self.low, "high": self.high}


Axis = Choice | Distribution


def parse_axis(text: str) -> tuple[str, Axis]:
    """Parse one ``NAME=V1,V2`` or ``NAME=uniform(a,b)`` argument.

    Raises:
        ParameterError: no ``=``, a bad name, an empty value list or a bad distribution.
    """
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise ParameterError(f"--grid {text!r} must look like NAME=V1,V2 or NAME=uniform(A,B).")
    match = _DIST.match(rest)
    if match:
        kind, low_s, high_s = match.groups()
        try:
            low, high = float(low_s), float(high_s)
        except ValueError:
            raise ParameterError(f"--grid {text!r}: {kind} needs two numbers, e.g. {kind}(0.01, 1).") from None
        if not low < high and not (kind == "randint" and low == high):
            raise ParameterError(f"--grid {text!r}: the lower bound must be below the upper bound.")
        if kind == "loguniform" and low <= 0:
            raise ParameterError(f"--grid {text!r}: loguniform needs positive bounds.")
        if kind == "randint" and (low != int(low) or high != int(high)):
            raise ParameterError(f"--grid {text!r}: randint needs integer bounds.")
        return name, Distribution(kind, low, high)
    values = [v.strip() for v in rest.split(",")]
    if not rest.strip() or any(v == "" for v in values):
        raise ParameterError(f"--grid {text!r} has an empty value; write NAME=V1,V2 (lists go in -f base.yaml).")
    return name, Choice(tuple(dict.fromkeys(resolve_value(v) for v in values)))


def parse_grid(items: Iterable[str]) -> dict[str, Axis]:
    """Parse every ``--grid`` argument (a name given twice is an error)."""
    axes: dict[str, Axis] = {}
    for item in items:
        name, axis = parse_axis(item)
        if name in axes:
            raise ParameterError(f"--grid names {name!r} twice; give its values once, comma-separated.")
        axes[name] = axis
    return axes


def expand_points(
    axes: Mapping[str, Axis],
    *,
    base: Mapping[str, Any] | None = None,
    random_n: int | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The parameter dicts of every sweep point (``base`` values overridden by the axes).

    Raises:
        ParameterError: a distribution without ``--random``, or nothing to sweep.
    """
    base = dict(base or {})
    if random_n is None:
        dists = [n for n, a in axes.items() if isinstance(a, Distribution)]
        if dists:
            raise ParameterError(
                f"{', '.join(dists)} {'is a distribution' if len(dists) == 1 else 'are distributions'}; "
                "sample them with --random N (and --seed S)."
            )
        if not axes:
            return [base]
        names = list(axes)
        combos = itertools.product(*(axes[n].values for n in names))  # type: ignore[union-attr]
        return [{**base, **dict(zip(names, combo, strict=True))} for combo in combos]
    if random_n < 1:
        raise ParameterError("--random needs a positive number of points.")
    if not axes:
        raise ParameterError("--random needs at least one --grid axis to sample from.")
    rng = random.Random(seed)
    points = []
    for _ in range(random_n):
        point = dict(base)
        for name, axis in axes.items():
            point[name] = rng.choice(axis.values) if isinstance(axis, Choice) else axis.sample(rng)
        points.append(point)
    return points
