"""Configuration: ``[tool.nbtoolkit]`` < ``NBTOOLKIT_*`` environment < command-line flags.

The result is one frozen :class:`Settings` object. Nothing here imports heavy modules.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nbtoolkit.errors import ConfigError

STORE_DIRNAME = ".nbtoolkit"

#: ``scheme://`` at the start of a store value: a database URL, never a folder name.
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(value: str) -> bool:
    """True when ``value`` looks like a URL (``scheme://...``), not a path."""
    return bool(_URL_SCHEME.match(value.strip()))

#: Environment variables recorded in the lock when set (names are matched exactly or, with a
#: trailing ``*``, by prefix). Secret-looking names are dropped even when allow-listed.
DEFAULT_ENV_ALLOWLIST: tuple[str, ...] = (
    "PYTHONHASHSEED",
    "CUDA_VISIBLE_DEVICES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "TZ",
    "LANG",
    "LC_ALL",
    "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV",
    "NBTOOLKIT_FLAG_*",
)

#: Substrings that make a variable or parameter name look secret (case-insensitive).
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration for one project.

    Attributes:
        root: the project root (holds ``.nbtoolkit/``, ``pyproject.toml`` or ``.git``).
        store_path: folder of the embedded store (``root/.nbtoolkit`` by default); with a
            server database it still holds the local artifacts folder.
        store_url: SQLAlchemy URL of the metadata database; ``None`` = SQLite in store_path.
            Hidden from ``repr`` (it may carry a password); see :attr:`store_display`.
        artifacts: where artifact blobs go: a folder or an fsspec URL (``s3://bucket/prefix``);
            ``None`` = ``store_path/artifacts`` (see :mod:`nbtoolkit.store.artifacts`).
        env_allowlist: environment variable names recorded in locks.
        secret_patterns: name fragments that mark a variable or parameter as secret.
        tool: the whole ``[tool.nbtoolkit]`` table, for later stages (export, sla, flags...).
    """

    root: Path
    store_path: Path
    store_url: str | None = field(default=None, repr=False)
    artifacts: str | None = None
    env_allowlist: tuple[str, ...] = DEFAULT_ENV_ALLOWLIST
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    tool: Mapping[str, Any] = field(default_factory=dict)

    @property
    def store_display(self) -> str:
        """Where the store is, safe to print: the folder, or the URL with its password masked."""
        if self.store_url is None:
            return str(self.store_path)
        return mask_url(self.store_url)

    def section(self, name: str) -> dict[str, Any]:
        """Return ``[tool.nbtoolkit.<name>]`` as a dict (empty when absent)."""
        value = self.tool.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[tool.nbtoolkit.{name}] must be a table, got {value!r}.")
        return dict(value)

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with command-line overrides applied (flags win)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
    if not has_password:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


def _store_location(value: str, *, root: Path, relative_to_root: bool) -> tuple[Path, str | None]:
    """Split a store setting into ``(folder, database URL or None)``.

    A ``scheme://`` value is a SQLAlchemy URL (never a folder name); ``sqlite:///file`` keeps
    the folder of that file for artifacts, a server URL keeps ``root/.nbtoolkit``.
    """
    if is_url(value):
        url = value.strip()
        if url.startswith("sqlite"):
            database = url.split("///", 1)[-1] if "///" in url else ""
            if not database or database == ":memory:":
                raise ConfigError(
                    f"{url!r} names no database file; use sqlite:///path/to/store.db or a store folder."
                )
            return Path(database).expanduser().resolve().parent, None if Path(database).name == "store.db" else url
        return root / STORE_DIRNAME, url
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (root / path) if relative_to_root else path.resolve()
    return path, None


def find_root(start: Path | None = None) -> Path:
    """Return the nearest folder upwards holding ``.nbtoolkit/``, ``pyproject.toml`` or ``.git``.

    Falls back to ``start`` itself when none is found.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_DIRNAME).is_dir():
            return folder
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return here


def _read_tool_table(root: Path) -> dict[str, Any]:
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{pyproject} is not valid TOML ({exc}); fix the file.") from exc
    table = data.get("tool", {}).get("nbtoolkit", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.nbtoolkit] in {pyproject} must be a table.")
    return table


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a list of strings (or a comma-separated string).")


def _artifacts_setting(tool: Mapping[str, Any], env: Mapping[str, str], root: Path) -> str | None:
    """``NBTOOLKIT_ARTIFACTS`` or ``[tool.nbtoolkit] artifacts``: a URL as given, a folder made absolute."""
    value = env.get("NBTOOLKIT_ARTIFACTS") or None
    base = Path.cwd()
    if value is None:
        value = tool.get("artifacts") or None
        base = root
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError("[tool.nbtoolkit] artifacts must be a string: a folder or a URL such as s3://bucket/prefix.")
    if "://" in value:
        return value
    return str((base / Path(value).expanduser()).resolve())


def load_settings(
    start: Path | str | None = None,
    *,
    store: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings for the project containing ``start`` (default: the working folder).

    Args:
        start: a folder inside the project.
        store: ``--store`` flag; wins over ``NBTOOLKIT_STORE`` and the config file.
        environ: environment to read (default ``os.environ``).

    Returns:
        The resolved :class:`Settings`.

    Raises:
        ConfigError: a configured value has the wrong type.
    """
    env = os.environ if environ is None else environ
    root = find_root(Path(start) if start is not None else None)
    tool = _read_tool_table(root)

    store_cfg = tool.get("store", STORE_DIRNAME)
    if not isinstance(store_cfg, str):
        raise ConfigError("[tool.nbtoolkit] store must be a folder path or a database URL string.")
    # an empty variable or flag counts as unset (``NBTOOLKIT_STORE= nbtk ...``)
    store = store if store not in (None, "") else None
    env_store = env.get("NBTOOLKIT_STORE") or None
    store_value: str = str(store) if store is not None else (env_store or store_cfg)
    store_path, store_url = _store_location(
        store_value, root=root, relative_to_root=store is None and env_store is None
    )
    # the older spelling: a separate URL setting next to a folder
    legacy_url = env.get("NBTOOLKIT_STORE_URL") or tool.get("store_url")
    if legacy_url is not None and not isinstance(legacy_url, str):
        raise ConfigError("[tool.nbtoolkit] store_url must be a string (a SQLAlchemy URL).")
    if store_url is None and legacy_url:
        store_url = legacy_url

    allow = DEFAULT_ENV_ALLOWLIST + _str_list(tool.get("env_allowlist", []), "env_allowlist")
    if "NBTOOLKIT_ENV_ALLOWLIST" in env:
        allow += _str_list(env["NBTOOLKIT_ENV_ALLOWLIST"], "NBTOOLKIT_ENV_ALLOWLIST")
    secrets = DEFAULT_SECRET_PATTERNS + _str_list(tool.get("secret_patterns", []), "secret_patterns")
    if "NBTOOLKIT_SECRET_PATTERNS" in env:
        secrets += _str_list(env["NBTOOLKIT_SECRET_PATTERNS"], "NBTOOLKIT_SECRET_PATTERNS")

    return Settings(
        root=root,
        store_path=store_path,
        store_url=store_url,
        artifacts=_artifacts_setting(tool, env, root),
        env_allowlist=tuple(dict.fromkeys(allow)),
        secret_patterns=tuple(dict.fromkeys(p.upper() for p in secrets)),
        tool=tool,
    )
