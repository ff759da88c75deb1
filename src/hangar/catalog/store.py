"""The registry on the same SQL database as tracking: namespace, versions, aliases, audit.

Every governance change appends its audit record inside the same transaction, so the record
exists exactly when the change does.
"""

from __future__ import annotations

import contextlib
import time

from hangar.catalog.namespace import NamespaceMixin
from hangar.catalog.versions import VersionsMixin


def now_ms() -> int:
    return int(time.time() * 1000)


class SqlRegistry(NamespaceMixin, VersionsMixin):
    """Catalogs, schemas, registered models and their versions, over a tracking store's engine."""

    def __init__(self, tracking_store, actor: str | None = None, cache_dir=None):
        self.tracking = tracking_store
        self.engine = tracking_store.engine
        self.artifact_root = tracking_store.artifact_root
        self.actor = actor or _user()
        self.cache_dir = cache_dir
        self._ensure_main_default()

    @contextlib.contextmanager
    def _tx(self):
        """A write transaction; a uniqueness race with a concurrent writer becomes a ConflictError."""
        from sqlalchemy.exc import IntegrityError

        from hangar.catalog import audit
        from hangar.errors import ConflictError

        try:
            with self.engine.connect() as conn:
                conn.execution_options(sqlite_begin="IMMEDIATE")
                with conn.begin():
                    audit.lock_for_append(conn)  # every registry write appends; lock in one order
                    yield conn
        except IntegrityError as exc:
            raise ConflictError(
                f"A concurrent change to the same object won; nothing was changed. Try again ({exc.orig})"
            ) from None

    @contextlib.contextmanager
    def _read(self):
        with self.engine.connect() as conn:
            yield conn

    def _audit(self, conn, action: str, securable_type: str, securable: str, outcome: str = "SUCCESS",
               **details) -> None:
        from hangar.catalog import audit

        audit.append(conn, actor=self.actor, action=action, securable_type=securable_type, securable=securable,
                     outcome=outcome, details=details or None)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"
