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

