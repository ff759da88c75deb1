"""``hangar schemas``: the middle level of the catalog.schema.model namespace."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.versions import registry_client


@click.group()
def schemas():
    """Schemas: groups of models inside a catalog (catalog.schema)."""


@schemas.command()
@click.argument("full_name", metavar="CATALOG.SCHEMA")
@click.option("--comment", default=None)
@json_option
def create(full_name, comment, as_json):
    """Create a schema in an existing catalog."""
    with registry_client() as c:
        sch = c.create_schema(full_name, comment)
    if as_json:
        return emit_json(dict(full_name=sch.full_name, **_fields(sch)))
    click.echo(f"created schema {sch.full_name}")


def _fields(sch) -> dict:
    return {"catalog_name": sch.catalog_name, "name": sch.name, "comment": sch.comment, "owner": sch.owner,
            "created_at": sch.created_at, "updated_at": sch.updated_at}


@schemas.command("list")
@click.argument("catalog")
@json_option
def list_(catalog, as_json):
    """List the schemas of CATALOG."""
    with registry_client() as c:
        found = c.list_schemas(catalog)
    if as_json:
        return emit_json([dict(full_name=s.full_name, **_fields(s)) for s in found])
    table(f"schemas in {catalog}", ["name", "comment", "owner", "created (UTC)"],
          [[s.full_name, s.comment, s.owner, when(s.created_at)] for s in found])


@schemas.command()
@click.argument("full_name", metavar="CATALOG.SCHEMA")
@json_option
def delete(full_name, as_json):
    """Delete a schema that holds no models."""
    with registry_client() as c:
        c.delete_schema(full_name)
    if as_json:
        return emit_json({"deleted": full_name})
    click.echo(f"deleted schema {full_name}")
