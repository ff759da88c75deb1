"""Feed one model's output (or a rendered prompt) to another model in the shape it takes."""

from __future__ import annotations

from typing import Any

_WRAP = {
    "llm/v1/chat": lambda text: {"messages": [{"role": "user", "content": text}]},
    "llm/v1/completions": lambda text: {"prompt": text},
    "llm/v1/embeddings": lambda text: {"input": text},
}


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def to_model_input(value: Any, model) -> Any:
    """Wrap text or messages as the payload a chat / completion / embedding model expects."""
    if model.input_mode != "payload":
        return [value] if isinstance(value, str) else value
    wrap = _WRAP.get(model.task)
    if isinstance(value, str) and wrap:
        return wrap(value)
    if _is_messages(value):
        return {"messages": value}
    if isinstance(value, list) and wrap and value and all(isinstance(v, str) for v in value):
        return [wrap(v) for v in value]
    if isinstance(value, list) and value and all(_is_messages(v) for v in value):
        return [{"messages": v} for v in value]
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return value.to_dict(orient="records")
    return value


def params_for(model, params: dict | None) -> dict | None:
    """Only the params the target model declares (others belong to other steps)."""
    if not params:
        return None
    sig = model.signature
    if sig is None or sig.params is None:
        return None
    names = {p.name for p in sig.params.params}
    picked = {k: v for k, v in params.items() if k in names}
    return picked or None
