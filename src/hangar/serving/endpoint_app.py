"""An endpoint's ASGI app: traffic split, per-caller rate limits, the inference table, and
served entities that can be swapped while requests are in flight.

Each served entity is a whole single-model app (``app.build_app``: lean ``/invocations``, the
adaptive batcher, OpenAI routes); this module sits in front of them. A request:

1. is counted against its caller's rate (429 with Retry-After when over),
2. picks an entity by weight (deterministically by ``X-Request-Id`` when the caller sends one),
3. takes that entity's *current* app — one reference read, so an alias switch that lands
   meanwhile never splits a request between two versions — and runs through it,
4. answers with ``X-Hangar-Served-By: catalog.schema.model/N`` and ``X-Request-Id``,
5. is recorded in the inference table off the hot path (request, response, latency, status,
   version, token counts, and whether the client went away before the end).

A swap builds the new entity app first and assigns it in one statement; in-flight requests finish
on the app they started on, whose model queue is closed once they are done.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hangar.errors import HangarError

log = logging.getLogger("hangar.serving")

_CAPTURE_BYTES = 1 << 20  # request / response bytes kept for the inference table
_ENDPOINT_ROUTES = ("/health", "/ready", "/metrics", "/version")
_OPEN_ROUTES = ("/health", "/ready")


@dataclass(frozen=True)
class Served:
    """What an entity serves right now: swapped as one object."""

    app: Any            # a ServingApp over one loaded model
    version: str        # catalog.schema.model/N, or the package path
    model_uri: str      # the exact URI loaded (models:/name/N)


class EntitySlot:
    def __init__(self, entity, served: Served):
        self.entity = entity
        self.current = served
        self.swaps = 0

    def swap(self, served: Served, grace_s: float) -> None:
        old, self.current = self.current, served
        self.swaps += 1
        timer = threading.Timer(grace_s, _close_app, args=(old.app,))
        timer.daemon = True
        timer.start()


def _close_app(app) -> None:
    close = getattr(getattr(app, "batcher", None), "close", None)
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001 - an old app's cleanup must not disturb serving
            log.debug("Closing a replaced model queue failed", exc_info=True)


def _json_error(status: int, code: str, message: str, headers: list | None = None) -> tuple[dict, bytes]:
    body = json.dumps({"error_code": code, "message": message}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *(headers or [])]}
    return start, body


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _usage(body: bytes, content_type: str) -> tuple[int | None, int | None]:
    """Token counts from an OpenAI-shaped JSON answer or the usage event of an SSE stream."""
    try:
        if content_type.startswith("text/event-stream"):
            for line in reversed(body.split(b"\n")):
                if line.startswith(b"data: {") and b'"usage"' in line:
                    usage = json.loads(line[6:]).get("usage") or {}
                    return usage.get("prompt_tokens"), usage.get("completion_tokens")
            return None, None
        if b'"usage"' not in body:
            return None, None
        usage = json.loads(body).get("usage") or {}
        return usage.get("prompt_tokens"), usage.get("completion_tokens")
    except (ValueError, AttributeError):
        return None, None


class EndpointMetrics:
    """Endpoint-level counters plus every entity app's own metrics, labelled by entity."""

    def __init__(self, app_ref):
        from hangar.errors import require

        prom = require("prometheus_client", "serving")
        self._prom = prom
        self._app_ref = app_ref
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.rate_limited = prom.Counter("hangar_endpoint_rate_limited", "Requests refused with 429",
                                         registry=self.registry)
        self.swaps = prom.Counter("hangar_endpoint_version_switches", "Times a served entity switched version",
                                  ["served_entity"], registry=self.registry)
        self.registry.register(_EntityCollector(app_ref))

    def render(self) -> tuple[bytes, str]:
        return self._prom.generate_latest(self.registry), self._prom.CONTENT_TYPE_LATEST


class _EntityCollector:
    """Merges each entity app's registry into one exposition, adding a ``served_entity`` label."""

    def __init__(self, app_ref):
        self._app_ref = app_ref

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, Metric

        app = self._app_ref()
        families: dict[str, Any] = {}
        versions = GaugeMetricFamily("hangar_endpoint_served_version", "The version each entity serves (1 = current)",
                                     labels=["served_entity", "version"])
        for slot in app.slots:
            served = slot.current
            versions.add_metric([slot.entity.name, served.version], 1)
            for family in served.app.metrics.registry.collect():
                out = families.get(family.name)
                if out is None:
                    out = families[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                for s in family.samples:
                    out.add_sample(s.name, {**s.labels, "served_entity": slot.entity.name}, s.value, s.timestamp,
                                   s.exemplar)
        inference = app.table
        if inference is not None:
            for name, doc, value in (("hangar_inference_table_written", "Rows written", inference.written),
                                     ("hangar_inference_table_dropped", "Rows dropped (queue full)", inference.dropped),
                                     ("hangar_inference_table_failed", "Rows whose write failed", inference.failed_writes)):
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], value)
                yield g
        yield versions
        yield from families.values()


class EndpointApp:
    def __init__(self, name: str, slots: list[EntitySlot], *, split, limiter=None, table=None,
                 on_shutdown=None, hangar_version: str = "", authorizer=None):
        import weakref

        self.name = name
        self.slots = slots
        self.split = split
        self.limiter = limiter
        self.table = table
        self._on_shutdown = on_shutdown
        self.hangar_version = hangar_version
        self.authorizer = authorizer  # None: no auth (loopback, or --no-auth)
        self.metrics = EndpointMetrics(weakref.ref(self))
        self._limiter_failed_at = 0.0
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:12]  # unique per process; a counter after it (no syscall per request)

    # -- ASGI -------------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await self._lifespan(receive, send)
        if kind != "http":
            return
        path = scope["path"]
        if path in _OPEN_ROUTES and scope["method"] == "GET":  # probes answer without a token
            return await self._endpoint_route(path, send)
        caller = None
        if self.authorizer is not None:
            try:
                token = _header(scope, b"authorization")
                caller = await self.authorizer.authorize({"authorization": token} if token else {},
                                                         _header(scope, b"x-request-id"))
            except HangarError as exc:
                extra = [(b"www-authenticate", b"Bearer")] if exc.http_status == 401 else []
                start, body = _json_error(exc.http_status, exc.error_code, exc.message, extra)
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
        if path in _ENDPOINT_ROUTES and scope["method"] == "GET":
            return await self._endpoint_route(path, send)
        await self._serve(scope, receive, send, caller)

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                if self.limiter is not None:
                    await self.limiter.close()  # a Redis limiter's connections
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        if self._on_shutdown is not None:
            self._on_shutdown()
        if self.table is not None:
            self.table.close()

    async def _endpoint_route(self, path: str, send) -> None:
        content_type = b"application/json"
        if path == "/health":
            body = b'{"status": "ok"}'
        elif path == "/ready":
            body = b'{"status": "ready"}'
        elif path == "/version":
            body = json.dumps({"hangar_version": self.hangar_version, "endpoint": self.name,
                               "served_entities": [{"name": s.entity.name, "model": s.entity.model,
                                                    "version": s.current.version, "weight": s.entity.weight}
                                                   for s in self.slots]}).encode()
        else:
            body, text_type = self.metrics.render()
            content_type = text_type.encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _rate_limited(self, scope, caller: str | None) -> float | None:
        if self.limiter is None:
            return None
        if caller is None:
            client = scope.get("client")
            caller = client[0] if client else "unknown"
        else:
            caller = f"principal:{caller}"
        try:
            allowed, wait = await self.limiter.acquire(caller)
        except Exception as exc:  # noqa: BLE001 - a rate-limit store outage must not take the endpoint down
            now = time.monotonic()
            if now - self._limiter_failed_at > 60:
                log.warning("The rate-limit store failed (%s); letting requests through", type(exc).__name__)
                self._limiter_failed_at = now
            return None
        return None if allowed else wait

    async def _serve(self, scope, receive, send, caller: str | None = None) -> None:
        from hangar.serving.rate_limit import retry_after_header

        started = time.perf_counter()
        request_id = _header(scope, b"x-request-id")
        wait = await self._rate_limited(scope, caller)
        if wait is not None:
            self.metrics.rate_limited.inc()
            start, body = _json_error(429, "RATE_LIMITED", "Too many requests from this caller; retry after the "
                                      "number of seconds in Retry-After",
                                      [(b"retry-after", retry_after_header(wait).encode())])
            await send(start)
            await send({"type": "http.response.body", "body": body})
            self._record(scope, request_id or self._next_id(), None, started, 429, b"", body, "application/json",
                         cancelled=False, error_code="RATE_LIMITED", caller=caller)
            return
        slot = self.slots[self.split.choose(request_id)]
        served = slot.current
        request_id = request_id or self._next_id()
        extra = [(b"x-hangar-served-by", served.version.encode()), (b"x-request-id", request_id.encode())]
        captured_in: list[bytes] = []
        captured_out: list[bytes] = []
        sizes = [0, 0]
        state = {"status": 500, "content_type": "", "done": False, "cancelled": False}

        async def receive_and_keep():
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if sizes[0] < _CAPTURE_BYTES:
                    captured_in.append(chunk[: _CAPTURE_BYTES - sizes[0]])
                sizes[0] += len(chunk)
            elif message["type"] == "http.disconnect" and not state["done"]:
                state["cancelled"] = True
            return message

        async def send_and_keep(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"content-type":
                        state["content_type"] = value.decode("latin-1")
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if sizes[1] < _CAPTURE_BYTES:
                    captured_out.append(chunk[: _CAPTURE_BYTES - sizes[1]])
                sizes[1] += len(chunk)
                if not message.get("more_body"):
                    state["done"] = True
            try:
                await send(message)
            except OSError:
                state["cancelled"] = True
                raise

        try:
            await served.app(scope, receive_and_keep, send_and_keep)
        except BaseException:
            if not state["done"]:
                state["cancelled"] = True
            raise
        finally:
            if not state["done"] and state["status"] == 500 and state["cancelled"]:
                state["status"] = 499
            self._record(scope, request_id, (slot, served), started, state["status"], b"".join(captured_in),
                         b"".join(captured_out), state["content_type"], cancelled=state["cancelled"] and not state["done"],
                         caller=caller)

    def _record(self, scope, request_id, chosen, started, status, request: bytes, response: bytes, content_type: str,
                *, cancelled: bool, error_code: str | None = None, caller: str | None = None) -> None:
        if self.table is None:
            return
        prompt_tokens, completion_tokens = _usage(response, content_type)
        if status >= 400 and error_code is None and content_type.startswith("application/json"):
            try:
                error_code = json.loads(response).get("error_code")
            except (ValueError, AttributeError):
                error_code = None
        slot, served = chosen if chosen is not None else (None, None)
        self.table.record(request_id=request_id, endpoint=self.name, caller=caller,
                          served_entity=slot.entity.name if slot else None,
                          model_version=served.version if served else None,
                          latency_ms=(time.perf_counter() - started) * 1000, status_code=status,
                          error_code=error_code, cancelled=cancelled, prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens, route=scope["path"], request=request,
                          response=response)
