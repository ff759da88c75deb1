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

    def hot_route(self, method: str, path: str):
        """The hot route of ``method path`` with its path parameters, or None (Starlette serves it)."""
        found = self.matcher.match(method, path)
        if found is None or found[0].name not in self.hot:
            return None
        return found

    def route_for(self, scope):
        """The hot route of this request with its path parameters, or None (Starlette serves it)."""
        if scope.get("root_path"):
            return None
        return self.hot_route(scope["method"], scope["path"])

    def answer(self, method: str, path: str, route, path_params: dict, request_id: str, headers, query_string: bytes,
               raw: bytes, client_host: str) -> tuple[int, list, bytes]:
        """``(status, headers, payload)`` for a hot request whose body has been read (within the limit): parsed,
        checked by the guard and written here, in this thread. ``headers`` holds no content-length."""
        try:
            ctx = make_context(self.services, path_params, QueryParams(query_string), parse_json(raw), request_id,
                               headers, client_host)
            return route.status, [_JSON], encode(run_route(route, ctx))
        except Exception as exc:
            return self.failure(method, path, exc)

    @staticmethod
    def failure(method: str, path: str, exc: Exception) -> tuple[int, list, bytes]:
        """A failed request as ``(status, headers, payload)``: the JSON error of ``respond``."""
        if isinstance(exc, HangarError):
            log_failure(method, path, exc)
        else:
            log.error("%s %s failed", method, path, exc_info=exc)
            exc = HangarError("Internal server error")
        response = error_response(exc)
        return response.status_code, [h for h in response.raw_headers if h[0] != b"content-length"], response.body

    async def __call__(self, scope, receive, send, route, path_params: dict, request_id: str) -> None:
        method, path = scope["method"], scope["path"]
        client = scope.get("client")
        client_host = client[0] if client else "-"
        try:
            headers = Headers(scope=scope)
            raw = await receive_limited_body(receive, headers.get("content-length"), self.limit)
        except ClientDisconnected:
            return
        except Exception as exc:
            status, headers_out, payload = self.failure(method, path, exc)
        else:
            if self.inline:
                status, headers_out, payload = self.answer(method, path, route, path_params, request_id, headers,
                                                           scope["query_string"], raw, client_host)
            else:
                try:
                    ctx = make_context(self.services, path_params, QueryParams(scope["query_string"]), parse_json(raw),
                                       request_id, headers, client_host)
                    result = await anyio.to_thread.run_sync(run_route, route, ctx)
                    status, headers_out, payload = route.status, [_JSON], encode(result)
                except Exception as exc:
                    status, headers_out, payload = self.failure(method, path, exc)
        headers_out = [*headers_out, (b"content-length", str(len(payload)).encode()), (b"x-request-id", request_id.encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})
