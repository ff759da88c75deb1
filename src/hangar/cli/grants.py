"""``hangar grants``: privileges on securables (catalog tree, experiments, endpoints)."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.remote_common import client, server_option

_TYPES = click.Choice(["metastore", "catalog", "schema", "registered_model", "experiment", "endpoint"])


def _path(c, securable_type, securable) -> str:
    return f"/grants/{securable_type}/{c.quote(securable)}"


@click.group()
def grants():
    """Grant, revoke and list privileges (grants inherit downward: catalog → schema → model)."""


@grants.command()
@click.argument("securable_type", type=_TYPES)
@click.argument("securable")
@click.argument("principal")
@click.argument("privilege")
@server_option
@json_option
def add(securable_type, securable, principal, privilege, server, as_json):
    """Grant PRIVILEGE on SECURABLE_TYPE SECURABLE to PRINCIPAL (e.g. registered_model main.default.m alice EXECUTE)."""
    c = client(server)
    made = c.request("POST", _path(c, securable_type, securable), {"principal": principal, "privilege": privilege.upper()})
    if as_json:
        return emit_json(made)
    click.echo(f"granted {privilege.upper()} on {securable_type} {securable} to {principal}")


@grants.command()
@click.argument("securable_type", type=_TYPES)
@click.argument("securable")
@click.argument("principal")
@click.argument("privilege")
@server_option
def remove(securable_type, securable, principal, privilege, server):
    """Revoke PRIVILEGE on SECURABLE_TYPE SECURABLE from PRINCIPAL."""
    c = client(server)
    c.request("DELETE", _path(c, securable_type, securable), query={"principal": principal, "privilege": privilege.upper()})
    click.echo(f"revoked {privilege.upper()} on {securable_type} {securable} from {principal}")


@grants.command("list")
@click.argument("securable_type", type=_TYPES, required=False)
@click.argument("securable", required=False)
@server_option
@json_option
def list_(securable_type, securable, server, as_json):
    """Grants made on a securable (needs MANAGE on it); with no securable, your own grants."""
    c = client(server)
    if securable_type is None:
        found = c.request("GET", "/auth/grants")["grants"]
    else:
        if securable is None:
            raise click.UsageError("Name the securable too (the metastore is named 'metastore')")
        found = c.request("GET", _path(c, securable_type, securable))["grants"]
    if as_json:
        return emit_json(found)
    table("grants", ["securable type", "securable", "principal", "privilege", "granted by", "granted (UTC)"],
          [[g["securable_type"], g["securable"], g["principal"], g["privilege"], g["granted_by"], when(g["granted_at"])]
           for g in found])
