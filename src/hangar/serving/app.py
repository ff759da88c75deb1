"""The ASGI app: routes wired to the pure core in ``scoring`` and ``openai_compat``.

Model code runs in worker threads (``anyio.to_thread``) so the event loop never blocks; errors
become JSON ``{"error_code", "message"}`` here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from hangar.errors import EndpointNotFoundError, HangarError, ModelExecutionError, PayloadTooLargeError
from hangar.serving import openai_compat as oa
from hangar.serving import scoring
from hangar.serving.metrics import MetricsMiddleware, ServingMetrics

log = logging.getLogger("hangar.serving")

MAX_BODY_BYTES = 16 * 1024 * 1024
MODEL_URI_ENV = "HANGAR_SERVE_MODEL_URI"  # read by create_app(), the factory each worker calls
_GENERIC_500 = "The model failed while serving this request; the server log has the details"


def model_name_of(uri: str) -> str:
    """A short id for ``/v1/models``: ``models:/a.b.m@champion`` → ``a.b.m@champion``."""
    text = str(uri).rstrip("/")
    if ":/" in text:
        return text.split(":/", 1)[1].lstrip("/") or text
    return os.path.basename(text) or text


class _State:
    def __init__(self, model, model_uri: str, max_body_bytes: int):
        self.model = model
        self.model_uri = model_uri
        self.model_name = model_name_of(model_uri)
        self.max_body_bytes = max_body_bytes
        self.created = int(time.time())


def error_response(exc: HangarError, metrics: ServingMetrics | None = None) -> JSONResponse:
    if metrics is not None:
        metrics.errors.labels(exc.error_code).inc()
    body = exc.to_dict()
    if exc.http_status >= 500:
        body["message"] = _GENERIC_500 if isinstance(exc, ModelExecutionError) else "Internal server error"
    return JSONResponse(body, status_code=exc.http_status)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known (Content-Length) or seen to be too big."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


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


def build_app(model, *, model_uri: str, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """An app serving one loaded ``PyFuncModel``."""
    from hangar.__about__ import __version__

    state = _State(model, model_uri, max_body_bytes)
    routes_list: list[tuple[str, Any, str]] = []

    def route(path: str, method: str = "GET"):
        def deco(fn):
            routes_list.append((path, fn, method))
            return fn
        return deco

    @route("/invocations", "POST")
    async def invocations(request: Request):
        body = await read_body(request, state.max_body_bytes)
        content_type = request.headers.get("content-type")
        result = await anyio.to_thread.run_sync(_run_model, scoring.invoke, state.model, body, content_type)
        return JSONResponse(result)

    async def openai_route(request: Request):
        task = oa.check_route(request.url.path, state.model.task)
        body = await read_body(request, state.max_body_bytes)
        scoring.media_type(request.headers.get("content-type") or "application/json")
        req = oa.parse_request(scoring.parse_json(body), task, state.model.signature)
        m = state.model
        if req.stream and task != oa.EMBEDDINGS:
            if m.streamable:
                chunks = await anyio.to_thread.run_sync(_run_model, m.predict_stream, req.payload, req.params)
                first = await anyio.to_thread.run_sync(_run_model, _first, chunks)
            else:
                result = await anyio.to_thread.run_sync(_run_model, m.predict, req.payload, req.params)
                chunks, first = iter(()), oa.single_chunk(result)
            events = _events(task, _iterate_in_thread(chunks, first), state.model_name, req.include_usage)
            return _sse(_stream_error_events(events, metrics))
        result = await anyio.to_thread.run_sync(_run_model, m.predict, req.payload, req.params)
        return JSONResponse(oa.format_response(task, result, state.model_name, req.encoding_format))

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

    metrics = ServingMetrics({path for path, _, _ in routes_list})

    async def on_hangar_error(request: Request, exc: HangarError):
        if exc.http_status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.message,
                      exc_info=exc.__cause__ or exc)
        return error_response(exc, metrics)

    async def on_http_error(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            err: HangarError = EndpointNotFoundError(f"No route {request.method} {request.url.path}")
        else:
            err = HangarError(str(exc.detail))
            err.error_code = "METHOD_NOT_ALLOWED" if exc.status_code == 405 else "BAD_REQUEST"
            err.http_status = exc.status_code
        return error_response(err, metrics)

    async def on_unexpected(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(HangarError("Internal server error"), metrics)

    app = Starlette(
        routes=[Route(path, fn, methods=[method]) for path, fn, method in routes_list],
        exception_handlers={HangarError: on_hangar_error, HTTPException: on_http_error, Exception: on_unexpected},
    )
    app.state.hangar = state
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _first(iterator) -> list:
    """The first chunk (so a model that fails at once answers with a status, not a broken stream)."""
    for item in iterator:
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


def create_app() -> Starlette:
    """Factory for ``uvicorn --factory`` / ``--workers N``: each worker loads the model once."""
    import hangar.pyfunc

    uri = os.environ.get(MODEL_URI_ENV)
    if not uri:
        raise RuntimeError(f"Set {MODEL_URI_ENV} to the model URI to serve")
    return build_app(hangar.pyfunc.load_model(uri), model_uri=uri)
