"""``GET /nbtoolkit/api/production``: registered models with their aliases and newest monitor result.

What the sidebar's "Production" panel polls: one answer for every model of the registry --
its versions and aliases, the newest alias move (who, why), the run behind the production
version (experiment, hypothesis, description), reviewers' comments on that version and the result of the newest ``nbtk monitor``
run of the model (the numbers its dashboard shows, without the per-window series). A
``signature`` changes whenever any of that changes, so the panel re-renders only then.
Always strict, redacted JSON (:func:`nbtoolkit.redact.public_json`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from nbtoolkit import registry
from nbtoolkit.errors import NbToolkitError
from nbtoolkit.monitor.record import latest_result
from nbtoolkit.redact import public_json
from nbtoolkit.server.data import open_project_store
from nbtoolkit.store import Store

#: the monitor result's keys the panel shows (the per-window series stay in the dashboard)
MONITOR_KEYS = ("schema", "model", "window_seconds", "ok", "versions", "sla", "slice_columns", "breaches",
                "overall", "drift_overall", "run_id", "recorded", "rollback")

#: what the panel says about the newest alias move
MOVE_KEYS = ("alias", "from_version", "to_version", "action", "by", "reason", "created")


def _run_text(store: Store, run_id: str) -> dict[str, Any]:
    """Experiment, hypothesis and description of the run that produced a version (empty when gone)."""
    try:
        record = store.get_run(run_id)
    except NbToolkitError:
        return {"run_id": run_id, "experiment": None, "hypothesis": "", "description": ""}
    decl = record.declaration or {}
    return {"run_id": record.run_id, "experiment": record.experiment,
            "hypothesis": str(decl.get("hypothesis") or ""), "description": str(decl.get("description") or "")}


def model_summary(store: Store, entry: registry.ModelEntry) -> dict[str, Any]:
    """One model of the Production panel: versions, aliases, the newest move, production run, monitor."""
    moves = registry.history(entry.model, store=store)
    serving = entry.aliases.get(registry.PRODUCTION)
    version = next((v for v in entry.versions if v.version == serving), None)
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


def production_summary(store: Store | None) -> dict[str, Any]:
    """Every registered model (by name) for the Production panel, with a change ``signature``."""
    models = [] if store is None else [model_summary(store, e) for e in registry.models(store=store)]
    signature = hashlib.sha256(json.dumps(models, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {"models": models, "signature": signature}


class ProductionHandler(APIHandler):
    """``GET /nbtoolkit/api/production``."""

    root_dir: str = "."

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    @tornado.web.authenticated
    def get(self) -> None:
        data = production_summary(open_project_store(self.root_dir))
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(public_json(data))
