"""An OpenAPI document for one served model, generated from its signature (inputs and params)."""

from __future__ import annotations

from typing import Any

from hangar.serving.openai_compat import ROUTE_TASKS

_SCALARS = {"string": {"type": "string"}, "long": {"type": "integer"}, "integer": {"type": "integer"},
            "double": {"type": "number"}, "float": {"type": "number"}, "boolean": {"type": "boolean"},
            "binary": {"type": "string", "format": "byte"}, "datetime": {"type": "string", "format": "date-time"},
            "any": {}}


def json_schema(spec: dict) -> dict:
    kind = spec.get("type")
    if kind == "array":
        return {"type": "array", "items": json_schema(spec["items"])}
    if kind == "object":
        props = spec.get("properties", {})
        return {"type": "object", "properties": {k: json_schema(v) for k, v in props.items()},
                "required": [k for k, v in props.items() if v.get("required", True)]}
    return dict(_SCALARS.get(kind, {}))


def _inputs_schema(model) -> dict:
    sig = model.signature
    cols = sig.inputs.columns if sig is not None and sig.inputs is not None else ()
    named = [c for c in cols if c.name is not None]
    row = {"type": "object", "properties": {str(c.name): json_schema(c.type) for c in named},
           "required": [str(c.name) for c in named if c.required]}
    if model.input_mode == "payload":
        return {"type": "object", "properties": {"inputs": row}, "required": ["inputs"]}
    split = {"type": "object", "properties": {
        "columns": {"type": "array", "items": {"type": "string"}, "example": [str(c.name) for c in named]},
        "data": {"type": "array", "items": {"type": "array"}}}}
    return {"type": "object", "properties": {
        "dataframe_split": split,
        "dataframe_records": {"type": "array", "items": row},
        "instances": {"type": "array"},
        "inputs": {},
    }, "description": "Give exactly one of dataframe_split, dataframe_records, instances, inputs"}


def _params_schema(model) -> dict:
    sig = model.signature
    props: dict[str, Any] = {}
    for p in (sig.params.params if sig is not None and sig.params else ()):
        schema = json_schema({"type": p.type})
        if p.shape is not None:
            schema = {"type": "array", "items": schema}
        if p.default is not None:
            schema["default"] = p.default
        props[p.name] = schema
    return {"type": "object", "properties": props, "additionalProperties": False}


def _json_op(summary: str, body: dict | None = None) -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {
        "200": {"description": "OK"},
        "default": {"description": "Error", "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/Error"}}}}}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def build_openapi(model, *, title: str, version: str) -> dict:
    body = _inputs_schema(model)
    body["properties"]["params"] = _params_schema(model)
    invocations = _json_op("Score the model (MLflow scoring protocol)", body)
    if model.input_mode != "payload":
        invocations["requestBody"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    paths: dict[str, Any] = {"/invocations": {"post": invocations}}
    for route, task in ROUTE_TASKS.items():
        if model.task == task:
            paths[route] = {"post": _json_op(f"OpenAI-compatible {task}", {"type": "object"})}
    paths["/v1/models"] = {"get": _json_op("The served model, OpenAI-style")}
    for route, summary in (("/health", "Liveness"), ("/ready", "Readiness: the model is loaded"),
                           ("/version", "Hangar version and the served model"),
                           ("/metrics", "Prometheus metrics")):
        paths[route] = {"get": _json_op(summary)}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": {"Error": {"type": "object", "required": ["error_code", "message"],
                                             "properties": {"error_code": {"type": "string"},
                                                            "message": {"type": "string"}}}}},
    }
