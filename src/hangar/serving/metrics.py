"""Prometheus metrics of one app, in its own registry (no global state): request count by route
and status, latency, requests in flight, errors by code."""

from __future__ import annotations

import time
from typing import Any

from hangar.errors import require


class ServingMetrics:
    def __init__(self, routes: set[str]):
        prom = require("prometheus_client", "serving")
        self._prom = prom
        self.routes = routes
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter("hangar_serving_requests", "HTTP requests by route and status",
                                     ["route", "method", "status"], registry=self.registry)
        self.latency = prom.Histogram("hangar_serving_request_duration_seconds",
                                      "Time from request to the end of the response, by route",
                                      ["route"], registry=self.registry)
        self.in_flight = prom.Gauge("hangar_serving_requests_in_flight", "Requests being served",
                                    registry=self.registry)
        self.errors = prom.Counter("hangar_serving_errors", "Error responses by error code",
                                   ["error_code"], registry=self.registry)

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"  # unknown paths would explode cardinality

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware, so streamed responses are timed to their last byte."""

    def __init__(self, app: Any, metrics: ServingMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        m = self.metrics
        route = m.route_label(scope["path"])
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        m.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight.dec()
            m.latency.labels(route).observe(time.perf_counter() - start)
            m.requests.labels(route, scope["method"], str(status["code"])).inc()
