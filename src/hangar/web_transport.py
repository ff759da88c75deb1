"""One write per HTTP response under uvicorn's httptools protocol.

uvicorn writes the status line and headers as soon as the app sends ``http.response.start`` and
the body on ``http.response.body``: two ``send`` system calls and, with TCP_NODELAY, two segments,
so the client wakes up for a head it cannot use yet and waits again for the body. For small JSON
answers (a tracking call, a one-row prediction) that second round costs a good part of the call.

``CoalescingHttpToolsProtocol`` hands uvicorn a transport that holds back a write which is a
response head (it starts with the ``HTTP/1.x`` status line and ends with the blank line) until the
next write, which it joins, or until the event loop's next turn, whichever comes first: nothing is
reordered and nothing waits for more than the current callback. Closing, aborting and every other
transport call behave as before (held bytes are written before a close, dropped on abort). Used by
``hangar server`` and ``hangar serve``.

``LaneHttpToolsProtocol`` adds a lane beside uvicorn's ASGI path for an app's hottest routes.
uvicorn makes an asyncio task, a request/response cycle, an event and ASGI message dicts for every
request, which cost more than a one-row prediction or a committed tracking write. A request takes
the lane only when it is plain: a route the lane claims, a ``Content-Length`` body within the lane's
limit, no ``Transfer-Encoding``, no ``Expect``, no proxy headers, no upgrade, and nothing still being
answered on the connection (so pipelined answers keep their order). Its body is collected as
httptools parses it; when the message is complete the lane answers an ``Exchange``, at once or later
(a model queue), and the response is written in one piece with uvicorn's default headers and
keep-alive rules. While an answer is pending the exchange stands where uvicorn keeps its current
cycle, so uvicorn's own bookkeeping holds: a pipelined request waits for it, a graceful shutdown
waits for it, a lost connection marks it disconnected. Everything else takes uvicorn's path
unchanged. Malformed HTTP gets a JSON 400 and the connection is closed.
"""

from __future__ import annotations

import logging
import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

log = logging.getLogger("hangar.web")

_MAX_HELD = 16 * 1024


class CoalescingTransport:
    """A transport wrapper that joins a response head with the write that follows it."""

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif (len(data) <= _MAX_HELD and data[:7] == b"HTTP/1." and data[-4:] == b"\r\n\r\n"
              and not self._transport.is_closing()):
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, lines) -> None:
        self.flush()
        self._transport.writelines(lines)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name):  # everything else: the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))


_NOT_PLAIN = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"x-forwarded-for", b"x-forwarded-proto",
                        b"x-forwarded-host", b"forwarded"})
_BAD_REQUEST = b'{"error_code": "MALFORMED_REQUEST", "message": "Invalid HTTP request received."}'
_INTERNAL_ERROR = b'{"error_code": "INTERNAL_ERROR", "message": "Internal server error"}'
_JSON_HEADERS = ((b"content-type", b"application/json"),)


class _NoEvent:
    """What uvicorn sets on a lost connection's current cycle (``message_event.set()``)."""

    @staticmethod
    def set() -> None:
        return None


_NO_EVENT = _NoEvent()


class Exchange:
    """One request on the lane: its method, path, query, the lane's route, the raw headers and the
    body; answered once with ``reply``. ``disconnected`` turns true when the client leaves first."""

    __slots__ = ("protocol", "method", "path", "query", "route", "headers", "body", "keep_alive",
                 "response_complete", "disconnected")
    message_event = _NO_EVENT

    def __init__(self, protocol, method: str, path: str, query: bytes, route, headers: list, keep_alive: bool):
        self.protocol = protocol
        self.method, self.path, self.query, self.route, self.headers = method, path, query, route, headers
        self.body = bytearray()
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False

    def reply(self, status: int, headers, payload: bytes) -> None:
        """Write the response in one piece (``headers`` without content-length); a second reply, or
        one to a client that has left, is dropped."""
        if self.response_complete:
            return
        self.response_complete = True
        protocol = self.protocol
        transport = protocol.transport
        if not self.disconnected and not transport.is_closing():
            transport.write(_response(protocol.server_state.default_headers, status, headers, payload, self.keep_alive))
            if not self.keep_alive:
                transport.close()
        protocol.on_response_complete()


def _response(default_headers, status: int, headers, payload: bytes, keep_alive: bool) -> bytes:
    """A whole HTTP/1.1 response: uvicorn's default headers, ``headers``, content-length and, when the
    connection ends after it, ``connection: close``."""
    out = [STATUS_LINE[status]]
    for name, value in (*default_headers, *headers):
        out += [name, b": ", value, b"\r\n"]
    out += [b"content-length: ", str(len(payload)).encode(), b"\r\n"]
    if not keep_alive:
        out.append(b"connection: close\r\n")
    out += [b"\r\n", payload]
    return b"".join(out)


class LaneHttpToolsProtocol(CoalescingHttpToolsProtocol):
    """The httptools protocol with a lane (see the module's docstring). Subclasses set ``lane_limit``
    (the largest body the lane takes; None: no lane, read once per request), ``lane_methods``, and
    define ``lane_route`` and ``lane_answer``."""

    lane_methods: tuple[bytes, ...] = (b"POST",)
    lane_limit: int | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane_exchange: Exchange | None = None  # the lane request whose body is arriving

    def lane_route(self, method: str, path: str, headers: list):
        """What the lane needs to answer ``method path`` with these raw headers (truthy), or None:
        uvicorn's path serves it."""
        return None

    def lane_answer(self, exchange: Exchange) -> None:
        """Answer ``exchange`` (its body is complete), now or later, with ``exchange.reply``; an
        exception raised here is logged and answered with a JSON 500, and the connection closed."""
        raise NotImplementedError

    def _take(self) -> Exchange | None:
        """The request whose headers were just parsed, if it is plain enough for the lane."""
        parser = self.parser
        method = parser.get_method()
        if (method not in self.lane_methods or self.root_path or self.expect_100_continue or self.pipeline
                or (self.cycle is not None and not self.cycle.response_complete)):
            return None
        limit = self.lane_limit
        if limit is None:
            return None
        length = None
        for name, value in self.headers:
            if name in _NOT_PLAIN:
                return None
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
        if length is None or length > limit:
            return None
        try:
            parsed = httptools.parse_url(self.url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        if "%" in path:
            path = urllib.parse.unquote(path)
        method = method.decode("ascii")
        route = self.lane_route(method, path, self.headers)
        if not route:
            return None
        keep_alive = parser.get_http_version() != "1.0" and parser.should_keep_alive()
        return Exchange(self, method, path, parsed.query or b"", route, self.headers, keep_alive)

    def on_headers_complete(self) -> None:
        try:
            exchange = self._take()
        except Exception:  # a lane that cannot decide leaves the request to uvicorn's path
            log.exception("Choosing a lane for a request failed")
            exchange = None
        if exchange is not None:
            self.lane_exchange = self.cycle = exchange
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.lane_exchange is not None:
            self.lane_exchange.body += body
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        exchange, self.lane_exchange = self.lane_exchange, None
        if exchange is None:
            super().on_message_complete()
            return
        try:
            self.lane_answer(exchange)
        except Exception:  # (lanes turn every failure into a JSON error; this is a last resort)
            log.exception("%s %s failed", exchange.method, exchange.path)
            exchange.keep_alive = False
            exchange.reply(500, _JSON_HEADERS, _INTERNAL_ERROR)

    def send_400_response(self, msg: str) -> None:
        """Malformed HTTP: a JSON error like every other, then the connection is closed."""
        self.transport.write(_response(self.server_state.default_headers, 400, _JSON_HEADERS, _BAD_REQUEST, False))
        self.transport.close()
