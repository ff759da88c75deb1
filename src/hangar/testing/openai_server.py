"""A deterministic, OpenAI-compatible HTTP server for tests.

It serves a small subset of the OpenAI REST API on loopback so that Hangar's
``openai`` flavor (and anything else that talks to an OpenAI-compatible
``base_url``) can be exercised over real HTTP with the official client::

    from hangar.testing.openai_server import run_openai_server

    with run_openai_server(api_key="k", fail_first=1) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key=srv.api_key)
        client.chat.completions.create(model="m", messages=[...])
        assert [r.status for r in srv.requests] == [429, 200]

Endpoints (all under ``/v1``):

* ``POST /chat/completions`` - answers ``"echo: <last user message>"``;
  ``stream: true`` gives server-sent ``chat.completion.chunk`` events ending
  with ``data: [DONE]``; ``stream_options.include_usage`` adds a final usage
  chunk.
* ``POST /completions`` - answers ``"echo: <prompt>"`` (one choice per prompt),
  also streamable.
* ``POST /embeddings`` - unit vectors derived from a SHA-256 of the input text
  (see :func:`embedding_for`); ``encoding_format: "base64"`` is honoured.
* ``GET /models`` and ``GET /models/{id}``.

Tokens are whitespace-separated words (:func:`count_tokens`); ``max_tokens``
(or ``max_completion_tokens``) truncates the answer to that many words and
sets ``finish_reason`` to ``"length"``.

Every request that reaches the server is appended to ``requests`` as a
:class:`RecordedRequest`, including rejected and fault-injected ones, with the
``Authorization`` value redacted.  Processing order per request: record ->
injected fault -> auth check -> endpoint.

starlette and uvicorn are imported lazily, so importing this module is cheap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DEFAULT_MODELS",
    "REDACTED",
    "OpenAIServer",
    "RecordedRequest",
    "RunningOpenAIServer",
    "count_tokens",
    "embedding_for",
    "run_openai_server",
]

DEFAULT_MODELS: tuple[str, ...] = ("hangar-test-chat", "hangar-test-embed")
REDACTED = "<redacted>"
_OWNER = "hangar-testing"
_PIECE_RE = re.compile(r"\s*\S+|\s+$")


# --------------------------------------------------------------------------- helpers


def count_tokens(text: str) -> int:
    """Token count used by the fake server: number of whitespace-separated words."""
    return len(text.split())


def embedding_for(text: str, dim: int = 16) -> list[float]:
    """Deterministic unit-length vector for *text* (values exactly representable as float32).

    Derived from SHA-256 of ``"<counter>:<text>"`` blocks, so equal texts give
    equal vectors and different texts (almost surely) different ones.
    """
    if dim < 1:
        raise ValueError("dim must be >= 1")
    raw: list[float] = []
    counter = 0
    while len(raw) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            (n,) = struct.unpack("<I", digest[i : i + 4])
            raw.append(n / 0xFFFFFFFF * 2.0 - 1.0)
        counter += 1
    raw = raw[:dim]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    # Round-trip through float32 so float and base64 encodings decode to identical lists.
    return list(struct.unpack(f"<{dim}f", struct.pack(f"<{dim}f", *(v / norm for v in raw))))


def _content_text(content: Any) -> str:
    """Text of a chat message ``content`` (a string, or a list of parts with ``type: text``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return " ".join(parts)
    return str(content)


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):  # token ids
        return " ".join(str(t) for t in prompt)
    return str(prompt)


def _truncate(text: str, max_tokens: Any) -> tuple[str, str]:
    """Apply the word-count limit; return (text, finish_reason)."""
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0:
        words = text.split()
        if len(words) > max_tokens:
            return " ".join(words[:max_tokens]), "length"
    return text, "stop"


def _pieces(text: str) -> list[str]:
    """Split *text* into stream deltas (one word each, with its leading whitespace); they join back to *text*."""
    return _PIECE_RE.findall(text)


def _error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class _APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = _error_body(message, type_, code, param)


# --------------------------------------------------------------------------- recorded requests


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake server.

    ``headers`` has lower-case names; the ``authorization`` value is replaced by
    :data:`REDACTED` (``authorized`` tells whether it carried the right key).
    ``body`` is the parsed JSON body (``None`` if empty or not JSON).
    ``status`` is the HTTP status the server answered with.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, str] = field(default_factory=dict)
    authorized: bool = False
    status: int | None = None


# --------------------------------------------------------------------------- the app


class OpenAIServer:
    """State and Starlette app of the fake OpenAI server (not bound to a socket; see :func:`run_openai_server`).

    Args:
        api_key: expected bearer token; ``None`` disables auth.
        models: model ids listed by ``GET /v1/models`` (any model name is accepted by other endpoints).
        embedding_dim: default embedding dimension (a request's ``dimensions`` overrides it).
        fail_first: make the first *fail_first* requests fail with *fail_status*.
        fail_status: status for ``fail_first`` (429 or 500 typically; any 4xx/5xx works).
        fail_statuses: explicit sequence of statuses for the first requests, e.g. ``(429, 500)``;
            takes precedence over ``fail_first``/``fail_status``.
        retry_after: ``Retry-After`` header value sent with injected 429s (``None`` to omit).
        retry_after_ms: ``retry-after-ms`` header value sent with injected 429s (``None`` to omit).
            The official client prefers it and ignores ``Retry-After: 0`` (it then backs off ~0.5 s),
            so the default of 1 ms keeps client retry tests fast.
        response_delay: seconds to sleep before answering each (non-faulted) request, for timeout tests.
        created: the ``created`` timestamp put in every object (fixed for determinism).
    """

    def __init__(
        self,
        api_key: str | None = "test-key",
        *,
        models: Sequence[str] = DEFAULT_MODELS,
        embedding_dim: int = 16,
        fail_first: int = 0,
        fail_status: int = 429,
        fail_statuses: Sequence[int] | None = None,
        retry_after: str | None = "0",
        retry_after_ms: str | None = "1",
        response_delay: float = 0.0,
        created: int = 1_700_000_000,
    ) -> None:
        if embedding_dim < 1:
            raise ValueError("embedding_dim must be >= 1")
        self.api_key = api_key
        self.models = list(models)
        self.embedding_dim = embedding_dim
        self.retry_after = retry_after
        self.retry_after_ms = retry_after_ms
        self.response_delay = response_delay
        self.created = created
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._faults: list[int] = list(fail_statuses) if fail_statuses is not None else [fail_status] * fail_first
        self._counter = 0
        self._app: Any = None
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests the server was answering at once

    # -- test controls -------------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 429) -> None:
        """Queue *count* more injected failures with *status* (appended to any still pending)."""
        with self._lock:
            self._faults.extend([status] * count)

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    # -- app -----------------------------------------------------------------------

    @property
    def app(self) -> Any:
        """The Starlette ASGI app (built on first access)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.exceptions import HTTPException
        from starlette.requests import Request
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

        server = self

        def endpoint(handler: Any) -> Any:
            async def wrapped(request: Request) -> Any:
                raw = await request.body()
                body: Any = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                headers = {k.lower(): v for k, v in request.headers.items()}
                authorized = server.api_key is None or headers.get("authorization") == f"Bearer {server.api_key}"
                if "authorization" in headers:
                    headers["authorization"] = REDACTED
                rec = RecordedRequest(
                    method=request.method,
                    path=request.url.path,
                    headers=headers,
                    body=body,
                    query=dict(request.query_params),
                    authorized=authorized,
                )
                server.requests.append(rec)
                with server._lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    response = await respond(request, raw, body, authorized, handler)
                finally:
                    with server._lock:
                        server.in_flight -= 1
                rec.status = response.status_code
                return response

            return wrapped

        async def respond(request: Request, raw: bytes, body: Any, authorized: bool, handler: Any) -> Any:
            with server._lock:
                fault = server._faults.pop(0) if server._faults else None
            if fault is not None:
                return fault_response(fault)
            if not authorized:
                return error_response(_APIError(
                    401,
                    "Incorrect API key provided." if "authorization" in request.headers
                    else "You didn't provide an API key. Provide it as 'Authorization: Bearer <key>'.",
                    "invalid_request_error",
                    "invalid_api_key",
                ))
            if request.method == "POST":
                if raw and body is None:
                    return error_response(_APIError(400, "The request body is not valid JSON.", code="invalid_json"))
                if not isinstance(body, dict):
                    return error_response(_APIError(400, "The request body must be a JSON object."))
            if server.response_delay > 0:
                await asyncio.sleep(server.response_delay)
            try:
                result = handler(request, body)
            except _APIError as e:
                return error_response(e)
            if isinstance(result, list):  # a list of SSE events
                return StreamingResponse(
                    sse(result),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache"},
                )
            return JSONResponse(result)

        async def sse(events: list[dict[str, Any]]) -> Any:
            for event in events:
                yield f"data: {json.dumps(event)}\n\n"
            yield "data: [DONE]\n\n"

        def error_response(e: _APIError) -> Any:
            return JSONResponse(e.body, status_code=e.status)

        def fault_response(status: int) -> Any:
            headers: dict[str, str] = {}
            if status == 429:
                body = _error_body("Rate limit reached (injected by hangar test server).", "requests",
                                   "rate_limit_exceeded")
                if server.retry_after is not None:
                    headers["Retry-After"] = str(server.retry_after)
                if server.retry_after_ms is not None:
                    headers["retry-after-ms"] = str(server.retry_after_ms)
            elif status >= 500:
                body = _error_body("The server had an error (injected by hangar test server).", "server_error", None)
            else:
                body = _error_body(f"Injected error {status}.", "invalid_request_error", None)
            return JSONResponse(body, status_code=status, headers=headers)

        async def http_error(request: Request, exc: Exception) -> Any:
            status = getattr(exc, "status_code", 500)
            detail = getattr(exc, "detail", "error")
            return JSONResponse(
                _error_body(f"{detail}: {request.method} {request.url.path}", "invalid_request_error",
                            "unknown_url" if status == 404 else None),
                status_code=status,
            )

        routes = [
            Route("/v1/chat/completions", endpoint(server._chat), methods=["POST"]),
            Route("/v1/completions", endpoint(server._completions), methods=["POST"]),
            Route("/v1/embeddings", endpoint(server._embeddings), methods=["POST"]),
            Route("/v1/models", endpoint(server._list_models), methods=["GET"]),
            Route("/v1/models/{model:path}", endpoint(server._get_model), methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    # -- endpoint handlers (sync, pure; return a JSON dict or a list of SSE events) --

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}-{self._counter:08d}"

    @staticmethod
    def _require(body: dict[str, Any], name: str) -> Any:
        if name not in body or body[name] is None:
            raise _APIError(400, f"Missing required parameter: '{name}'.", code="missing_required_parameter",
                            param=name)
        return body[name]

    @staticmethod
    def _n(body: dict[str, Any]) -> int:
        n = body.get("n", 1)
        if n is None:
            return 1
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise _APIError(400, "'n' must be a positive integer.", code="invalid_value", param="n")
        return n

    @staticmethod
    def _include_usage(body: dict[str, Any]) -> bool:
        opts = body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    def _chat(self, request: Any, body: dict[str, Any]) -> Any:
        model = self._require(body, "model")
        messages = self._require(body, "messages")
        if not isinstance(messages, list) or not messages:
            raise _APIError(400, "'messages' must be a non-empty array.", code="invalid_value", param="messages")
        n = self._n(body)
        last_user = ""
        prompt_tokens = 0
        for m in messages:
            if not isinstance(m, dict):
                raise _APIError(400, "Each message must be an object.", code="invalid_value", param="messages")
            text = _content_text(m.get("content"))
            prompt_tokens += count_tokens(text)
            if m.get("role") == "user":
                last_user = text
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        answer, finish = _truncate(f"echo: {last_user}", max_tokens)
        completion_tokens = count_tokens(answer) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        cid = self._next_id("chatcmpl")
        base = {"id": cid, "created": self.created, "model": model, "system_fingerprint": "fp_hangar_test"}

        if not body.get("stream"):
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": answer, "refusal": None},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                    for i in range(n)
                ],
                "usage": usage,
            }

        include_usage = self._include_usage(body)
        extra = {"usage": None} if include_usage else {}

        def chunk(choices: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
            return {**base, "object": "chat.completion.chunk", "choices": choices, **extra, **more}

        events = []
        for i in range(n):
            events.append(chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                                  "logprobs": None, "finish_reason": None}]))
            for piece in _pieces(answer):
                events.append(chunk([{"index": i, "delta": {"content": piece}, "logprobs": None,
                                      "finish_reason": None}]))
            events.append(chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": finish}]))
        if include_usage:
            events.append(chunk([], usage=usage))
        return events

    def _completions(self, request: Any, body: dict[str, Any]) -> Any:
        model = self._require(body, "model")
        prompt = self._require(body, "prompt")
        n = self._n(body)
        if isinstance(prompt, list) and prompt and all(isinstance(p, (str, list)) for p in prompt):
            prompts = [_prompt_text(p) for p in prompt]
        else:
            prompts = [_prompt_text(prompt)]
        max_tokens = body.get("max_tokens", 16)
        answers = [_truncate(f"echo: {p}", max_tokens) for p in prompts]
        prompt_tokens = sum(count_tokens(p) for p in prompts)
        completion_tokens = sum(count_tokens(a) for a, _ in answers) * n
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        base = {"id": self._next_id("cmpl"), "object": "text_completion", "created": self.created, "model": model,
                "system_fingerprint": "fp_hangar_test"}
        # choice index = prompt_index * n + k, as in OpenAI's API
        indexed = [(pi * n + k, a, f) for pi, (a, f) in enumerate(answers) for k in range(n)]

        if not body.get("stream"):
            return {
                **base,
                "choices": [{"index": idx, "text": a, "logprobs": None, "finish_reason": f} for idx, a, f in indexed],
                "usage": usage,
            }

        include_usage = self._include_usage(body)
        extra = {"usage": None} if include_usage else {}
        events = []
        for idx, a, f in indexed:
            for piece in _pieces(a):
                events.append({**base, **extra, "choices": [{"index": idx, "text": piece, "logprobs": None,
                                                             "finish_reason": None}]})
            events.append({**base, **extra, "choices": [{"index": idx, "text": "", "logprobs": None,
                                                         "finish_reason": f}]})
        if include_usage:
            events.append({**base, "choices": [], "usage": usage})
        return events

    def _embeddings(self, request: Any, body: dict[str, Any]) -> Any:
        model = self._require(body, "model")
        inp = self._require(body, "input")
        if isinstance(inp, str):
            texts = [inp]
        elif isinstance(inp, list) and inp and all(isinstance(t, int) for t in inp):
            texts = [_prompt_text(inp)]  # a single token array
        elif isinstance(inp, list) and inp and all(isinstance(t, (str, list)) for t in inp):
            texts = [_prompt_text(t) for t in inp]
        else:
            raise _APIError(400, "'input' must be a non-empty string or array.", code="invalid_value", param="input")
        dim = body.get("dimensions") or self.embedding_dim
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise _APIError(400, "'dimensions' must be a positive integer.", code="invalid_value",
                            param="dimensions")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise _APIError(400, "'encoding_format' must be 'float' or 'base64'.", code="invalid_value",
                            param="encoding_format")
        data = []
        for i, text in enumerate(texts):
            vec = embedding_for(text, dim)
            emb: Any = vec
            if fmt == "base64":
                emb = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(count_tokens(t) for t in texts)
        return {"object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def _model_obj(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": self.created, "owned_by": _OWNER}

    def _list_models(self, request: Any, body: Any) -> Any:
        return {"object": "list", "data": [self._model_obj(m) for m in self.models]}

    def _get_model(self, request: Any, body: Any) -> Any:
        model_id = request.path_params["model"]
        if model_id not in self.models:
            raise _APIError(404, f"The model '{model_id}' does not exist.", code="model_not_found", param="model")
        return self._model_obj(model_id)


# --------------------------------------------------------------------------- running it


@dataclass
class RunningOpenAIServer:
    """Handle yielded by :func:`run_openai_server`."""

    server: OpenAIServer
    host: str
    port: int

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI ``base_url``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    @property
    def api_key(self) -> str | None:
        return self.server.api_key

    @property
    def requests(self) -> list[RecordedRequest]:
        """The live list of recorded requests (tests may ``.clear()`` it)."""
        return self.server.requests

    def fail_next(self, count: int = 1, status: int = 429) -> None:
        self.server.fail_next(count, status)


@contextlib.contextmanager
def run_openai_server(
    api_key: str | None = "test-key",
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
    shutdown_timeout: float = 5.0,
    **options: Any,
) -> Iterator[RunningOpenAIServer]:
    """Serve an :class:`OpenAIServer` with uvicorn in a background thread.

    Binds *host*:*port* (port 0 picks a free port), waits until uvicorn is
    accepting connections, yields a :class:`RunningOpenAIServer`, and on exit
    stops the server, waiting at most about *shutdown_timeout* seconds.
    *options* are passed to :class:`OpenAIServer`.
    """
    import uvicorn

    app_state = OpenAIServer(api_key, **options)
    app = app_state.app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        host=host,
        port=bound_port,
        loop="asyncio",
        lifespan="off",
        log_level="warning",
        access_log=False,
        log_config=None,
        timeout_keep_alive=1,
        timeout_graceful_shutdown=max(1, int(shutdown_timeout / 2)),
    )
    server = uvicorn.Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as e:  # surfaced to the caller below
            errors.append(e)

    thread = threading.Thread(target=target, name=f"hangar-openai-server-{bound_port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if errors or not thread.is_alive():
                raise RuntimeError(f"fake OpenAI server failed to start: {errors[0] if errors else 'thread exited'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"fake OpenAI server did not start within {startup_timeout} s")
            time.sleep(0.005)
        yield RunningOpenAIServer(server=app_state, host=host, port=bound_port)
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(1.0)
        sock.close()
