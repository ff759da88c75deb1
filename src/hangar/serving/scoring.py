"""The serving core for MLflow's scoring protocol, as pure functions (no HTTP objects).

``parse_invocation`` turns a request body and its content type into model input and params;
``invoke`` runs the model; ``to_jsonable`` makes numpy / pandas outputs JSON-able.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from typing import Any

from hangar.errors import MalformedRequestError, UnsupportedMediaTypeError

JSON_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_CONTENT_TYPES = ("application/json", "text/csv")


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json``; 415 for anything else."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind not in _CONTENT_TYPES:
        shown = kind or "none"
        raise UnsupportedMediaTypeError(
            f"Content type {shown!r} is not supported; send application/json or text/csv"
        )
    return kind


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedRequestError(f"The request body is not valid JSON: {exc}") from None


def parse_invocation(body: bytes, content_type: str | None, input_mode: str = "dataframe") -> tuple[Any, dict | None]:
    """``(model_input, params)`` from an ``/invocations`` request body."""
    kind = media_type(content_type)
    if kind == "text/csv":
        return _parse_csv(body), None
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise MalformedRequestError(
            f"The JSON body must be an object with one of the keys {list(JSON_FORMATS)}, got {type(doc).__name__}"
        )
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise MalformedRequestError(f"'params' must be a JSON object, got {type(params).__name__}")
    formats = [k for k in JSON_FORMATS if k in doc]
    if len(formats) > 1:
        raise MalformedRequestError(f"Give exactly one of {list(JSON_FORMATS)}; the body has {formats}")
    if not formats:
        if input_mode == "payload":  # a chat-style body sent as is: {"messages": [...]}
            return {k: v for k, v in doc.items() if k != "params"}, params
        raise MalformedRequestError(
            f"The JSON body needs one of the keys {list(JSON_FORMATS)}; it has {sorted(doc)}"
        )
    key = formats[0]
    value = doc[key]
    if key == "dataframe_split":
        return _from_split(value), params
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise MalformedRequestError("'dataframe_records' must be a list of row objects")
        return value, params
    if key == "instances" and not isinstance(value, list):
        raise MalformedRequestError("'instances' must be a list")
    return value, params


def _from_split(value: Any) -> dict:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise MalformedRequestError("'dataframe_split' must be {'columns': [...], 'data': [[...], ...]}")
    rows = value["data"]
    columns = value.get("columns")
    if columns is None:
        width = len(rows[0]) if rows and isinstance(rows[0], list) else 1
        columns = list(range(width))
    if not isinstance(columns, list):
        raise MalformedRequestError("'dataframe_split.columns' must be a list of names")
    out: dict = {c: [] for c in columns}
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise MalformedRequestError(
                f"'dataframe_split.data' row {i} must be a list of {len(columns)} values (one per column)"
            )
        for c, v in zip(columns, row):
            out[c].append(v)
    return out


def _parse_csv(body: bytes):
    import io

    import pandas as pd

    try:
        return pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise MalformedRequestError(f"The request body is not valid CSV: {exc}") from None


def invoke(model, body: bytes, content_type: str | None) -> dict:
    """The whole ``/invocations`` exchange: body in, response document out."""
    data, params = parse_invocation(body, content_type, model.input_mode)
    return {"predictions": to_jsonable(model.predict(data, params=params))}


def to_jsonable(value: Any) -> Any:
    """Plain JSON values from model outputs (numpy, pandas, dates, bytes); NaN becomes null."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    module = type(value).__module__ or ""
    if module.startswith("pandas"):
        if hasattr(value, "to_dict") and hasattr(value, "columns"):
            return to_jsonable(value.to_dict(orient="records"))
        if hasattr(value, "tolist"):
            return to_jsonable(value.tolist())
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if module.startswith("numpy"):
        if hasattr(value, "tolist"):
            return to_jsonable(value.tolist())
    if hasattr(value, "tolist"):  # torch tensors, pyarrow arrays
        return to_jsonable(value.tolist())
    return str(value)
