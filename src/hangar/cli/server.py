"""``hangar server``: the REST API over the stores, with authentication and grants."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--store", "store_uri", default=None, help="Store URI (default: HANGAR_TRACKING_URI or HANGAR_HOME).")
@click.option("--artifacts", "artifact_root", default=None,
              help="Artifact root (default: HANGAR_ARTIFACT_ROOT or HANGAR_HOME/artifacts).")
@click.option("--no-auth", is_flag=True, help="Turn authentication off: every caller is an administrator.")
@click.option("--insecure", is_flag=True, help="Allow --no-auth on an address other machines can reach.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def server(host, port, workers, store_uri, artifact_root, no_auth, insecure, log_level):
    """Serve the REST API (/api/v1) with authentication on.

    On the first start the administrator 'admin' is created and its token written to a file
    under HANGAR_HOME readable only by you (the path is printed). --no-auth is refused on an
    address other than loopback unless --insecure is also given.
    """
    from hangar.config import Settings
    from hangar.errors import require
    from hangar.governance.authn import check_auth_choice
    from hangar.server.config import ServerConfig

    require("starlette", "serving")
    require("uvicorn", "serving")
    from hangar.server.run import run

    check_auth_choice(host, no_auth, insecure)
    if store_uri and "://" not in store_uri and not store_uri.startswith("sqlite:"):
        from pathlib import Path

        store_uri = f"sqlite:///{Path(store_uri).expanduser().absolute()}"
    config = ServerConfig.from_settings(Settings.from_env(), store_uri=store_uri, artifact_root=artifact_root, host=host,
                                        port=port, workers=workers, auth=not no_auth, log_level=log_level)
    run(config)
