"""The SQLite fast path: statements compiled once to SQL text and run on the DBAPI connection.

SQLAlchemy's per-statement and per-transaction bookkeeping costs several times what SQLite
needs to run the few statements of a ``log_metric``. The hottest writes compile their
SQLAlchemy statements once (so the SQL is still defined in one place) and execute the text
directly inside a ``BEGIN IMMEDIATE`` transaction, on a connection held open for them
(``HeldConnection``) rather than checked out of the pool for every call.
"""

from __future__ import annotations

import contextlib
import threading


class CompiledStatement:
    """A SQLAlchemy statement compiled for one dialect, executable with a dict of values."""

    def __init__(self, stmt, dialect, column_keys: list[str] | None = None):
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.literals = {k: v for k, v in compiled.params.items() if v is not None}  # values fixed in the statement

    def args(self, values: dict) -> tuple:
        literals = self.literals
        return tuple(values[n] if n in values else literals[n] for n in self.names)

    def execute(self, cursor, values: dict):
        return cursor.execute(self.sql, self.args(values))

    def executemany(self, cursor, rows: list[dict]) -> None:
        cursor.executemany(self.sql, [self.args(r) for r in rows])


class HeldConnection:
    """One SQLite connection held open beside the pool for the hot path, used by one thread at a time.

    A pool checkout and return cost ≈ 13 µs of SQLAlchemy bookkeeping each time, as much as the
    statements of a ``log_metric``. ``connection()`` lends this connection when it is free, and
    otherwise (another thread holds it) a pooled one, so threads never wait on each other here.
    The connection is a pooled one checked out for good (the engine's connect-time pragmas ran on
    it); ``close()`` returns it. Only for a SQLite file: with an in-memory database (one per thread)
    or another dialect, every use is a pool checkout."""

    def __init__(self, engine):
        from hangar.store.engine import sqlite_path

        self.engine = engine
        self.enabled = engine.dialect.name == "sqlite" and sqlite_path(str(engine.url)) is not None
        self._lock = threading.Lock()
        self._pooled = None  # the SQLAlchemy pool's wrapper, kept checked out
        self._closed = False

    @contextlib.contextmanager
    def connection(self):
        """A DB-API (``sqlite3``) connection in autocommit mode: the held one if free, else a pooled one.
        One left inside a transaction it could not end (a failed ROLLBACK) is discarded, not reused."""
        if self.enabled and not self._closed and self._lock.acquire(blocking=False):
            try:
                if self._pooled is None:
                    self._pooled = self.engine.raw_connection()
                conn = self._pooled.driver_connection
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        self._drop()
            finally:
                self._lock.release()
            return
        pooled = self.engine.raw_connection()
        try:
            conn = pooled.driver_connection
            yield conn
        finally:
            if pooled.driver_connection is not None and pooled.driver_connection.in_transaction:
                pooled.invalidate()  # never hand a half-open transaction to the next user
            pooled.close()

    def holds(self, conn) -> bool:
        """Whether ``conn`` (lent by ``connection()``) is the held connection, not a pooled stand-in."""
        pooled = self._pooled
        return pooled is not None and pooled.driver_connection is conn

    def _drop(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            pooled.invalidate()
            pooled.close()

    def close(self) -> None:
        """Return the held connection to the pool (before the engine is disposed); later uses check out."""
        with self._lock:
            self._closed = True
            pooled, self._pooled = self._pooled, None
        if pooled is not None:
            pooled.close()


@contextlib.contextmanager
def sqlite_write(held: HeldConnection):
    """A cursor inside BEGIN IMMEDIATE (on the held connection when free); COMMIT on success, else ROLLBACK."""
    with held.connection() as conn:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            if conn.in_transaction:
                cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
