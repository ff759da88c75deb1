"""The OpenAPI document, generated from the route table (each operation says what it requires)."""

from __future__ import annotations

import re

from hangar.server.spec import Requires

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
_ERROR = {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
          "required": ["error_code", "message"]}


def _requirement(route) -> str:
    req = route.requires
    if isinstance(req, Requires):
        kind = req.securable_type if isinstance(req.securable_type, str) else "{securable_type}"
        privilege = req.privilege if isinstance(req.privilege, str) else "{privilege}"
        text = f"Requires {privilege} on {kind}: {req.describe}"
    else:
        text = f"Requires: {req.doc}"
    if route.also is not None:
        text += f". Also: {route.also.__doc__.split(':', 1)[1].strip()}"
    return text


def build() -> dict:
    from hangar.__about__ import __version__
    from hangar.server.routes import ROUTES

    paths: dict = {}
    for route in ROUTES:
        op = {
            "operationId": route.name.lower(),
            "summary": route.summary or route.name.replace("_", " ").capitalize(),
            "description": _requirement(route),
            "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                           for p in _PARAM.findall(route.path)],
            "responses": {str(route.status): {"description": "Success", "content": {"application/json": {}}},
                          "default": {"description": "Error",
                                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        }
        if isinstance(route.requires, Requires) or route.requires.name == "AUTHENTICATED":
            op["security"] = [{"bearer": []}]
        if route.streaming and route.method == "PUT":
            op["requestBody"] = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
        elif route.method in ("POST", "PUT", "PATCH"):
            op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(_PARAM.sub(r"{\1}", route.path), {})[route.method.lower()] = op
    return {"openapi": "3.1.0", "info": {"title": "Hangar server", "version": __version__}, "paths": paths,
            "components": {"schemas": {"Error": _ERROR},
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
