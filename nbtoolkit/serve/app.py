"""The HTTP side of ``nbtk serve``: a Starlette ASGI app run by uvicorn.

Endpoints (MLflow's scoring protocol plus nbtoolkit's)::

    POST /invocations   score rows (see nbtoolkit.serve.protocol)      -> {"predictions": [...], ...}
    GET  /ping          200 once the model is loaded (MLflow)
    GET  /health        what is served, the canary's state, log counters (JSON)
    GET  /version       versions of nbtoolkit and of the served model(s)
    GET  /metrics       Prometheus text format
    POST /feedback      join labels to the prediction log

Every response carries ``X-Model-Version``: the version(s) that answered (comma-separated when
a canary split a request). Scoring runs in Starlette's thread pool, so a slow model does not
block the event loop. On SIGINT/SIGTERM uvicorn stops accepting requests, finishes the running
ones, and the lifespan shutdown writes every queued log row before the process exits.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from nbtoolkit.errors import InputError
from nbtoolkit.serve.control import Controller
from nbtoolkit.serve.metrics import CONTENT_TYPE
from nbtoolkit.serve.protocol import BadRequest
from nbtoolkit.serve.service import ModelFailed, ScoringService

VERSION_HEADER = "X-Model-Version"


def build_app(service: ScoringService, controller: Controller | None = None) -> Any:
    """The Starlette application serving ``service`` (the controller runs during its lifespan)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def headers(versions: list[str] | None = None) -> dict[str, str]:
        return {VERSION_HEADER: ",".join(versions) if versions else service.champion.version}

    def error(status: int, code: str, message: str) -> Any:
        return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers())

    def invocations(body: bytes, content_type: str) -> Any:
        try:
            answer, versions = service.score(body, content_type)
        except BadRequest as exc:
            return JSONResponse(exc.body(), status_code=400, headers=headers())
        except ModelFailed as exc:
            message = service.redactor.redact_text(str(exc)) if service.redactor is not None else str(exc)
            return error(500, "INTERNAL_ERROR", f"The model raised: {message}")
        return JSONResponse(answer, headers=headers(versions))

    async def score(request: Request) -> Any:
        from starlette.concurrency import run_in_threadpool

        body = await request.body()
        return await run_in_threadpool(invocations, body, request.headers.get("content-type", "application/json"))

    async def feedback(request: Request) -> Any:
        from starlette.concurrency import run_in_threadpool

        try:
            payload = json.loads(await request.body() or b"null")
            labelled = await run_in_threadpool(service.feedback, payload)
        except ValueError as exc:
            return error(400, "BAD_REQUEST", f"The body is not valid JSON or not rows of labels: {exc}.")
        except InputError as exc:  # no row_id/key, no label, not rows
            return error(400, "BAD_REQUEST", str(exc))
        return JSONResponse({"labelled": labelled}, headers=headers())

    async def ping(_request: Request) -> Any:
        return Response("\n", media_type="application/json", headers=headers())

    async def health(_request: Request) -> Any:
        return JSONResponse(service.health(), headers=headers())

    async def version(_request: Request) -> Any:
        return JSONResponse(service.version_info(), headers=headers())

    async def metrics(_request: Request) -> Any:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE, headers=headers())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        if controller is not None:
            controller.start()
        try:
            yield
        finally:
            if controller is not None:
                controller.stop()
            service.close()

    routes = [
        Route("/invocations", score, methods=["POST"]),
        Route("/feedback", feedback, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/version", version, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def run_app(app: Any, *, host: str, port: int, log_level: str = "warning") -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM (then shut down cleanly)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, timeout_graceful_shutdown=30)
