"""Feature flags: ``[tool.nbtoolkit.flags]`` < ``NBTOOLKIT_FLAG_<NAME>`` < ``nbtk run --flag``.

::

    [tool.nbtoolkit.flags]
    new_features = true
    threshold = 0.4
    new_ranker = { rollout = 25, key = "user_id" }   # on for 25 % of keys

    [tool.nbtoolkit.flags.kill]
    new_ranker = true                                # kill-switch: forces the flag off

Resolution, later wins: the config table, then the environment variable
``NBTOOLKIT_FLAG_<NAME>`` (``NAME`` upper-cased, non-alphanumerics as ``_``), then
``nbtk run --flag name=value``, which the runner passes to the kernel as
``NBTOOLKIT_FLAG_<name as typed>`` (that spelling wins when both are set). A kill-switch
(``[tool.nbtoolkit.flags.kill] name = true`` or ``NBTOOLKIT_KILL_<NAME>=1``) wins over all of
them: the flag is off (``False``; for a non-boolean flag, the code's ``default``) without
re-exporting or redeploying anything.

A percentage rollout (``{rollout = PCT, key = "..."}``, or the value ``"PCT%"`` from the
environment) is on for a key when the canary's deterministic bucketing puts it in the first
``PCT`` percent (:func:`nbtoolkit.stability._common.bucket`, salt ``"nbtoolkit"`` unless the
table sets ``salt``), so a 25 % rollout and a 25 % canary reach the same keys.

Values read while a run is active are recorded in the run (``extra["flags"]``); the
``NBTOOLKIT_FLAG_*`` variables are also in the run's environment lock (allow-listed).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import ConfigError, InputError

if TYPE_CHECKING:
    from nbtoolkit.config import Settings

_lock = threading.Lock()
_seen: dict[str, Any] = {}
_recorded: dict[str, dict[str, Any]] = {}
_config_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def env_name(name: str, prefix: str = "NBTOOLKIT_FLAG_") -> str:
    """The environment variable of flag ``name`` (``new-ranker`` -> ``NBTOOLKIT_FLAG_NEW_RANKER``)."""
    return prefix + re.sub(r"[^0-9A-Za-z]", "_", name).upper()


def _config(settings: Settings | None) -> dict[str, Any]:
    if settings is not None:
        return settings.section("flags")
    from nbtoolkit.config import find_root, load_settings

    root = find_root()
    pyproject = root / "pyproject.toml"
    try:
        mtime = pyproject.stat().st_mtime
    except OSError:
        mtime = -1.0
    cached = _config_cache.get(str(root))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    table = load_settings(root).section("flags")
    _config_cache[str(root)] = (mtime, table)
    return table


def parse_value(raw: str, default: Any, *, name: str = "") -> Any:
    """Parse an environment / CLI string into the type of ``default``."""
    text = raw.strip()
    if isinstance(default, bool) or default is None and text.lower() in ("true", "false", "on", "off", "yes", "no"):
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise InputError(f"Flag {name!r}: {raw!r} is not a boolean; use true/false, 1/0, on/off.")
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise InputError(f"Flag {name!r}: {raw!r} is not an integer.") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise InputError(f"Flag {name!r}: {raw!r} is not a number.") from None
    if isinstance(default, str):
        return raw
    try:
        return json.loads(text)
    except ValueError:
        return raw


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _off(default: Any) -> Any:
    return False if isinstance(default, bool) else default


def resolve_flag(
    name: str, default: Any = False, *, key: Any = None, settings: Settings | None = None, environ: Mapping[str, str] | None = None
) -> tuple[Any, str, Any]:
    """Resolve a flag: ``(value, source, setting)``.

    ``source`` is ``default``, ``config``, ``env``, ``rollout`` or ``kill``; ``setting`` is what
    was configured (for a rollout, its table), which is what a run records.
    """
    env = os.environ if environ is None else environ
    table = _config(settings)
    kills = table.get("kill", {})
    if not isinstance(kills, Mapping):
        raise ConfigError("[tool.nbtoolkit.flags.kill] must be a table of name = true.")
    if _truthy(kills.get(name, False)) or _truthy(env.get(env_name(name, "NBTOOLKIT_KILL_"), "")):
        return _off(default), "kill", _off(default)
    value, source = default, "default"
    if name in table:
        value, source = table[name], "config"
    # `nbtk run --flag name=v` sets NBTOOLKIT_FLAG_<name as typed> on top of the inherited
    # environment, so that spelling wins over the normalised one
    raw = env.get(f"NBTOOLKIT_FLAG_{name}", env.get(env_name(name)))
    if raw is not None:
        if raw.strip().endswith("%"):
            try:
                value, source = {"rollout": float(raw.strip()[:-1])}, "env"
            except ValueError:
                raise InputError(f"Flag {name!r}: {raw!r} is not a percentage like 25%.") from None
        else:
            value, source = parse_value(raw, default, name=name), "env"
    if isinstance(value, Mapping):
        if "rollout" not in value:
            raise ConfigError(f"[tool.nbtoolkit.flags] {name}: a table needs rollout = PCT (and key = NAME).")
        pct = value["rollout"]
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100:
            raise ConfigError(f"[tool.nbtoolkit.flags] {name}: rollout must be a percentage 0-100, got {pct!r}.")
        if key is None:
            raise InputError(
                f"Flag {name!r} is a {pct:g}% rollout; pass the key it is rolled out by: "
                f"nbtk.flag({name!r}, {default!r}, key={value.get('key', 'user_id')})."
            )
        from nbtoolkit.export.release import DEFAULT_SALT
        from nbtoolkit.stability._common import in_share

        on = in_share(key, float(pct), salt=str(value.get("salt", DEFAULT_SALT)))
        return (value.get("value", True) if on else default), "rollout", {**dict(value), "from": source}
    return value, source, value


def flag(name: str, default: Any = False, *, key: Any = None, settings: Settings | None = None) -> Any:
    """The value of feature flag ``name``.

    Args:
        name: the flag's name, as in ``[tool.nbtoolkit.flags]``.
        default: the value when nothing sets the flag; also fixes the type env values parse to.
        key: the rollout key (e.g. a user id) for percentage rollouts.
        settings: resolved settings (default: the current project's).

    Returns:
        The resolved value (see the module docstring for the order).

    Raises:
        InputError: a rollout flag without ``key``, or an unparsable environment value.
    """
    value, source, setting = resolve_flag(name, default, key=key, settings=settings)
    _note(name, setting, source)
    return value


def _note(name: str, value: Any, source: str) -> None:
    from nbtoolkit.tracking import current_run, jsonable_param

    entry = {"value": jsonable_param(name, value), "source": source}
    with _lock:
        _seen[name] = entry
        run = current_run()
        if run is None:
            return
        done = _recorded.get(run.run_id)
        if done is None:
            done = _recorded[run.run_id] = _runner_flags(run)
        if all(done.get(k) == v for k, v in _seen.items()):
            return
        done.update(_seen)
        snapshot = dict(done)
    run.store.merge_extra(run.run_id, {"flags": snapshot})


def _runner_flags(run: Any) -> dict[str, Any]:
    """Flags a runner already recorded for this run (``nbtk run --flag``), kept when not read."""
    from nbtoolkit.errors import NbToolkitError

    try:
        existing = run.store.get_run(run.run_id).extra.get("flags") or {}
    except NbToolkitError:
        return {}
    return {
        str(k): v if isinstance(v, dict) and "source" in v else {"value": v, "source": "run"}
        for k, v in existing.items()
    } if isinstance(existing, dict) else {}


def flags_in_effect() -> dict[str, Any]:
    """The flags read in this process so far: ``{name: {"value": ..., "source": ...}}``."""
    with _lock:
        return dict(_seen)


def _reset() -> None:
    """Forget recorded flags (tests)."""
    with _lock:
        _seen.clear()
        _recorded.clear()
        _config_cache.clear()

