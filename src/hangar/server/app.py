"""The ASGI app: the route table mounted through the guard; errors become JSON in ``respond`` only.

No CORS middleware: browsers on other origins get no Access-Control-Allow-Origin header.
Every response carries ``X-Request-ID`` (the id audit records of the request carry too).
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route as StarletteRoute

from hangar.errors import HangarError
from hangar.server.config import ServerConfig
from hangar.server.context import Services
from hangar.server.respond import error_response, log_failure
from hangar.web import request_id_from

log = logging.getLogger("hangar.server")


class ServerApp:
    """The ASGI app: gives each request an id (``scope['state']['request_id']``, returned as ``X-Request-ID``),
    then sends the hot tracking writes down the lean path of ``fast`` and everything else to Starlette.
    Both paths check permissions in ``guard`` against the one route table."""

    def __init__(self, router: Starlette, fast):
        self.router = router
        self.state = router.state
        self.fast = fast

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.router(scope, receive, send)
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id
        found = self.fast.route_for(scope)
        if found is not None:
            return await self.fast(scope, receive, send, found[0], found[1], request_id)
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(header)
            await send(message)

        await self.router(scope, receive, send_with_id)


async def _on_hangar_error(request: Request, exc: HangarError):
    log_failure(request.method, request.url.path, exc)
    return error_response(exc)


async def _on_http_error(request: Request, exc: HTTPException):
    from hangar.web import from_http_exception

    return error_response(from_http_exception(request, exc))


async def _on_unexpected(request: Request, exc: Exception):
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(HangarError("Internal server error"))


def open_services(config: ServerConfig) -> Services:
    from hangar.catalog.store import SqlRegistry
    from hangar.governance.authn import BearerTokenAuthenticator, NoAuthAuthenticator
    from hangar.tracking.sql_store import SqlTrackingStore

    tracking = SqlTrackingStore(config.store_uri, config.artifact_root)
    registry = SqlRegistry(tracking, actor="server", cache_dir=config.home_path / "cache")
    if config.auth:
        from hangar.governance.cache import GovernanceCache

        authenticator = BearerTokenAuthenticator(tracking.engine, GovernanceCache(tracking.hot))
    else:
        from hangar.config import local_user

        authenticator = NoAuthAuthenticator(local_user())
    from hangar.governance.auth_failures import FailedAuthLimiter

    limiter = FailedAuthLimiter(config.auth_failure_limit, config.auth_failure_window) if config.auth else None
    return Services(config, tracking, registry, authenticator, limiter)


def build_app(config: ServerConfig, services: Services | None = None) -> ServerApp:
    from hangar.server.fast import FastPath
    from hangar.server.guard import endpoint
    from hangar.server.routes import ROUTES

    services = services or open_services(config)
    routes = [StarletteRoute(r.path, endpoint(r, services), methods=[r.method], name=r.name) for r in ROUTES]
    app = Starlette(routes=routes, exception_handlers={HangarError: _on_hangar_error, HTTPException: _on_http_error,
                                                       Exception: _on_unexpected})
    app.state.services = services
    return ServerApp(app, FastPath(services, ROUTES))


def create_app() -> ServerApp:
    """Factory for each worker of ``hangar server --workers N`` (the config comes in the environment)."""
    return build_app(ServerConfig.from_env())
