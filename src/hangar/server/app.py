"""The ASGI app: the route table mounted through the guard; errors become JSON here and only here.

No CORS middleware: browsers on other origins get no Access-Control-Allow-Origin header.
Every response carries ``X-Request-ID`` (the id audit records of the request carry too).
"""

from __future__ import annotations

import logging
import uuid

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from hangar.errors import HangarError, UnauthenticatedError
from hangar.governance.authn import GENERIC_401
from hangar.server.config import ServerConfig
from hangar.server.context import Services

log = logging.getLogger("hangar.server")


class RequestIdMiddleware:
    """Gives each request an id (``scope['state']['request_id']``) and returns it as ``X-Request-ID``."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


def _error(exc: HangarError) -> JSONResponse:
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


async def _on_hangar_error(request: Request, exc: HangarError):
    if exc.http_status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message, exc_info=exc.__cause__ or exc)
    return _error(exc)


async def _on_http_error(request: Request, exc: HTTPException):
    from hangar.web import from_http_exception

    return _error(from_http_exception(request, exc))


async def _on_unexpected(request: Request, exc: Exception):
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return _error(HangarError("Internal server error"))


def open_services(config: ServerConfig) -> Services:
    from hangar.catalog.store import SqlRegistry
    from hangar.governance.authn import BearerTokenAuthenticator, NoAuthAuthenticator
    from hangar.tracking.sql_store import SqlTrackingStore

    tracking = SqlTrackingStore(config.store_uri, config.artifact_root)
    registry = SqlRegistry(tracking, actor="server", cache_dir=config.home_path / "cache")
    if config.auth:
        from hangar.governance.cache import GovernanceCache

        authenticator = BearerTokenAuthenticator(tracking.engine, GovernanceCache())
    else:
        from hangar.config import local_user

        authenticator = NoAuthAuthenticator(local_user())
    from hangar.server.ratelimit import FailedAuthLimiter

    limiter = FailedAuthLimiter(config.auth_failure_limit, config.auth_failure_window) if config.auth else None
    return Services(config, tracking, registry, authenticator, limiter)


def build_app(config: ServerConfig, services: Services | None = None) -> Starlette:
    from hangar.server.guard import endpoint
    from hangar.server.routes import ROUTES

    services = services or open_services(config)
    routes = [StarletteRoute(r.path, endpoint(r, services), methods=[r.method], name=r.name) for r in ROUTES]
    app = Starlette(routes=routes, exception_handlers={HangarError: _on_hangar_error, HTTPException: _on_http_error,
                                                       Exception: _on_unexpected})
    app.state.services = services
    app.add_middleware(RequestIdMiddleware)
    return app


def create_app() -> Starlette:
    """Factory for each worker of ``hangar server --workers N`` (the config comes in the environment)."""
    return build_app(ServerConfig.from_env())
