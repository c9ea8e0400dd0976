"""Jupyter server extension: a small authenticated REST API for the JupyterLab sidebar.

Installing nbtoolkit enables it (``etc/jupyter/jupyter_server_config.d/nbtoolkit.json``);
``jupyter server extension list`` shows ``nbtoolkit.server``. Routes (all under the server's
base URL, all ``@tornado.web.authenticated``, JSON unless stated):

=========================================  =================================================
``GET /nbtoolkit/api/experiments``          experiments with run counts and recent runs
``GET /nbtoolkit/api/runs``                 run summaries (``experiment``, ``status``,
                                            ``verdict``, ``q``, ``limit`` query filters)
``GET /nbtoolkit/api/runs/<id>``            the full run record (``RunRecord.to_dict()``)
``GET /nbtoolkit/api/runs/<id>/report``     the run's static HTML report (``text/html``),
                                            written into the store's ``reports/`` folder
``GET /nbtoolkit/api/monitor/<model>``      the newest monitor result of a model
``GET /nbtoolkit/api/production``           registered models: aliases, newest move, the
                                            production run and the newest monitor result
``GET /nbtoolkit/api/comments``             comments on runs and experiments (``run=ID``,
                                            ``experiment=NAME``, repeatable)
=========================================  =================================================

Run ids are hexadecimal (a full id or a unique prefix of at least 4 characters); anything
else is refused with 400 before the store is touched, an unknown id gives 404, and every
error body is JSON ``{"message": ..., "reason": ...}``. The store is the one of the project
that holds the server's root folder (``NBTOOLKIT_STORE`` wins, as everywhere).
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Entry point Jupyter server uses to find this extension."""
    return [{"module": "nbtoolkit.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Register the REST handlers on the running server."""
    from nbtoolkit.server.handlers import API_PREFIX, setup_handlers  # tornado: only in the server

    setup_handlers(serverapp.web_app, root_dir=serverapp.root_dir)
    serverapp.log.info("nbtoolkit server extension loaded: /%s/", API_PREFIX)


# jupyter_server < 2 looked for this name
load_jupyter_server_extension = _load_jupyter_server_extension
