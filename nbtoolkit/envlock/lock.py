"""The lock object (:class:`EnvLock`) and the difference between two locks (:class:`LockDiff`)."""

from __future__ import annotations

import hashlib
import html
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtoolkit.errors import StoreError

__all__ = ["LOCK_SCHEMA", "EnvLock", "LockDiff"]

LOCK_SCHEMA = "nbtoolkit.envlock.v1"
_SCHEMA_RE = re.compile(r"^nbtoolkit\.envlock\.v(\d+)$")
_SCHEMA_VERSION = 1

Pair = tuple[Any, Any]


def canonical_json(obj: Any) -> str:
    """Serialise ``obj`` the one way hashes are computed over (sorted keys, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _sha256(obj: Any) -> str:
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name)
    return value if isinstance(value, dict) else {}


def _python_label(data: Mapping[str, Any]) -> str | None:
    py = _section(data, "python")
    return " ".join(str(py[k]) for k in ("implementation", "version") if py.get(k)) or None


def _platform_label(data: Mapping[str, Any]) -> str | None:
    plat = _section(data, "platform")
    return " ".join(str(plat[k]) for k in ("system", "release", "machine") if plat.get(k)) or None


def _package_label(info: Any) -> str:
    if not isinstance(info, dict):
        return str(info)
    label = str(info.get("version"))
    if info.get("commit"):
        label += f"@{str(info['commit'])[:12]}"
    if info.get("origin") == "editable":
        label += " (editable)"
    return label


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...], caption: str) -> str:
    def cells(tag: str, values: tuple[str, ...]) -> str:
        return "".join(f"<{tag} style='text-align:left'>{html.escape(v)}</{tag}>" for v in values)

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return (
        f"<table><caption style='text-align:left'>{html.escape(caption)}</caption>"
        f"<thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"
    )


@dataclass(frozen=True)
class EnvLock:
    """A captured environment: interpreter, packages, code, data, seeds and variables.

    Attributes:
        data: the JSON-serialisable lock (``data["schema"] == LOCK_SCHEMA``). Treat as
            read-only; :meth:`to_dict` returns a copy.
        git_diff: the redacted text of the uncommitted changes, stored by the caller as an
            artifact; ``data["git"]["diff_sha256"]`` is its sha256.
    """

    data: dict[str, Any]
    git_diff: str | None = field(default=None, repr=False)

    @property
    def hash(self) -> str:
        """The sha256 of the canonical JSON of :attr:`data`."""
        return _sha256(self.data)

    @property
    def environment_hash(self) -> str:
        """The sha256 over python, platform and packages only (the run cache key)."""
        return _sha256({k: self.data.get(k) for k in ("python", "platform", "packages")})

    @property
    def packages(self) -> dict[str, str]:
        """Installed distributions as ``{name: version}``."""
        return {
            name: str(info.get("version") if isinstance(info, dict) else info)
            for name, info in _section(self.data, "packages").items()
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of :attr:`data` (the diff text is not included)."""
        result: dict[str, Any] = json.loads(json.dumps(self.data))
        return result

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, git_diff: str | None = None) -> EnvLock:
        """Rebuild a lock from :meth:`to_dict` output.

        Args:
            d: the lock data.
            git_diff: the diff artifact's text, when the caller has it.

        Returns:
            The lock. A lock written by a newer nbtoolkit loads with a warning.

        Raises:
            StoreError: ``d`` is not an nbtoolkit environment lock.
        """
        schema = d.get("schema") if isinstance(d, Mapping) else None
        match = _SCHEMA_RE.match(schema) if isinstance(schema, str) else None
        if match is None:
            raise StoreError(
                f"Not an nbtoolkit environment lock (schema {schema!r}, expected {LOCK_SCHEMA!r}); "
                "the run record is damaged or was not written by nbtoolkit."
            )
        if int(match.group(1)) > _SCHEMA_VERSION:
            warnings.warn(
                f"Environment lock schema {schema} is newer than this nbtoolkit reads "
                f"({LOCK_SCHEMA}); unknown fields are ignored. Upgrade nbtoolkit.",
                UserWarning,
                stacklevel=2,
            )
        return cls(data=json.loads(json.dumps(dict(d))), git_diff=git_diff)

    def diff(self, other: EnvLock) -> LockDiff:
        """Return what changed going from this lock to ``other``.

        Args:
            other: the later (or candidate) lock.

        Returns:
            A :class:`LockDiff`; ``.empty`` when nothing relevant changed.
        """
        old, new = self.data, other.data
        old_pkgs = {n: _package_label(i) for n, i in _section(old, "packages").items()}
        new_pkgs = {n: _package_label(i) for n, i in _section(new, "packages").items()}
        py = (_python_label(old), _python_label(new))
        plat = (_platform_label(old), _platform_label(new))
        return LockDiff(
            packages_added={n: new_pkgs[n] for n in sorted(new_pkgs.keys() - old_pkgs.keys())},
            packages_removed={n: old_pkgs[n] for n in sorted(old_pkgs.keys() - new_pkgs.keys())},
            packages_changed={
                n: (old_pkgs[n], new_pkgs[n])
                for n in sorted(old_pkgs.keys() & new_pkgs.keys())
                if old_pkgs[n] != new_pkgs[n]
            },
            python_changed=py if py[0] != py[1] else None,
            platform_changed=plat if plat[0] != plat[1] else None,
            code=_code_changes(old, new),
            data=_changed(_data_md5(old), _data_md5(new)),
            env_vars=_changed(_section(old, "env"), _section(new, "env")),
            seeds=_changed(_section(old, "seeds"), _section(new, "seeds")),
        )

    def __repr__(self) -> str:
        git = _section(self.data, "git")
        code = "no git"
        if git:
            code = (
                f"{str(git['commit'])[:7] if git.get('commit') else 'no commit'}"
                f"{' dirty' if git.get('dirty') else ''}"
            )
        return (
            f"EnvLock(python={_python_label(self.data)!r}, packages={len(self.packages)}, "
            f"git={code!r}, data={len(self.data.get('data') or [])}, hash={self.hash[:12]!r})"
        )

    def _repr_html_(self) -> str:
        git = _section(self.data, "git")
        notebook = _section(self.data, "notebook")
        conda = _section(self.data, "conda")
        rows = [
            ("Python", _python_label(self.data) or "?"),
            ("Platform", _platform_label(self.data) or "?"),
            ("Packages", f"{len(self.packages)} installed"),
            ("Conda", str(conda.get("name") or conda.get("prefix") or "-") if conda else "-"),
            (
                "Git",
                f"{git.get('commit') or 'no commit'} on {git.get('branch') or 'detached HEAD'}"
                f"{' (uncommitted changes)' if git.get('dirty') else ''}"
                if git
                else "not a git repository",
            ),
            ("Notebook", str(notebook.get("path")) if notebook else "-"),
            ("DVC data", f"{len(self.data.get('data') or [])} tracked paths"),
            (
                "Seeds",
                ", ".join(f"{k}={v}" for k, v in _section(self.data, "seeds").items()) or "-",
            ),
            ("Variables", ", ".join(sorted(_section(self.data, "env"))) or "-"),
            ("Lock hash", self.hash[:12]),
        ]
        return _table(rows, ("", ""), "Environment lock")


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Pair]:
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _data_md5(data: Mapping[str, Any]) -> dict[str, Any]:
    entries = data.get("data")
    if not isinstance(entries, list):
        return {}
    return {e["path"]: e.get("md5") for e in entries if isinstance(e, dict) and "path" in e}


def _untracked_map(entries: Any) -> dict[str, str | None]:
    """``{path: sha256 or None}`` from a lock's untracked list (older locks hold bare names)."""
    out: dict[str, str | None] = {}
    for entry in entries or []:
        if isinstance(entry, str):
            out[entry] = None
        elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
            out[entry["path"]] = entry.get("sha256")
    return out


def _untracked_changes(old: Any, new: Any) -> list[str]:
    """Untracked paths added, removed, or (both hashed) changed, as ``+ a.py`` / ``- b.py`` / ``~ c.py``."""
    a, b = _untracked_map(old), _untracked_map(new)
    lines = [f"- {p}" for p in sorted(set(a) - set(b))] + [f"+ {p}" for p in sorted(set(b) - set(a))]
    lines += [f"~ {p}" for p in sorted(set(a) & set(b)) if a[p] and b[p] and a[p] != b[p]]
    return lines


def _code_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    git_old, git_new = _section(old, "git"), _section(new, "git")
    code: dict[str, Any] = _changed(
        {k: git_old.get(k) for k in ("commit", "branch", "dirty")},
        {k: git_new.get(k) for k in ("commit", "branch", "dirty")},
    )
    if git_old.get("diff_sha256") != git_new.get("diff_sha256"):
        code["diff_changed"] = True
    untracked = _untracked_changes(git_old.get("untracked"), git_new.get("untracked"))
    if untracked:
        code["untracked"] = untracked
    nb_old, nb_new = (
        _section(old, "notebook").get("sha256"),
        _section(new, "notebook").get("sha256"),
    )
    if nb_old != nb_new:
        code["notebook"] = (nb_old, nb_new)
    return code


@dataclass(frozen=True)
class LockDiff:
    """What changed between two environment locks (``old.diff(new)``).

    Attributes:
        packages_added: ``{name: version}`` present only in the new lock.
        packages_removed: ``{name: version}`` present only in the old lock.
        packages_changed: ``{name: (old, new)}``; a VCS commit shows as ``version@commit``.
        python_changed: ``(old, new)`` interpreter, e.g. ``("CPython 3.11.7", "CPython 3.12.1")``.
        platform_changed: ``(old, new)`` "system release machine".
        code: only the keys that changed: ``commit``, ``branch``, ``dirty`` as ``(old, new)``,
            ``diff_changed`` (True when the diff of tracked files differs), ``untracked``
            (``["+ new.py", "- gone.py", "~ edited.txt"]``), ``notebook`` as
            ``(old sha256, new sha256)``.
        data: ``{path: (old md5, new md5)}`` for DVC entries changed, added (old None) or
            removed (new None).
        env_vars: ``{name: (old, new)}`` for allow-listed variables that changed.
        seeds: ``{name: (old, new)}`` for seeds that changed.
    """

    packages_added: dict[str, str] = field(default_factory=dict)
    packages_removed: dict[str, str] = field(default_factory=dict)
    packages_changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    python_changed: tuple[str | None, str | None] | None = None
    platform_changed: tuple[str | None, str | None] | None = None
    code: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Pair] = field(default_factory=dict)
    env_vars: dict[str, Pair] = field(default_factory=dict)
    seeds: dict[str, Pair] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the two locks match in everything compared."""
        return not any(self._rows())

    def to_dict(self) -> dict[str, Any]:
        """Return the difference as JSON-serialisable data (pairs become two-item lists)."""
        result: dict[str, Any] = json.loads(
            json.dumps({name: getattr(self, name) for name in self.__dataclass_fields__})
        )
        return result

    def summary_lines(self) -> list[str]:
        """Return one human-readable line per change, e.g. ``"~ numpy 1.26.0 -> 2.0.0"``."""
        lines = []
        for section, sign, name, before, after in self._rows():
            if sign == "+":
                lines.append(f"{section}+ {name} {after}".strip())
            elif sign == "-":
                lines.append(f"{section}- {name} {before}".strip())
            elif not before:  # a change with no "before" value, e.g. "uncommitted changes: differ"
                lines.append(f"{section}~ {name}: {after}")
            else:
                lines.append(f"{section}~ {name}: {before} -> {after}")
        return lines

    def _rows(self) -> Iterator[tuple[str, str, str, str, str]]:
        """Yield (section prefix, sign, name, before, after) per change, all as text."""
        for name, version in self.packages_added.items():
            yield "", "+", name, "", version
        for name, version in self.packages_removed.items():
            yield "", "-", name, version, ""
        for name, (before, after) in self.packages_changed.items():
            yield "", "~", name, before, after
        if self.python_changed:
            yield "", "~", "python", str(self.python_changed[0]), str(self.python_changed[1])
        if self.platform_changed:
            yield "", "~", "platform", str(self.platform_changed[0]), str(self.platform_changed[1])
        for key, value in self.code.items():
            if key == "diff_changed":
                yield "code ", "~", "uncommitted changes", "", "differ"
            elif key == "untracked":
                yield "code ", "~", "untracked files", "", ", ".join(value)
            elif key in ("commit", "notebook"):
                yield "code ", "~", key, _short(value[0]), _short(value[1])
            else:
                yield "code ", "~", key, str(value[0]), str(value[1])
        for path, (before, after) in self.data.items():
            sign = "+" if before is None else "-" if after is None else "~"
            yield "data ", sign, path, _short(before), _short(after)
        for name, (before, after) in self.env_vars.items():
            yield "env ", "~", name, str(before), str(after)
        for name, (before, after) in self.seeds.items():
            yield "seed ", "~", name, str(before), str(after)

    def __repr__(self) -> str:
        lines = self.summary_lines()
        if not lines:
            return "LockDiff(no changes)"
        return (
            f"LockDiff({len(lines)} changes:\n" + "\n".join(f"  {line}" for line in lines) + "\n)"
        )

    def _repr_html_(self) -> str:
        rows = [
            (f"{section}{sign}".strip(), name, before, after)
            for section, sign, name, before, after in self._rows()
        ]
        if not rows:
            return "<p>No environment changes.</p>"
        return _table(
            rows, ("change", "item", "before", "after"), f"Environment changes ({len(rows)})"
        )


def _short(value: Any) -> str:
    """Shorten hashes for display (commit ids, md5, sha256)."""
    if value is None:
        return "none"
    text = str(value)
    return text[:12] if re.fullmatch(r"[0-9a-f]{13,}(\.dir)?", text) else text
