"""Run the server with uvicorn on a socket bound with TCP_NODELAY (inherited by accepted sockets),
one process or ``workers`` processes sharing it. Bootstrap happens once, in the parent."""

from __future__ import annotations

import os
import sys

from hangar.errors import require
from hangar.server.config import CONFIG_ENV, ServerConfig


def prepare(config: ServerConfig, out=sys.stderr, keep: bool = False):
    """Migrate the store and, with auth on, create the first admin (printing only the token file's path).
    With ``keep``, the opened services are returned for a one-process server to use (else closed)."""
    from hangar.server.app import open_services

    services = open_services(config)
    ok = False
    try:
        if config.auth:
            from hangar.server.bootstrap import bootstrap

            path = bootstrap(services.engine, config.home_path)
            if path is not None:
                print(f"Created the administrator 'admin'; its token is in {path} (readable only by you). "
                      f"Log in with: hangar auth login --server http://{config.host}:{config.port} --token-file {path}",
                      file=out, flush=True)
        else:
            print(f"Authentication is OFF: every request acts as an administrator ({config.host}:{config.port})",
                  file=out, flush=True)
        ok = True
    finally:
        if not (ok and keep):
            services.tracking.close()
    return services if keep else None


def run(config: ServerConfig) -> None:
    uvicorn = require("uvicorn", "serving")
    from hangar.server.protocol import HangarHttpProtocol
    from hangar.serving.server import _exit_quietly_on_signals, bind_socket

    services = prepare(config, keep=config.workers <= 1)
    common = dict(host=config.host, port=config.port, log_level=config.log_level, lifespan="off",
                  server_header=False, timeout_graceful_shutdown=10, http=HangarHttpProtocol)
    sock = bind_socket(config.host, config.port)
    _exit_quietly_on_signals()
    try:
        if config.workers <= 1:
            from hangar.server.app import build_app

            server = uvicorn.Server(uvicorn.Config(build_app(config, services), **common))
            server.run(sockets=[sock])
            return
        from uvicorn.supervisors import Multiprocess

        os.environ[CONFIG_ENV] = config.to_env()
        uv_config = uvicorn.Config("hangar.server.app:create_app", factory=True, workers=config.workers, **common)
        Multiprocess(uv_config, sockets=[sock]).run()
    finally:
        sock.close()
