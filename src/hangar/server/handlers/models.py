"""Registered models, their tags, versions and aliases."""

from __future__ import annotations

from hangar.catalog import names
from hangar.errors import InvalidArgumentError
from hangar.governance import privileges as pv
from hangar.server.wire import int_param, str_field


def _name(ctx) -> str:
    return names.model_name(ctx.path_params["name"])[0]


def _tags(body) -> dict | None:
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags)):
        raise InvalidArgumentError("'tags' must be an object of string keys")
    return tags


def create_model(ctx):
    return ctx.registry.create_registered_model(str_field(ctx.body, "name", max_len=400),
                                                str_field(ctx.body, "comment", False), _tags(ctx.body))


def _json_tags(q) -> dict | None:
    import json

    raw = q.get("tags")
    if not raw:
        return None
    try:
        return _tags({"tags": json.loads(raw)})
    except ValueError:
        raise InvalidArgumentError("?tags= must be a JSON object of tag values") from None


def search_models(ctx):
    q = ctx.query
    found = []
    for m in ctx.registry.search_registered_models(
            catalog=q.get("catalog") or None, schema=q.get("schema") or None, name_like=q.get("name_like") or None,
            tags=_json_tags(q),
            alias=q.get("alias") or None, max_results=int_param(q.get("max_results"), "max_results", 1000, 1, 50000),
            filter_string=q.get("filter") or None):
        ctx.access.prime_owner(pv.REGISTERED_MODEL, m.full_name, m.owner)
        if ctx.access.can_see(pv.REGISTERED_MODEL, m.full_name):
            found.append(m)
    return {"registered_models": found}


def get_model(ctx):
    return ctx.registry.get_registered_model(_name(ctx))


def update_model(ctx):
    return ctx.registry.update_registered_model(_name(ctx), str_field(ctx.body, "comment"))


def delete_model(ctx):
    ctx.registry.delete_registered_model(_name(ctx), force=bool(ctx.query.get("force") == "true"))
    return {"deleted": _name(ctx)}


def set_model_tag(ctx):
    ctx.registry.set_registered_model_tag(_name(ctx), ctx.path_params["key"], str_field(ctx.body, "value"))
    return {}


def delete_model_tag(ctx):
    ctx.registry.delete_registered_model_tag(_name(ctx), ctx.path_params["key"])
    return {}


def list_versions(ctx):
    q = ctx.query
    return {"model_versions": ctx.registry.search_model_versions(
        _name(ctx), status=q.get("status") or None, tags=_json_tags(q), include_deleted=q.get("include_deleted") == "true",
        filter_string=q.get("filter") or None)}


def get_version(ctx):
    return ctx.registry.get_model_version(_name(ctx), ctx.path_params["version"])


def update_version(ctx):
    return ctx.registry.update_model_version(_name(ctx), ctx.path_params["version"], str_field(ctx.body, "comment"))


def delete_version(ctx):
    ctx.registry.delete_model_version(_name(ctx), ctx.path_params["version"], force=ctx.query.get("force") == "true")
    return {"deleted": int(ctx.path_params["version"])}


def set_version_tag(ctx):
    ctx.registry.set_model_version_tag(_name(ctx), ctx.path_params["version"], ctx.path_params["key"],
                                       str_field(ctx.body, "value"))
    return {}


def get_alias(ctx):
    return ctx.registry.get_version_by_alias(_name(ctx), ctx.path_params["alias"])


def set_alias(ctx):
    version = ctx.body.get("version")
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise InvalidArgumentError("'version' must be a version number")
    return ctx.registry.set_alias(_name(ctx), ctx.path_params["alias"], version)


def delete_alias(ctx):
    ctx.registry.delete_alias(_name(ctx), ctx.path_params["alias"])
    return {}


def alias_history(ctx):
    return {"moves": ctx.registry.get_alias_history(_name(ctx), ctx.query.get("alias") or None)}
