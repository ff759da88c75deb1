"""Prometheus metrics of one app, in its own registry (no global state): request count by route
and status, latency, requests in flight, errors by code, and the sizes of model batches.

The hot path touches pre-bound children only (no label lookups per request), and the in-flight
and queue-depth gauges are plain integers read when ``/metrics`` is scraped.

With ``--workers N`` (N > 1) the server gives its workers one fresh private folder in
``PROMETHEUS_MULTIPROC_DIR`` (``multiprocess_dir``), which puts prometheus_client in its
multiprocess mode: every worker writes its counters and histograms to memory-mapped files there,
and ``/metrics``, whichever worker answers, adds up the files of all of them
(``MultiProcessCollector``). The two gauges are then sampled into the files once a second and on
each scrape (``livesum``: the sum over live workers), so requests still cost an integer
increment. One worker keeps the plain in-memory mode: its hot path pays nothing for files.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from hangar.errors import require

log = logging.getLogger("hangar.serving")

# Rows per predict call: powers of two up to the largest batch anyone should configure.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SAMPLE_EVERY_S = 1.0
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def multiprocess_path() -> str | None:
    """The shared metrics folder when this process is one of several workers, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A fresh private folder for the workers' metric files, exported to the workers (set before
    they import prometheus_client) and removed when the server exits."""
    path = tempfile.mkdtemp(prefix="hangar-metrics-")
    before = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = before
        shutil.rmtree(path, ignore_errors=True)


def render_registry(prom, registry, path: str | None) -> bytes:
    """The exposition: this registry, or with ``path`` the files of every worker."""
    if path is None:
        return prom.generate_latest(registry)
    from prometheus_client import multiprocess

    for name in glob.glob(os.path.join(path, "gauge_live*.db")):  # a worker that died: drop its live gauges
        match = _LIVE_GAUGE_FILE.search(name)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)
    merged = prom.CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=path)
    return prom.generate_latest(merged)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class MetricFamilies:
    """The serving metrics, optionally with leading labels (an endpoint's ``served_entity``) so
    that several apps share one registry (and, across workers, one set of files)."""

    def __init__(self, registry, label_names: tuple[str, ...] = ()):
        prom = require("prometheus_client", "serving")
        names = list(label_names)
        self.label_names = tuple(label_names)
        self.requests = prom.Counter("hangar_serving_requests", "HTTP requests by route and status",
                                     [*names, "route", "method", "status"], registry=registry)
        self.latency = prom.Histogram("hangar_serving_request_duration_seconds",
                                      "Time from request to the end of the response, by route",
                                      [*names, "route"], registry=registry)
        self.in_flight = prom.Gauge("hangar_serving_requests_in_flight", "Requests being served", names,
                                    registry=registry, multiprocess_mode="livesum")
        self.queue_depth = prom.Gauge("hangar_serving_queue_depth", "Requests queued or running in the model queue",
                                      names, registry=registry, multiprocess_mode="livesum")
        self.errors = prom.Counter("hangar_serving_errors", "Error responses by error code",
                                   [*names, "error_code"], registry=registry)
        self.batch_rows = prom.Histogram("hangar_serving_batch_size", "Input rows per model predict call",
                                         names, buckets=BATCH_BUCKETS, registry=registry)
        self.batch_requests = prom.Histogram("hangar_serving_batch_requests", "Requests per model predict call",
                                             names, buckets=BATCH_BUCKETS, registry=registry)


class _Prefixed:
    """``metric.labels(code)`` for a family whose leading labels are already known."""

    def __init__(self, metric, prefix: tuple[str, ...]):
        self._metric = metric
        self._prefix = prefix

    def labels(self, *values):
        return self._metric.labels(*self._prefix, *values)


def _bind(metric, labels: tuple[str, ...]):
    return metric.labels(*labels) if labels else metric


class ServingMetrics:
    """One app's metrics. Alone (``families=None``) it owns a registry; an endpoint passes its
    shared ``families`` and the entity's label values, and reuses the object when the entity's
    app is rebuilt, so its counters go on across version switches and config updates."""

    def __init__(self, routes: set[str], queue_depth=None, *, families: MetricFamilies | None = None,
                 labels: tuple[str, ...] = (), path: str | None = None, sampler: bool = True):
        prom = require("prometheus_client", "serving")
        self._prom = prom
        self.routes = routes
        self.path = multiprocess_path() if families is None else path
        self.registry = None
        if families is None:
            self.registry = prom.CollectorRegistry(auto_describe=True)
            families = MetricFamilies(self.registry)
        self.families = families
        self.labels = tuple(labels)
        self.requests = _Prefixed(families.requests, self.labels) if labels else families.requests
        self.latency = _Prefixed(families.latency, self.labels) if labels else families.latency
        self.errors = _Prefixed(families.errors, self.labels) if labels else families.errors
        self.batch_rows = _bind(families.batch_rows, self.labels)
        self.batch_requests = _bind(families.batch_requests, self.labels)
        self.in_flight_count = 0
        self.queue_depth = queue_depth
        self._in_flight = _bind(families.in_flight, self.labels)
        self._depth = _bind(families.queue_depth, self.labels)
        if self.path is None:  # one process: the gauges read the integers when scraped
            self._in_flight.set_function(lambda: self.in_flight_count)
            self._depth.set_function(lambda: self.queue_depth() if self.queue_depth is not None else 0)
        self._by_status: dict[tuple[str, str, int], Any] = {}
        self._latency_by_route: dict[str, Any] = {}
        self._sampler = Sampler([self.sample]) if self.path is not None and sampler else None

    def sample(self) -> None:
        """Write the gauges to this worker's file (multiprocess mode; once a second and per scrape)."""
        if self.path is None:
            return
        self._in_flight.set(self.in_flight_count)
        depth = self.queue_depth
        self._depth.set(depth() if depth is not None else 0)

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
        self.sample()
        return render_registry(self._prom, self.registry, self.path), self._prom.CONTENT_TYPE_LATEST


class Sampler:
    """A daemon thread that calls each function every ``SAMPLE_EVERY_S`` (gauges into files)."""

    def __init__(self, functions: list[Callable[[], None]], every_s: float = SAMPLE_EVERY_S):
        self.functions = functions
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hangar-metrics-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for fn in list(self.functions):
                try:
                    fn()
                except Exception:  # noqa: BLE001 - a gauge must never take a worker down
                    log.debug("Sampling a gauge failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()


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
