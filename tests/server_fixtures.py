"""A real Hangar server on loopback, in a thread of the test process (uvicorn, real store)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx


class InThreadServer:
    def __init__(self, config):
        import uvicorn

        from hangar.server.app import build_app
        from hangar.server.protocol import HangarHttpProtocol
        from hangar.serving.server import bind_socket

        self.app = build_app(config)
        self.sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False,
                                                    http=HangarHttpProtocol))  # as hangar server runs it
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-thread server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.app.state.services.tracking.close()


@dataclass
class Hub:
    """A running server, its store, and an admin to set things up with."""

    url: str
    engine: object
    admin_token: str
    home: object

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)

    def admin(self) -> httpx.Client:
        return self.client(self.admin_token)

    def user(self, name: str, kind: str = "user") -> str:
        """Create a principal with no grants; its token."""
        from hangar.governance import principals, tokens

        principals.create(self.engine, name, kind, actor="test")
        return tokens.create(self.engine, name, "t", actor="test").token


def start_hub(store_uri: str, tmp_path):
    from hangar.server.bootstrap import bootstrap
    from hangar.server.config import ServerConfig

    home = tmp_path / "server-home"
    config = ServerConfig(store_uri=store_uri, artifact_root=str(tmp_path / "artifacts"), home=str(home))
    server = InThreadServer(config)
    engine = server.app.state.services.engine
    path = bootstrap(engine, home)
    return server, Hub(server.url, engine, path.read_text().strip(), home)
