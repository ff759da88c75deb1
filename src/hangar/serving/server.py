"""Run the serving app with uvicorn: one process, or ``workers`` processes sharing one socket.

The listening socket is bound here with TCP_NODELAY (accepted connections inherit it on Linux;
asyncio also sets it per connection). uvicorn handles SIGTERM / SIGINT: it stops accepting,
finishes in-flight requests (up to ``graceful_timeout`` seconds) and returns, so the process
exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

from hangar.errors import require
from hangar.serving.settings import ServingSettings


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def http_protocol():
    """uvicorn's httptools protocol with ``POST /invocations`` on a lane and each response written in
    one piece (``hangar.serving.protocol``); uvicorn's own choice where httptools is missing."""
    try:
        from hangar.serving.protocol import ServingHttpProtocol
    except ImportError:
        return "auto"
    return ServingHttpProtocol


def _exit_zero(signum, frame):
    raise SystemExit(0)


def _exit_quietly_on_signals() -> None:
    """uvicorn re-raises the signal that stopped it once it has shut down; with these handlers
    installed first, that re-raise ends the process with status 0 (as does a signal that comes
    while the model is still loading)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _exit_zero)


def freeze_startup_objects() -> None:
    """Move everything loaded so far (modules, the model) out of the garbage collector's reach:
    a full collection then scans only what requests allocate, instead of stalling the event loop
    for tens of milliseconds over hundreds of thousands of long-lived objects. And collect the
    young generation every 10,000 net allocations instead of 700: a request allocates tens of
    objects that die with it, so at thousands of requests a second the default ran a collection
    every few requests and a full one (≈ 14 ms over what pandas and uvicorn import lazily) a few
    times a second; measured at c=64 behind an endpoint, p99 16 → 8 ms."""
    import gc

    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(10_000, middle, old)


def _follows_alias(model_uri: str) -> bool:
    return str(model_uri).startswith("models:/") and "@" in str(model_uri)


def serve(model_uri: str, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          log_level: str = "info", graceful_timeout: int = 10, settings: ServingSettings | None = None,
          access_log: bool = False, inference_table: str | None = None, auth: bool = False) -> None:
    """Serve ``model_uri`` until SIGTERM / SIGINT. Loads the model once per worker process.

    ``models:/name@alias`` is served as a one-entity endpoint that follows the alias: when the
    alias moves, the new version loads in the background and takes over with no request dropped.
    ``inference_table`` (a folder, or a SQLAlchemy ``URL#table``) records every request; ``auth``
    requires a bearer token whose principal holds EXECUTE on the (registered) model.
    """
    if _follows_alias(model_uri) or inference_table or auth:
        from hangar.serving.endpoint_runtime import serve_endpoint

        return serve_endpoint(None, model_uri=model_uri, settings=settings or ServingSettings(), host=host, port=port,
                              workers=workers, log_level=log_level, graceful_timeout=graceful_timeout,
                              access_log=access_log, inference_table=inference_table, auth=auth)
    uvicorn = require("uvicorn", "serving")
    from hangar.serving.app import MODEL_URI_ENV

    settings = settings or ServingSettings()
    common = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout,
                  lifespan="off", server_header=False, access_log=access_log,
                  proxy_headers=False, http=http_protocol())
    sock = bind_socket(host, port)
    _exit_quietly_on_signals()
    try:
        if workers <= 1:
            import hangar.pyfunc
            from hangar.serving.app import build_app

            app = build_app(hangar.pyfunc.load_model(model_uri), model_uri=model_uri, settings=settings)
            freeze_startup_objects()
            server = uvicorn.Server(uvicorn.Config(app, **common))
            server.run(sockets=[sock])
            return
        from uvicorn.supervisors import Multiprocess

        from hangar.serving.metrics import multiprocess_dir

        os.environ[MODEL_URI_ENV] = model_uri  # the spawned workers read these in create_app()
        os.environ.update(settings.to_env())
        config = uvicorn.Config("hangar.serving.app:create_app", factory=True, workers=workers, **common)
        with multiprocess_dir():  # /metrics answers for all workers (one worker: in-memory metrics, no files)
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()
