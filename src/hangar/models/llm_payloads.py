"""OpenAI-shaped request and response payloads, shared by every LLM flavor.

Flavors that answer ``llm/v1/chat``, ``llm/v1/completions`` or ``llm/v1/embeddings`` build their
responses with these helpers so that serving, batch and chains see one shape.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from hangar.errors import SchemaMismatchError


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def chat_response(text: str, *, model: str = "hangar", finish_reason: str = "stop",
                  usage_: dict | None = None) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": usage_ or usage(0, 0),
    }


def completion_response(text: str, *, model: str = "hangar", finish_reason: str = "stop",
                        usage_: dict | None = None) -> dict:
    return {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}],
        "usage": usage_ or usage(0, 0),
    }


def embeddings_response(vectors: Iterable[Iterable[float]], *, model: str = "hangar",
                        usage_: dict | None = None) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]}
                 for i, v in enumerate(vectors)],
        "model": model,
        "usage": usage_ or usage(0, 0),
    }


def response_text(response: Any) -> str:
    """The generated text of a chat or completion response (or a plain string)."""
    if isinstance(response, str):
        return response
    if isinstance(response, dict):
        choices = response.get("choices")
        if isinstance(choices, list) and choices:
            first = choices[0]
            if isinstance(first.get("message"), dict):
                return first["message"].get("content") or ""
            if "text" in first:
                return first["text"] or ""
        for key in ("content", "text", "output"):
            if isinstance(response.get(key), str):
                return response[key]
    raise SchemaMismatchError(
        f"Expected a chat/completion response or a string, got {type(response).__name__}: {str(response)[:80]}"
    )


def chunk_text(chunk: Any) -> str:
    """The text of one streamed chunk: a string, ``{"delta": ...}`` or an OpenAI chunk dict."""
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, dict):
        delta = chunk.get("delta")
        if isinstance(delta, str):
            return delta
        if isinstance(delta, dict):
            return delta.get("content") or ""
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices:
            d = choices[0].get("delta") or {}
            return d.get("content") or choices[0].get("text") or ""
    return ""


def messages_of(payload: Any) -> list[dict]:
    """The chat messages of a payload (``{"messages": [...]}``) or a bare list of messages."""
    messages = payload.get("messages") if isinstance(payload, dict) else payload
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
        raise SchemaMismatchError(
            "Expected chat messages: {'messages': [{'role': 'user', 'content': '...'}]}"
        )
    return messages


def as_batch(model_input: Any) -> tuple[list, bool]:
    """``(payloads, was_single)``: flavors answer a dict with a dict and a list with a list."""
    if isinstance(model_input, list):
        return model_input, False
    return [model_input], True


def embedding_texts(value: Any) -> list[str]:
    """The texts of an embeddings request's ``input``: one string or a list of strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SchemaMismatchError(
        "Embeddings take {'input': 'text'} or {'input': ['text', ...]} (strings only), "
        f"got {type(value).__name__}"
    )
