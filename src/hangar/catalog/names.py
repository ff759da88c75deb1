"""Names in the three-level namespace: validated once, with errors that say what to write."""

from __future__ import annotations

import re

from hangar.errors import InvalidArgumentError
from hangar.uri import DEFAULT_CATALOG, DEFAULT_SCHEMA, full_model_name

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
RESERVED_ALIASES = ("latest",)

__all__ = ["DEFAULT_CATALOG", "DEFAULT_SCHEMA", "alias_name", "catalog_name", "model_name", "schema_name"]


def _part(kind: str, value) -> str:
    if not isinstance(value, str) or not _PART.match(value):
        raise InvalidArgumentError(
            f"Invalid {kind} name {value!r}: start with a letter or '_', then letters, digits, '_' or '-' "
            "(at most 128 characters)"
        )
    return value


def catalog_name(value) -> str:
    return _part("catalog", value)


def schema_name(value) -> tuple[str, str]:
    """``catalog.schema`` → (catalog, schema)."""
    if not isinstance(value, str) or value.count(".") != 1:
        raise InvalidArgumentError(f"A schema is named 'catalog.schema', got {value!r}")
    cat, sch = value.split(".")
    return catalog_name(cat), _part("schema", sch)


def model_name(value) -> tuple[str, str, str, str]:
    """A model name (bare names live in main.default) → (full, catalog, schema, model)."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"A model name must be a string, got {value!r}")
    full = full_model_name(value)
    cat, sch, name = full.split(".")
    return full, cat, sch, name


def alias_name(value) -> str:
    if not isinstance(value, str) or not _ALIAS.match(value):
        raise InvalidArgumentError(
            f"Invalid alias {value!r}: start with a letter or '_', then letters, digits, '_' or '-'"
        )
    if value.lower() in RESERVED_ALIASES:
        raise InvalidArgumentError(f"The alias {value!r} is reserved; choose another name")
    if value.isdecimal():
        raise InvalidArgumentError("An alias cannot be a number (it would read as a version)")
    return value
