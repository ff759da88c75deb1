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
from hangar.errors import AlreadyExistsError, NotFoundError
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
    def __init__(self, engine, actor: str):
        self.engine = engine
        self.actor = actor

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
                         details=_summary(config))
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
                         details={**_summary(config), "revision": revision})
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
            audit.append(conn, actor=self.actor, action="DELETE_ENDPOINT", securable_type="endpoint", securable=name)
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


def endpoint_store(tracking_uri: str | None = None) -> EndpointStore:
    """The endpoint store over the current tracking store (``HANGAR_TRACKING_URI`` or the default)."""
    from hangar.config import local_user
    from hangar.tracking import fluent

    if tracking_uri is not None:
        from hangar.tracking.client import Client

        return EndpointStore(Client(tracking_uri).store.engine, local_user())
    return EndpointStore(fluent.client().store.engine, local_user())
