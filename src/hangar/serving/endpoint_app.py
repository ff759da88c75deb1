"""An endpoint's ASGI app: traffic split, per-caller rate limits, the inference table, and
served entities that can be swapped while requests are in flight.

Each served entity is a whole single-model app (``app.build_app``: lean ``/invocations``, the
adaptive batcher, OpenAI routes); this module sits in front of them. A request:

0. reads the endpoint's *routing* once — entities, traffic split, rate limiter, inference table,
   all from one config revision, replaced as one object when the config is updated,
1. is counted against its caller's rate (429 with Retry-After when over),
2. picks an entity by weight (deterministically by ``X-Request-Id`` when the caller sends one),
3. takes that entity's *current* app — one reference read, so an alias switch that lands
   meanwhile never splits a request between two versions — and runs through it,
4. answers with ``X-Hangar-Served-By: catalog.schema.model/N`` and ``X-Request-Id``,
5. is recorded in the inference table off the hot path (request, response, latency, status,
   version, token counts, and whether the client went away before the end).

A swap builds the new entity app first and assigns it in one statement; in-flight requests finish
on the app they started on, whose model queue is closed once they are done. A config update
(``endpoint_runtime``) likewise builds a whole new :class:`Routing` and assigns it in one
statement. Once the endpoint is deleted, the routing says so and requests get
``404 ENDPOINT_NOT_FOUND`` (``/ready`` answers 503) until it is created again.
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
from hangar.web import plain_request_id

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
    model: Any = None   # the loaded PyFuncModel (a settings change rebuilds the app over it)


class EntitySlot:
    def __init__(self, entity, served: Served):
        self.entity = entity
        self.current = served
        self.swaps = 0

    def swap(self, served: Served, grace_s: float) -> None:
        old, self.current = self.current, served
        self.swaps += 1
        retire_later(grace_s, close_app, old.app)


@dataclass(frozen=True)
class Routing:
    """Everything a request needs from the endpoint's config, replaced as one object."""

    slots: tuple[EntitySlot, ...]
    split: Any                  # a TrafficSplit over the slots' weights; None once deleted
    limiter: Any = None
    table: Any = None
    config: Any = None          # the EndpointConfig it was built from
    revision: Any = None        # the stored revision it was built from (None: not from the store)
    deleted: bool = False

    def by_name(self, name: str) -> EntitySlot | None:
        return next((slot for slot in self.slots if slot.entity.name == name), None)


def retire_later(grace_s: float, fn, *args) -> None:
    """Run ``fn(*args)`` once requests that may still use it are done (after ``grace_s``)."""
    timer = threading.Timer(grace_s, _quietly, args=(fn, *args))
    timer.daemon = True
    timer.start()


def _quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - an old object's cleanup must not disturb serving
        log.warning("Closing a replaced %s failed", getattr(fn, "__name__", "object"), exc_info=True)


def close_app(app) -> None:
    """Close an entity app's model queue (its batcher's threads)."""
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
    return _header_value(scope["headers"], name)


def _header_value(headers: list, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


@dataclass(frozen=True, slots=True)
class _LaneCall:
    """What ``EndpointApp.lane_route`` hands the lane: the caller, already allowed (None without auth)."""

    caller: str | None


def _request_id(headers: list) -> tuple[bytes | None, str | None]:
    """The caller's ``X-Request-Id`` as sent (it picks the entity) and as echoed and recorded: the
    same when it is plain (see ``hangar.web.plain_request_id``), else None (a new id is made)."""
    for key, value in headers:
        if key == b"x-request-id":
            return value, plain_request_id(value)
    return None, None


def _usage(body: bytes, content_type: str) -> tuple[int | None, int | None]:
    """Token counts from an OpenAI-shaped JSON answer or the usage event of an SSE stream (counts
    that are not 64-bit integers, which a model may well send, are left out: one such value would
    fail the table's whole batch)."""
    try:
        if content_type.startswith("text/event-stream"):
            for line in reversed(body.split(b"\n")):
                if line.startswith(b"data: {") and b'"usage"' in line:
                    usage = json.loads(line[6:]).get("usage") or {}
                    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
            return None, None
        if b'"usage"' not in body:
            return None, None
        usage = json.loads(body).get("usage") or {}
        return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    except (ValueError, AttributeError):
        return None, None


def _count(value) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


class EndpointMetrics:
    """Endpoint-level counters plus every entity's serving metrics, labelled ``served_entity``.

    One registry (or, with several workers, one folder of files) for all entities: an entity's
    :class:`ServingMetrics` is made once (``for_entity``) and handed to each app built for it, so
    its counters go on across version switches and config updates."""

    def __init__(self):
        from hangar.errors import require
        from hangar.serving.metrics import MetricFamilies, Sampler, multiprocess_path

        prom = require("prometheus_client", "serving")
        self._prom = prom
        self.path = multiprocess_path()
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.families = MetricFamilies(self.registry, ("served_entity",))
        self.rate_limited = prom.Counter("hangar_endpoint_rate_limited", "Requests refused with 429",
                                         registry=self.registry)
        self.swaps = prom.Counter("hangar_endpoint_version_switches", "Times a served entity switched version",
                                  ["served_entity"], registry=self.registry)
        self.reloads = prom.Counter("hangar_endpoint_config_reloads", "Endpoint config updates, by outcome "
                                    "(applied, failed, deleted)", ["outcome"], registry=self.registry)
        self.served_version = prom.Gauge("hangar_endpoint_served_version", "The version each entity serves "
                                         "(1 = current)", ["served_entity", "version"], registry=self.registry,
                                         multiprocess_mode="livemax")
        self.table = {name: prom.Gauge(f"hangar_inference_table_{name}", doc, registry=self.registry,
                                       multiprocess_mode="sum")
                      for name, doc in (("written", "Rows written"), ("dropped", "Rows dropped (queue full)"),
                                        ("failed", "Rows whose write failed"))}
        self._entities: dict[str, Any] = {}
        self._versions: set[tuple[str, str]] = set()
        self._app_ref = None
        self._sampler = Sampler([self.sample]) if self.path is not None else None

    def attach(self, app) -> None:
        import weakref

        self._app_ref = weakref.ref(app)

    def for_entity(self, name: str):
        """A ``metrics_factory`` for ``build_app``: the entity's one ServingMetrics. Its queue depth is
        that of the app the endpoint routes to now (not of an app still loading, or being retired)."""
        from hangar.serving.metrics import ServingMetrics

        def factory(routes, queue_depth=None):
            metrics = self._entities.get(name)
            if metrics is None:
                metrics = self._entities[name] = ServingMetrics(routes, self._queue_depth(name), families=self.families,
                                                                labels=(name,), path=self.path, sampler=False)
            metrics.routes = routes
            return metrics

        return factory

    def _queue_depth(self, name: str):
        def depth() -> int:
            app = self._app_ref() if self._app_ref is not None else None
            slot = app.routing.by_name(name) if app is not None else None
            batcher = getattr(slot.current.app, "batcher", None) if slot is not None else None
            return batcher.depth if batcher is not None else 0

        return depth

    def sample(self) -> None:
        """Gauges that are read rather than counted: per scrape, and with several workers once a second."""
        for metrics in list(self._entities.values()):
            metrics.sample()
        app = self._app_ref() if self._app_ref is not None else None
        if app is None:
            return
        routing = app.routing
        current = {(slot.entity.name, slot.current.version) for slot in routing.slots}
        for key in current:
            self.served_version.labels(*key).set(1)
        for key in self._versions - current:
            if self.path is None:
                self.served_version.remove(*key)
            else:  # a file keeps its series: 0 says this worker no longer serves it
                self.served_version.labels(*key).set(0)
        self._versions = current
        table = routing.table
        if table is not None:
            for name, value in (("written", table.written), ("dropped", table.dropped), ("failed", table.failed_writes)):
                self.table[name].set(value)

    def render(self) -> tuple[bytes, str]:
        from hangar.serving.metrics import render_registry

        self.sample()
        return render_registry(self._prom, self.registry, self.path), self._prom.CONTENT_TYPE_LATEST

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()


class EndpointApp:
    def __init__(self, name: str, routing: Routing, *, metrics: EndpointMetrics | None = None, on_shutdown=None,
                 hangar_version: str = "", authorizer=None):
        self.name = name
        self.routing = routing
        self._on_shutdown = on_shutdown
        self.hangar_version = hangar_version
        self.authorizer = authorizer  # None: no auth (loopback, or --no-auth)
        self.metrics = metrics or EndpointMetrics()
        self.metrics.attach(self)
        self.loop = None  # the event loop, once started (a replaced Redis limiter is closed on it)
        self._limiter_failed_at = 0.0
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:12]  # unique per process; a counter after it (no syscall per request)

    @property
    def slots(self) -> tuple[EntitySlot, ...]:
        return self.routing.slots

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
                client = scope.get("client")
                caller = await self.authorizer.authorize({"authorization": token} if token else {},
                                                         _header(scope, b"x-request-id"), client[0] if client else "-")
            except HangarError as exc:
                extra = [(b"www-authenticate", b"Bearer")] if exc.http_status == 401 else \
                    [(b"retry-after", str(exc.retry_after).encode())] if exc.http_status == 429 else []
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
                import asyncio

                self.loop = asyncio.get_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                limiter = self.routing.limiter
                self.close()
                if limiter is not None:
                    await limiter.close()  # a Redis limiter's connections
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        if self._on_shutdown is not None:
            self._on_shutdown()  # stops the watcher first: no config switch after this
        self.metrics.close()
        if self.routing.table is not None:
            self.routing.table.close()

    async def _endpoint_route(self, path: str, send) -> None:
        content_type = b"application/json"
        if path == "/health":
            body = b'{"status": "ok"}'
        elif path == "/ready":
            body = b'{"status": "deleted"}' if self.routing.deleted else b'{"status": "ready"}'
        elif path == "/version":
            routing = self.routing
            body = json.dumps({"hangar_version": self.hangar_version, "endpoint": self.name,
                               "revision": routing.revision, "deleted": routing.deleted,
                               "served_entities": [{"name": s.entity.name, "model": s.entity.model,
                                                    "version": s.current.version, "weight": s.entity.weight}
                                                   for s in routing.slots]}).encode()
        else:
            body, text_type = self.metrics.render()
            content_type = text_type.encode()
        status = 503 if path == "/ready" and self.routing.deleted else 200
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _limited(self, routing, route: str, request_id: str | None, started: float, wait: float,
                 caller: str | None) -> tuple[dict, bytes]:
        """A rate-limited request's 429, counted and recorded: ``(response start, body)``."""
        from hangar.serving.rate_limit import retry_after_header

        self.metrics.rate_limited.inc()
        start, body = _json_error(429, "RATE_LIMITED", "Too many requests from this caller; retry after the "
                                  "number of seconds in Retry-After",
                                  [(b"retry-after", retry_after_header(wait).encode())])
        self._record(routing.table, route, request_id or self._next_id(), None, started, 429, b"", body,
                     "application/json", cancelled=False, error_code="RATE_LIMITED", caller=caller)
        return start, body

    def _deleted_body(self) -> bytes:
        return json.dumps({"error_code": "ENDPOINT_NOT_FOUND", "message": f"Endpoint {self.name!r} was deleted; this "
                           "server no longer serves it (it serves it again if the endpoint is created anew)"}).encode()

    async def _rate_limited(self, limiter, scope, caller: str | None) -> float | None:
        if limiter is None:
            return None
        if caller is None:
            client = scope.get("client")
            caller = client[0] if client else "unknown"
        else:
            caller = f"principal:{caller}"
        try:
            allowed, wait = await limiter.acquire(caller)
        except Exception as exc:  # noqa: BLE001 - a rate-limit store outage must not take the endpoint down
            now = time.monotonic()
            if now - self._limiter_failed_at > 60:
                log.warning("The rate-limit store failed (%s); letting requests through", type(exc).__name__)
                self._limiter_failed_at = now
            return None
        return None if allowed else wait

    async def _serve(self, scope, receive, send, caller: str | None = None) -> None:
        started = time.perf_counter()
        routing = self.routing  # one read: this request sees one config revision throughout
        sent_id, request_id = _request_id(scope["headers"])
        if routing.deleted:
            body = self._deleted_body()
            await send({"type": "http.response.start", "status": 404, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        wait = await self._rate_limited(routing.limiter, scope, caller)
        if wait is not None:
            start, body = self._limited(routing, scope["path"], request_id, started, wait, caller)
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        slot = routing.slots[routing.split.choose(sent_id)]
        served = slot.current
        request_id = request_id or self._next_id()
        extra = [(b"x-hangar-served-by", served.version.encode()), (b"x-request-id", request_id.encode())]
        if scope["path"] == "/invocations" and scope["method"] == "POST":
            return await self._invocation(scope, receive, send, routing.table, slot, served, extra, started,
                                          request_id, caller)
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
            self._record(routing.table, scope["path"], request_id, (slot, served), started, state["status"],
                         b"".join(captured_in),
                         b"".join(captured_out), state["content_type"], cancelled=state["cancelled"] and not state["done"],
                         caller=caller)

    async def _invocation(self, scope, receive, send, table, slot, served, extra, started, request_id, caller) -> None:
        """``POST /invocations``, the hot path: the entity app answers, this adds the headers,
        sends and records (no wrappers around ``receive`` / ``send`` per message)."""
        status, body, request, sent = 500, b"", b"", False
        try:
            status, headers, body, request = await served.app.respond(scope, receive)
            if status != 499:
                await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
                await send({"type": "http.response.body", "body": body})
                sent = True
        finally:
            cancelled = not sent
            if cancelled:
                status = 499  # the client left before its whole answer was sent
            self._record(table, scope["path"], request_id, (slot, served), started, status, request[:_CAPTURE_BYTES],
                         body[:_CAPTURE_BYTES], "application/json", cancelled=cancelled, caller=caller)

    # -- the lane (``hangar.serving.protocol``): no ASGI task, cycle or future per request ------------

    @property
    def lane_limit(self) -> int | None:
        """The largest body the lane takes now: the smallest limit of the served entities (None once
        the endpoint is deleted: its answers come from the ASGI path)."""
        routing = self.routing
        if routing.deleted or not routing.slots:
            return None
        return min(slot.current.app.lane_limit for slot in routing.slots)

    def lane_route(self, method: str, path: str, headers: list) -> _LaneCall | None:
        """``POST /invocations`` unless checking its caller would wait on something: a token with no
        fresh decision allowing it (the store or the server decides, and refusals are answered, on
        the ASGI path) or a rate limit shared through Redis. A rate limit kept in this worker is
        counted on the lane."""
        routing = self.routing
        limiter = routing.limiter
        if (method != "POST" or path != "/invocations" or routing.deleted
                or (limiter is not None and not hasattr(limiter, "acquire_now"))):
            return None
        if self.authorizer is None:
            return _LaneCall(None)
        caller = self.authorizer.allowed_now(_header_value(headers, b"authorization"))
        return None if caller is None else _LaneCall(caller)

    def lane_answer(self, exchange, alone: bool = False) -> None:
        """``_invocation`` for a lane request: the entity's app answers through its batcher's callback,
        and the answer is sent and recorded there."""
        started = time.perf_counter()
        routing = self.routing
        if routing.deleted:  # (deleted while its body arrived)
            exchange.reply(404, [(b"content-type", b"application/json")], self._deleted_body())
            return
        sent_id, request_id = _request_id(exchange.headers)
        caller = exchange.route.caller
        limiter = routing.limiter
        if limiter is not None and hasattr(limiter, "acquire_now"):  # (a shared one set meanwhile: let it pass)
            client = exchange.protocol.client
            allowed, wait = limiter.acquire_now(f"principal:{caller}" if caller else client[0] if client else "unknown")
            if not allowed:
                start, body = self._limited(routing, "/invocations", request_id, started, wait, caller)
                exchange.reply(429, [h for h in start["headers"] if h[0] != b"content-length"], body)
                return
        slot = routing.slots[routing.split.choose(sent_id)]
        served = slot.current
        request_id = request_id or self._next_id()
        extra = [(b"x-hangar-served-by", served.version.encode()), (b"x-request-id", request_id.encode())]
        request = bytes(exchange.body)

        def finish(status: int, headers: list, body: bytes) -> None:
            exchange.reply(status, [*headers, *extra], body)
            cancelled = exchange.disconnected
            self._record(routing.table, "/invocations", request_id, (slot, served), started,
                         499 if cancelled else status, request[:_CAPTURE_BYTES], body[:_CAPTURE_BYTES],
                         "application/json", cancelled=cancelled, caller=caller)

        served.app.answer_later(exchange.headers, request, finish, alone)

    def _record(self, table, route: str, request_id, chosen, started, status, request: bytes, response: bytes,
                content_type: str, *, cancelled: bool, error_code: str | None = None, caller: str | None = None) -> None:
        if table is None:
            return
        prompt_tokens, completion_tokens = _usage(response, content_type)
        if status >= 400 and error_code is None and content_type.startswith("application/json"):
            try:
                error_code = json.loads(response).get("error_code")
            except (ValueError, AttributeError):
                error_code = None
            if not isinstance(error_code, str):
                error_code = None
        slot, served = chosen if chosen is not None else (None, None)
        table.record(request_id=request_id, endpoint=self.name, caller=caller,
                          served_entity=slot.entity.name if slot else None,
                          model_version=served.version if served else None,
                          latency_ms=(time.perf_counter() - started) * 1000, status_code=status,
                          error_code=error_code, cancelled=cancelled, prompt_tokens=prompt_tokens,
                          completion_tokens=completion_tokens, route=route, request=request,
                          response=response)
