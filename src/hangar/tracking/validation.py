"""Limits and rules for what tracking accepts; every violation is a specific error."""

from __future__ import annotations

import math
import re

from hangar.errors import InvalidArgumentError

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_NAME = 250
_KEY = re.compile(r"^[\w\-./ :]+$")


def key(kind: str, name) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"A {kind} name must be a non-empty string, got {name!r}")
    if len(name) > MAX_KEY:
        raise InvalidArgumentError(f"{kind.capitalize()} name {name[:40]!r}... is {len(name)} characters; the limit is {MAX_KEY}")
    if not _KEY.match(name) or ".." in name.split("/") or name.startswith("/"):
        raise InvalidArgumentError(
            f"Invalid {kind} name {name!r}: use letters, digits, '_', '-', '.', ' ', ':' and '/' "
            "(no '..' segments, no leading '/')"
        )
    return name


def param_value(name: str, value) -> str:
    text = str(value)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidArgumentError(
            f"Param {name!r} has a value of {len(text)} characters; the limit is {MAX_PARAM_VALUE}. "
            "Log large values as an artifact (log_text / log_dict) instead"
        )
    return text


def tag_value(name: str, value) -> str:
    text = str(value)
    if len(text) > MAX_TAG_VALUE:
        raise InvalidArgumentError(f"Tag {name!r} has a value of {len(text)} characters; the limit is {MAX_TAG_VALUE}")
    return text


def metric_value(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise InvalidArgumentError(f"Metric {name!r} must be a number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgumentError(f"Metric {name!r} got {v}, which is not finite; log only finite numbers")
    return v


def int_value(what: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an integer, got {value!r}")
    if not -2**63 <= value < 2**63:
        raise InvalidArgumentError(f"{what} must fit in 64 bits, got {value}")
    return value


def name(kind: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        article = "An" if kind[:1] in "aeiou" else "A"
        raise InvalidArgumentError(f"{article} {kind} name must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME:
        raise InvalidArgumentError(f"{kind.capitalize()} name is {len(value)} characters; the limit is {MAX_NAME}")
    return value
