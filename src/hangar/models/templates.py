"""Prompt templates with ``{{ variable }}`` placeholders (MLflow's prompt syntax).

Rendering is plain substitution, never code execution, so a template from an untrusted
package cannot run anything.
"""

from __future__ import annotations

import re
from typing import Any

from hangar.errors import InvalidArgumentError, SchemaMismatchError

_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ROLES = ("system", "user", "assistant", "developer", "tool")


def validate_template(template: Any) -> Any:
    """A template is a string or a list of ``{"role", "content"}`` messages with string content."""
    if isinstance(template, str):
        if not template.strip():
            raise InvalidArgumentError("A prompt template must not be empty")
        return template
    if isinstance(template, list) and template:
        for i, msg in enumerate(template):
            if not isinstance(msg, dict) or set(msg) - {"role", "content"} or not isinstance(msg.get("content"), str):
                raise InvalidArgumentError(
                    f"Prompt template message {i} must be {{'role': ..., 'content': '...'}}, got {msg!r}"
                )
            if msg.get("role") not in ROLES:
                raise InvalidArgumentError(
                    f"Prompt template message {i} has role {msg.get('role')!r}; use one of {', '.join(ROLES)}"
                )
        return template
    raise InvalidArgumentError(
        "A prompt template must be a non-empty string or a list of chat messages "
        "[{'role': 'system', 'content': 'You help with {{ topic }}'}]"
    )


def template_variables(template: Any) -> list[str]:
    """Variable names in order of first appearance."""
    texts = [template] if isinstance(template, str) else [m["content"] for m in template]
    seen: list[str] = []
    for text in texts:
        for name in _VAR.findall(text):
            if name not in seen:
                seen.append(name)
    return seen


def _render_text(text: str, values: dict) -> str:
    def sub(match):
        name = match.group(1)
        if name not in values or values[name] is None:
            raise SchemaMismatchError(
                f"The prompt needs a value for '{name}' but none was given (values given: "
                f"{sorted(k for k, v in values.items() if v is not None)})"
            )
        return str(values[name])

    return _VAR.sub(sub, text)


def render(template: Any, values: dict) -> Any:
    """A string template renders to a string; a message template to a list of messages."""
    if isinstance(template, str):
        return _render_text(template, values)
    return [{"role": m["role"], "content": _render_text(m["content"], values)} for m in template]
