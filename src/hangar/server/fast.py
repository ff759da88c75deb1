"""The lean path for the hot tracking writes: raw ASGI, through the same route table and the same guard.

``log_metric``, ``log_batch``, ``log_param``, ``set_tag``, ``create_run`` and ``update_run`` are the
calls a training loop makes thousands of times. For them the server skips Starlette's per-request
machinery (routing objects, ``Request``, middleware, ``Response``) and, on SQLite, the hop to a
worker thread (a committed write there takes tens of microseconds; the hop costs more). What it
keeps is what makes a request safe: the route is found in ``routes.ROUTES`` exactly as Starlette
would find it (the first route whose method and path match), and ``guard.run_route`` checks that
route's one requirement before its handler runs, the same function every other route goes through.
"""

from __future__ import annotations

import logging

import anyio
from starlette.datastructures import Headers, QueryParams
from starlette.routing import compile_path

from hangar.errors import HangarError
from hangar.server.guard import encode, make_context, parse_json, run_route
from hangar.server.respond import error_response, log_failure
from hangar.web import ClientDisconnected, receive_limited_body

log = logging.getLogger("hangar.server")

HOT_ROUTES = frozenset({"LOG_METRIC", "LOG_BATCH", "LOG_PARAM", "SET_TAG", "CREATE_RUN", "UPDATE_RUN"})
_JSON = (b"content-type", b"application/json")


class RouteMatcher:
    """The route Starlette would pick for a method and path: the first of the table that matches both.

    Each route's literal start (its path up to the first parameter) is checked with ``startswith``
    before its regular expression, which skips most of the table cheaply; the order is unchanged."""

    def __init__(self, routes):
        self._by_method: dict[str, list] = {}
        for route in routes:
            regex, _, convertors = compile_path(route.path)
            literal = route.path.split("{", 1)[0]
            self._by_method.setdefault(route.method, []).append((literal, regex, convertors, route))

    def match(self, method: str, path: str):
        """``(route, path_params)`` or None."""
        for literal, regex, convertors, route in self._by_method.get(method, ()):
            if not path.startswith(literal):
                continue
            found = regex.match(path)
            if found is not None:
                return route, {k: convertors[k].convert(v) for k, v in found.groupdict().items()}
        return None


class FastPath:
    def __init__(self, services, routes, hot=HOT_ROUTES):
        self.services = services
        self.matcher = RouteMatcher(routes)
        self.hot = hot
        self.limit = services.config.max_body_bytes
        self.inline = services.engine.dialect.name == "sqlite"  # short local writes: no worker thread

    def route_for(self, scope):
        """The hot route of this request with its path parameters, or None (Starlette serves it)."""
        if scope.get("root_path"):
            return None
        found = self.matcher.match(scope["method"], scope["path"])
        if found is None or found[0].name not in self.hot:
            return None
        return found

    async def __call__(self, scope, receive, send, route, path_params: dict, request_id: str) -> None:
        rid = (b"x-request-id", request_id.encode())
        try:
            headers = Headers(scope=scope)
            body = parse_json(await receive_limited_body(receive, headers.get("content-length"), self.limit))
            client = scope.get("client")
            ctx = make_context(self.services, path_params, QueryParams(scope["query_string"]), body, request_id,
                               headers, client[0] if client else "-")
            if self.inline:
                result = run_route(route, ctx)
            else:
                result = await anyio.to_thread.run_sync(run_route, route, ctx)
            payload, status, extra = encode(result), route.status, ()
        except ClientDisconnected:
            return
        except HangarError as exc:
            log_failure(scope["method"], scope["path"], exc)
            response = error_response(exc)
            payload, status, extra = response.body, response.status_code, response.raw_headers
        except Exception as exc:
            log.error("%s %s failed", scope["method"], scope["path"], exc_info=exc)
            response = error_response(HangarError("Internal server error"))
            payload, status, extra = response.body, response.status_code, response.raw_headers
        if extra:
            headers_out = [h for h in extra if h[0] != b"content-length"]
        else:
            headers_out = [_JSON]
        headers_out += [(b"content-length", str(len(payload)).encode()), rid]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})
