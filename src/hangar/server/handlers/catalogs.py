"""Catalogs and schemas."""

from __future__ import annotations

from hangar.governance import privileges as pv
from hangar.server.wire import str_field


def create_catalog(ctx):
    return ctx.registry.create_catalog(str_field(ctx.body, "name", max_len=128), str_field(ctx.body, "comment", False))


def list_catalogs(ctx):
    found = []
    for cat in ctx.registry.list_catalogs():
        ctx.access.prime_owner(pv.CATALOG, cat.name, cat.owner)
        if ctx.access.can_see(pv.CATALOG, cat.name):
            found.append(cat)
    return {"catalogs": found}


def get_catalog(ctx):
    return ctx.registry.get_catalog(ctx.path_params["catalog"])


def delete_catalog(ctx):
    ctx.registry.delete_catalog(ctx.path_params["catalog"])
    return {"deleted": ctx.path_params["catalog"]}


def create_schema(ctx):
    return ctx.registry.create_schema(str_field(ctx.body, "name", max_len=257), str_field(ctx.body, "comment", False))


def list_schemas(ctx):
    found = []
    for sch in ctx.registry.list_schemas(ctx.path_params["catalog"]):
        ctx.access.prime_owner(pv.SCHEMA, sch.full_name, sch.owner)
        if ctx.access.can_see(pv.SCHEMA, sch.full_name):
            found.append(sch)
    return {"schemas": [dict(full_name=s.full_name, **_fields(s)) for s in found]}


def _fields(entity) -> dict:
    from hangar.server.wire import plain

    return plain(entity)


def get_schema(ctx):
    sch = ctx.registry.get_schema(ctx.path_params["schema"])
    return dict(full_name=sch.full_name, **_fields(sch))


def delete_schema(ctx):
    ctx.registry.delete_schema(ctx.path_params["schema"])
    return {"deleted": ctx.path_params["schema"]}
