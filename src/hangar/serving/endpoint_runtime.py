"""Running an endpoint: load what it serves, follow its aliases, and serve it with uvicorn.

``hangar endpoints serve NAME`` reads the endpoint from the metadata store, installs its secrets
in this process's environment (from the variables or files the config names), pins each served
entity to a version, loads it, and serves the ``EndpointApp``. A watcher thread follows the
aliases (polling, plus PostgreSQL LISTEN/NOTIFY) and swaps a moved entity in once its new
version has loaded. Each served version gets a lineage edge version → endpoint.

With ``--workers N`` every worker process does all of this itself (uvicorn's factory), so each
follows the aliases on its own; rate limits are per worker unless the config names Redis.
"""

from __future__ import annotations

import logging
import os

from hangar.serving.endpoint_app import EndpointApp, EntitySlot, Served

log = logging.getLogger("hangar.serving")
ENDPOINT_ENV = "HANGAR_SERVE_ENDPOINT"   # read by create_endpoint_app() in each worker
_SINGLE_URI_ENV = "HANGAR_SERVE_FOLLOW_URI"
_LOG_LEVEL_ENV = "HANGAR_SERVE_LOG_LEVEL"
_TABLE_ENV = "HANGAR_SERVE_INFERENCE_TABLE"
_AUTH_ENV = "HANGAR_SERVE_AUTH"


def log_to_stderr(level: str = "info") -> None:
    """Hangar's own serving messages (alias switches, load failures) beside uvicorn's."""
    logger = logging.getLogger("hangar")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def _settings_for(entity, limits):
    from hangar.serving.settings import ServingSettings

    return ServingSettings(batching=entity.batching, max_batch_size=entity.max_batch_size, max_wait_ms=entity.max_wait_ms,
                           max_queue=limits.max_queue, request_timeout=limits.request_timeout_s,
                           max_body_bytes=limits.max_payload_bytes, model_threads=entity.threads,
                           inline_max_ms=entity.inline_max_ms)


def _pin(model_uri: str, registry) -> tuple[str, str, tuple[str, str] | None, int | None]:
    """``(exact URI, version label, (model, alias) when followed, version number)``."""
    from hangar.uri import is_remote_uri, parse_model_uri

    if not is_remote_uri(model_uri):
        return model_uri, os.path.abspath(model_uri), None, None
    parsed = parse_model_uri(model_uri)
    if parsed.scheme == "models" and parsed.name and parsed.alias:
        mv = registry.get_version_by_alias(parsed.name, parsed.alias)
        return (f"models:/{mv.full_name}/{mv.version}", f"{mv.full_name}/{mv.version}", (mv.full_name, parsed.alias),
                mv.version)
    if parsed.scheme == "models" and parsed.name and parsed.version:
        mv = registry.get_model_version(parsed.name, parsed.version)
        return model_uri, f"{mv.full_name}/{mv.version}", None, mv.version
    return model_uri, model_uri, None, None


class EndpointRuntime:
    """Everything one worker process holds for an endpoint."""

    def __init__(self, name: str, config, *, tracking_uri: str | None = None, record_lineage: bool = True,
                 auth: tuple[str, str, str] | None = None):
        self.name = name
        self.config = config
        self.auth = auth  # (securable type, securable, privilege) every caller needs; None: no auth
        self.tracking_uri = tracking_uri
        self.record_lineage = record_lineage
        self.watcher = None
        self.app: EndpointApp | None = None

    def _registry(self):
        from hangar.catalog.fluent import registry

        return registry()

    def load_entity(self, entity, model_uri: str, label: str) -> Served:
        import hangar.pyfunc
        from hangar.serving.app import build_app

        model = hangar.pyfunc.load_model(model_uri)
        app = build_app(model, model_uri=model_uri, settings=_settings_for(entity, self.config.limits))
        self._lineage(label)
        return Served(app=app, version=label, model_uri=model_uri)

    def _lineage(self, label: str) -> None:
        if not self.record_lineage or "/" not in label or os.path.isabs(label):
            return
        try:
            from hangar.catalog import lineage
            from hangar.store.transactions import write_transaction

            with write_transaction(self._registry().engine) as conn:
                lineage.add_edge(conn, "model_version", label, "endpoint", self.name)
        except Exception:  # noqa: BLE001 - lineage is bookkeeping; serving goes on
            log.warning("Could not record lineage %s → endpoint %s", label, self.name, exc_info=True)

    def build(self) -> EndpointApp:
        from hangar.__about__ import __version__
        from hangar.monitoring.inference_table import open_inference_table
        from hangar.serving.alias_watch import AliasWatcher, FollowedAlias, listen_url_for
        from hangar.serving.rate_limit import make_rate_limiter
        from hangar.serving.secrets import install_secrets
        from hangar.serving.traffic import TrafficSplit

        cfg = self.config
        if cfg.secrets:
            names = install_secrets(cfg.secrets)
            log.info("Endpoint %s: secrets installed: %s", self.name, ", ".join(names))
        registry = self._registry()
        slots, followed = [], []
        for entity in cfg.served_entities:
            uri, label, follows, version = _pin(entity.model, registry)
            slots.append(EntitySlot(entity, self.load_entity(entity, uri, label)))
            if follows is not None:
                followed.append(FollowedAlias(entity.name, follows[0], follows[1], version))
        limiter = make_rate_limiter(cfg.limits.rate_per_minute, cfg.rate_limit_redis, prefix=f"hangar:rl:{self.name}")
        table = open_inference_table(cfg.inference_table) if cfg.inference_table else None
        by_name = {s.entity.name: s for s in slots}

        def on_move(key: str, version: int) -> None:
            slot = by_name[key]
            target = next(f for f in followed if f.key == key)
            uri = f"models:/{target.model}/{version}"
            served = self.load_entity(slot.entity, uri, f"{target.model}/{version}")
            slot.swap(served, grace_s=cfg.limits.request_timeout_s + 5)
            if self.app is not None:
                self.app.metrics.swaps.labels(key).inc()

        if followed:
            engine = getattr(registry, "engine", None)  # None through a Hangar server: polling only
            listen = listen_url_for(engine.url.render_as_string(hide_password=False)) if engine is not None else None
            self.watcher = AliasWatcher(followed, lambda m, a: registry.get_version_by_alias(m, a).version, on_move,
                                        poll_s=cfg.alias_poll_seconds, listen_url=listen)
            self.watcher.start()
        authorizer = None
        if self.auth is not None:
            from hangar.errors import InvalidArgumentError
            from hangar.serving.auth import ServingAuthorizer

            if getattr(registry, "engine", None) is None:
                raise InvalidArgumentError("Serving with auth checks tokens and grants in the metadata store: set "
                                           "HANGAR_TRACKING_URI to the store (sqlite:///... or postgresql://...), not "
                                           "a Hangar server URL, or serve with --no-auth on loopback")
            authorizer = ServingAuthorizer(registry.engine, *self.auth)
        self.app = EndpointApp(self.name, slots, split=TrafficSplit([e.weight for e in cfg.served_entities]),
                               limiter=limiter, table=table, on_shutdown=self.stop, hangar_version=__version__,
                               authorizer=authorizer)
        return self.app

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None


def single_model_config(model_uri: str, settings, inference_table: str | None = None):
    """``hangar serve models:/m@alias`` (or with ``--inference-table``): a one-entity endpoint."""
    from hangar.batch.sources import is_sql_url
    from hangar.serving.endpoint_config import EndpointConfig, InferenceTableConfig, Limits, ServedEntity

    entity = ServedEntity(name="model", model=model_uri, batching=settings.batching,
                          max_batch_size=settings.max_batch_size, max_wait_ms=settings.max_wait_ms,
                          threads=settings.model_threads, inline_max_ms=settings.inline_max_ms)
    limits = Limits(max_payload_bytes=settings.max_body_bytes, request_timeout_s=settings.request_timeout,
                    max_queue=settings.max_queue)
    table = None
    if inference_table:
        table = InferenceTableConfig(sql=inference_table) if is_sql_url(inference_table) \
            else InferenceTableConfig(parquet=inference_table)
    return EndpointConfig(served_entities=(entity,), limits=limits, inference_table=table)


def endpoint_auth(name: str) -> tuple[str, str, str]:
    return ("endpoint", name, "QUERY")


def model_auth(model_uri: str) -> tuple[str, str, str]:
    """``hangar serve --auth``: callers need EXECUTE on the registered model (and the USE
    privileges above it), as loading it would."""
    from hangar.errors import InvalidArgumentError
    from hangar.uri import is_remote_uri, parse_model_uri

    parsed = parse_model_uri(model_uri) if is_remote_uri(model_uri) else None
    if parsed is None or parsed.scheme != "models" or not parsed.name:
        raise InvalidArgumentError("--auth needs a registered model (models:/catalog.schema.model@alias or /N): its "
                                   "EXECUTE grants decide who may call it")
    from hangar.catalog import names

    return ("registered_model", names.model_name(parsed.name)[0], "EXECUTE")


def create_endpoint_app() -> EndpointApp:
    """Factory for ``--workers N``: each worker reads the endpoint (or the followed URI) itself."""
    from hangar.serving.settings import ServingSettings

    log_to_stderr(os.environ.get(_LOG_LEVEL_ENV, "info"))
    name = os.environ.get(ENDPOINT_ENV)
    if name:
        from hangar.serving.endpoint_store import endpoint_store

        auth = endpoint_auth(name) if os.environ.get(_AUTH_ENV) == "1" else None
        return EndpointRuntime(name, endpoint_store().get(name).config, auth=auth).build()
    uri = os.environ[_SINGLE_URI_ENV]
    config = single_model_config(uri, ServingSettings.from_env(), os.environ.get(_TABLE_ENV) or None)
    auth = model_auth(uri) if os.environ.get(_AUTH_ENV) == "1" else None
    app = EndpointRuntime("serve", config, record_lineage=False, auth=auth).build()
    from hangar.serving.server import freeze_startup_objects

    freeze_startup_objects()
    return app


def serve_endpoint(name: str | None, *, model_uri: str | None = None, settings=None, host: str = "127.0.0.1",
                   port: int = 8080, workers: int = 1, log_level: str = "info", graceful_timeout: int = 30,
                   access_log: bool = False, inference_table: str | None = None, auth: bool = False) -> None:
    """Serve endpoint ``name`` (or one alias-following ``model_uri``) until SIGTERM / SIGINT.

    On SIGTERM uvicorn stops accepting, finishes in-flight requests, then runs the lifespan
    shutdown, which stops the alias watcher and drains the inference table to its store."""
    from hangar.errors import require
    from hangar.serving.server import _exit_quietly_on_signals, bind_socket, freeze_startup_objects

    uvicorn = require("uvicorn", "serving")
    if auth and name is None:
        model_auth(model_uri)  # refuse an unregistered model before binding anything
    common = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout,
                  lifespan="on", server_header=False, access_log=access_log,
                  proxy_headers=False)
    sock = bind_socket(host, port)
    _exit_quietly_on_signals()
    log_to_stderr(log_level)
    os.environ[_LOG_LEVEL_ENV] = log_level
    os.environ[_AUTH_ENV] = "1" if auth else "0"
    try:
        if workers <= 1:
            if name is not None:
                from hangar.serving.endpoint_store import endpoint_store

                runtime = EndpointRuntime(name, endpoint_store().get(name).config,
                                          auth=endpoint_auth(name) if auth else None)
            else:
                runtime = EndpointRuntime("serve", single_model_config(model_uri, settings, inference_table),
                                          record_lineage=False, auth=model_auth(model_uri) if auth else None)
            app = runtime.build()
            freeze_startup_objects()
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])
            return
        from uvicorn.supervisors import Multiprocess

        if name is not None:
            os.environ[ENDPOINT_ENV] = name
        else:
            os.environ[_SINGLE_URI_ENV] = model_uri
            os.environ[_TABLE_ENV] = inference_table or ""
            os.environ.update(settings.to_env())
        config = uvicorn.Config("hangar.serving.endpoint_runtime:create_endpoint_app", factory=True, workers=workers,
                                **common)
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()

