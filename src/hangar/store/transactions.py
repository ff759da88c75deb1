"""Transactions on the store, the same for every layer that writes to it.

A write transaction is BEGIN IMMEDIATE on SQLite (writers queue on the busy timeout instead of
failing on a lock upgrade) and is committed on exit. A uniqueness race with a concurrent writer
(PostgreSQL does not serialise writers) becomes a ConflictError, with nothing changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable


def now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.contextmanager
def write_transaction(engine, on_begin: Callable | None = None):
    """A connection inside a write transaction; ``on_begin(conn)`` runs first (e.g. to take a lock)."""
    from sqlalchemy.exc import IntegrityError

    from hangar.errors import ConflictError

    try:
        with engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                if on_begin is not None:
                    on_begin(conn)
                yield conn
    except IntegrityError as exc:
        raise ConflictError(
            f"A concurrent change to the same object won; nothing was changed. Try again ({exc.orig})"
        ) from None


@contextlib.contextmanager
def read_connection(engine):
    with engine.connect() as conn:
        yield conn
