"""JSON in and out of the serving path: orjson when installed (the ``serving`` extra), else the standard library."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - exercised by test_serving_batching through the fallback functions
    orjson = None

DecodeError = (ValueError, UnicodeDecodeError)  # orjson.JSONDecodeError and json.JSONDecodeError are ValueErrors


def std_loads(data: bytes) -> Any:
    return json.loads(data)


def std_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


if orjson is not None:
    loads = orjson.loads

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)
else:
    loads, dumps = std_loads, std_dumps
