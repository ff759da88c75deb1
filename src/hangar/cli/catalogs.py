"""``hangar catalogs``: the top level of the catalog.schema.model namespace."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.versions import registry_client


@click.group()
def catalogs():
    """Catalogs: the top level of catalog.schema.model names."""


@catalogs.command()
@click.argument("name")
@click.option("--comment", default=None)
@json_option
def create(name, comment, as_json):
    """Create a catalog."""
    with registry_client() as c:
        cat = c.create_catalog(name, comment)
    if as_json:
        return emit_json(cat)
    click.echo(f"created catalog {cat.name}")


@catalogs.command("list")
@json_option
def list_(as_json):
    """List catalogs."""
    with registry_client() as c:
        found = c.list_catalogs()
    if as_json:
        return emit_json(found)
    table("catalogs", ["name", "comment", "owner", "created (UTC)"],
          [[x.name, x.comment, x.owner, when(x.created_at)] for x in found])


@catalogs.command()
@click.argument("name")
@json_option
def delete(name, as_json):
    """Delete an empty catalog (delete its schemas first)."""
    with registry_client() as c:
        c.delete_catalog(name)
    if as_json:
        return emit_json({"deleted": name})
    click.echo(f"deleted catalog {name}")
