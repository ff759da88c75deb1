"""uvicorn's httptools protocol, with a lane for the hot tracking writes and one write per response
(``hangar.web_transport.CoalescingHttpToolsProtocol``).

``HangarHttpProtocol`` adds a lane for the hot tracking writes (``fast.FastPath``, on SQLite where
they run inline): uvicorn makes an asyncio task, a request/response cycle, an event and ASGI
message dicts for every request, which cost more here than the committed write. A request takes
the lane only when it is plain: a hot route (matched as Starlette would, by ``FastPath``), a
``Content-Length`` body within the server's limit, no ``Transfer-Encoding``, no ``Expect``, no
proxy headers, no upgrade, and nothing still being answered on the connection (so pipelined
answers keep their order). Its body is collected as httptools parses it; when the message is
complete, ``FastPath.answer`` (the same guard, handler and JSON errors as the ASGI path) runs and
the response is written in one piece, with uvicorn's default headers and keep-alive rules; then
uvicorn's own bookkeeping (keep-alive timer, queued pipelined requests) continues. Everything else
takes uvicorn's path unchanged. Malformed HTTP gets a JSON 400 and the connection is closed.
"""

from __future__ import annotations

import logging
import urllib.parse

import httptools
from starlette.datastructures import Headers
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from hangar.web import request_id_from
from hangar.web_transport import CoalescingHttpToolsProtocol

log = logging.getLogger("hangar.server")

_LANE_METHODS = (b"POST", b"PATCH")
_NOT_PLAIN = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"x-forwarded-for", b"x-forwarded-proto",
                        b"x-forwarded-host", b"forwarded"})
_BAD_REQUEST = b'{"error_code": "MALFORMED_REQUEST", "message": "Invalid HTTP request received."}'


class _Hot:
    __slots__ = ("method", "path", "query", "route", "params", "body", "keep_alive")

    def __init__(self, method, path, query, route, params, keep_alive):
        self.method, self.path, self.query, self.route, self.params = method, path, query, route, params
        self.body = bytearray()
        self.keep_alive = keep_alive


def _lane_of(app):
    """The app's hot-write lane (a ``FastPath`` that runs inline), looking through uvicorn's wrappers."""
    from hangar.server.app import ServerApp

    for _ in range(8):
        if isinstance(app, ServerApp):
            return app.fast if app.fast.inline else None
        app = getattr(app, "app", None)
    return None


class HangarHttpProtocol(CoalescingHttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane = _lane_of(self.app) if self.limit_concurrency is None else None
        self.hot: _Hot | None = None

    def _take(self) -> _Hot | None:
        """The request whose headers were just parsed, if it is plain enough for the lane."""
        parser = self.parser
        method = parser.get_method()
        if (method not in _LANE_METHODS or self.root_path or self.expect_100_continue or self.pipeline
                or (self.cycle is not None and not self.cycle.response_complete)):
            return None
        length = None
        for name, value in self.headers:
            if name in _NOT_PLAIN:
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
        if length is None or length > self.lane.limit:
            return None
        try:
            parsed = httptools.parse_url(self.url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        if "%" in path:
            path = urllib.parse.unquote(path)
        method = method.decode("ascii")
        found = self.lane.hot_route(method, path)
        if found is None:
            return None
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        return _Hot(method, path, parsed.query or b"", found[0], found[1], keep_alive)

    def on_headers_complete(self) -> None:
        if self.lane is not None:
            self.hot = self._take()
            if self.hot is not None:
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.hot is not None:
            self.hot.body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        hot, self.hot = self.hot, None
        if hot is None:
            super().on_message_complete()
            return
        try:
            self._answer(hot)
        except Exception:  # (answer() turns every failure into a JSON error; this is a last resort)
            log.exception("%s %s failed", hot.method, hot.path)
            self.transport.close()

    def _answer(self, hot: _Hot) -> None:
        request_id = request_id_from(self.headers)
        client_host = self.client[0] if self.client else "-"
        status, headers, payload = self.lane.answer(hot.method, hot.path, hot.route, hot.params, request_id,
                                                    Headers(raw=self.headers), hot.query, bytes(hot.body), client_host)
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/1.1" %d', client_host, hot.method, hot.path, status)
        out = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers):
            out += [name, b": ", value, b"\r\n"]
        out += [b"content-length: ", str(len(payload)).encode(), b"\r\nx-request-id: ", request_id.encode(), b"\r\n"]
        if not hot.keep_alive:
            out.append(b"connection: close\r\n")
        out += [b"\r\n", payload]
        self.transport.write(b"".join(out))
        if not hot.keep_alive:
            self.transport.close()
        self.on_response_complete()

    def shutdown(self) -> None:
        if self.hot is not None:  # a lane request still arriving: answer it, then close
            self.hot.keep_alive = False
            return
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP: a JSON error like every other, then the connection is closed."""
        out = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            out += [name, b": ", value, b"\r\n"]
        out += [b"content-type: application/json\r\ncontent-length: ", str(len(_BAD_REQUEST)).encode(),
                b"\r\nconnection: close\r\n\r\n", _BAD_REQUEST]
        self.transport.write(b"".join(out))
        self.transport.close()
