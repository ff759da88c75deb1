"""The SQLite fast path: statements compiled once to SQL text and run on the DBAPI connection.

SQLAlchemy's per-statement and per-transaction bookkeeping costs several times what SQLite
needs to run the few statements of a ``log_metric``. The hottest writes compile their
SQLAlchemy statements once (so the SQL is still defined in one place) and execute the text
directly inside a ``BEGIN IMMEDIATE`` transaction, on a connection held open for them
(``HeldConnection``) rather than checked out of the pool for every call.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading

_WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE})
_READS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_FUNCTION,
                    sqlite3.SQLITE_SAVEPOINT, sqlite3.SQLITE_RECURSIVE})


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
    or another dialect, every use is a pool checkout.

    ``writable`` names the only tables statements on the held connection may change (SQLite refuses
    anything else when preparing them, through an authorizer), so a reader of ``PRAGMA data_version``
    on it (which counts every other connection's commits, never its own) knows that a change to any
    other table was made elsewhere and is counted."""

    def __init__(self, engine, writable=None):
        from hangar.store.engine import sqlite_path

        self.engine = engine
        self.writable = frozenset(writable) if writable is not None else None
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
                    pooled = self.engine.raw_connection()
                    if self.writable is not None:
                        pooled.driver_connection.set_authorizer(self._authorize)
                    self._pooled = pooled
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

    def _authorize(self, action, arg1, arg2, db, trigger):
        if action in _WRITES:
            return sqlite3.SQLITE_OK if arg1 in self.writable else sqlite3.SQLITE_DENY
        if action in _READS or (action == sqlite3.SQLITE_PRAGMA and arg1 == "data_version" and arg2 is None):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY  # schema changes, other pragmas, attaching databases, ...

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
            if self.writable is not None:
                pooled.driver_connection.set_authorizer(None)  # back in the pool it is an ordinary connection
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
