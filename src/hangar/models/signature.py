"""Model signatures: input, output and parameter schemas, in MLflow's MLmodel encoding.

A type is a plain dict in the MLflow JSON form: ``{"type": "string"}``, ``{"type": "array",
"items": {...}}``, ``{"type": "object", "properties": {"name": {..., "required": True}}}`` or
``{"type": "any"}``. A column spec adds ``name`` (optional) and ``required``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hangar.errors import InvalidArgumentError

SCALAR_TYPES = ("string", "long", "integer", "double", "float", "boolean", "binary", "datetime")
PARAM_TYPES = ("string", "long", "integer", "double", "float", "boolean", "binary", "datetime")


def validate_type(spec: Any, where: str) -> dict:
    if not isinstance(spec, dict) or "type" not in spec:
        raise InvalidArgumentError(f"{where}: a type must be a mapping with a 'type' key, got {spec!r}")
    kind = spec["type"]
    if kind in SCALAR_TYPES or kind == "any":
        return spec
    if kind == "array":
        validate_type(spec.get("items"), f"{where}.items")
        return spec
    if kind == "object":
        props = spec.get("properties")
        if not isinstance(props, dict):
            raise InvalidArgumentError(f"{where}: an object type needs a 'properties' mapping")
        for name, sub in props.items():
            validate_type(sub, f"{where}.{name}")
        return spec
    raise InvalidArgumentError(
        f"{where}: unknown type {kind!r}; use one of {', '.join(SCALAR_TYPES)}, array, object, any"
    )


def describe_type(spec: dict) -> str:
    """Short human form of a type: ``array<object{role: string, content: string}>``."""
    kind = spec.get("type")
    if kind == "array":
        return f"array<{describe_type(spec['items'])}>"
    if kind == "object":
        inner = ", ".join(f"{k}: {describe_type(v)}" for k, v in spec.get("properties", {}).items())
        return f"object{{{inner}}}"
    return str(kind)


@dataclass(frozen=True)
class ColSpec:
    type: dict
    name: str | None = None
    required: bool = True

    def to_dict(self) -> dict:
        out = dict(self.type)
        if self.name is not None:
            out["name"] = self.name
        out["required"] = self.required
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ColSpec:
        d = dict(d)
        name = d.pop("name", None)
        required = bool(d.pop("required", True))
        return cls(type=validate_type(d, f"column {name!r}"), name=name, required=required)


@dataclass(frozen=True)
class Schema:
    columns: tuple[ColSpec, ...]

    def __init__(self, columns):
        object.__setattr__(self, "columns", tuple(columns))
        names = [c.name for c in self.columns]
        if any(n is None for n in names) and any(n is not None for n in names):
            raise InvalidArgumentError("A schema's columns must be either all named or all unnamed")
        if len(set(names)) != len(names) and names and names[0] is not None:
            raise InvalidArgumentError(f"A schema has duplicate column names: {names}")

    @property
    def is_named(self) -> bool:
        return bool(self.columns) and self.columns[0].name is not None

    @property
    def names(self) -> list:
        return [c.name for c in self.columns]

    def to_json(self) -> str:
        return json.dumps([c.to_dict() for c in self.columns])

    @classmethod
    def from_json(cls, text: str | list) -> Schema:
        data = json.loads(text) if isinstance(text, str) else text
        if not isinstance(data, list):
            raise InvalidArgumentError("A schema must be a JSON list of column specs")
        return cls(ColSpec.from_dict(d) for d in data)


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str
    default: Any = None
    shape: tuple | None = None

    def __post_init__(self):
        if self.type not in PARAM_TYPES:
            raise InvalidArgumentError(
                f"Param {self.name!r} has unknown type {self.type!r}; use one of {', '.join(PARAM_TYPES)}"
            )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "default": self.default,
            "shape": list(self.shape) if self.shape is not None else None,
            "type": self.type,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ParamSpec:
        shape = d.get("shape")
        return cls(name=d["name"], type=d["type"], default=d.get("default"),
                   shape=tuple(shape) if shape is not None else None)


@dataclass(frozen=True)
class ParamSchema:
    params: tuple[ParamSpec, ...]

    def __init__(self, params):
        object.__setattr__(self, "params", tuple(params))

    def get(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)

    def to_json(self) -> str:
        return json.dumps([p.to_dict() for p in self.params])

    @classmethod
    def from_json(cls, text: str | list) -> ParamSchema:
        data = json.loads(text) if isinstance(text, str) else text
        return cls(ParamSpec.from_dict(d) for d in data)


@dataclass(frozen=True)
class ModelSignature:
    inputs: Schema | None = None
    outputs: Schema | None = None
    params: ParamSchema | None = field(default=None)

    def to_dict(self) -> dict:
        """The manifest form: each part a JSON string, as MLflow writes it."""
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict | None) -> ModelSignature | None:
        if not d:
            return None
        try:
            return cls(
                inputs=Schema.from_json(d["inputs"]) if d.get("inputs") else None,
                outputs=Schema.from_json(d["outputs"]) if d.get("outputs") else None,
                params=ParamSchema.from_json(d["params"]) if d.get("params") else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArgumentError(f"The signature is malformed: {exc}") from None
