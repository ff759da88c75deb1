"""The one place where requests are authenticated and checked against the route table.

``endpoint(route, services)`` wraps a route's handler: it reads the body, then in one worker
thread authenticates the caller, resolves the route's securable from the request, checks the
privilege, records a denial in the audit log (with the request id) and only then calls the
handler. Handlers never check permissions; a denied request reaches no handler and changes
nothing but the audit log.
"""

from __future__ import annotations

import json

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hangar.catalog import audit
from hangar.errors import (
    InvalidArgumentError,
    MalformedRequestError,
    PermissionDeniedError,
    TooManyRequestsError,
    UnauthenticatedError,
)
from hangar.governance import privileges as pv
from hangar.governance.access import Access
from hangar.server.context import RequestContext, Services
from hangar.server.spec import PUBLIC, Requires, Route
from hangar.server.wire import plain

_BODY_METHODS = ("POST", "PUT", "PATCH")


async def read_json(request: Request, limit: int) -> dict:
    from hangar.web import read_limited_body

    raw = await read_limited_body(request, limit)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequestError(f"The request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRequestError("The request body must be a JSON object")
    return body


def _denied(route: Route, ctx: RequestContext, securable_type: str, securable: str | None) -> PermissionDeniedError:
    audit.record(ctx.engine, actor=ctx.actor, action=route.name, securable_type=securable_type,
                 securable=securable or "(unknown)", outcome="DENIED", request_id=ctx.request_id,
                 details={"privilege": route.requires.privilege, "method": route.method, "route": route.path})
    return PermissionDeniedError(f"Permission denied: this request needs {route.requires.privilege} on the "
                                 f"{securable_type} it names" + (" (and USE_CATALOG / USE_SCHEMA on the catalog and "
                                 "schema it is in)" if securable_type in (pv.SCHEMA, pv.REGISTERED_MODEL) else ""))


def authorize(route: Route, ctx: RequestContext) -> None:
    """Authenticate and check ``route.requires``; raises UnauthenticatedError / PermissionDeniedError."""
    if route.requires is PUBLIC:
        return
    services = ctx.services
    ctx.identity = _authenticate(services, ctx)
    ctx.access = Access(services.engine, ctx.identity, getattr(services.authenticator, "cache", None))
    req = route.requires
    if not isinstance(req, Requires):
        return  # AUTHENTICATED: the handler filters or scopes to the caller
    securable_type = req.securable_type(ctx) if callable(req.securable_type) else req.securable_type
    pv.check_securable_type(securable_type)
    securable = req.securable(ctx)
    if securable is None:
        allowed = ctx.access.check_everywhere(securable_type, req.privilege)
    else:
        securable = pv.normalise(securable_type, securable)
        allowed = ctx.access.check(securable_type, securable, req.privilege)
    if not allowed:
        raise _denied(route, ctx, securable_type, securable)


def _authenticate(services, ctx: RequestContext):
    limiter = services.limiter
    if limiter is None:
        return services.authenticator.authenticate(ctx.headers)
    wait = limiter.retry_after(ctx.client_host)
    if wait is not None:
        raise TooManyRequestsError(f"Too many failed authentications from this address; retry in {wait} s", wait)
    try:
        return services.authenticator.authenticate(ctx.headers)
    except UnauthenticatedError:
        if ctx.headers is not None and ctx.headers.get("authorization"):
            limiter.failed(ctx.client_host)  # a wrong token, not a forgotten one
        raise


def _respond(route: Route, result) -> Response:
    if isinstance(result, Response):
        return result
    return JSONResponse(plain(result), status_code=route.status)


def _run(route: Route, ctx: RequestContext) -> Response:
    authorize(route, ctx)
    return _respond(route, route.handler(ctx))


def endpoint(route: Route, services: Services):
    async def call(request: Request) -> Response:
        body = {}
        if route.method in _BODY_METHODS and not route.streaming:
            body = await read_json(request, services.config.max_body_bytes)
        query = dict(request.query_params)
        for key in request.query_params:
            values = request.query_params.getlist(key)
            if len(values) > 1:
                raise InvalidArgumentError(f"Query parameter {key!r} was given {len(values)} times; give it once")
        ctx = RequestContext(services, dict(request.path_params), query, body,
                             request.scope.get("state", {}).get("request_id") or "-", headers=request.headers,
                             client_host=request.client.host if request.client else "-")
        if route.streaming:
            await anyio.to_thread.run_sync(authorize, route, ctx)
            return await route.handler(ctx, request)
        return await anyio.to_thread.run_sync(_run, route, ctx)

    call.__name__ = route.name
    return call
