"""``GET /nbtoolkit/api/comments?run=ID&experiment=NAME``: reviewers' comments for the Experiments panel.

One request per poll for every run and experiment the panel shows (``run`` and ``experiment``
repeat, at most :data:`MAX_TARGETS` in all): the comments and ratings of ``nbtk comment`` on
each, oldest first, and a ``signature`` that changes when any comment is added. Run ids must be
full hexadecimal ids (as the listing gives them); anything else is a 400 before the store is read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from nbtoolkit.errors import InputError, NbToolkitError
from nbtoolkit.redact import public_json
from nbtoolkit.server.data import check_run_ref, open_project_store
from nbtoolkit.server.http import http_error
from nbtoolkit.store import Store

#: runs plus experiments one request may ask about
MAX_TARGETS = 200


def comments_for(store: Store | None, *, runs: list[str], experiments: list[str]) -> dict[str, Any]:
    """Comments on each run and experiment: ``{"runs": {id: [...]}, "experiments": {name: [...]}, "signature"}``.

    Raises:
        InputError: a malformed run id, an over-long experiment name, or too many targets.
    """
    if len(runs) + len(experiments) > MAX_TARGETS:
        raise InputError(f"Ask about at most {MAX_TARGETS} runs and experiments at a time.")
    ids = [check_run_ref(r) for r in runs]
    if any(len(name) > 200 for name in experiments):
        raise InputError("Experiment names are at most 200 characters.")
    found: dict[str, dict[str, list[dict[str, Any]]]] = {"runs": {}, "experiments": {}}
    if store is not None:
        for kind, key, targets in (("run", "runs", ids), ("experiment", "experiments", experiments)):
            for target in dict.fromkeys(targets):
                found[key][target] = [c.to_dict() for c in store.comments(kind, target)]
    state = sorted(c["id"] for group in found.values() for cs in group.values() for c in cs)
    return {**found, "signature": hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]}


class CommentsForHandler(APIHandler):
    """``GET /nbtoolkit/api/comments?run=ID&experiment=NAME`` (both repeatable)."""

    root_dir: str = "."

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    @tornado.web.authenticated
    def get(self) -> None:
        runs = [r for r in self.get_query_arguments("run") if r]
        experiments = [e for e in self.get_query_arguments("experiment") if e]
        try:
            data = comments_for(open_project_store(self.root_dir), runs=runs, experiments=experiments)
        except NbToolkitError as exc:
            raise http_error(exc) from None
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(public_json(data))
