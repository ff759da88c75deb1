"""``hangar auth``: log in to a server, and manage your tokens."""

from __future__ import annotations

import click

from hangar.cli.output import emit_json, json_option, table, when
from hangar.cli.remote_common import client, server_option


@click.group()
def auth():
    """Log in to a Hangar server; create, list and revoke your tokens."""


@auth.command()
@click.option("--server", required=True, help="Server URL, e.g. http://127.0.0.1:5000")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the token from this file (e.g. the bootstrap admin token file).")
@json_option
def login(server, token_file, as_json):
    """Check a token against SERVER and store both in HANGAR_HOME/credentials.json (mode 0600).

    The token is read from --token-file, HANGAR_TOKEN, or asked for (not echoed)."""
    from pathlib import Path

    from hangar.config import Settings
    from hangar.remote import ServerClient, server_url, write_credentials

    settings = Settings.from_env()
    if token_file:
        token = Path(token_file).read_text().strip()
    else:
        token = settings.token or click.prompt("Token", hide_input=True)
    url = server_url(settings, server)
    me = ServerClient(url, token).request("GET", "/auth/whoami")
    path = write_credentials(settings, url, token)
    if as_json:
        return emit_json({"server": url, "name": me["name"], "credentials": str(path)})
    click.echo(f"logged in to {url} as {me['name']}; credentials in {path}")


@auth.command()
@server_option
@json_option
def whoami(server, as_json):
    """Who the server says you are, and your groups."""
    me = client(server).request("GET", "/auth/whoami")
    if as_json:
        return emit_json(me)
    click.echo(f"{me['name']} ({me['kind']})" + (f", in {', '.join(me['groups'])}" if me["groups"] else ""))


@auth.group()
def token():
    """Your personal access tokens."""


@token.command("create")
@click.option("--name", default="cli", show_default=True)
@click.option("--lifetime-days", type=float, default=90, show_default=True)
@click.option("--no-expiry", is_flag=True, help="A token that never expires.")
@click.option("--for", "principal", default=None, help="Create it for another principal (needs MANAGE on the metastore).")
@server_option
@json_option
def token_create(name, lifetime_days, no_expiry, principal, server, as_json):
    """Create a token; it is printed once and never stored in clear by the server."""
    body = {"name": name, "lifetime_days": None if no_expiry else lifetime_days}
    path = f"/principals/{client(server).quote(principal)}/tokens" if principal else "/auth/tokens"
    made = client(server).request("POST", path, body)
    if as_json:
        return emit_json(made)
    info = made["info"]
    click.echo(f"token {info['id']} for {info['principal']} (expires {when(info['expires_at'])}):")
    click.echo(made["token"])


@token.command("list")
@server_option
@json_option
def token_list(server, as_json):
    """Your tokens (ids and dates, never the secrets)."""
    found = client(server).request("GET", "/auth/tokens")["tokens"]
    if as_json:
        return emit_json(found)
    table("tokens", ["id", "name", "created (UTC)", "expires (UTC)", "revoked (UTC)", "last used (UTC)"],
          [[t["id"], t["name"], when(t["created_at"]), when(t["expires_at"]), when(t["revoked_at"]),
            when(t["last_used_at"])] for t in found])


@token.command("revoke")
@click.argument("token_id")
@server_option
@json_option
def token_revoke(token_id, server, as_json):
    """Revoke one of your tokens by id."""
    c = client(server)
    c.request("DELETE", f"/auth/tokens/{c.quote(token_id)}")
    if as_json:
        return emit_json({"revoked": token_id})
    click.echo(f"revoked token {token_id}")
