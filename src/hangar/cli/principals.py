"""``hangar principals``: users, groups and service principals on a server."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.remote_common import client, server_option


@click.group()
def principals():
    """Users, groups (nested) and service principals."""


@principals.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["user", "group", "service_principal"]), default="user", show_default=True)
@server_option
@json_option
def create(name, kind, server, as_json):
    """Create a principal (needs MANAGE on the metastore)."""
    made = client(server).request("POST", "/principals", {"name": name, "kind": kind})
    if as_json:
        return emit_json(made)
    click.echo(f"created {kind} {name}")


@principals.command("list")
@click.option("--kind", type=click.Choice(["user", "group", "service_principal"]), default=None)
@server_option
@json_option
def list_(kind, server, as_json):
    """List principals."""
    found = client(server).request("GET", "/principals", query={"kind": kind})["principals"]
    if as_json:
        return emit_json(found)
    table("principals", ["name", "kind", "disabled", "created by", "created (UTC)"],
          [[p["name"], p["kind"], "yes" if p["disabled"] else "no", p["created_by"], when(p["created_at"])]
           for p in found])


@principals.command("add-member")
@click.argument("group")
@click.argument("member")
@server_option
def add_member(group, member, server):
    """Put MEMBER (a user, service principal or group) into GROUP."""
    c = client(server)
    c.request("POST", f"/principals/{c.quote(group)}/members", {"member": member})
    click.echo(f"{member} is now in {group}")


@principals.command("remove-member")
@click.argument("group")
@click.argument("member")
@server_option
def remove_member(group, member, server):
    """Take MEMBER out of GROUP."""
    c = client(server)
    c.request("DELETE", f"/principals/{c.quote(group)}/members/{c.quote(member)}")
    click.echo(f"{member} is no longer in {group}")
