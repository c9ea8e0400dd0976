"""HTTP statuses for nbtoolkit's errors: the one mapping every handler of the server extension uses."""

from __future__ import annotations

import tornado.web

from nbtoolkit.errors import (
    ArtifactStoreUnavailableError,
    InputError,
    NbToolkitError,
    RunNotFoundError,
)


def http_error(exc: NbToolkitError) -> tornado.web.HTTPError:
    """The HTTP error for ``exc``, its message the error's first line (nbtoolkit's messages carry no secrets).

    404: no such run. 400: bad input. 503: the artifact store cannot be used (an outage or a
    configuration problem of the server's environment: nothing the request can change; try again
    once it is fixed). 500: anything else.
    """
    if isinstance(exc, RunNotFoundError):
        status = 404
    elif isinstance(exc, ArtifactStoreUnavailableError):
        status = 503
    elif isinstance(exc, InputError):
        status = 400
    else:
        status = 500
    return tornado.web.HTTPError(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
