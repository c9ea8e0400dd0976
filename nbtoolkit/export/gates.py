"""Export gates: is a run vetted for handoff?

Vetted = the run finished, its verdict is ``supported``, at least one reviewer approved it, its
metrics meet ``[tool.nbtoolkit.sla]`` (when configured), and
-- when ``[tool.nbtoolkit.export] require_reproduced = true`` -- a reproduction confirmed it
(``extra["reproduction"]["result"] == "reproduced"``, written by ``nbtk reproduce``).
Each unmet gate is reported with how to meet it; ``--force --reason`` overrides them all, and
the override is recorded in the store, the manifest and the model card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import ConfigError, GateError, InputError
from nbtoolkit.policy import check_export_sla

if TYPE_CHECKING:
    from nbtoolkit.config import Settings
    from nbtoolkit.store import RunRecord

__all__ = ["Gate", "check_gates", "enforce_gates", "require_reproduced"]


@dataclass(frozen=True)
class Gate:
    """One gate: its name, whether the run meets it, and how to meet it when it does not."""

    name: str
    met: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def require_reproduced(settings: Settings | None) -> bool:
    """Read ``[tool.nbtoolkit.export] require_reproduced`` (default false)."""
    if settings is None:
        return False
    value = settings.section("export").get("require_reproduced", False)
    if not isinstance(value, bool):
        raise ConfigError(f"[tool.nbtoolkit.export] require_reproduced must be true or false, got {value!r}.")
    return value


def _reproduction(extra: Mapping[str, Any]) -> str | None:
    rep = extra.get("reproduction")
    if isinstance(rep, Mapping):
        result = rep.get("result")
        return str(result) if result is not None else None
    return None


def check_gates(
    record: RunRecord, *, reproduced_required: bool, sla_problems: list[str] | None = None
) -> list[Gate]:
    """Evaluate every gate for ``record`` (all of them, met or not).

    Args:
        record: the run.
        reproduced_required: whether a confirmed reproduction is a gate.
        sla_problems: breaches of ``[tool.nbtoolkit.sla]`` by the run's metrics (see
            :func:`nbtoolkit.policy.check_export_sla`); the SLA gate is met when empty.
    """
    short = record.run_id[:8]
    gates = [
        Gate(
            "finished",
            record.status == "finished",
            f"run status is {record.status!r}; only a finished run can be handed off. "
            "Fix the failure and re-run the experiment.",
        ),
        Gate(
            "supported",
            record.verdict == "supported",
            f"verdict is {record.verdict or 'missing'!r}; it must be 'supported'. Meet every success "
            "criterion (see `nbtk show " + short + "`), then export the new run.",
        ),
        Gate(
            "approved",
            bool(record.approvals),
            f"no approval recorded; a reviewer signs off with `nbtk approve {short} --by NAME`.",
        ),
    ]
    if sla_problems is not None:
        gates.append(
            Gate(
                "sla",
                not sla_problems,
                "; ".join(sla_problems)
                + ". Improve the model until it meets [tool.nbtoolkit.sla], or change the SLA there.",
            )
        )
    if reproduced_required:
        result = _reproduction(record.extra)
        gates.append(
            Gate(
                "reproduced",
                result == "reproduced",
                (f"reproduction result is {result!r}" if result else "not reproduced")
                + f"; [tool.nbtoolkit.export] require_reproduced = true: run `nbtk reproduce {short}` "
                "until it reports 'reproduced'.",
            )
        )
    return gates


def enforce_gates(
    record: RunRecord, *, settings: Settings | None, force: bool = False, reason: str | None = None
) -> list[str]:
    """Refuse an unvetted run unless forced.

    Returns:
        The unmet gates (empty for a vetted run; non-empty only when ``force`` overrode them).

    Raises:
        InputError: ``force`` without a ``reason`` (or a reason without ``force``).
        GateError: unmet gates and no ``force``; lists every unmet gate and how to meet it.
    """
    reason = (reason or "").strip() or None
    if force and reason is None:
        raise InputError("--force needs --reason TEXT: say why this run is handed off without being vetted.")
    if reason is not None and not force:
        raise InputError("--reason is only used with --force; drop it or add --force.")
    sla = check_export_sla(record, settings)
    gates = check_gates(record, reproduced_required=require_reproduced(settings), sla_problems=sla.problems())
    unmet = [str(g) for g in gates if not g.met]
    if unmet and not force:
        raise GateError(record.run_id, unmet)
    return unmet
