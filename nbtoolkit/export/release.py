"""The release plan a bundle carries in ``release.json``: canary steps, SLAs, routing, rollback target.

:func:`release_plan` builds it at export (``export_bundle(..., release=plan)``); the stability
stage's canary (:func:`nbtoolkit.stability.canary.canary`) replays traffic with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbtoolkit import registry
from nbtoolkit.config import Settings
from nbtoolkit.errors import InputError
from nbtoolkit.policy import Sla, as_sla
from nbtoolkit.store import Store

__all__ = ["DEFAULT_SALT", "DEFAULT_STEPS", "RELEASE_SCHEMA", "check_steps", "release_plan"]

DEFAULT_STEPS: tuple[float, ...] = (1, 5, 25, 50, 100)
RELEASE_SCHEMA = "nbtoolkit.release.v1"
#: Salt of the routing hash when a plan names none.
DEFAULT_SALT = "nbtoolkit"


def release_plan(
    model: str | None = None,
    *,
    steps: Sequence[float] = DEFAULT_STEPS,
    sla: Sla | Mapping[str, Any] | None = None,
    key: str | None = None,
    salt: str = DEFAULT_SALT,
    alias: str = "production",
    settings: Settings | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """The rollout plan for a bundle's ``release.json``: steps, SLAs, rollback target.

    Args:
        model: model name; the rollback target is the version its ``alias`` points to now.
        steps: challenger shares in percent, increasing, ending at 100.
        sla: thresholds (default: ``[tool.nbtoolkit.sla]``).
        key: the name of the routing key column (documentation for the deployer).
        salt: salt of the bucketing hash.

    Returns:
        A JSON-compatible dict (``schema`` = ``nbtoolkit.release.v1``).
    """
    plan_steps = check_steps(steps)
    rule = as_sla(sla, settings)
    target: dict[str, Any] | None = None
    if model is not None:
        version = registry.current(model, alias, store=store, settings=settings)
        if version is not None:
            mv = registry.get_version(model, version, store=store, settings=settings)
            target = {"model": model, "alias": alias, "version": version, "run_id": mv.run_id, "manifest_sha256": mv.manifest_sha256}
        else:
            target = {"model": model, "alias": alias, "version": None}
    return {
        "schema": RELEASE_SCHEMA,
        "steps": list(plan_steps),
        "sla": rule.to_dict(),
        "routing": {"key": key, "salt": salt, "rule": 'int(sha256(f"{salt}:{key}").hexdigest()[:8], 16) % 10000 < pct * 100'},
        "halt": "at the first step whose challenger share breaches an SLA; route all traffic back to the rollback target",
        "rollback_target": target,
    }


def check_steps(steps: Sequence[float]) -> tuple[float, ...]:
    """Canary shares as floats, checked to increase within (0, 100].

    Raises:
        InputError: an empty, out-of-range or non-increasing list.
    """
    out = tuple(float(s) for s in steps)
    if not out or any(not 0 < s <= 100 for s in out) or any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise InputError(f"steps must increase within (0, 100], e.g. 1,5,25,50,100; got {list(steps)}.")
    return out
