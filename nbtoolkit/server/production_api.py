"""``GET /nbtoolkit/api/production``: registered models with their aliases and newest monitor result.

What the sidebar's "Production" panel polls: one answer for every model of the registry --
its versions and aliases, the newest alias move (who, why), the run behind the production
version (experiment, hypothesis, description), reviewers' comments on that version and the result of the newest ``nbtk monitor``
run of the model (the numbers its dashboard shows, without the per-window series). A
``signature`` changes whenever any of that changes, so the panel re-renders only then.
Always strict, redacted JSON (:func:`nbtoolkit.redact.public_json`).

With ``?live=1`` (what the panel asks for) the monitor numbers of a model that answered requests
within the last ``window`` (``&window=15m``; default 1h) are computed now from the store's
prediction log over that period, as ``GET /nbtoolkit/api/monitor/<model>?live=1`` computes them
(``"live": true``, no ``run_id``); a model without recent traffic shows its newest recorded run.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from nbtoolkit import registry
from nbtoolkit.config import load_settings
from nbtoolkit.errors import NbToolkitError
from nbtoolkit.monitor import monitor as compute_monitor
from nbtoolkit.monitor.record import latest_result
from nbtoolkit.monitor.windows import parse_duration
from nbtoolkit.policy import Sla, load_sla
from nbtoolkit.redact import public_json
from nbtoolkit.server.data import open_project_store
from nbtoolkit.server.http import http_error
from nbtoolkit.store import Store

#: the monitor result's keys the panel shows (the per-window series stay in the dashboard)
MONITOR_KEYS = ("schema", "model", "window_seconds", "ok", "versions", "sla", "slice_columns", "breaches",
                "overall", "drift_overall", "run_id", "recorded", "rollback", "live")

#: what the panel says about the newest alias move
MOVE_KEYS = ("alias", "from_version", "to_version", "action", "by", "reason", "created")


def _run_text(store: Store, run_id: str) -> dict[str, Any]:
    """Experiment, hypothesis and description of the run that produced a version (empty when gone)."""
    try:
        record = store.get_run(run_id)
    except NbToolkitError:
        return {"run_id": run_id, "experiment": None, "hypothesis": "", "description": ""}
    decl = record.declaration
    return {"run_id": record.run_id, "experiment": record.experiment,
            "hypothesis": decl.hypothesis, "description": decl.description}


def _live(store: Store, model: str, seconds: float, sla: Sla) -> dict[str, Any] | None:
    """The monitor numbers of the last ``seconds`` of the prediction log (None without traffic then)."""
    frame = store.prediction_log(model, since=time.time() - seconds)
    if frame.empty:
        return None
    result = compute_monitor(frame, model=model, window=seconds, sla=sla).to_dict()
    return {**result, "run_id": None, "recorded": None, "live": True}


def model_summary(store: Store, entry: registry.ModelEntry, *, live: tuple[float, Sla] | None = None) -> dict[str, Any]:
    """One model of the Production panel: versions, aliases, the newest move, production run, monitor.

    Args:
        live: ``(seconds, sla)``: monitor numbers computed now from the log of the last
            ``seconds`` when the model answered requests then (else the newest recorded run).
    """
    moves = registry.history(entry.model, store=store)
    serving = entry.aliases.get(registry.PRODUCTION)
    version = next((v for v in entry.versions if v.version == serving), None)
    monitor = _live(store, entry.model, *live) if live is not None else None
    if monitor is None:
        monitor = latest_result(store, entry.model)
    return {
        "model": entry.model,
        "versions": [v.version for v in entry.versions],
        "aliases": dict(entry.aliases),
        "last_move": None if not moves else {k: v for k, v in moves[-1].to_dict().items() if k in MOVE_KEYS},
        "production": None if version is None else {
            "version": version.version, **_run_text(store, version.run_id),
            "comments": [c.to_dict() for c in store.comments("version", f"{entry.model}@{version.version}")]},
        "monitor": None if monitor is None else {k: monitor.get(k) for k in MONITOR_KEYS},
    }


def production_summary(store: Store | None, *, live: tuple[float, Sla] | None = None) -> dict[str, Any]:
    """Every registered model (by name) for the Production panel, with a change ``signature``."""
    models = [] if store is None else [model_summary(store, e, live=live) for e in registry.models(store=store)]
    signature = hashlib.sha256(json.dumps(models, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"models": models, "signature": signature}


class ProductionHandler(APIHandler):
    """``GET /nbtoolkit/api/production``."""

    root_dir: str = "."

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    @tornado.web.authenticated
    def get(self) -> None:
        live = None
        if self.get_query_argument("live", "0") not in ("0", "", "false"):
            try:
                live = (parse_duration(self.get_query_argument("window", "1h")), load_sla(load_settings(self.root_dir)))
            except NbToolkitError as exc:
                raise http_error(exc) from None
        try:
            data = production_summary(open_project_store(self.root_dir), live=live)
        except NbToolkitError as exc:
            raise http_error(exc) from None
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(public_json(data))
