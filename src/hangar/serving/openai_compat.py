"""OpenAI-compatible requests and responses over a package's ``task`` (pure functions).

A request becomes ``(payload, params)`` for ``PyFuncModel.predict``; a prediction or a stream of
chunks becomes OpenAI's response objects. Fields a client sends that the model does not declare
(``user``, ``n``, ``seed``, ...) are ignored, as OpenAI clients send extras.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hangar.errors import EndpointNotFoundError, MalformedRequestError
from hangar.models import llm_payloads as lp
from hangar.serving.scoring import to_jsonable

CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
ROUTE_TASKS = {"/v1/chat/completions": CHAT, "/v1/completions": COMPLETIONS, "/v1/embeddings": EMBEDDINGS}
_MAIN_FIELD = {CHAT: "messages", COMPLETIONS: "prompt", EMBEDDINGS: "input"}
_ALIASES = {"max_completion_tokens": "max_tokens"}  # newer OpenAI name -> the param models declare


@dataclass(frozen=True)
class OpenAIRequest:
    payload: dict
    params: dict | None
    stream: bool = False
    include_usage: bool = False
    encoding_format: str = "float"


def check_route(route: str, task: str | None) -> str:
    """The task a route needs; 404 when the served model's task does not answer it."""
    needed = ROUTE_TASKS[route]
    if task != needed:
        answers = next((r for r, t in ROUTE_TASKS.items() if t == task), None)
        hint = f"; it answers {answers}" if answers else "; use /invocations"
        raise EndpointNotFoundError(f"{route} is not served: the model's task is {task or 'not set'}{hint}")
    return needed


def parse_request(body: Any, task: str, signature) -> OpenAIRequest:
    if not isinstance(body, dict):
        raise MalformedRequestError(f"The request body must be a JSON object, got {type(body).__name__}")
    main = _MAIN_FIELD[task]
    if body.get(main) is None:
        raise MalformedRequestError(f"Missing required field '{main}'")
    inputs = signature.inputs if signature is not None else None
    fields = {main, *(c.name for c in inputs.columns if c.name is not None)} if inputs is not None else {main}
    payload = {k: v for k, v in body.items() if k in fields}
    declared = {p.name: p for p in signature.params.params} if signature is not None and signature.params else {}
    params = {}
    for key, value in body.items():
        name = _ALIASES.get(key, key)
        if value is None or name not in declared or name in fields:
            continue
        if key != name and name in body and body[name] is not None:
            continue  # both spellings sent: the declared one wins
        if declared[name].shape is not None and not isinstance(value, list):
            value = [value]  # OpenAI allows "stop": "x" as well as ["x"]
        params[name] = value
    options = body.get("stream_options")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise MalformedRequestError("'encoding_format' must be 'float' or 'base64'")
    return OpenAIRequest(payload=payload, params=params or None, stream=bool(body.get("stream")),
                         include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
                         encoding_format=fmt)


def format_response(task: str, result: Any, model_name: str, encoding_format: str = "float") -> dict:
    """An OpenAI response object from what ``predict`` returned."""
    result = to_jsonable(result)
    if task == EMBEDDINGS:
        if not (isinstance(result, dict) and "data" in result):
            vectors = result if isinstance(result, list) and result and isinstance(result[0], list) else [result]
            result = lp.embeddings_response(vectors)
        if encoding_format == "base64":
            for item in result["data"]:
                vec = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
        result.setdefault("usage", lp.usage(0, 0))
        result["usage"].setdefault("prompt_tokens", 0)
        result["usage"].setdefault("total_tokens", result["usage"]["prompt_tokens"])
    elif not (isinstance(result, dict) and isinstance(result.get("choices"), list)):
        make = lp.chat_response if task == CHAT else lp.completion_response
        result = make(lp.response_text(result))
    result["model"] = model_name
    return result


def models_list(model_name: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                        "owned_by": "hangar"}]}


def _chunk_end(chunk: Any) -> tuple[str | None, dict | None]:
    """(finish_reason, usage) carried by a streamed chunk, if any."""
    if not isinstance(chunk, dict):
        return None, None
    finish, usage = chunk.get("finish_reason"), chunk.get("usage")
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        finish = finish or choices[0].get("finish_reason")
    return finish, usage if isinstance(usage, dict) else None


class StreamFormatter:
    """OpenAI stream objects (``chat.completion.chunk`` / ``text_completion``) from model chunks:
    ``start()``, then ``feed(chunk)`` per chunk, then ``finish()``; each returns events to send."""

    def __init__(self, task: str, model_name: str, include_usage: bool):
        prefix, obj = ("chatcmpl", "chat.completion.chunk") if task == CHAT else ("cmpl", "text_completion")
        self.task = task
        self.include_usage = include_usage
        self.base = {"id": f"{prefix}-{uuid.uuid4().hex[:24]}", "object": obj, "created": int(time.time()),
                     "model": model_name}
        if include_usage:
            self.base["usage"] = None
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def _event(self, text: str | None, finish: str | None, first: bool = False) -> dict:
        if self.task == CHAT:
            delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        return {**self.base, "choices": [choice]}

    def start(self) -> list[dict]:
        return [self._event(None, None, first=True)] if self.task == CHAT else []

    def feed(self, chunk: Any) -> list[dict]:
        finish, usage = _chunk_end(chunk)
        self.finish_reason = finish or self.finish_reason
        self.usage = usage or self.usage
        text = lp.chunk_text(chunk)
        return [self._event(text, None)] if text else []

    def finish(self) -> list[dict]:
        events = [self._event(None, self.finish_reason or "stop")]
        if self.include_usage:
            events.append({**self.base, "choices": [], "usage": self.usage or lp.usage(0, 0)})
        return events


def stream_events(task: str, chunks: Iterable[Any], model_name: str, include_usage: bool) -> Iterator[dict]:
    """All stream objects for an iterable of model chunks (the sync form of StreamFormatter)."""
    fmt = StreamFormatter(task, model_name, include_usage)
    yield from fmt.start()
    for chunk in chunks:
        yield from fmt.feed(chunk)
    yield from fmt.finish()


def single_chunk(result: Any) -> list[dict]:
    """A whole prediction as one stream chunk, for models that cannot stream."""
    text = lp.response_text(result)
    finish, usage = None, None
    if isinstance(result, dict):
        choices = result.get("choices") or [{}]
        finish, usage = choices[0].get("finish_reason"), result.get("usage")
    return [{"delta": text, "finish_reason": finish, "usage": usage}]
