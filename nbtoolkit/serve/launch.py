"""Put a model behind HTTP: resolve and verify the bundles, build the service, run the server.

``serve("cancer@production", port=8080, canary="cancer@candidate", percent=5, key="user_id")``
is what ``nbtk serve`` calls. Configuration (``pyproject.toml``)::

    [tool.nbtoolkit.serve]
    sensitive = ["ssn", "email"]     # never stored in the prediction log
    log_inputs = false               # store each row's inputs (minus sensitive columns)
    min_rows = 20                    # challenger rows before a canary step's SLA is judged
    window = 10                      # seconds a plan step is held at least
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nbtoolkit.config import load_settings
from nbtoolkit.errors import ConfigError, InputError
from nbtoolkit.export.release import DEFAULT_SALT, DEFAULT_STEPS
from nbtoolkit.redact import default_redactor
from nbtoolkit.serve.app import build_app, run_app
from nbtoolkit.serve.control import Controller
from nbtoolkit.serve.models import ModelRef, load_served
from nbtoolkit.serve.routing import CanaryRouter
from nbtoolkit.serve.service import ScoringService, ServiceOptions
from nbtoolkit.stability.canary import sla_in_effect
from nbtoolkit.store import open_store


def _serve_config(settings: Any) -> dict[str, Any]:
    table: dict[str, Any] = settings.section("serve")
    sensitive = table.get("sensitive", [])
    if not isinstance(sensitive, list) or not all(isinstance(c, str) for c in sensitive):
        raise ConfigError('[tool.nbtoolkit.serve] sensitive must be a list of column names, e.g. ["ssn"].')
    return table


def prepare(
    ref: str,
    *,
    canary: str | None = None,
    percent: float = 5.0,
    key: str | None = None,
    plan: bool = False,
    promote: bool = True,
    log_inputs: bool | None = None,
    trusted_types: Sequence[str] = (),
    flag: str = "canary",
    interval: float = 1.0,
    settings: Any = None,
    store: Any = None,
) -> tuple[ScoringService, Controller]:
    """Resolve, verify and load the model(s); return the service and its control loop.

    Args:
        ref: the champion: ``MODEL@ALIAS``, ``MODEL@VERSION`` or a bundle path.
        canary: the challenger (same forms), routed a share of the keys.
        percent: the challenger's share without ``plan`` (0-100).
        key: the routing key column of the requests (else their ``ids``).
        plan: walk the steps of the challenger bundle's ``release.json`` (its frozen SLA too).
        promote: when the plan completes, move the champion's alias to the challenger's version.
        log_inputs: store each row's inputs (default ``[tool.nbtoolkit.serve] log_inputs``).
        trusted_types: extra skops types to trust (reviewed custom model classes).
        flag: the feature flag that switches the canary off (``false``/kill) or sets its share.
        interval: seconds between control polls (alias moves, flags, labels).

    Raises:
        InputError: bad references or options.
        BundleIntegrityError: a bundle does not verify or holds untrusted types.
    """
    settings = settings or load_settings()
    store = store or open_store(settings)
    table = _serve_config(settings)
    if not 0 <= percent <= 100:
        raise InputError(f"--percent {percent:g} is outside 0-100.")
    if plan and canary is None:
        raise InputError("--plan walks a challenger's release plan; give the challenger with --canary MODEL@ALIAS.")
    champion = load_served(ModelRef.parse(ref), store=store, trusted_types=trusted_types)
    challenger = router = None
    if canary is not None:
        challenger = load_served(ModelRef.parse(canary), store=store, trusted_types=trusted_types)
        router = _router(challenger.bundle.release if plan else None, percent, settings, table)
    options = ServiceOptions(
        key_column=key,
        log_inputs=bool(table.get("log_inputs", False) if log_inputs is None else log_inputs),
        sensitive=tuple(table.get("sensitive", [])),
    )
    service = ScoringService(champion, challenger=challenger, router=router, store=store, options=options,
                             redactor=default_redactor(settings))
    controller = Controller(service, flag=flag, interval=interval, trusted_types=trusted_types, settings=settings,
                            promote=promote)
    return service, controller


def _router(release: dict[str, Any] | None, percent: float, settings: Any, table: dict[str, Any]) -> CanaryRouter:
    steps = None
    # the same rule as the canary simulation: the current policy wins over the SLA frozen at export
    sla, _source = sla_in_effect(None, (release or {}).get("sla"), settings)
    salt = DEFAULT_SALT
    if release is not None:
        steps = release.get("steps") or list(DEFAULT_STEPS)
        salt = str((release.get("routing") or {}).get("salt") or DEFAULT_SALT)
    min_rows, window = table.get("min_rows", 20), table.get("window", 10)
    if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 1:
        raise ConfigError(f"[tool.nbtoolkit.serve] min_rows must be a positive integer, got {min_rows!r}.")
    if isinstance(window, bool) or not isinstance(window, (int, float)) or window < 0:
        raise ConfigError(f"[tool.nbtoolkit.serve] window must be seconds >= 0, got {window!r}.")
    return CanaryRouter(percent=percent, sla=sla, steps=steps, salt=salt, min_rows=min_rows, window=float(window))


def serve(ref: str, *, port: int, host: str = "127.0.0.1", **options: Any) -> None:
    """Serve ``ref`` over HTTP until SIGINT/SIGTERM (see :func:`prepare` for the options)."""
    service, controller = prepare(ref, **options)
    run_app(build_app(service, controller), host=host, port=port)
