"""The registry on the same SQL database as tracking: namespace, versions, aliases, audit.

Every governance change appends its audit record inside the same transaction, so the record
exists exactly when the change does.
"""

from __future__ import annotations

from hangar.catalog import audit
from hangar.catalog.namespace import NamespaceMixin
from hangar.catalog.versions import VersionsMixin
from hangar.config import local_user
from hangar.store.transactions import read_connection, write_transaction


class SqlRegistry(NamespaceMixin, VersionsMixin):
    """Catalogs, schemas, registered models and their versions, over a tracking store's engine."""

    def __init__(self, tracking_store, actor: str | None = None, cache_dir=None):
        self.tracking = tracking_store
        self.engine = tracking_store.engine
        self.artifact_root = tracking_store.artifact_root
        self.actor = actor or local_user()
        self.cache_dir = cache_dir
        self._ensure_main_default()

    request_id: str | None = None  # recorded with every audit record (a server sets it per request)

    def with_actor(self, actor: str, request_id: str | None = None) -> SqlRegistry:
        """The same registry acting (and audited) as ``actor``: a server makes one per request."""
        import copy

        other = copy.copy(self)
        other.actor, other.request_id = actor, request_id
        return other

    def _tx(self):
        """A write transaction that takes the audit append lock first: every registry write
        appends, and one lock order keeps concurrent writers from deadlocking on PostgreSQL."""
        return write_transaction(self.engine, on_begin=audit.lock_for_append)

    def _read(self):
        return read_connection(self.engine)

    def _audit(self, conn, action: str, securable_type: str, securable: str, outcome: str = "SUCCESS",
               **details) -> None:
        audit.append(conn, actor=self.actor, action=action, securable_type=securable_type, securable=securable,
                     outcome=outcome, details=details or None, request_id=self.request_id)


    # -- lineage and audit -----------------------------------------------------------------
    def get_lineage(self, entity: str, direction: str = "upstream", max_depth: int = 10, entity_id: str | None = None):
        from hangar.catalog import lineage

        with self.engine.connect() as conn:
            node_type, node_id = (entity, entity_id) if entity_id is not None else lineage.resolve_entity(conn, entity)
            return lineage.get_lineage(conn, node_type, node_id, direction, max_depth)

    def add_lineage_edge(self, src_type: str, src_id: str, dst_type: str, dst_id: str) -> bool:
        """Record a stored lineage edge (idempotent; see ``lineage.add_edge``); True when it was new."""
        from hangar.catalog import lineage

        with write_transaction(self.engine) as conn:
            return lineage.add_edge(conn, src_type, src_id, dst_type, dst_id)

    def list_audit(self, **filters):
        with self.engine.connect() as conn:
            return audit.list_records(conn, **filters)

    def verify_audit(self, anchor=None):
        with self.engine.connect() as conn:
            return audit.verify(conn, anchor=anchor) if anchor is not None else audit.verify(conn)

    # -- grants (principals must exist in this store: ``hangar principals create`` on its server) ---------
    def grant(self, securable_type: str, securable: str, principal: str, privilege: str):
        from hangar.governance import grants

        return grants.grant(self.engine, securable_type, securable, principal, str(privilege).upper(),
                            actor=self.actor, request_id=self.request_id)

    def revoke(self, securable_type: str, securable: str, principal: str, privilege: str) -> None:
        from hangar.governance import grants

        grants.revoke(self.engine, securable_type, securable, principal, str(privilege).upper(), actor=self.actor,
                      request_id=self.request_id)

    def list_grants(self, securable_type: str | None = None, securable: str | None = None):
        """Grants made directly on a securable; with neither argument, those held by this registry's actor."""
        from hangar.governance import grants

        if securable_type is None and securable is None:
            return grants.list_grants(self.engine, principal=self.actor)
        return grants.list_grants(self.engine, _required(securable_type, "securable_type"),
                                  _required(securable, "securable"))


def _required(value, name: str):
    if value is None:
        from hangar.errors import InvalidArgumentError

        raise InvalidArgumentError(f"list_grants needs both securable_type and securable (or neither), not {name}=None")
    return value


def open_registry(tracking_store, actor: str | None = None, cache_dir=None):
    """The registry on the same store as ``tracking_store``: SQL in process, or through its server."""
    if getattr(tracking_store, "remote", False):
        from hangar.catalog.rest_registry import RestRegistry

        return RestRegistry(tracking_store, cache_dir=cache_dir)
    return SqlRegistry(tracking_store, actor=actor, cache_dir=cache_dir)
