"""``%%experiment`` declarations: the validated :class:`Declaration` record.

The declaration is the cell's leading docstring (keys ``Hypothesis``, ``Success``, ``Scope``,
``Owner``, ``Until``; anything else is free description) plus the magic's options; reading the
cell's source is :mod:`nbtoolkit.cell_source`. :func:`build_declaration` joins the two and is
what the magic calls; :func:`make_declaration` is the keyword form used by ``start_run``;
:meth:`Declaration.from_stored` reads one back from the store without ever failing.
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit.cell_source import (
    DOCSTRING_KEYS,
    MAGIC_USAGE,
    LiteralAssignment,
    literal_assignment_nodes,
    literal_assignments,
    parse_docstring,
    parse_magic_line,
    split_cell,
    split_texts,
)
from nbtoolkit.criteria import Criterion, parse_criteria
from nbtoolkit.errors import DeclarationError, NbToolkitError

__all__ = [
    "DOCSTRING_KEYS", "MAGIC_USAGE", "NAME_MAX_LENGTH", "SWEEP_REF", "Declaration", "LiteralAssignment",
    "build_declaration", "literal_assignment_nodes", "literal_assignments", "make_declaration",
    "parse_docstring", "parse_magic_line", "split_cell", "validate_name",
]

NAME_MAX_LENGTH = 128


def _suggest_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "-" for c in name)
    cleaned = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", cleaned)).strip("._-")
    return cleaned[:NAME_MAX_LENGTH] or "churn-gbm"


def validate_name(name: str, *, what: str = "experiment") -> str:
    """Check an experiment (or baseline, tag) name and return it NFC-normalised.

    A name has 1-128 characters: letters (any script), digits, ``_``, ``.`` and ``-``; it
    starts with a letter or digit and holds no ``..``, path separator or control character,
    so it is safe as a file or folder name and in URLs.

    Args:
        name: the name to check.
        what: what the name names, used in the message ("experiment", "baseline", "tag key").

    Returns:
        The name in Unicode normal form C.

    Raises:
        DeclarationError: the name is invalid; the message names the character and the fix.
    """
    label = f"The {what} name"
    if not isinstance(name, str):
        raise DeclarationError(f"{label} must be a string, not {type(name).__name__}.")
    if not name:
        raise DeclarationError(f"{label} is empty; give one such as 'churn-gbm'.")
    name = unicodedata.normalize("NFC", name)
    if len(name) > NAME_MAX_LENGTH:
        raise DeclarationError(f"{label} is {len(name)} characters long; the limit is "
                               f"{NAME_MAX_LENGTH}. Use a shorter name.")
    fix = f"e.g. {_suggest_name(name)!r}"
    for i, ch in enumerate(name):
        where = f"{label} {name!r} contains"
        if unicodedata.category(ch).startswith("C"):
            raise DeclarationError(f"{where} the invisible or control character U+{ord(ch):04X} "
                                   f"at position {i}; remove it ({fix}).")
        if ch in "/\\":
            raise DeclarationError(f"{where} {ch!r} at position {i}; names cannot hold path "
                                   f"separators. Use '-' instead, {fix}.")
        if not (ch.isalnum() or ch in "_.-"):
            raise DeclarationError(f"{where} {ch!r} at position {i}, which is not allowed; use "
                                   f"letters, digits, '_', '.' or '-', {fix}.")
    if ".." in name:
        raise DeclarationError(f"{label} {name!r} contains '..'; use a single '.' or '-', {fix}.")
    if not name[0].isalnum():
        raise DeclarationError(f"{label} {name!r} must start with a letter or digit, not "
                               f"{name[0]!r}; {fix}.")
    return name


#: ``sweep:ID:best`` (ID: a sweep id or a prefix of at least 4 hex characters), resolved by
#: :func:`nbtoolkit.baselines.resolve_baseline`
SWEEP_REF = re.compile(r"^sweep:(?P<sweep>[0-9a-fA-F]{4,32}):best$")


def check_baseline_ref(ref: str) -> str:
    """Check a ``--baseline`` reference's form and return it normalised.

    ``sweep:SWEEP_ID:best`` names a sweep's best child; ``MODEL@ALIAS`` a registry alias (both
    halves are names); anything else is a run id or an experiment name.

    Raises:
        DeclarationError: the reference cannot name anything.
    """
    if isinstance(ref, str) and ref.startswith("sweep:"):
        if not SWEEP_REF.match(ref):
            raise DeclarationError(f"The baseline {ref!r} is not of the form sweep:SWEEP_ID:best "
                                   "(SWEEP_ID: at least 4 characters of the id `nbtk sweeps` prints).")
        return ref.lower()
    # MODEL@ALIAS names a registry alias (nbtoolkit.registry): validate both halves
    return "@".join(validate_name(p, what="baseline") for p in ref.split("@", 1))



@dataclass(frozen=True)
class Declaration:
    """What an experiment is meant to show, declared before its code runs.

    Constructing one validates it (names, criteria, date, tags, seed), so every instance built
    by code is valid; ``success`` is split into one entry per criterion, ``until`` may be an ISO
    string. Records read back from the store go through :meth:`from_stored`, which never fails:
    a run without a declaration gets the *empty* declaration (``declared`` is false, every field
    empty), and what an old or damaged stored declaration holds that does not validate is kept,
    as stored, in ``extra``.

    Attributes:
        experiment: the experiment name.
        hypothesis: what the experiment should show.
        success: raw criteria texts, one per criterion.
        scope: what the result applies to.
        owner: who is responsible.
        until: the date by which the experiment should be decided.
        description: free text from the docstring.
        baseline: a run id (or prefix), experiment name or registry alias to compare with.
        tags: free key/value labels.
        seed: the random seed to set before the body runs.
        extra: stored keys this version does not know or could not validate (see
            :meth:`from_stored`); empty for declarations built by code.
    """

    experiment: str
    hypothesis: str = ""
    success: tuple[str, ...] = ()
    scope: str = ""
    owner: str = ""
    until: datetime.date | None = None
    description: str = ""
    baseline: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("experiment", validate_name(self.experiment))
        if self.baseline is not None:
            put("baseline", check_baseline_ref(self.baseline))
        put("success", split_texts(self.success))
        parse_criteria(self.success)
        if isinstance(self.until, str):
            put("until", _parse_until(self.until))
        elif isinstance(self.until, datetime.datetime):
            put("until", self.until.date())
        elif self.until is not None and not isinstance(self.until, datetime.date):
            raise DeclarationError(f"Until must be a date, not {type(self.until).__name__}.")
        put("tags", {validate_name(str(k), what="tag key"): str(v) for k, v in self.tags.items()})
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise DeclarationError(f"The seed must be a non-negative integer, got {self.seed!r}.")
        put("extra", dict(self.extra))

    @property
    def criteria(self) -> list[Criterion]:
        """The parsed success criteria."""
        return parse_criteria(self.success)

    @property
    def declared(self) -> bool:
        """Whether the run declared anything (``False`` for the empty declaration)."""
        return bool(self.experiment)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_stored` reverses it.

        The empty declaration gives ``{}``; values kept in ``extra`` are written back under
        their stored keys, so a stored declaration round-trips unchanged.
        """
        if not self.declared:
            return dict(self.extra)
        return {
            "experiment": self.experiment, "hypothesis": self.hypothesis,
            "success": list(self.success), "scope": self.scope, "owner": self.owner,
            "until": self.until.isoformat() if self.until else None,
            "description": self.description, "baseline": self.baseline,
            "tags": dict(self.tags), "seed": self.seed, **self.extra,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Declaration:
        """Rebuild from :meth:`to_dict` output, validating it (unknown keys are ignored).

        Raises:
            DeclarationError: a field is invalid.
            CriteriaError: a success criterion does not parse.
        """
        known = {k: d[k] for k in _FIELDS if k in d and d[k] is not None}
        return cls(**known)

    @classmethod
    def from_stored(cls, d: Mapping[str, Any] | None, *, experiment: str = "") -> Declaration:
        """Read a stored declaration back without ever raising (listings must not crash).

        Each field is validated on its own; a field that fails (a criterion the redactor masked,
        a name older versions allowed, a value of the wrong type) and every unknown key go to
        ``extra`` unchanged, and the field keeps its empty default.

        Args:
            d: the stored dict (``None`` or ``{}`` for a run that declared nothing).
            experiment: the run's experiment, used when the stored dict names none.

        Returns:
            The declaration; the empty declaration when ``d`` is empty.
        """
        data = dict(d or {})
        extra = {k: v for k, v in data.items() if k not in _FIELDS}
        if not data:
            return _with_experiment(cls(experiment=_PROBE, extra=extra), "")
        name = str(data.get("experiment") or experiment)
        try:
            name = validate_name(name)
        except DeclarationError:
            pass  # a name an older version allowed: kept as stored, like the run's column
        good: dict[str, Any] = {}
        for key in _FIELDS - {"experiment", "extra"}:
            value = data.get(key)
            if value is None:
                continue
            try:
                if key in _TEXT_FIELDS and not isinstance(value, str):
                    raise DeclarationError(f"{key} is not text")
                good[key] = getattr(cls(experiment=_PROBE, **{key: value}), key)
            except (NbToolkitError, TypeError, ValueError, AttributeError):
                extra[key] = value
        return _with_experiment(cls(experiment=_PROBE, extra=extra, **good), name)


_FIELDS = frozenset(Declaration.__dataclass_fields__)
_TEXT_FIELDS = frozenset({"hypothesis", "scope", "owner", "description", "baseline"})
_PROBE = "probe"  # a valid name to validate one field at a time with


def _with_experiment(declaration: Declaration, name: str) -> Declaration:
    """Set a (possibly unvalidated) stored experiment name on a declaration read back."""
    object.__setattr__(declaration, "experiment", name)
    return declaration


def make_declaration(
    experiment: str,
    *,
    hypothesis: str = "",
    success: str | Iterable[str] = (),
    scope: str = "",
    owner: str = "",
    until: str | datetime.date | None = None,
    baseline: str | None = None,
    tags: Mapping[str, str] | None = None,
    seed: int | None = None,
    description: str = "",
) -> Declaration:
    """Build a validated :class:`Declaration` from keyword arguments (for ``nbtk.start_run``).

    Args:
        experiment: the experiment name.
        hypothesis: see :class:`Declaration`, as are ``scope``, ``owner``, ``baseline``,
            ``tags``, ``seed`` and ``description``.
        success: criteria: one ``;``/newline separated string or several strings.
        until: the decision date, a ``date`` or an ISO ``YYYY-MM-DD`` string.

    Raises:
        DeclarationError: a name, the date, a tag or the seed is invalid.
        CriteriaError: a success criterion does not parse.
    """
    if isinstance(until, str):
        until = _parse_until(until) if until.strip() else None
    return Declaration(experiment=experiment, hypothesis=hypothesis, success=split_texts(success),
                       scope=scope, owner=owner, until=until, description=description,
                       baseline=baseline, tags=dict(tags or {}), seed=seed)


def _parse_until(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise DeclarationError(f"Until {text!r} is not a date; write it as YYYY-MM-DD, "
                               "e.g. 'Until: 2026-12-10' or --until 2026-12-10.") from None



def build_declaration(line: str, cell: str) -> tuple[Declaration, str]:
    """Build the declaration of an ``%%experiment`` cell and return the code to run.

    Options win over the docstring for single-valued fields; ``--success`` criteria are added
    after the docstring's. Everything is validated here, so a malformed criterion or date fails
    before the body runs.

    Args:
        line: the text after ``%%experiment``.
        cell: the cell's source.

    Returns:
        ``(declaration, body)``: the body is the cell with its docstring blanked out (same line
        numbers, see :func:`split_cell`).

    Raises:
        DeclarationError: bad options, names, date, tags or seed.
        CriteriaError: a success criterion does not parse.
    """
    name, opts = parse_magic_line(line)
    doc, body = split_cell(cell)
    fields = parse_docstring(doc or "")
    until_text = opts.get("until", fields["until"])
    declaration = Declaration(
        experiment=name,
        hypothesis=opts.get("hypothesis", fields["hypothesis"]),
        success=(*fields["success"], *split_texts(opts.get("success", ()))),
        scope=opts.get("scope", fields["scope"]),
        owner=opts.get("owner", fields["owner"]),
        until=_parse_until(until_text) if until_text else None,
        description=fields["description"],
        baseline=opts.get("baseline"),
        tags=opts.get("tags", {}),
        seed=opts.get("seed"),
    )
    return declaration, body
