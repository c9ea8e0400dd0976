"""``GET /nbtoolkit/api/monitor/<model>``: the monitor's numbers for the sidebar's Production panel.

Without query arguments: the result of the newest ``nbtk monitor`` run of the model (the numbers
its dashboard shows). With ``?live=1``: computed now from the store's prediction log
(``window``, ``since`` as in the CLI: ``?live=1&window=15m&since=24h``), not recorded.
Always strict JSON (no NaN); 400 for a malformed name or window, 404 when there is nothing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler

from nbtoolkit.config import load_settings
from nbtoolkit.errors import NbToolkitError
from nbtoolkit.monitor import monitor
from nbtoolkit.monitor.record import latest_result, read_log
from nbtoolkit.monitor.windows import parse_duration
from nbtoolkit.policy import load_sla
from nbtoolkit.redact import public_json
from nbtoolkit.server.data import open_project_store
from nbtoolkit.server.http import http_error

_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def live_result(store: Any, model: str, *, window: str, since: str | None, settings: Any = None) -> dict[str, Any]:
    """The monitor result computed now from the store's log (``since``: a duration back from now)."""
    parse_duration(window)  # a bad window is the caller's mistake even when there is no log
    start = time.time() - parse_duration(since) if since else None
    frame = read_log(store, model, since=start)
    return {**monitor(frame, model=model, window=window, sla=load_sla(settings)).to_dict(), "run_id": None, "live": True}


class MonitorHandler(APIHandler):
    """``GET /nbtoolkit/api/monitor/<model>[?live=1&window=1h&since=24h]``."""

    root_dir: str = "."

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    @tornado.web.authenticated
    def get(self, model: str) -> None:
        if not _MODEL.match(model):
            raise tornado.web.HTTPError(400, "Model names are letters, digits, '.', '_' and '-' (at most 100).")
        store = open_project_store(self.root_dir)
        if store is None:
            raise tornado.web.HTTPError(404, f"No monitor results for {model!r}: this project has no nbtoolkit store yet.")
        live = self.get_query_argument("live", "0") not in ("0", "", "false")
        try:
            if live:
                result: dict[str, Any] | None = live_result(
                    store, model, window=self.get_query_argument("window", "1h"),
                    since=self.get_query_argument("since", "") or None, settings=load_settings(self.root_dir))
            else:
                result = latest_result(store, model)
        except NbToolkitError as exc:
            raise http_error(exc) from None
        if result is None:
            raise tornado.web.HTTPError(404, f"No monitor run of {model!r} yet: run `nbtk monitor {model}`.")
        self.set_header("Cache-Control", "no-store")
        self.finish(public_json(result))
