"""Entities as JSON: dataclasses become objects, tuples lists; nothing else is changed."""

from __future__ import annotations

import dataclasses


def plain(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def int_param(value, name: str, default: int | None = None, low: int = 0, high: int = 1_000_000) -> int | None:
    from hangar.errors import InvalidArgumentError

    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, bool) or not low <= number <= high:
        raise InvalidArgumentError(f"{name} must be between {low} and {high}, got {value!r}")
    return number


def str_field(body: dict, name: str, required: bool = True, max_len: int = 10_000) -> str | None:
    from hangar.errors import InvalidArgumentError

    value = body.get(name)
    if value is None:
        if required:
            raise InvalidArgumentError(f"The request needs the field {name!r}")
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidArgumentError(f"{name!r} must be a string of at most {max_len} characters")
    return value
