"""Infer a signature from an input example (and optionally an output example and params)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from hangar.errors import InvalidArgumentError
from hangar.models.inputs import is_payload_example, to_dataframe
from hangar.models.signature import ColSpec, ModelSignature, ParamSchema, ParamSpec, Schema

_NUMERIC = {"long", "double"}


def infer_type(value: Any) -> dict | None:
    """The signature type of one Python value; None for a missing value (None / NaN)."""
    import numpy as np

    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return {"type": "boolean"}
    if isinstance(value, (int, np.integer)):
        return {"type": "long"}
    if isinstance(value, (float, np.floating)):
        return None if value != value else {"type": "double"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, (bytes, bytearray)):
        return {"type": "binary"}
    if isinstance(value, (_dt.datetime, _dt.date, np.datetime64)):
        return {"type": "datetime"}
    if isinstance(value, dict):
        props = {}
        for k, v in value.items():
            t = infer_type(v)
            props[str(k)] = dict(t, required=True) if t else {"type": "any", "required": False}
        return {"type": "object", "properties": props}
    if isinstance(value, (list, tuple, np.ndarray)):
        items = None
        for v in value:
            items = merge_types(items, infer_type(v))
        return {"type": "array", "items": items or {"type": "any"}}
    try:
        import pandas as pd

        if value is pd.NaT or (isinstance(value, float) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return {"type": "datetime"}
    except ImportError:  # pragma: no cover
        pass
    raise InvalidArgumentError(f"Cannot infer a signature type for a value of type {type(value).__name__}")


def merge_types(a: dict | None, b: dict | None) -> dict | None:
    """The narrowest type that holds both (``long`` + ``double`` is ``double``)."""
    if a is None:
        return b
    if b is None:
        return a
    ka, kb = a["type"], b["type"]
    if ka == kb == "array":
        return {"type": "array", "items": merge_types(a["items"], b["items"]) or {"type": "any"}}
    if ka == kb == "object":
        props = {}
        names = list(a["properties"]) + [n for n in b["properties"] if n not in a["properties"]]
        for n in names:
            pa, pb = a["properties"].get(n), b["properties"].get(n)
            merged = merge_types(_strip(pa), _strip(pb)) or {"type": "any"}
            required = bool(pa and pb and pa.get("required", True) and pb.get("required", True))
            props[n] = dict(merged, required=required)
        return {"type": "object", "properties": props}
    if ka == kb:
        return a
    if {ka, kb} == _NUMERIC:
        return {"type": "double"}
    return {"type": "any"}


def _strip(spec):
    if spec is None:
        return None
    return {k: v for k, v in spec.items() if k != "required"}


_DTYPE_KINDS = {"i": "long", "u": "long", "f": "double", "b": "boolean", "M": "datetime", "U": "string"}


def infer_schema(example: Any, payload: bool | None = None) -> Schema:
    """Columns from an example: named for tables and dicts, one unnamed column for a list."""
    if payload is None:
        payload = is_payload_example(example)
    if payload:
        if not isinstance(example, dict):
            raise InvalidArgumentError("A payload example must be a dict such as {'messages': [...]}")
        cols = []
        for name, value in example.items():
            t = infer_type(value) or {"type": "any"}
            cols.append(ColSpec(type=t, name=str(name), required=True))
        return Schema(cols)
    df = to_dataframe(example)
    named = not (list(df.columns) == [0] and not isinstance(example, dict))
    cols = []
    for name in df.columns:
        series = df[name]
        kind = _DTYPE_KINDS.get(series.dtype.kind)
        required = not bool(series.isna().any())
        if kind is None:
            t = None
            for v in series.tolist():
                t = merge_types(t, infer_type(v))
            kind_type = t or {"type": "any"}
        else:
            kind_type = {"type": kind}
        cols.append(ColSpec(type=kind_type, name=str(name) if named else None, required=required))
    return Schema(cols)


def infer_params_schema(params: dict | None) -> ParamSchema | None:
    if not params:
        return None
    specs = []
    for name, default in params.items():
        t = infer_type(default)
        if t is None:
            raise InvalidArgumentError(f"Param {name!r}: cannot infer a type from a default of None")
        if t["type"] == "array":
            specs.append(ParamSpec(name=name, type=t["items"]["type"], default=list(default), shape=(-1,)))
        elif t["type"] in ("object", "any"):
            raise InvalidArgumentError(f"Param {name!r}: params must be scalars or 1-d lists of scalars")
        else:
            specs.append(ParamSpec(name=name, type=t["type"], default=default))
    return ParamSchema(specs)


def infer_signature(model_input: Any = None, model_output: Any = None, params: dict | None = None,
                    payload: bool | None = None) -> ModelSignature:
    """Like ``mlflow.models.infer_signature``: schemas from examples, params from defaults."""
    inputs = infer_schema(model_input, payload=payload) if model_input is not None else None
    outputs = None
    if model_output is not None:
        out_payload = isinstance(model_output, dict) and is_payload_example(model_output)
        outputs = infer_schema(model_output, payload=out_payload)
    return ModelSignature(inputs=inputs, outputs=outputs, params=infer_params_schema(params))
