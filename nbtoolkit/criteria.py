"""The Success criteria language: parsing criteria safely into :class:`Criterion` objects.

A criterion is one comparison, parsed with :mod:`ast` (never ``eval``)::

    METRIC OP NUMBER                          roc_auc >= 0.90
    METRIC OP baseline.METRIC                 loss <= baseline.loss
    METRIC OP baseline.METRIC (+|-) NUMBER    roc_auc >= baseline.roc_auc + 0.02

``OP`` is one of ``>= <= > < ==``; ``METRIC`` is an identifier or a dotted name (``val.loss``);
``NUMBER`` is a finite int or float (signed, scientific notation allowed; NaN and infinity are
refused). Several criteria are separated by ``;`` or newlines. Anything else raises
:class:`~nbtoolkit.errors.CriteriaError` whose ``reason`` names the problem.

Evaluating criteria against metrics is :mod:`nbtoolkit.verdict`'s job.
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from nbtoolkit.errors import CriteriaError

Op = Literal[">=", "<=", ">", "<", "=="]

OPS: tuple[str, ...] = get_args(Op)

_CMP_OPS: dict[type[ast.cmpop], str] = {
    ast.GtE: ">=", ast.LtE: "<=", ast.Gt: ">", ast.Lt: "<", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}
_NON_FINITE_NAMES = {"nan", "inf", "infinity"}


@dataclass(frozen=True)
class Criterion:
    """One parsed success criterion.

    Attributes:
        text: normalised source text, e.g. ``"roc_auc >= baseline.roc_auc + 0.02"``.
        metric: the metric of this run that is compared.
        op: the comparison operator.
        target: the absolute target; ``None`` when the criterion is relative to the baseline.
        baseline_metric: the baseline's metric (``roc_auc`` for ``baseline.roc_auc``) or ``None``.
        offset: the ``+/- NUMBER`` added to the baseline's value (0 for absolute criteria).
    """

    text: str
    metric: str
    op: Op
    target: float | None
    baseline_metric: str | None
    offset: float = 0.0

    @property
    def uses_baseline(self) -> bool:
        """Whether the criterion compares with the baseline run."""
        return self.baseline_metric is not None

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_dict` reverses it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Criterion:
        """Rebuild from :meth:`to_dict` output by re-parsing ``text`` (``ValueError`` if none)."""
        if not isinstance(d.get("text"), str):
            raise ValueError(f"invalid criterion data (no 'text'): {dict(d)!r}")
        return parse_criterion(d["text"])


def _fmt_number(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e16 else repr(x)


def _dotted(node: ast.expr) -> list[str] | None:
    """Return ``["a", "b", "c"]`` for ``a.b.c``, ``None`` when not a plain dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return [node.id, *reversed(parts)]


def _is_baseline(node: ast.expr) -> bool:
    parts = _dotted(node)
    return parts is not None and parts[0] == "baseline"


def _number(node: ast.expr, text: str, role: str) -> float:
    """Convert a (signed) numeric literal node to a finite float."""
    sign, inner = 1.0, node
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign, inner = (-1.0 if isinstance(node.op, ast.USub) else 1.0), node.operand
    src = ast.unparse(node)
    nan_reason = f"NaN is not a valid {role}: nothing compares with NaN"
    if isinstance(inner, ast.Name) and inner.id.lower() in _NON_FINITE_NAMES:
        if inner.id.lower() == "nan":
            raise CriteriaError(text, nan_reason)
        raise CriteriaError(text, f"the {role} must be a finite number, not infinity")
    value = inner.value if isinstance(inner, ast.Constant) else None
    if isinstance(value, complex):
        raise CriteriaError(text, f"the {role} must be a real number, got the complex {src}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CriteriaError(text, f"the {role} must be a number, got {src}")
    result = sign * float(value)
    if math.isnan(result):
        raise CriteriaError(text, nan_reason)
    if math.isinf(result):
        raise CriteriaError(text, f"the {role} must be a finite number, not infinity ({src})")
    return result


def _check_forbidden(tree: ast.expr, text: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            found = f"{ast.unparse(node.func)}(...)"
            raise CriteriaError(text, f"function calls are not allowed (found {found})")
        if isinstance(node, ast.BoolOp):
            word = "and" if isinstance(node.op, ast.And) else "or"
            raise CriteriaError(text, f"'{word}' is not supported; write each condition as its "
                                "own criterion, separated by ';'")
        if isinstance(node, ast.Subscript):
            raise CriteriaError(text, f"indexing is not allowed (found {ast.unparse(node)})")
        if isinstance(node, ast.Compare) and len(node.ops) > 1:
            raise CriteriaError(text, "chained comparisons are not supported; write one "
                                "comparison per criterion, separated by ';'")


def _left_metric(node: ast.expr, text: str) -> str:
    parts = _dotted(node)
    if parts is None:
        raise CriteriaError(text, f"the left side must be a metric name, got "
                            f"{ast.unparse(node)!r}; put the metric first: 'METRIC OP NUMBER'")
    if parts[0] == "baseline":
        raise CriteriaError(text, "the left side must be a metric of this run; 'baseline' may "
                            "only appear on the right side, as baseline.METRIC")
    return ".".join(parts)


def _baseline_ref(node: ast.expr, text: str) -> str:
    parts = cast(list[str], _dotted(node))
    if len(parts) == 1:
        raise CriteriaError(text, "'baseline' needs a metric name: write baseline.METRIC")
    return ".".join(parts[1:])


def _right_side(node: ast.expr, text: str) -> tuple[float | None, str | None, float]:
    """Return ``(target, baseline_metric, offset)`` for the right-hand side."""
    if isinstance(node, ast.BinOp):
        if _is_baseline(node.right) and not _is_baseline(node.left):
            raise CriteriaError(text, "write the baseline first: 'baseline.METRIC + NUMBER'")
        if not (_is_baseline(node.left) and isinstance(node.op, (ast.Add, ast.Sub))):
            raise CriteriaError(text, "the only arithmetic allowed is 'baseline.METRIC + NUMBER' "
                                f"or 'baseline.METRIC - NUMBER', found {ast.unparse(node)!r}")
        number = _number(node.right, text, "offset")
        offset = -number if isinstance(node.op, ast.Sub) else number
        return None, _baseline_ref(node.left, text), offset
    parts = _dotted(node)
    if parts is not None and parts[0].lower() not in _NON_FINITE_NAMES:
        if parts[0] == "baseline":
            return None, _baseline_ref(node, text), 0.0
        if len(parts) > 1:
            raise CriteriaError(text, "attribute access is only allowed as baseline.METRIC, "
                                f"got {'.'.join(parts)!r}")
        raise CriteriaError(text, f"the right side must be a number or baseline.METRIC, got the "
                            f"name {parts[0]!r}; metrics of the same run cannot be compared")
    return _number(node, text, "target"), None, 0.0


def parse_criterion(text: str) -> Criterion:
    """Parse one criterion.

    Args:
        text: e.g. ``"roc_auc >= baseline.roc_auc + 0.02"``.

    Returns:
        The :class:`Criterion`, with ``text`` normalised (``"a>=0.90"`` -> ``"a >= 0.9"``).

    Raises:
        CriteriaError: the text is not one of the accepted forms; ``reason`` says why.
    """
    if not isinstance(text, str):
        raise CriteriaError(repr(text), f"a criterion must be a string, not {type(text).__name__}")
    src = text.strip()
    if not src:
        raise CriteriaError(text, "the criterion is empty")
    try:
        tree = ast.parse(src, mode="eval").body
    except SyntaxError as exc:
        at = f" at {src[exc.offset - 1:]!r}" if exc.offset and exc.offset <= len(src) else ""
        raise CriteriaError(src, f"it is not a valid expression ({exc.msg}{at})") from None
    _check_forbidden(tree, src)
    if not isinstance(tree, ast.Compare):
        raise CriteriaError(src, "expected a comparison such as 'roc_auc >= 0.9', got "
                            f"{ast.unparse(tree)!r}")
    op = _CMP_OPS.get(type(tree.ops[0]), "?")
    if op not in OPS:
        raise CriteriaError(src, f"operator {op!r} is not supported; use one of >= <= > < ==")
    metric = _left_metric(tree.left, src)
    target, base, offset = _right_side(tree.comparators[0], src)
    if base is None:
        norm = f"{metric} {op} {_fmt_number(cast(float, target))}"
    else:
        sign = "-" if offset < 0 else "+"
        norm = f"{metric} {op} baseline.{base}" + (
            f" {sign} {_fmt_number(abs(offset))}" if offset else "")
    return Criterion(text=norm, metric=metric, op=cast(Op, op), target=target,
                     baseline_metric=base, offset=offset)


def parse_criteria(source: str | Iterable[str]) -> list[Criterion]:
    """Parse several criteria separated by ``;`` or newlines; blank parts are ignored.

    Args:
        source: one string, or an iterable of strings each of which may hold several criteria.

    Returns:
        The criteria in order of appearance.

    Raises:
        CriteriaError: at the first criterion that does not parse.
    """
    result: list[Criterion] = []
    for chunk in [source] if isinstance(source, str) else source:
        if not isinstance(chunk, str):
            raise CriteriaError(repr(chunk), f"a criterion must be a string, not "
                                f"{type(chunk).__name__}")
        for line in chunk.splitlines():
            result += [parse_criterion(part) for part in line.split(";") if part.strip()]
    return result
