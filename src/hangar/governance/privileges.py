"""Securable types, their privileges, and what a grant on one securable implies for another.

The catalog tree is ``metastore → catalog → schema → registered_model`` (names ``metastore``,
``c``, ``c.s``, ``c.s.m``); experiments (by id) and endpoints (by name) hang directly under the
metastore. A grant applies to its securable and everything beneath it. As in Unity Catalog,
acting on anything inside a catalog also needs USE_CATALOG on it, and inside a schema USE_SCHEMA
on it: loading a model needs USE_CATALOG + USE_SCHEMA + EXECUTE. ALL_PRIVILEGES implies every
privilege; an owner holds every privilege on what it owns and on everything beneath. On
experiments MANAGE implies EDIT implies READ (as in MLflow); on endpoints MANAGE implies QUERY.
"""

from __future__ import annotations

from hangar.errors import InvalidArgumentError

METASTORE = "metastore"
CATALOG = "catalog"
SCHEMA = "schema"
REGISTERED_MODEL = "registered_model"
EXPERIMENT = "experiment"
ENDPOINT = "endpoint"
SECURABLE_TYPES = (METASTORE, CATALOG, SCHEMA, REGISTERED_MODEL, EXPERIMENT, ENDPOINT)
METASTORE_NAME = "metastore"  # the one metastore's securable name

USE_CATALOG, USE_SCHEMA, CREATE_SCHEMA, CREATE_MODEL = "USE_CATALOG", "USE_SCHEMA", "CREATE_SCHEMA", "CREATE_MODEL"
CREATE_MODEL_VERSION, EXECUTE, APPLY_TAG, MANAGE = "CREATE_MODEL_VERSION", "EXECUTE", "APPLY_TAG", "MANAGE"
ALL_PRIVILEGES = "ALL_PRIVILEGES"
READ, EDIT, QUERY = "READ", "EDIT", "QUERY"

_TREE_MODEL = (CREATE_MODEL_VERSION, EXECUTE, APPLY_TAG, MANAGE, ALL_PRIVILEGES)
_TREE_SCHEMA = (USE_SCHEMA, CREATE_MODEL, *_TREE_MODEL)
_TREE_CATALOG = (USE_CATALOG, CREATE_SCHEMA, *_TREE_SCHEMA)

# privileges that can be granted on each securable type (a grant on a parent covers children)
GRANTABLE: dict[str, tuple[str, ...]] = {
    METASTORE: _TREE_CATALOG,
    CATALOG: _TREE_CATALOG,
    SCHEMA: _TREE_SCHEMA,
    REGISTERED_MODEL: _TREE_MODEL,
    EXPERIMENT: (READ, EDIT, MANAGE),
    ENDPOINT: (QUERY, MANAGE),
}
# privileges a check may ask for on each type (what a grant finally means there)
APPLICABLE: dict[str, frozenset[str]] = {
    METASTORE: frozenset({MANAGE}),
    CATALOG: frozenset({USE_CATALOG, CREATE_SCHEMA, MANAGE}),
    SCHEMA: frozenset({USE_SCHEMA, CREATE_MODEL, MANAGE}),
    REGISTERED_MODEL: frozenset({CREATE_MODEL_VERSION, EXECUTE, APPLY_TAG, MANAGE}),
    EXPERIMENT: frozenset({READ, EDIT, MANAGE}),
    ENDPOINT: frozenset({QUERY, MANAGE}),
}
_IMPLIED_BY_MANAGE = {EXPERIMENT: frozenset({READ, EDIT, MANAGE}), ENDPOINT: frozenset({QUERY, MANAGE})}
_CATALOG_TREE = (METASTORE, CATALOG, SCHEMA, REGISTERED_MODEL)


def effective(privilege: str, target_type: str) -> frozenset[str]:
    """What ``privilege``, granted on the target or on an ancestor of it, allows on ``target_type``."""
    if privilege == ALL_PRIVILEGES:
        return APPLICABLE[target_type]
    if target_type in _IMPLIED_BY_MANAGE:
        if privilege == MANAGE:
            return _IMPLIED_BY_MANAGE[target_type]
        if privilege == EDIT and target_type == EXPERIMENT:
            return frozenset({READ, EDIT})
    return frozenset({privilege}) & APPLICABLE[target_type]


def check_securable_type(value) -> str:
    if value not in SECURABLE_TYPES:
        raise InvalidArgumentError(f"Unknown securable type {value!r}; use one of {', '.join(SECURABLE_TYPES)}")
    return value


def check_grantable(securable_type: str, privilege) -> str:
    check_securable_type(securable_type)
    allowed = GRANTABLE[securable_type]
    if privilege not in allowed:
        raise InvalidArgumentError(f"{privilege!r} cannot be granted on a {securable_type}; use one of {', '.join(allowed)}")
    return privilege


def normalise(securable_type: str, securable) -> str:
    """The canonical name of a securable (validated): ``metastore``, ``c``, ``c.s``, ``c.s.m``, ``7``."""
    from hangar.catalog import names

    check_securable_type(securable_type)
    if not isinstance(securable, str) or not securable:
        raise InvalidArgumentError(f"A {securable_type} is named by a non-empty string, got {securable!r}")
    if securable_type == METASTORE:
        if securable != METASTORE_NAME:
            raise InvalidArgumentError(f"The metastore is named {METASTORE_NAME!r}, got {securable!r}")
        return securable
    if securable_type == CATALOG:
        return names.catalog_name(securable)
    if securable_type == SCHEMA:
        return ".".join(names.schema_name(securable))
    if securable_type == REGISTERED_MODEL:
        if securable.count(".") != 2:
            raise InvalidArgumentError(f"A registered model securable is 'catalog.schema.model', got {securable!r}")
        return names.model_name(securable)[0]
    if securable_type == EXPERIMENT:
        if not securable.isdecimal() or len(securable) > 18:
            raise InvalidArgumentError(f"An experiment is named by its numeric id, got {securable!r}")
        return str(int(securable))
    if len(securable) > 128:
        raise InvalidArgumentError("An endpoint name has at most 128 characters")
    return securable


def chain(securable_type: str, securable: str) -> list[tuple[str, str]]:
    """The securable and its ancestors, root first: ``[(metastore, metastore), (catalog, c), ...]``."""
    root = (METASTORE, METASTORE_NAME)
    if securable_type == METASTORE:
        return [root]
    if securable_type in (EXPERIMENT, ENDPOINT):
        return [root, (securable_type, securable)]
    parts = securable.split(".")
    levels = [(CATALOG, parts[0])]
    if len(parts) > 1:
        levels.append((SCHEMA, ".".join(parts[:2])))
    if len(parts) > 2:
        levels.append((REGISTERED_MODEL, ".".join(parts[:3])))
    return [root, *levels]


def requirements(securable_type: str, securable: str, privilege: str) -> list[tuple[int, str]]:
    """What a check needs, as (index into ``chain``, privilege): the privilege itself on the target,
    plus USE_CATALOG / USE_SCHEMA on the catalog and schema it sits in (Unity Catalog's rule)."""
    if privilege not in APPLICABLE[securable_type]:
        raise InvalidArgumentError(f"{privilege!r} does not apply to a {securable_type}")
    levels = chain(securable_type, securable)
    needed = [(len(levels) - 1, privilege)]
    if securable_type in _CATALOG_TREE:
        for i, (level_type, _) in enumerate(levels[:-1] if securable_type != CATALOG else []):
            if level_type == CATALOG:
                needed.append((i, USE_CATALOG))
            elif level_type == SCHEMA:
                needed.append((i, USE_SCHEMA))
        if securable_type == CATALOG and privilege != USE_CATALOG:
            needed.append((len(levels) - 1, USE_CATALOG))
        if securable_type == SCHEMA and privilege != USE_SCHEMA:
            needed.append((len(levels) - 1, USE_SCHEMA))
    return needed
