"""The serving processes' HTTP protocol: ``POST /invocations`` on a lane beside uvicorn's ASGI path.

``ServingHttpProtocol`` is ``hangar.web_transport.LaneHttpToolsProtocol`` whose lane is the app itself
(a ``ServingApp`` or an ``EndpointApp``): a plain prediction request is parsed and queued for the
model as soon as its body is complete, and the batcher's callback writes the answer, so a request
costs no asyncio task, no request/response cycle, no future and no ASGI messages (at one connection
these were as much as the whole reference app's request). The app decides per request whether it
takes the lane (``lane_route``): an endpoint whose caller checks would wait on something (a token
with no fresh decision in the cache, a rate limit shared through Redis) does them on the ASGI path. With uvicorn's access
log on, or a concurrency limit, there is no lane.
"""

from __future__ import annotations

from hangar.web_transport import Exchange, LaneHttpToolsProtocol


def _lane_of(app):
    """The app that answers on the lane (it has ``lane_answer``), looking through uvicorn's wrappers."""
    for _ in range(8):
        if app is None or hasattr(app, "lane_answer"):
            return app
        app = getattr(app, "app", None)
    return None


class ServingHttpProtocol(LaneHttpToolsProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lane = _lane_of(self.app) if self.limit_concurrency is None and not self.access_log else None

    @property
    def lane_limit(self) -> int | None:  # type: ignore[override]
        return None if self.lane is None else self.lane.lane_limit

    def lane_route(self, method: str, path: str, headers: list):
        return self.lane.lane_route(method, path, headers)

    def lane_answer(self, exchange: Exchange) -> None:
        # one open connection: no other request can come in this turn, so a quick model may answer
        # at once instead of a turn later (when requests that came together would share its batch)
        self.lane.lane_answer(exchange, alone=len(self.connections) == 1)
