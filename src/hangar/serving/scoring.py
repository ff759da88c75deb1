"""The serving core for MLflow's scoring protocol, as pure functions (no HTTP objects).

``parse_request`` turns a request body and its content type into an ``Invocation`` (rows as sent,
params); ``invoke`` runs the model on one body; ``to_jsonable`` makes numpy / pandas outputs
JSON-able; ``predictions_body`` is the response document as bytes.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
from typing import Any

from hangar.errors import MalformedRequestError, UnsupportedMediaTypeError
from hangar.serving import jsonio, rowwise
from hangar.serving.rowwise import Invocation

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
        return jsonio.loads(body)
    except jsonio.DecodeError as exc:
        raise MalformedRequestError(f"The request body is not valid JSON: {exc}") from None


def parse_request(body: bytes, content_type: str | None, input_mode: str = "dataframe") -> Invocation:
    """An ``/invocations`` body as an ``Invocation``: rows kept as sent (no pandas), plus params."""
    kind = media_type(content_type)
    if kind == "text/csv":
        return Invocation(_parse_csv(body), None)
    doc = parse_json(body)
    if not isinstance(doc, dict):
        raise MalformedRequestError(
            f"The JSON body must be an object with one of the keys {list(JSON_FORMATS)}, got {type(doc).__name__}"
        )
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise MalformedRequestError(f"'params' must be a JSON object, got {type(params).__name__}")
    formats = [k for k in JSON_FORMATS if k in doc]
    if len(formats) != 1:
        if formats:
            raise MalformedRequestError(f"Give exactly one of {list(JSON_FORMATS)}; the body has {formats}")
        if input_mode == "payload":  # a chat-style body sent as is: {"messages": [...]}
            return Invocation({k: v for k, v in doc.items() if k != "params"}, params)
        raise MalformedRequestError(
            f"The JSON body needs one of the keys {list(JSON_FORMATS)}; it has {sorted(doc)}"
        )
    key = formats[0]
    value = doc[key]
    if key == "dataframe_split":
        return rowwise.from_split(value, params)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise MalformedRequestError("'dataframe_records' must be a list of row objects")
        return rowwise.from_value(value, params)
    if key == "instances" and not isinstance(value, list):
        raise MalformedRequestError("'instances' must be a list")
    if input_mode == "payload":
        return Invocation(value, params)
    return rowwise.from_value(value, params)


def parse_invocation(body: bytes, content_type: str | None, input_mode: str = "dataframe") -> tuple[Any, dict | None]:
    """``(model_input, params)`` from an ``/invocations`` request body."""
    inv = parse_request(body, content_type, input_mode)
    return rowwise.merge([inv]), inv.params


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


def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": ...}`` as JSON bytes; ``predictions`` must already be JSON-able."""
    return b'{"predictions":' + jsonio.dumps(predictions) + b"}"


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
