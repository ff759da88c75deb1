"""The one place where requests are authenticated and checked against the route table.

``endpoint(route, services)`` wraps a route's handler: it reads the body, then in one worker
thread authenticates the caller, resolves the route's securable from the request, checks the
privilege, records a denial in the audit log (with the request id) and only then calls the
handler. Handlers never check permissions; a denied request reaches no handler and changes
nothing but the audit log.
"""

from __future__ import annotations

import contextlib
import json

import anyio

try:
    from orjson import dumps as _dumps
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson comes with the serving extra, as uvicorn does
    _loads = json.loads

    def _dumps(value) -> bytes:
        return json.dumps(plain(value)).encode()

from starlette.requests import Request
from starlette.responses import Response

from hangar.catalog import audit
from hangar.errors import (
    InvalidArgumentError,
    MalformedRequestError,
    NotFoundError,
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


def parse_json(raw: bytes) -> dict:
    """A request body as a JSON object (orjson; the standard parser for what it refuses, e.g. NaN)."""
    if not raw.strip():
        return {}
    try:
        body = _loads(raw)
    except ValueError:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MalformedRequestError(f"The request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRequestError("The request body must be a JSON object")
    return body


def encode(result) -> bytes:
    """A handler's result as JSON bytes. orjson writes dataclasses and tuples itself, as ``plain`` would
    turn them; what it refuses (a non-string key, an int beyond 64 bits, ...) goes through ``plain``."""
    try:
        return _dumps(result)
    except TypeError:
        pass
    value = plain(result)
    try:
        return _dumps(value)
    except TypeError:
        return json.dumps(value).encode()


async def read_json(request: Request, limit: int) -> dict:
    from hangar.web import read_limited_body

    return parse_json(await read_limited_body(request, limit))


def _denied(route: Route, ctx: RequestContext, securable_type: str, securable: str | None,
            privilege: str) -> PermissionDeniedError:
    audit.record(ctx.engine, actor=ctx.actor, action=route.name, securable_type=securable_type,
                 securable=securable or "(unknown)", outcome="DENIED", request_id=ctx.request_id,
                 details={"privilege": privilege, "method": route.method, "route": route.path})
    return PermissionDeniedError(f"Permission denied: this request needs {privilege} on the "
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
    if isinstance(req, Requires):  # else AUTHENTICATED: the handler filters or scopes to the caller
        securable_type = req.securable_type(ctx) if callable(req.securable_type) else req.securable_type
        pv.check_securable_type(securable_type)
        _check(route, ctx, securable_type, req.securable(ctx),
               req.privilege(ctx) if callable(req.privilege) else req.privilege)
    if route.also is not None:
        for securable_type, securable, privilege in route.also(ctx):
            _check(route, ctx, securable_type, securable, privilege)


def _check(route: Route, ctx: RequestContext, securable_type: str, securable: str | None, privilege: str) -> None:
    if securable is None:
        allowed = ctx.access.check_everywhere(securable_type, privilege)
    else:
        securable = pv.normalise(securable_type, securable)
        allowed = ctx.access.check(securable_type, securable, privilege)
    if not allowed:
        raise _denied(route, ctx, securable_type, securable, privilege)


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
    return Response(encode(result), status_code=route.status, media_type="application/json")


def run_route(route: Route, ctx: RequestContext):
    """Check the route's requirement, then run its handler: the one way a (non-streaming) handler is called."""
    with refused_values():
        authorize(route, ctx)
        try:
            return route.handler(ctx)
        except NotFoundError:
            if "run_id" in ctx.path_params:  # a run removed for good: drop its memoised experiment
                ctx.services.run_experiments.forget(ctx.path_params["run_id"])
            raise


@contextlib.contextmanager
def refused_values():
    """A value the database refuses to store or compare (a NUL character in PostgreSQL text, a number out
    of its range) is the caller's bad input: 400, not 500."""
    from sqlalchemy.exc import DataError

    try:
        yield
    except DataError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0][:200]
        raise InvalidArgumentError(f"The request holds a value the database cannot take ({reason}); "
                                   "send text without NUL characters and numbers within 64 bits") from None


def _run(route: Route, ctx: RequestContext) -> Response:
    return _respond(route, run_route(route, ctx))


def make_context(services: Services, path_params: dict, query_params, body: dict, request_id: str, headers,
                 client_host: str) -> RequestContext:
    """The request as handlers see it; a query parameter given twice is refused."""
    query = dict(query_params)
    if len(query) != len(query_params.multi_items()):
        for key in query:
            values = query_params.getlist(key)
            if len(values) > 1:
                raise InvalidArgumentError(f"Query parameter {key!r} was given {len(values)} times; give it once")
    return RequestContext(services, path_params, query, body, request_id, headers=headers, client_host=client_host)


def endpoint(route: Route, services: Services):
    """The Starlette endpoint of a route: the body is read here, the check and the handler run in a worker thread."""
    async def call(request: Request) -> Response:
        body = {}
        if route.method in _BODY_METHODS and not route.streaming:
            body = await read_json(request, services.config.max_body_bytes)
        ctx = make_context(services, dict(request.path_params), request.query_params, body,
                           request.scope.get("state", {}).get("request_id") or "-", request.headers,
                           request.client.host if request.client else "-")
        if route.streaming:
            with refused_values():
                await anyio.to_thread.run_sync(authorize, route, ctx)
                return await route.handler(ctx, request)
        return await anyio.to_thread.run_sync(_run, route, ctx)

    call.__name__ = route.name
    return call
