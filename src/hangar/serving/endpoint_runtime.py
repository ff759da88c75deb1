"""Running an endpoint: load what it serves, follow its aliases, and serve it with uvicorn.

``hangar endpoints serve NAME`` reads the endpoint from the metadata store, installs its secrets
in this process's environment (from the variables or files the config names), pins each served
entity to a version, loads it, and serves the ``EndpointApp``. A watcher thread follows the
aliases (polling, plus PostgreSQL LISTEN/NOTIFY) and swaps a moved entity in once its new
version has loaded. The same thread notices ``hangar endpoints update`` (the stored revision
changed) and applies the new config live: new or changed entities load in the background, then
the whole routing switches at once, then what is no longer served is drained and closed; a
config that cannot be applied leaves the old one serving (``EndpointRuntime.apply``). A deleted
endpoint answers 404 until it is created again. Each served version gets a lineage edge
version → endpoint.

With ``--workers N`` every worker process does all of this itself (uvicorn's factory), so each
follows the aliases and the config on its own; rate limits are per worker unless the config
names Redis; ``/metrics`` adds up all workers (``metrics.multiprocess_dir``).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from hangar.serving.alias_watch import FollowedAlias
from hangar.serving.endpoint_app import EndpointApp, EndpointMetrics, EntitySlot, Routing, Served, close_app, retire_later
from hangar.serving.endpoint_reload import entity_settings

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


class _Retirements:
    """Old entity apps, tables and limiters closed once their in-flight requests are done (after
    a grace period), or at once on shutdown so that a replaced inference table still drains."""

    def __init__(self):
        self._pending: dict[object, tuple] = {}
        self._lock = threading.Lock()

    def later(self, grace_s: float, fn, *args) -> None:
        key = object()
        with self._lock:
            self._pending[key] = (fn, args)
        retire_later(grace_s, self._run, key)

    def _run(self, key) -> None:
        with self._lock:
            item = self._pending.pop(key, None)
        if item is not None:
            item[0](*item[1])

    def now(self) -> None:
        for key in list(self._pending):
            try:
                self._run(key)
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.warning("Closing a replaced endpoint part failed", exc_info=True)


class EndpointRuntime:
    """Everything one worker process holds for an endpoint.

    With a ``store`` (``hangar endpoints serve``), the watcher thread checks the stored config at
    every poll (and on PostgreSQL at each NOTIFY) and applies an update while serving: see
    ``apply`` and ``endpoint_reload``. Without one (``hangar serve``) the config is fixed.
    """

    def __init__(self, name: str, config, *, tracking_uri: str | None = None, record_lineage: bool = True,
                 auth: tuple[str, str, str] | None = None, store=None, stamp: tuple[int, int] | None = None):
        self.name = name
        self.config = config
        self.auth = auth  # (securable type, securable, privilege) every caller needs; None: no auth
        self.tracking_uri = tracking_uri
        self.record_lineage = record_lineage
        self.store = store      # an EndpointStore to follow the stored config; None: the config is fixed
        self._stamp = stamp     # (created_at, revision) of the config in force
        self._failed: tuple | None = None  # (stamp, next try, failures) of an update that could not be applied
        self._retirements = _Retirements()
        self.watcher = None
        self.metrics: EndpointMetrics | None = None
        self.app: EndpointApp | None = None

    def _registry(self):
        from hangar.catalog.fluent import registry

        return registry()

    def load_entity(self, entity, model_uri: str, label: str, limits=None) -> Served:
        import hangar.pyfunc

        model = hangar.pyfunc.load_model(model_uri)
        served = self._build_app(entity, limits or self.config.limits, model, model_uri, label)
        self._lineage(label)
        return served

    def _build_app(self, entity, limits, model, model_uri: str, label: str) -> Served:
        from hangar.serving.app import build_app

        if self.metrics is None:
            self.metrics = EndpointMetrics()
        app = build_app(model, model_uri=model_uri, settings=entity_settings(entity, limits),
                        metrics_factory=self.metrics.for_entity(entity.name))
        return Served(app=app, version=label, model_uri=model_uri, model=model)

    def _load_slot(self, entity, limits, registry) -> tuple[EntitySlot, FollowedAlias | None]:
        uri, label, follows, version = _pin(entity.model, registry)
        slot = EntitySlot(entity, self.load_entity(entity, uri, label, limits))
        return slot, (FollowedAlias(entity.name, follows[0], follows[1], version) if follows else None)

    def _lineage(self, label: str) -> None:
        if not self.record_lineage or "/" not in label or os.path.isabs(label):
            return
        try:  # the store's own transaction, or POST /lineage/edges through a Hangar server
            self._registry().add_lineage_edge("model_version", label, "endpoint", self.name)
        except Exception:  # noqa: BLE001 - lineage is bookkeeping; serving goes on
            log.warning("Could not record lineage %s → endpoint %s", label, self.name, exc_info=True)

    def build(self) -> EndpointApp:
        from hangar.__about__ import __version__
        from hangar.monitoring.inference_table import open_inference_table
        from hangar.serving.alias_watch import AliasWatcher, listen_url_for
        from hangar.serving.rate_limit import make_rate_limiter
        from hangar.serving.secrets import install_secrets
        from hangar.serving.traffic import TrafficSplit

        cfg = self.config
        if cfg.secrets:
            names = install_secrets(cfg.secrets)
            log.info("Endpoint %s: secrets installed: %s", self.name, ", ".join(names))
        registry = self._registry()
        self.metrics = self.metrics or EndpointMetrics()
        slots, followed = [], []
        for entity in cfg.served_entities:
            slot, follows = self._load_slot(entity, cfg.limits, registry)
            slots.append(slot)
            if follows is not None:
                followed.append(follows)
        limiter = make_rate_limiter(cfg.limits.rate_per_minute, cfg.rate_limit_redis, prefix=f"hangar:rl:{self.name}")
        table = open_inference_table(cfg.inference_table) if cfg.inference_table else None
        routing = Routing(tuple(slots), TrafficSplit([e.weight for e in cfg.served_entities]), limiter, table, cfg,
                          revision=self._stamp[1] if self._stamp else None)
        authorizer = None
        if self.auth is not None:
            from hangar.serving.auth import ServingAuthorizer

            server = getattr(registry, "server", None)
            authorizer = ServingAuthorizer.through_server(server.url, *self.auth) if server is not None \
                else ServingAuthorizer(registry.engine, *self.auth)
        self.app = EndpointApp(self.name, routing, metrics=self.metrics, on_shutdown=self.stop,
                               hangar_version=__version__, authorizer=authorizer)
        if followed or self.store is not None:
            engine = getattr(registry, "engine", None)  # None through a Hangar server: polling only
            listen = listen_url_for(engine.url.render_as_string(hide_password=False)) if engine is not None else None
            self.watcher = AliasWatcher(followed, lambda m, a: registry.get_version_by_alias(m, a).version,
                                        self.on_move, poll_s=cfg.alias_poll_seconds, listen_url=listen,
                                        on_poll=self.check_config if self.store is not None else None)
            self.watcher.start()
        return self.app

    # -- alias moves and config updates: both run in the watcher thread, one at a time -------------
    def on_move(self, key: str, version: int) -> None:
        routing = self.app.routing
        slot = routing.by_name(key)
        target = next((t for t in self.watcher.targets if t.key == key), None) if self.watcher else None
        if slot is None or target is None or routing.config is None:
            return
        served = self.load_entity(slot.entity, f"models:/{target.model}/{version}", f"{target.model}/{version}",
                                  routing.config.limits)
        slot.swap(served, grace_s=routing.config.limits.request_timeout_s + 5)
        self.metrics.swaps.labels(key).inc()

    def check_config(self) -> None:
        """Apply the stored config if it changed since the last look (the watcher calls this)."""
        from hangar.errors import HangarError, NotFoundError

        try:
            stamp = self.store.stamp(self.name)
        except Exception as exc:  # noqa: BLE001 - a store hiccup: keep serving what we have
            log.warning("Endpoint %s: cannot read its config from the store (%s); still serving what it served",
                        self.name, type(exc).__name__)
            return
        if stamp == self._stamp:
            return
        if stamp is None:
            return self.on_deleted()
        failed = self._failed
        if failed is not None and failed[0] == stamp and time.monotonic() < failed[1]:
            return  # a failed update is retried with a growing pause, not at every poll
        try:
            try:
                endpoint = self.store.get(self.name)  # parses and validates the stored config
            except NotFoundError:
                return self.on_deleted()  # deleted since the stamp was read
            stamp = (endpoint.created_at, endpoint.revision)
            self.apply(endpoint.config, stamp)  # a missing model version is a bad update, not a deletion
        except Exception as exc:  # noqa: BLE001 - a bad update leaves the old config serving
            failures = failed[2] + 1 if failed is not None and failed[0] == stamp else 1
            self._failed = (stamp, time.monotonic() + min(self.watcher_poll_s * 2 ** failures, 300.0), failures)
            if failures == 1:
                self.metrics.reloads.labels("failed").inc()
                reason = exc.message if isinstance(exc, HangarError) else f"{type(exc).__name__}: {exc}"
                log.error("Endpoint %s: revision %s of its config cannot be applied; still serving %s: %s", self.name,
                          stamp[1], _serving_what(self.app.routing), reason)
            return
        self._stamp, self._failed = stamp, None

    @property
    def watcher_poll_s(self) -> float:
        return self.watcher.poll_s if self.watcher is not None else self.config.alias_poll_seconds

    def apply(self, new, stamp: tuple[int, int] | None = None) -> None:
        """Switch the endpoint to config ``new``: load what is new in the background, then swap the
        whole routing in one assignment, then drain and close what it no longer serves. Raises
        (and changes nothing that serves) when something of ``new`` cannot be loaded."""
        from hangar.monitoring.inference_table import open_inference_table
        from hangar.serving.endpoint_reload import UpdatePlan, plan_update
        from hangar.serving.rate_limit import make_rate_limiter
        from hangar.serving.secrets import install_secrets
        from hangar.serving.traffic import TrafficSplit

        old = self.app.routing
        if old.config is None:  # the endpoint was deleted and created again: everything is new
            plan = UpdatePlan(load=list(new.served_entities), new_limiter=bool(new.limits.rate_per_minute),
                              new_table=new.inference_table is not None, secrets_changed=bool(new.secrets))
        else:
            plan = plan_update(old, new)
        if plan.secrets_changed and new.secrets:
            log.info("Endpoint %s: secrets installed: %s", self.name, ", ".join(install_secrets(new.secrets)))
        if plan.secrets_dropped:
            log.warning("Endpoint %s: secrets %s were dropped from the config but stay exported in this process "
                        "until it restarts", self.name, ", ".join(plan.secrets_dropped))
        registry = self._registry()
        built: list[Served] = []
        slots: dict[str, EntitySlot] = {}
        followed: dict[str, FollowedAlias] = {}
        limiter = old.limiter
        table = old.table
        try:
            for entity in plan.load:
                slot, follows = self._load_slot(entity, new.limits, registry)
                built.append(slot.current)
                slots[entity.name] = slot
                if follows is not None:
                    followed[entity.name] = follows
            for old_slot, entity in plan.rebuild:
                cur = old_slot.current
                served = self._build_app(entity, new.limits, cur.model, cur.model_uri, cur.version)
                built.append(served)
                slots[entity.name] = EntitySlot(entity, served)
            if plan.new_limiter:
                limiter = make_rate_limiter(new.limits.rate_per_minute, new.rate_limit_redis,
                                            prefix=f"hangar:rl:{self.name}")
            if plan.new_table:
                table = open_inference_table(new.inference_table) if new.inference_table else None
        except BaseException:
            for served in built:
                close_app(served.app)
            if limiter is not old.limiter and limiter is not None:
                self._close_limiter(limiter)
            raise
        for old_slot, entity in plan.keep:
            slots[entity.name] = old_slot if old_slot.entity == entity else EntitySlot(entity, old_slot.current)
        self.app.routing = Routing(tuple(slots[e.name] for e in new.served_entities),
                                   TrafficSplit([e.weight for e in new.served_entities]), limiter, table, new,
                                   revision=stamp[1] if stamp else None)  # the switch: one assignment
        self.config = new
        if self.watcher is not None:
            current = {t.key: t for t in self.watcher.targets}
            kept = {e.name for _, e in plan.keep} | {e.name for _, e in plan.rebuild}
            self.watcher.set_targets([current[n] for n in kept if n in current] + list(followed.values()))
            self.watcher.poll_s = new.alias_poll_seconds
        grace = max(old.config.limits.request_timeout_s if old.config else 0, new.limits.request_timeout_s) + 5
        gone = [s for s in old.slots if s.entity.name not in slots or slots[s.entity.name].current is not s.current]
        for slot in gone:
            self._retirements.later(grace, close_app, slot.current.app)
        if limiter is not old.limiter and old.limiter is not None:
            self._retirements.later(grace, self._close_limiter, old.limiter)
        if table is not old.table and old.table is not None:
            self._retirements.later(grace, old.table.close)
        self.metrics.reloads.labels("applied").inc()
        log.info("Endpoint %s: config revision %s applied (%s)", self.name, stamp[1] if stamp else "?", plan.describe())

    def on_deleted(self) -> None:
        """The endpoint is gone from the store: stop serving it (404), drain and close everything."""
        old = self.app.routing
        self._stamp, self._failed = None, None
        if old.deleted:
            return
        self.app.routing = Routing((), None, deleted=True)
        if self.watcher is not None:
            self.watcher.set_targets([])
        grace = old.config.limits.request_timeout_s + 5 if old.config else 5.0
        for slot in old.slots:
            self._retirements.later(grace, close_app, slot.current.app)
        if old.limiter is not None:
            self._retirements.later(grace, self._close_limiter, old.limiter)
        if old.table is not None:
            self._retirements.later(grace, old.table.close)
        self.metrics.reloads.labels("deleted").inc()
        log.warning("Endpoint %s was deleted: requests now get 404 ENDPOINT_NOT_FOUND (and /ready 503) until it is "
                    "created again", self.name)

    def _close_limiter(self, limiter) -> None:
        loop = self.app.loop if self.app is not None else None
        if loop is not None and not loop.is_closed():
            import asyncio

            asyncio.run_coroutine_threadsafe(limiter.close(), loop)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self._retirements.now()  # replaced inference tables drain before the process exits


def _serving_what(routing) -> str:
    if routing.deleted:
        return "nothing (the endpoint was deleted)"
    return f"revision {routing.revision}" if routing.revision is not None else "the config it started with"


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


def _endpoint_runtime(name: str, auth) -> EndpointRuntime:
    """A runtime for stored endpoint ``name`` that follows its stored config."""
    from hangar.serving.endpoint_store import endpoint_store

    store = endpoint_store()
    endpoint = store.get(name)
    return EndpointRuntime(name, endpoint.config, auth=auth, store=store, stamp=(endpoint.created_at, endpoint.revision))


def create_endpoint_app() -> EndpointApp:
    """Factory for ``--workers N``: each worker reads the endpoint (or the followed URI) itself."""
    from hangar.serving.settings import ServingSettings

    log_to_stderr(os.environ.get(_LOG_LEVEL_ENV, "info"))
    name = os.environ.get(ENDPOINT_ENV)
    if name:
        auth = endpoint_auth(name) if os.environ.get(_AUTH_ENV) == "1" else None
        return _endpoint_runtime(name, auth).build()
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
    from hangar.serving.server import _exit_quietly_on_signals, bind_socket, freeze_startup_objects, http_protocol

    uvicorn = require("uvicorn", "serving")
    if auth and name is None:
        model_auth(model_uri)  # refuse an unregistered model before binding anything
    common = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout,
                  lifespan="on", server_header=False, access_log=access_log,
                  proxy_headers=False, http=http_protocol())
    sock = bind_socket(host, port)
    _exit_quietly_on_signals()
    log_to_stderr(log_level)
    os.environ[_LOG_LEVEL_ENV] = log_level
    os.environ[_AUTH_ENV] = "1" if auth else "0"
    try:
        if workers <= 1:
            if name is not None:
                runtime = _endpoint_runtime(name, endpoint_auth(name) if auth else None)
            else:
                runtime = EndpointRuntime("serve", single_model_config(model_uri, settings, inference_table),
                                          record_lineage=False, auth=model_auth(model_uri) if auth else None)
            app = runtime.build()
            freeze_startup_objects()
            uvicorn.Server(uvicorn.Config(app, **common)).run(sockets=[sock])
            return
        from uvicorn.supervisors import Multiprocess

        from hangar.serving.metrics import multiprocess_dir

        if name is not None:
            os.environ[ENDPOINT_ENV] = name
        else:
            os.environ[_SINGLE_URI_ENV] = model_uri
            os.environ[_TABLE_ENV] = inference_table or ""
            os.environ.update(settings.to_env())
        config = uvicorn.Config("hangar.serving.endpoint_runtime:create_endpoint_app", factory=True, workers=workers,
                                **common)
        with multiprocess_dir():  # /metrics answers for all workers
            Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()

