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
_HEAD = "SELECT max(seq) FROM audit_log"  # plain SQL on a pooled DB-API connection: ~20 us, not ~150


class GovernanceCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._head: int | None = None
        self.tokens: dict[str, tuple] = {}  # digest -> (TokenOwner, expires_at)
        self.views: dict[int, tuple] = {}  # principal id -> (names, grants)

    def refresh(self, engine) -> None:
        """Drop everything if the audit log moved since the last request."""
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.execute(_HEAD)
            head = cur.fetchone()[0] or 0
            cur.close()
            raw.commit()  # end the read transaction (PostgreSQL), so the next one sees new commits
        finally:
            raw.close()
        with self._lock:
            if head != self._head or len(self.tokens) + len(self.views) > MAX_ENTRIES:
                self.tokens.clear()
                self.views.clear()
                self._head = head
