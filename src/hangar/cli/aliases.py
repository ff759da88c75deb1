"""``hangar aliases``: point names such as @champion at versions, and see how they moved."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.versions import registry_client, show_version


@click.group()
def aliases():
    """Aliases (@champion, @challenger, ...): movable names for versions, with their history."""


@aliases.command("set")
@click.argument("name")
@click.argument("alias")
@click.argument("version")
@json_option
def set_(name, alias, version, as_json):
    """Point ALIAS at VERSION of NAME (a READY version), atomically."""
    with registry_client() as c:
        move = c.set_alias(name, alias, version)
    if as_json:
        return emit_json(move)
    was = f" (was version {move.previous_version})" if move.previous_version is not None else ""
    click.echo(f"{move.full_name}@{move.alias} -> version {move.version}{was}")


@aliases.command()
@click.argument("name")
@click.argument("alias")
@json_option
def delete(name, alias, as_json):
    """Remove ALIAS from NAME (the version stays)."""
    with registry_client() as c:
        full = c.get_registered_model(name).full_name
        c.delete_alias(full, alias)
    if as_json:
        return emit_json({"deleted": {"name": full, "alias": alias}})
    click.echo(f"deleted {full}@{alias}")


@aliases.command()
@click.argument("name")
@click.argument("alias")
@json_option
def get(name, alias, as_json):
    """Show the version ALIAS points at."""
    with registry_client() as c:
        mv = c.get_version_by_alias(name, alias)
    if as_json:
        return emit_json(mv)
    show_version(mv)


def _v(version) -> str:
    return "-" if version is None else str(version)


@aliases.command()
@click.argument("name")
@click.argument("alias", required=False)
@json_option
def history(name, alias, as_json):
    """Every move of NAME's aliases (or of ALIAS only), oldest first."""
    with registry_client() as c:
        full = c.get_registered_model(name).full_name
        moves = c.get_alias_history(full, alias)
    if as_json:
        return emit_json(moves)
    table(f"alias history of {full}" + (f"@{alias}" if alias else ""), ["when (UTC)", "actor", "alias", "move"],
          [[when(m.at), m.actor, "@" + m.alias,
            f"{_v(m.previous_version)} → {_v(m.version) if m.version is not None else '(removed)'}"] for m in moves])
