"""Errors as JSON responses: the one place a HangarError becomes an HTTP answer (both request paths use it).

5xx and authentication failures carry generic messages; the details go to the server's log only."""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from hangar.errors import HangarError, UnauthenticatedError
from hangar.governance.authn import GENERIC_401

log = logging.getLogger("hangar.server")


def error_response(exc: HangarError) -> JSONResponse:
    body = exc.to_dict()
    headers = None
    if isinstance(exc, UnauthenticatedError):
        body["message"] = GENERIC_401  # never say which check failed
        headers = {"WWW-Authenticate": "Bearer"}
    elif exc.http_status >= 500:
        body["message"] = "Internal server error"
    if getattr(exc, "retry_after", None) and exc.http_status in (429, 503):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def log_failure(method: str, path: str, exc: HangarError) -> None:
    if exc.http_status >= 500:
        log.error("%s %s failed: %s", method, path, exc.message, exc_info=exc.__cause__ or exc)
