"""``hangar server``: the REST API over the stores, with authentication and grants."""

from __future__ import annotations

import re

import click

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


class ByteSize(click.ParamType):
    """A size such as ``512MiB``, ``2GB`` or ``1048576`` (bytes)."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match and _UNITS.get(match[2].lower())
        if not match or unit is None or int(float(match[1]) * unit) < 1:
            self.fail(f"{value!r} is not a size; give a positive number of bytes, or one with a unit such as "
                      "512MiB, 2GB or 20GiB", param, ctx)
        return int(float(match[1]) * unit)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option("--store", "store_uri", default=None, help="Store URI (default: HANGAR_TRACKING_URI or HANGAR_HOME).")
@click.option("--artifacts", "artifact_root", default=None,
              help="Artifact root (default: HANGAR_ARTIFACT_ROOT or HANGAR_HOME/artifacts).")
@click.option("--no-auth", is_flag=True, help="Turn authentication off: every caller is an administrator.")
@click.option("--insecure", is_flag=True, help="Allow --no-auth on an address other machines can reach.")
@click.option("--max-upload", "max_upload", default="20GiB", show_default=True, type=ByteSize(),
              help="Largest artifact file one upload may carry (larger ones get 413).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def server(host, port, workers, store_uri, artifact_root, no_auth, insecure, max_upload, log_level):
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
                                        port=port, workers=workers, auth=not no_auth, log_level=log_level,
                                        max_upload_bytes=max_upload)
    run(config)
