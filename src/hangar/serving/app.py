"""The ASGI app: routes wired to the pure core in ``scoring`` and ``openai_compat``.

``POST /invocations`` takes a lean path into the model queue of ``batching``: on the HTTP
protocol's lane (``protocol``: no ASGI at all) when the request is plain, else as raw ASGI (no
Starlette request, response or routing per request); every other route goes through Starlette. Model
code runs in worker threads so the event loop never blocks; errors become JSON
``{"error_code", "message"}`` here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hangar.errors import (
    HangarError,
    ModelExecutionError,
    RequestTimeoutError,
    ServerOverloadedError,
)
from hangar.serving import openai_compat as oa
from hangar.serving import scoring
from hangar.serving.batching import Batcher, score_batch
from hangar.serving.metrics import MetricsMiddleware, ServingMetrics
from hangar.serving.settings import ServingSettings
from hangar.web import ClientDisconnected as _ClientDisconnected
from hangar.web import from_http_exception, read_limited_body
from hangar.web import receive_limited_body as _receive_body

log = logging.getLogger("hangar.serving")

MAX_BODY_BYTES = ServingSettings.max_body_bytes
MODEL_URI_ENV = "HANGAR_SERVE_MODEL_URI"  # read by create_app(), the factory each worker calls
BATCHED_INPUT_MODES = ("dataframe", "list")  # row-wise models; "payload" (LLM) requests are never merged
UNBATCHED_THREADS = 40  # as anyio's default: models that wait on I/O still overlap
_GENERIC_500 = "The model failed while serving this request; the server log has the details"
_SAFE_5XX = (ServerOverloadedError, RequestTimeoutError)  # their messages hold nothing internal
_JSON_HEADERS = [(b"content-type", b"application/json")]


def model_name_of(uri: str) -> str:
    """A short id for ``/v1/models``: ``models:/a.b.m@champion`` → ``a.b.m@champion``."""
    text = str(uri).rstrip("/")
    if ":/" in text:
        return text.split(":/", 1)[1].lstrip("/") or text
    return os.path.basename(text) or text


class _State:
    def __init__(self, model, model_uri: str, settings: ServingSettings, batched: bool):
        self.model = model
        self.model_uri = model_uri
        self.model_name = model_name_of(model_uri)
        self.settings = settings
        self.max_body_bytes = settings.max_body_bytes
        self.batched = batched
        self.created = int(time.time())


def error_response(exc: HangarError, metrics: ServingMetrics | None = None) -> JSONResponse:
    if metrics is not None:
        metrics.errors.labels(exc.error_code).inc()
    body = exc.to_dict()
    headers = None
    if exc.http_status >= 500 and not isinstance(exc, _SAFE_5XX):
        body["message"] = _GENERIC_500 if isinstance(exc, ModelExecutionError) else "Internal server error"
    if isinstance(exc, ServerOverloadedError):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def log_failure(method: str, path: str, exc: HangarError) -> None:
    if isinstance(exc, _SAFE_5XX):
        log.log(logging.WARNING if isinstance(exc, RequestTimeoutError) else logging.DEBUG,
                "%s %s: %s", method, path, exc.message)
    elif exc.http_status >= 500:
        log.error("%s %s failed: %s", method, path, exc.message, exc_info=exc.__cause__ or exc)


class ServingApp:
    """The ASGI app: ``POST /invocations`` on the lean path, everything else through Starlette."""

    def __init__(self, router: Starlette, state: _State, batcher: Batcher, metrics: ServingMetrics):
        self.router = router
        self.state = router.state
        self.batcher = batcher
        self.metrics = metrics
        self._hangar = state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/invocations" and scope["method"] == "POST":
            return await self.invocations(scope, receive, send)
        return await self.router(scope, receive, send)

    async def invocations(self, scope, receive, send):
        status, headers, body, _ = await self.respond(scope, receive)
        if status != 499:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    async def respond(self, scope, receive) -> tuple[int, list, bytes, bytes]:
        """One ``POST /invocations``, answered but not sent: ``(status, headers, body, request
        body)``; status 499 (nothing to send) when the client left before its body arrived. The
        endpoint app sends it with its own headers added and records it, with no per-message
        wrappers around ``receive`` and ``send``."""
        metrics, batcher, state = self.metrics, self.batcher, self._hangar
        start = time.perf_counter()
        metrics.in_flight_count += 1
        request, status = b"", 500
        try:
            started = batcher.arrive()
            try:
                declared = None
                for name, value in scope["headers"]:
                    if name == b"content-length":
                        declared = value
                request = await _receive_body(receive, declared, state.max_body_bytes)
                answer = batcher.submit(self._parse(scope["headers"], request), started)
            except BaseException:
                batcher.depart()
                raise
            answer = await answer
            status, headers = 200, [*_JSON_HEADERS, (b"content-length", str(len(answer)).encode())]
        except _ClientDisconnected:
            status, headers, answer = 499, [], b""  # as nginx counts a client that left before its answer
        except Exception as exc:
            status, headers, answer = self.failure(exc, with_length=True)
        finally:
            metrics.in_flight_count -= 1
            metrics.observe("/invocations", "POST", status, time.perf_counter() - start)
        return status, headers, answer, request

    def _parse(self, headers: list, request: bytes):
        content_type = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value.decode("latin-1")
                break
        return scoring.parse_request(request, content_type, self._hangar.model.input_mode)

    def failure(self, exc: BaseException, with_length: bool = False) -> tuple[int, list, bytes]:
        """``(status, headers, body)`` of a failed ``/invocations`` request, logged and counted."""
        if isinstance(exc, HangarError):
            log_failure("POST", "/invocations", exc)
        else:
            log.exception("POST /invocations failed", exc_info=exc)
            exc = HangarError("Internal server error")
        response = error_response(exc, self.metrics)
        headers = response.raw_headers if with_length else [h for h in response.raw_headers
                                                             if h[0] != b"content-length"]
        return response.status_code, headers, response.body

    # -- the lane (``hangar.serving.protocol``): no ASGI task, cycle or future per request ------------

    @property
    def lane_limit(self) -> int:
        return self._hangar.max_body_bytes

    def lane_route(self, method: str, path: str, headers: list) -> bool:
        return method == "POST" and path == "/invocations"

    def lane_answer(self, exchange, alone: bool = False) -> None:
        self.answer_later(exchange.headers, bytes(exchange.body), exchange.reply, alone)

    def answer_later(self, headers: list, request: bytes, finish, alone: bool = False) -> None:
        """One ``POST /invocations`` whose body is complete (within the limit): queued for the model;
        ``finish(status, headers, body)`` (headers without content-length) is called once, in the
        event loop's thread, when the answer is known (on the batcher's callback, not in a task).
        ``alone``: no other request can arrive in this turn of the loop (the server has one
        connection), so a quick model may answer at once (``Batcher.run_now``), before this returns."""
        self.metrics.in_flight_count += 1
        waiter = _LaneWaiter(self, finish)
        batcher = self.batcher
        started = batcher.arrive()
        try:
            inv = self._parse(headers, request)
            answer = batcher.run_now(inv) if alone else None
            if answer is None:
                batcher.submit(inv, started, waiter)
                return
        except Exception as exc:  # a bad body, a full queue: answered as the ASGI path answers them
            batcher.depart()
            waiter.set_exception(exc)
            return
        try:
            if isinstance(answer, BaseException):
                waiter.set_exception(answer)
            else:
                waiter.set_result(answer)
        finally:
            batcher.ran_now(inv)


class _LaneWaiter:
    """What the batcher answers for a lane request, in place of a future: the answer goes straight
    to ``finish``, with the metrics a request counts."""

    __slots__ = ("app", "finish", "start")

    def __init__(self, app: ServingApp, finish):
        self.app, self.finish, self.start = app, finish, time.perf_counter()

    def done(self) -> bool:
        return self.finish is None

    def set_result(self, answer: bytes) -> None:
        self._end(200, _JSON_HEADERS, answer)

    def set_exception(self, exc: BaseException) -> None:
        self._end(*self.app.failure(exc))

    def _end(self, status: int, headers: list, body: bytes) -> None:
        """Send first, then count: the bookkeeping overlaps the client reading the answer, and the
        latency observed runs to the end of the response, as on the ASGI path."""
        finish, self.finish = self.finish, None
        try:
            finish(status, headers, body)
        except Exception:  # the batcher goes on answering the rest of the batch
            log.exception("Answering POST /invocations failed")
        metrics = self.app.metrics
        metrics.in_flight_count -= 1
        metrics.observe("/invocations", "POST", status, time.perf_counter() - self.start)


read_body = read_limited_body


def _sse(events) -> Any:
    async def body():
        async for event in events:
            yield f"data: {json.dumps(event)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _iterate_in_thread(iterator, first: list):
    """Chunks of a blocking iterator, each ``next`` in a worker thread; ``first`` is pre-fetched."""
    done = object()
    try:
        for item in first:
            yield item
        while True:
            item = await anyio.to_thread.run_sync(next, iterator, done)
            if item is done:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            await anyio.to_thread.run_sync(close)


async def _stream_error_events(agen, metrics: ServingMetrics):
    """Once the 200 is sent, a failure can only be told in the stream: one error event, then stop."""
    try:
        async for item in agen:
            yield item
    except HangarError as exc:
        log.error("Streaming failed: %s", exc, exc_info=exc.http_status >= 500)
        yield {"error": json.loads(error_response(exc, metrics).body)}
    except Exception:
        log.exception("Streaming failed")
        metrics.errors.labels(ModelExecutionError.error_code).inc()
        yield {"error": {"error_code": ModelExecutionError.error_code, "message": _GENERIC_500}}


def _run_model(fn, *args):
    try:
        return fn(*args)
    except HangarError:
        raise
    except Exception as exc:  # a flavor's own failure outside PyFuncModel.predict's guard
        raise ModelExecutionError(f"{type(exc).__name__}: {exc}") from exc


def make_batcher(model, settings: ServingSettings, on_batch=None) -> Batcher:
    """The model queue: adaptive batches for row-wise models, one request per call otherwise."""
    from functools import partial

    common = dict(max_queue=settings.max_queue, timeout_s=settings.request_timeout, on_batch=on_batch,
                  inline_max_s=settings.inline_max_ms / 1000)
    if settings.batching and model.input_mode in BATCHED_INPUT_MODES:
        return Batcher(partial(score_batch, model), max_batch_size=settings.max_batch_size,
                       max_wait_s=settings.max_wait_ms / 1000, concurrency=settings.model_threads or 1, **common)
    return Batcher(partial(score_batch, model, aligned=False), max_batch_size=1, max_wait_s=0,
                   concurrency=settings.model_threads or UNBATCHED_THREADS, **common)


def build_app(model, *, model_uri: str, max_body_bytes: int | None = None,
              settings: ServingSettings | None = None, metrics_factory=None) -> ServingApp:
    """An app serving one loaded ``PyFuncModel``. ``metrics_factory(routes, queue_depth)`` gives
    its ServingMetrics (an endpoint shares one per served entity); default: its own."""
    from hangar.__about__ import __version__

    settings = settings or ServingSettings()
    if max_body_bytes is not None:
        settings = dataclasses.replace(settings, max_body_bytes=max_body_bytes)
    batched = settings.batching and model.input_mode in BATCHED_INPUT_MODES
    state = _State(model, model_uri, settings, batched)
    routes_list: list[tuple[str, Any, str]] = []

    def route(path: str, method: str = "GET"):
        def deco(fn):
            routes_list.append((path, fn, method))
            return fn
        return deco

    class _Invocations:  # a raw ASGI endpoint: Starlette reaches it only under a root path
        async def __call__(self, scope, receive, send):
            await app.invocations(scope, receive, send)

    routes_list.append(("/invocations", _Invocations(), "POST"))

    llm_slots = _Slots(settings.max_queue)

    async def in_time(deadline: float, fn, *args):
        """A model call in a worker thread, answered 504 once the request's time is up (the call
        itself cannot be interrupted; its result is dropped)."""
        try:
            with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                return await anyio.to_thread.run_sync(_run_model, fn, *args, abandon_on_cancel=True)
        except TimeoutError:
            raise RequestTimeoutError(
                f"The request was not answered within the server's timeout of {settings.request_timeout:g} s") from None

    async def openai_route(request: Request):
        task = oa.check_route(request.url.path, state.model.task)
        llm_slots.take()  # 503 when max_queue requests are already running or waiting
        deadline = anyio.current_time() + settings.request_timeout
        streaming = False
        try:
            body = await read_body(request, state.max_body_bytes)
            scoring.media_type(request.headers.get("content-type") or "application/json")
            req = oa.parse_request(scoring.parse_json(body), task, state.model.signature)
            m = state.model
            if req.stream and task != oa.EMBEDDINGS:
                if m.streamable:
                    chunks = await in_time(deadline, m.predict_stream, req.payload, req.params)
                    abandoned = threading.Event()
                    try:
                        first = await in_time(deadline, _first, chunks, abandoned)
                    except RequestTimeoutError:
                        abandoned.set()  # the worker thread closes the stream when its first chunk comes
                        raise
                else:
                    result = await in_time(deadline, m.predict, req.payload, req.params)
                    chunks, first = iter(()), oa.single_chunk(result)
                events = _events(task, _iterate_in_thread(chunks, first), state.model_name, req.include_usage)
                streaming = True  # the slot is released when the stream ends (or its client leaves)
                return _sse(llm_slots.releasing(_stream_error_events(events, metrics)))
            result = await in_time(deadline, m.predict, req.payload, req.params)
            return JSONResponse(oa.format_response(task, result, state.model_name, req.encoding_format))
        finally:
            if not streaming:
                llm_slots.release()

    for path in oa.ROUTE_TASKS:
        routes_list.append((path, openai_route, "POST"))

    @route("/v1/models")
    async def list_models(request: Request):
        return JSONResponse(oa.models_list(state.model_name, state.created))

    @route("/health")
    async def health(request: Request):
        return JSONResponse({"status": "ok"})

    @route("/ready")
    async def ready(request: Request):
        if state.model is None:
            return JSONResponse({"status": "loading"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @route("/version")
    async def version(request: Request):
        return JSONResponse({"hangar_version": __version__, "model_uri": state.model_uri,
                             "model_uuid": state.model.metadata.model_uuid, "task": state.model.task})

    @route("/metrics")
    async def metrics_route(request: Request):
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    openapi_doc: dict = {}

    @route("/openapi.json")
    async def openapi(request: Request):
        if not openapi_doc:
            from hangar.serving.openapi import build_openapi

            openapi_doc.update(build_openapi(state.model, title=f"Hangar: {state.model_name}", version=__version__))
        return JSONResponse(openapi_doc)

    batcher_box: list[Batcher] = []
    metrics = (metrics_factory or ServingMetrics)({path for path, _, _ in routes_list},
                                                  queue_depth=lambda: batcher_box[0].depth)
    batcher = make_batcher(model, settings, on_batch=metrics.observe_batch)
    batcher_box.append(batcher)

    async def on_hangar_error(request: Request, exc: HangarError):
        log_failure(request.method, request.url.path, exc)
        return error_response(exc, metrics)

    async def on_http_error(request: Request, exc: HTTPException):
        return error_response(from_http_exception(request, exc), metrics)

    async def on_unexpected(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(HangarError("Internal server error"), metrics)

    router = Starlette(
        routes=[Route(path, fn, methods=[method]) for path, fn, method in routes_list],
        exception_handlers={HangarError: on_hangar_error, HTTPException: on_http_error, Exception: on_unexpected},
    )
    router.state.hangar = state
    router.add_middleware(MetricsMiddleware, metrics=metrics)
    app = ServingApp(router, state, batcher, metrics)
    return app


class _Slots:
    """A bound on chat / completion / embedding requests running or waiting for a model thread:
    one more is refused with 503 at once instead of queueing without bound."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def take(self) -> None:
        if self.used >= self.limit:
            raise ServerOverloadedError(f"The server is at capacity ({self.limit} requests running or waiting); "
                                        "retry later")
        self.used += 1

    def release(self) -> None:
        self.used -= 1

    async def releasing(self, events):
        try:
            async for event in events:
                yield event
        finally:
            self.release()


def _first(iterator, abandoned=None) -> list:
    """The first chunk (so a model that fails at once answers with a status, not a broken stream).
    If the request gave up meanwhile (``abandoned``), the stream is closed here, in the thread
    that runs it, which stops the generation."""
    for item in iterator:
        if abandoned is not None and abandoned.is_set():
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            return []
        return [item]
    return []


async def _events(task, chunks, model_name, include_usage):
    fmt = oa.StreamFormatter(task, model_name, include_usage)
    for event in fmt.start():
        yield event
    async for chunk in chunks:
        for event in fmt.feed(chunk):
            yield event
    for event in fmt.finish():
        yield event


def create_app() -> ServingApp:
    """Factory for ``uvicorn --factory`` / ``--workers N``: each worker loads the model once and
    reads its settings from the environment (``ServingSettings.to_env``)."""
    import hangar.pyfunc

    uri = os.environ.get(MODEL_URI_ENV)
    if not uri:
        raise RuntimeError(f"Set {MODEL_URI_ENV} to the model URI to serve")
    return build_app(hangar.pyfunc.load_model(uri), model_uri=uri, settings=ServingSettings.from_env())
