"""Prometheus metrics of one app, in its own registry (no global state): request count by route
and status, latency, requests in flight, errors by code, and the sizes of model batches.

The hot path touches pre-bound children only (no label lookups per request), and the in-flight
and queue-depth gauges are plain integers read when ``/metrics`` is scraped.
"""

from __future__ import annotations

import time
from typing import Any

from hangar.errors import require

# Rows per predict call: powers of two up to the largest batch anyone should configure.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    def __init__(self, routes: set[str], queue_depth=None):
        prom = require("prometheus_client", "serving")
        self._prom = prom
        self.routes = routes
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter("hangar_serving_requests", "HTTP requests by route and status",
                                     ["route", "method", "status"], registry=self.registry)
        self.latency = prom.Histogram("hangar_serving_request_duration_seconds",
                                      "Time from request to the end of the response, by route",
                                      ["route"], registry=self.registry)
        self.in_flight_count = 0
        in_flight = prom.Gauge("hangar_serving_requests_in_flight", "Requests being served", registry=self.registry)
        in_flight.set_function(lambda: self.in_flight_count)
        if queue_depth is not None:
            depth = prom.Gauge("hangar_serving_queue_depth", "Requests queued or running in the model queue",
                               registry=self.registry)
            depth.set_function(queue_depth)
        self.errors = prom.Counter("hangar_serving_errors", "Error responses by error code",
                                   ["error_code"], registry=self.registry)
        self.batch_rows = prom.Histogram("hangar_serving_batch_size", "Input rows per model predict call",
                                         buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = prom.Histogram("hangar_serving_batch_requests", "Requests per model predict call",
                                             buckets=BATCH_BUCKETS, registry=self.registry)
        self._by_status: dict[tuple[str, str, int], Any] = {}
        self._latency_by_route: dict[str, Any] = {}

    def route_label(self, path: str) -> str:
        return path if path in self.routes else "other"  # unknown paths would explode cardinality

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """One finished request (``route`` already a label)."""
        key = (route, method, status)
        child = self._by_status.get(key)
        if child is None:
            child = self._by_status[key] = self.requests.labels(route, method, str(status))
        child.inc()
        hist = self._latency_by_route.get(route)
        if hist is None:
            hist = self._latency_by_route[route] = self.latency.labels(route)
        hist.observe(seconds)

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

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
        m.in_flight_count += 1
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            m.in_flight_count -= 1
            m.observe(route, scope["method"], status["code"], time.perf_counter() - start)
