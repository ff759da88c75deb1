"""A per-process memo of who a token belongs to and what a principal's groups and grants are.

Authenticating and loading a caller's grants take five or six queries; this turns them into one:
the audit log's head. Every change that could alter the answers (tokens created or revoked,
principals, group memberships, grants) appends an audit record in the same transaction, so
while the head is unchanged the memo is exact; when it moves, everything is dropped. Expiry is
checked against the clock on every use. Owners are not memoised (``Access`` looks them up per
request), since ownership is recorded with the object it owns.
"""

from __future__ import annotations

import threading

MAX_ENTRIES = 10_000
_HEAD = "SELECT max(seq) FROM audit_log"  # plain SQL on a DB-API connection: a few us, not ~150 through SQLAlchemy
_DATA_VERSION = "PRAGMA data_version"


class GovernanceCache:
    """``held`` (the tracking store's ``store.rawsql.HeldConnection``) makes the check cheap on SQLite:
    ``PRAGMA data_version`` on it changes whenever another connection, in any process, committed a
    change to the database. Its own commits do not count, but SQLite lets it change only the
    tracking tables (``writable``), never the audit log; so while the number stands still the audit
    log has not moved and no query is needed, and when it moved the head is read on that same
    connection (no pool checkout). When the held connection is busy (another thread), or without
    one (PostgreSQL), every refresh reads the head on a pooled connection."""

    def __init__(self, held=None):
        self._lock = threading.Lock()
        self._head: int | None = None
        if held is not None and (not held.enabled or held.writable is None or "audit_log" in held.writable):
            held = None  # its data_version would not tell whether the audit log moved
        self._reader = held
        self._version: tuple | None = None  # (held connection, its data_version) when the head was last read
        self.tokens: dict[str, tuple] = {}  # digest -> (TokenOwner, expires_at)
        self.views: dict[int, tuple] = {}  # principal id -> (names, grants)

    def _read_head(self, engine) -> int:
        if self._reader is not None:
            with self._reader.connection() as conn:
                if not self._reader.holds(conn):  # a pooled stand-in: its data_version is its own counter
                    return conn.execute(_HEAD).fetchone()[0] or 0
                version = conn.execute(_DATA_VERSION).fetchone()[0]
                if self._version == (conn, version) and self._head is not None:
                    return self._head
                head = conn.execute(_HEAD).fetchone()[0] or 0
                self._version = (conn, version)  # (the connection too: a reopened one counts afresh)
                return head
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(_HEAD)
            head = cur.fetchone()[0] or 0
            cur.close()
            raw.commit()  # end the read transaction (PostgreSQL), so the next one sees new commits
        finally:
            raw.close()
        return head

    def refresh(self, engine) -> None:
        """Drop everything if the audit log moved since the last request."""
        head = self._read_head(engine)
        with self._lock:
            if head != self._head or len(self.tokens) + len(self.views) > MAX_ENTRIES:
                self.tokens.clear()
                self.views.clear()
                self._head = head
