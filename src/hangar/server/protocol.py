"""uvicorn's httptools protocol with a lane for the hot tracking writes
(``hangar.web_transport.LaneHttpToolsProtocol``).

``HangarHttpProtocol``'s lane is ``fast.FastPath`` on SQLite, where the hot writes run inline: a
request takes it when it is plain (see ``web_transport``) and its route is hot (matched as Starlette
would, by ``FastPath``). ``FastPath.answer`` (the same guard, handler and JSON errors as the ASGI
path) answers it at once, with the caller's plain ``X-Request-Id`` or a new one.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from hangar.web import request_id_from
from hangar.web_transport import Exchange, LaneHttpToolsProtocol


def _lane_of(app):
    """The app's hot-write lane (a ``FastPath`` that runs inline), looking through uvicorn's wrappers."""
    from hangar.server.app import ServerApp

    for _ in range(8):
        if isinstance(app, ServerApp):
            return app.fast if app.fast.inline else None
        app = getattr(app, "app", None)
    return None


class HangarHttpProtocol(LaneHttpToolsProtocol):
    lane_methods = (b"POST", b"PATCH")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane = _lane_of(self.app) if self.limit_concurrency is None else None
        self.lane_limit = self.lane.limit if self.lane is not None else None

    def lane_route(self, method: str, path: str, headers: list):
        return self.lane.hot_route(method, path)

    def lane_answer(self, exchange: Exchange) -> None:
        request_id = request_id_from(exchange.headers)
        client_host = self.client[0] if self.client else "-"
        route, params = exchange.route
        status, headers, payload = self.lane.answer(exchange.method, exchange.path, route, params, request_id,
                                                    Headers(raw=exchange.headers), exchange.query,
                                                    bytes(exchange.body), client_host)
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/1.1" %d', client_host, exchange.method, exchange.path, status)
        exchange.reply(status, [*headers, (b"x-request-id", request_id.encode())], payload)
