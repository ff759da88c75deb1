"""Endpoints in the metadata store: create, update, get, list, delete, each change audited.

A stored endpoint is its validated config (JSON) plus a revision that counts updates, so a
serving process can tell that its config changed (``stamp``: creation time and revision, so an
endpoint deleted and created again is a change too). On PostgreSQL every change also sends a
notification on ``ENDPOINT_CHANNEL`` (delivered at commit), which wakes serving processes at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from hangar.catalog import audit
from hangar.errors import AlreadyExistsError, NotFoundError, PermissionDeniedError
from hangar.governance import grants
from hangar.serving.endpoint_config import EndpointConfig, check_endpoint_name, from_stored
from hangar.store import schema as t
from hangar.store.transactions import now_ms, read_connection, write_transaction

ENDPOINT_CHANNEL = "hangar_endpoint_changed"


@dataclass(frozen=True)
class Endpoint:
    name: str
    config: EndpointConfig
    revision: int
    created_by: str
    created_at: int
    updated_by: str
    updated_at: int


def _entity(row) -> Endpoint:
    return Endpoint(row.name, from_stored(json.loads(row.config)), row.revision, row.created_by, row.created_at,
                    row.updated_by, row.updated_at)


def _summary(config: EndpointConfig) -> dict:
    return {"served_entities": [{"name": e.name, "model": e.model, "weight": e.weight} for e in config.served_entities]}


def _notify(conn, name: str) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": ENDPOINT_CHANNEL, "payload": name})


class EndpointStore:
    """Endpoints in a database. The creator becomes the endpoint's owner (MANAGE, so QUERY); deleting an
    endpoint revokes the grants made on it, so one created later under the same name starts with none."""

    remote = False

    def __init__(self, engine, actor: str, request_id: str | None = None):
        self.engine = engine
        self.actor = actor
        self.request_id = request_id

    def _write(self):
        return write_transaction(self.engine, on_begin=audit.lock_for_append)

    def create(self, name: str, config: EndpointConfig) -> Endpoint:
        check_endpoint_name(name)
        now = now_ms()
        with self._write() as conn:
            if conn.execute(select(t.endpoints.c.name).where(t.endpoints.c.name == name)).first() is not None:
                raise AlreadyExistsError(f"Endpoint {name!r} already exists; change it with "
                                         f"'hangar endpoints update {name} --config FILE'")
            conn.execute(t.endpoints.insert().values(name=name, config=json.dumps(config.to_dict()), revision=1,
                                                     created_by=self.actor, created_at=now, updated_by=self.actor,
                                                     updated_at=now))
            audit.append(conn, actor=self.actor, action="CREATE_ENDPOINT", securable_type="endpoint", securable=name,
                         details=_summary(config), request_id=self.request_id)
            grants.set_owner_in(conn, "endpoint", name, self.actor)
            _notify(conn, name)
        return self.get(name)

    def update(self, name: str, config: EndpointConfig) -> Endpoint:
        check_endpoint_name(name)
        with self._write() as conn:
            result = conn.execute(update(t.endpoints).where(t.endpoints.c.name == name).values(
                config=json.dumps(config.to_dict()), revision=t.endpoints.c.revision + 1, updated_by=self.actor,
                updated_at=now_ms()))
            if result.rowcount == 0:
                raise NotFoundError(f"No endpoint {name!r}; create it with 'hangar endpoints create {name} --config FILE'")
            revision = conn.execute(select(t.endpoints.c.revision).where(t.endpoints.c.name == name)).scalar()
            audit.append(conn, actor=self.actor, action="UPDATE_ENDPOINT", securable_type="endpoint", securable=name,
                         details={**_summary(config), "revision": revision}, request_id=self.request_id)
            _notify(conn, name)
        return self.get(name)

    def get(self, name: str) -> Endpoint:
        with read_connection(self.engine) as conn:
            row = conn.execute(select(t.endpoints).where(t.endpoints.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"No endpoint {name!r} (see 'hangar endpoints list')")
        return _entity(row)

    def list(self) -> list[Endpoint]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(select(t.endpoints).order_by(t.endpoints.c.name)).all()
        return [_entity(r) for r in rows]

    def delete(self, name: str) -> None:
        with self._write() as conn:
            if conn.execute(delete(t.endpoints).where(t.endpoints.c.name == name)).rowcount == 0:
                raise NotFoundError(f"No endpoint {name!r} (see 'hangar endpoints list')")
            audit.append(conn, actor=self.actor, action="DELETE_ENDPOINT", securable_type="endpoint", securable=name,
                         request_id=self.request_id)
            grants.drop_for_deleted_in(conn, "endpoint", name, actor=self.actor, request_id=self.request_id)
            _notify(conn, name)

    def revision(self, name: str) -> int | None:
        with read_connection(self.engine) as conn:
            return conn.execute(select(t.endpoints.c.revision).where(t.endpoints.c.name == name)).scalar()

    def stamp(self, name: str) -> tuple[int, int] | None:
        """``(created_at, revision)``, or None once the endpoint is gone: a cheap read each poll."""
        with read_connection(self.engine) as conn:
            row = conn.execute(select(t.endpoints.c.created_at, t.endpoints.c.revision)
                               .where(t.endpoints.c.name == name)).first()
        return None if row is None else (row.created_at, row.revision)


class RestEndpointStore:
    """The same methods as ``EndpointStore``, through a Hangar server's ``/api/v1/endpoints`` (the server
    acts as the token's principal: QUERY to read an endpoint, MANAGE to change it)."""

    remote = True

    def __init__(self, server):
        self.server = server  # a hangar.remote.ServerClient

    def _path(self, name: str) -> str:
        return f"/endpoints/{self.server.quote(check_endpoint_name(name))}"

    @staticmethod
    def _entity(d: dict) -> Endpoint:
        return Endpoint(d["name"], from_stored(d["config"]), d["revision"], d["created_by"], d["created_at"],
                        d["updated_by"], d["updated_at"])

    def create(self, name: str, config: EndpointConfig) -> Endpoint:
        check_endpoint_name(name)
        return self._entity(self.server.request("POST", "/endpoints", {"name": name, "config": config.to_dict()}))

    def update(self, name: str, config: EndpointConfig) -> Endpoint:
        return self._entity(self.server.request("PUT", self._path(name), {"config": config.to_dict()}))

    def get(self, name: str) -> Endpoint:
        return self._entity(self.server.request("GET", self._path(name)))

    def list(self) -> list[Endpoint]:
        return [self._entity(d) for d in self.server.request("GET", "/endpoints")["endpoints"]]

    def delete(self, name: str) -> None:
        self.server.request("DELETE", self._path(name))

    def revision(self, name: str) -> int | None:
        stamp = self.stamp(name)
        return None if stamp is None else stamp[1]

    def stamp(self, name: str) -> tuple[int, int] | None:
        """None once the endpoint is gone, or once the server no longer shows it to this process's principal
        (deleting an endpoint revokes the grants on it, so its server answers 403 rather than 404 to all but
        metastore admins): a serving process then answers its requests with 404, as after a deletion."""
        try:
            ep = self.server.request("GET", self._path(name))
        except (NotFoundError, PermissionDeniedError):
            return None
        return ep["created_at"], ep["revision"]


def endpoint_store(tracking_uri: str | None = None) -> EndpointStore | RestEndpointStore:
    """The endpoint store over the current tracking store (``HANGAR_TRACKING_URI`` or the default): the
    database itself, or the endpoints routes of a Hangar server (``http(s)://``)."""
    from hangar.config import local_user
    from hangar.tracking import fluent
    from hangar.tracking.client import Client

    store = (Client(tracking_uri) if tracking_uri is not None else fluent.client()).store
    if getattr(store, "server", None) is not None:
        return RestEndpointStore(store.server)
    return EndpointStore(store.engine, local_user())
