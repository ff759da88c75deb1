"""What the commands that talk to a Hangar server share: ``--server`` and the client."""

from __future__ import annotations

import click

server_option = click.option("--server", default=None,
                             help="Server URL (default: HANGAR_TRACKING_URI if http(s), else the one logged in to).")


def client(server: str | None):
    from hangar.remote import ServerClient

    return ServerClient.from_settings(server=server)
