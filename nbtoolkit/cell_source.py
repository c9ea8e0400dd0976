"""Reading an ``%%experiment`` cell's source: the magic line, the docstring, the literals.

Plain Python (``ast``, ``tokenize``, ``argparse``), no IPython and no :class:`Declaration`:
:func:`parse_magic_line` splits the options, :func:`split_cell` separates the leading docstring,
:func:`parse_docstring` reads its ``Key: value`` lines and :func:`literal_assignment_nodes`
finds the top-of-cell ``name = <literal>`` parameters. :mod:`nbtoolkit.declaration` builds the
validated record from these; ``execute/params.py`` and the magic read the literals here.
"""

from __future__ import annotations

import ast
import inspect
import io
import re
import shlex
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nbtoolkit.errors import DeclarationError

MAGIC_USAGE = ("%%experiment NAME [--baseline RUN] [--hypothesis TEXT] [--success CRITERION]... "
               "[--scope TEXT] [--owner NAME] [--until YYYY-MM-DD] [--tag KEY=VALUE]... [--seed N]")
DOCSTRING_KEYS: tuple[str, ...] = ("hypothesis", "success", "scope", "owner", "until")
_KEY_LINE = re.compile(r"^(hypothesis|success|scope|owner|until)[ \t]*:(.*)$", re.IGNORECASE)


def split_texts(texts: Any) -> tuple[str, ...]:
    """Return one stripped entry per criterion from strings holding ';' or newlines."""
    items = [texts] if isinstance(texts, str) else list(texts)
    return tuple(part.strip() for item in items for line in str(item).splitlines()
                 for part in line.split(";") if part.strip())



def parse_docstring(doc: str) -> dict[str, Any]:
    """Split a declaration docstring into its fields.

    ``Hypothesis``, ``Success``, ``Scope``, ``Owner`` and ``Until`` (any case) start a line as
    ``Key: value``. The value continues on the following lines up to the next key line or a
    blank line (after a blank line, only indented lines continue it). ``Success`` keeps one
    criterion per line or ``;``-separated part; other values are joined with spaces. Every
    other line is free description.

    Args:
        doc: the docstring's text.

    Returns:
        ``{"hypothesis": str, "success": list[str], "scope": str, "owner": str,
        "until": str, "description": str}``; absent fields are empty.

    Raises:
        DeclarationError: a key other than ``Success`` appears twice.
    """
    parts: dict[str, list[str]] = {key: [] for key in DOCSTRING_KEYS}
    description: list[str] = []
    current: str | None = None
    after_blank = False
    for line in inspect.cleandoc(doc or "").splitlines():
        match = _KEY_LINE.match(line)
        if match:
            current, after_blank = match.group(1).lower(), False
            if current != "success" and parts[current]:
                raise DeclarationError(f"{match.group(1)} appears twice in the docstring; "
                                       "keep one such line.")
            parts[current].append(match.group(2).strip())
        elif not line.strip():
            after_blank = True
            description.append("")
        elif current is not None and (not after_blank or line[:1].isspace()):
            parts[current].append(line.strip())
        else:
            current = None
            description.append(line.rstrip())
    result: dict[str, Any] = {key: " ".join(p for p in parts[key] if p) for key in DOCSTRING_KEYS}
    result["success"] = list(split_texts(parts["success"]))
    result["description"] = re.sub(r"\n{3,}", "\n\n", "\n".join(description)).strip()
    return result


def _logical_lines(source: str) -> Iterator[tuple[int, int]]:
    """Yield ``(first_row, last_row)`` of each top-level statement line, lazily.

    Tokenising lazily means IPython syntax (``!ls``, ``%time``) further down does not matter.
    Stops at an indented line or a tokenizer error.
    """
    start: int | None = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in (tokenize.NL, tokenize.COMMENT):
                continue
            if tok.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
                return
            start = tok.start[0] if start is None else start
            if tok.type == tokenize.NEWLINE:
                yield start, tok.end[0]
                start = None
    except (tokenize.TokenError, SyntaxError):
        return


def _parse_rows(lines: list[str], first: int, last: int) -> list[ast.stmt] | None:
    try:
        return ast.parse("".join(lines[first - 1:last])).body
    except SyntaxError:
        return None


def _docstring_of(stmt: ast.stmt) -> str | None:
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        return stmt.value.value if isinstance(stmt.value.value, str) else None
    return None


def split_cell(cell: str) -> tuple[str | None, str]:
    """Separate a cell's leading docstring from the rest of its source.

    The body keeps the cell's layout: the docstring's lines become blank lines, so line numbers
    in tracebacks from the body are those of the original cell. Comments may precede the
    docstring. Cells that do not parse as Python (IPython syntax further down) still work.

    Args:
        cell: the cell's source without the ``%%experiment`` line.

    Returns:
        ``(docstring, body)``; ``docstring`` is ``None`` when the cell does not start with one
        (the body is then the cell unchanged).
    """
    lines = io.StringIO(cell).readlines()
    first_line = next(_logical_lines(cell), None)
    if first_line is None:
        return None, cell
    stmts = _parse_rows(lines, *first_line)
    doc = _docstring_of(stmts[0]) if stmts is not None and len(stmts) == 1 else None
    if doc is None:
        return None, cell
    first, last = first_line
    blanked = ["\n"] * (last - first + 1)
    if not lines[last - 1].endswith("\n"):
        blanked[-1] = ""
    return doc, "".join(lines[: first - 1] + blanked + lines[last:])


@dataclass(frozen=True)
class LiteralAssignment:
    """One top-of-cell ``name = <literal>`` statement.

    Attributes:
        name: the assigned name.
        value: the literal's value.
        lineno: first line of the statement (1-based, in the source given).
        end_lineno: last line of the statement.
    """

    name: str
    value: Any
    lineno: int
    end_lineno: int


def _is_plain(value: Any) -> bool:
    """Whether a literal is a plain parameter value (JSON-like: no bytes, sets or complex)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int, float, bool)) and _is_plain(v)
                   for k, v in value.items())
    return False


def literal_assignment_nodes(body: str) -> list[LiteralAssignment]:
    """Find the consecutive top-of-cell literal assignments, with their line numbers.

    A statement counts when it is ``name = LITERAL`` or ``name: T = LITERAL`` with one plain
    name as target and a value ``ast.literal_eval`` accepts and that is JSON-like: numbers
    (negative too), strings, booleans, ``None``, and lists, tuples and dicts of those. Blank
    lines and comments are skipped; a leading docstring is skipped; the scan stops at the
    first other statement. ``a = 1; b = 2`` on one line counts as two.

    Args:
        body: cell source, usually the body returned by :func:`split_cell`.

    Returns:
        The assignments in source order (a name assigned twice appears twice).
    """
    lines = io.StringIO(body).readlines()
    found: list[LiteralAssignment] = []
    first_statement = True
    for first, last in _logical_lines(body):
        stmts = _parse_rows(lines, first, last)
        if stmts is None:
            break
        for stmt in stmts:
            if first_statement and _docstring_of(stmt) is not None:
                first_statement = False
                continue
            first_statement = False
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, node = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None and stmt.simple:
                target, node = stmt.target, stmt.value
            else:
                return found
            try:
                value = ast.literal_eval(node)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                return found
            if not isinstance(target, ast.Name) or not _is_plain(value):
                return found
            end = stmt.end_lineno or stmt.lineno
            found.append(LiteralAssignment(target.id, value, first + stmt.lineno - 1,
                                           first + end - 1))
    return found


def literal_assignments(body: str) -> dict[str, Any]:
    """Return the top-of-cell literal assignments as ``{name: value}`` in source order.

    See :func:`literal_assignment_nodes` for what counts and for line numbers. A name assigned
    twice keeps its last value.

    Args:
        body: cell source, usually the body returned by :func:`split_cell`.
    """
    return {a.name: a.value for a in literal_assignment_nodes(body)}


def _magic_parser() -> Any:
    import argparse  # only the magic needs it

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # argparse would print and sys.exit
            raise DeclarationError(f"%%experiment: {message}.\nusage: {MAGIC_USAGE}")

    p = Parser(prog="%%experiment", usage=MAGIC_USAGE.replace("%", "%%"), add_help=False,
               allow_abbrev=False, exit_on_error=False)
    p.add_argument("name", nargs="?")
    for option, metavar in [("--baseline", "RUN"), ("--hypothesis", "TEXT"), ("--scope", "TEXT"),
                            ("--owner", "NAME"), ("--until", "YYYY-MM-DD")]:
        p.add_argument(option, metavar=metavar)
    p.add_argument("--success", metavar="CRITERION", action="append")
    p.add_argument("--tag", metavar="KEY=VALUE", action="append")
    p.add_argument("--seed", metavar="N", type=int)
    return p


def parse_magic_line(line: str) -> tuple[str, dict[str, Any]]:
    """Parse the ``%%experiment`` line.

    ``NAME [--baseline RUN] [--hypothesis TEXT] [--success CRITERION]... [--scope TEXT]
    [--owner NAME] [--until YYYY-MM-DD] [--tag KEY=VALUE]... [--seed N]``, split like a shell.

    Args:
        line: the text after ``%%experiment``.

    Returns:
        ``(name, options)``; ``options`` holds only the options given: ``success`` as a list,
        ``tags`` as a dict (from ``--tag``), ``seed`` as an int, the rest as strings.
        Names are not validated here (see :func:`nbtoolkit.declaration.build_declaration`).

    Raises:
        DeclarationError: the line does not parse; the message includes the usage.
    """
    import argparse

    parser = _magic_parser()
    usage = f"usage: {MAGIC_USAGE}"
    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise DeclarationError(f"%%experiment: cannot split the options ({exc}); check the "
                               f"quotes.\n{usage}") from None
    try:
        ns = parser.parse_args(args)
    except argparse.ArgumentError as exc:
        raise DeclarationError(f"%%experiment: {exc}.\n{usage}") from None
    if not ns.name:
        raise DeclarationError(f"%%experiment: the experiment name is missing.\n{usage}")
    options: dict[str, Any] = {k: v for k, v in vars(ns).items()
                               if v is not None and k not in ("name", "tag")}
    if ns.tag is not None:
        tags: dict[str, str] = {}
        for raw in ns.tag:
            key, sep, value = raw.partition("=")
            if not sep or not key.strip():
                raise DeclarationError(f"--tag {raw!r} must be KEY=VALUE, e.g. --tag team=growth.")
            if key.strip() in tags:
                raise DeclarationError(f"--tag {key.strip()!r} is given twice; keep one.")
            tags[key.strip()] = value
        options["tags"] = tags
    if ns.seed is not None and ns.seed < 0:
        raise DeclarationError(f"--seed must be a non-negative integer, got {ns.seed}.")
    return ns.name, options

