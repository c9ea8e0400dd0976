"""Tornado handlers of the nbtoolkit server extension (thin adapters over :mod:`.data`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nbtoolkit.errors import InputError, NbToolkitError
from nbtoolkit.redact import public_json
from nbtoolkit.server import data as D
from nbtoolkit.server.comments_api import CommentsForHandler
from nbtoolkit.server.http import http_error
from nbtoolkit.server.monitor_api import MonitorHandler
from nbtoolkit.server.production_api import ProductionHandler

#: every route lives under the server's base URL plus this prefix
API_PREFIX = "nbtoolkit/api"

# Reports render plots; one at a time keeps matplotlib single-threaded and the server responsive.
_report_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbtk-report")

REPORT_CSP = ("frame-ancestors 'self'; sandbox; default-src 'none'; img-src data:; "
              "style-src 'unsafe-inline'; font-src data:")


class _BaseHandler(APIHandler):
    """Shared helpers: the project store and errors mapped to JSON statuses."""

    root_dir: str = "."

    def initialize(self, root_dir: str) -> None:
        self.root_dir = root_dir

    def store(self) -> Any:
        return D.open_project_store(self.root_dir)

    def send_json(self, value: Any) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(public_json(value))

    def run_store(self, ref: str) -> tuple[Any, str]:
        """Validate ``ref`` (400), find the store (404 when none) and return both."""
        try:
            ref = D.check_run_ref(ref)
        except InputError as exc:
            raise http_error(exc) from None
        store = self.store()
        if store is None:
            raise tornado.web.HTTPError(404, f"No run {ref!r}: this project has no nbtoolkit store yet.")
        return store, ref

    def query(self, name: str) -> list[str]:
        return [v for v in self.get_query_arguments(name) if v]


class ExperimentsHandler(_BaseHandler):
    """``GET /nbtoolkit/api/experiments[?recent=N]``."""

    @tornado.web.authenticated
    def get(self) -> None:
        try:
            recent = max(0, min(50, int(self.get_query_argument("recent", "5"))))
        except ValueError:
            raise tornado.web.HTTPError(400, "recent must be an integer") from None
        self.send_json(D.experiment_summaries(self.store(), recent=recent))


class RunsHandler(_BaseHandler):
    """``GET /nbtoolkit/api/runs[?experiment=&status=&verdict=&q=&limit=]``."""

    @tornado.web.authenticated
    def get(self) -> None:
        try:
            limit = int(self.get_query_argument("limit", "200"))
        except ValueError:
            raise tornado.web.HTTPError(400, "limit must be an integer") from None
        store = self.store()
        runs = [] if store is None else D.run_summaries(
            store, experiment=self.query("experiment"), status=self.query("status"),
            verdict=self.query("verdict"), text=self.get_query_argument("q", "") or None,
            limit=max(1, min(limit, 5000)),
        )
        self.send_json({"runs": runs})


class RunHandler(_BaseHandler):
    """``GET /nbtoolkit/api/runs/<id>``: the full run record."""

    @tornado.web.authenticated
    def get(self, ref: str) -> None:
        store, ref = self.run_store(ref)
        try:
            record = store.get_run(ref)
        except NbToolkitError as exc:
            raise http_error(exc) from None
        self.send_json(record.to_dict())


class CommentsHandler(_BaseHandler):
    """``GET /nbtoolkit/api/runs/<id>/comments``: reviewers' comments on the run and its experiment."""

    @tornado.web.authenticated
    def get(self, ref: str) -> None:
        store, ref = self.run_store(ref)
        try:
            self.send_json(D.run_comments(store, ref))
        except NbToolkitError as exc:
            raise http_error(exc) from None


class ReportHandler(_BaseHandler):
    """``GET /nbtoolkit/api/runs/<id>/report[?refresh=1]``: the static HTML report."""

    @property
    def content_security_policy(self) -> str:
        return REPORT_CSP

    @tornado.web.authenticated
    async def get(self, ref: str) -> None:
        store, ref = self.run_store(ref)
        refresh = self.get_query_argument("refresh", "0") not in ("0", "", "false")
        loop = asyncio.get_running_loop()
        try:
            path: Path = await loop.run_in_executor(
                _report_pool, lambda: D.write_report(store, ref, refresh=refresh))
        except NbToolkitError as exc:
            raise http_error(exc) from None
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(path.read_bytes(), set_content_type="text/html; charset=utf-8")


class NotFoundHandler(_BaseHandler):
    """Any other path under ``/nbtoolkit/api/``: 404 as JSON (never a file)."""

    @tornado.web.authenticated
    def get(self, rest: str) -> None:
        raise tornado.web.HTTPError(404, f"Unknown nbtoolkit API path {rest[:80]!r}")


def setup_handlers(web_app: Any, *, root_dir: str) -> None:
    """Add the API routes to a Jupyter server's tornado application."""
    base = url_path_join(web_app.settings["base_url"], API_PREFIX)
    kwargs = {"root_dir": str(root_dir)}
    # ids are matched loosely ([^/]+) and validated in the handler: a malformed id gets a
    # 400 JSON answer instead of falling through to Jupyter's HTML 404 page.
    web_app.add_handlers(".*$", [
        (url_path_join(base, "experiments"), ExperimentsHandler, kwargs),
        (url_path_join(base, "runs"), RunsHandler, kwargs),
        (url_path_join(base, r"runs/([^/]+)"), RunHandler, kwargs),
        (url_path_join(base, r"runs/([^/]+)/report"), ReportHandler, kwargs),
        (url_path_join(base, r"runs/([^/]+)/comments"), CommentsHandler, kwargs),
        (url_path_join(base, r"monitor/([^/]+)"), MonitorHandler, kwargs),
        (url_path_join(base, "production"), ProductionHandler, kwargs),
        (url_path_join(base, "comments"), CommentsForHandler, kwargs),
        (url_path_join(base, r"(.*)"), NotFoundHandler, kwargs),
    ])
