"""Failed-token rate limiting: after ``limit`` bad tokens from one client address within
``window`` seconds, that address gets 429 with Retry-After until the window has passed.

Random 256-bit tokens cannot be guessed, but an unlimited stream of guesses still costs the
store a lookup each; this also makes a leaked-token scan visible (``blocked`` counts refusals,
and each new block is logged once, with the address and never the token).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

log = logging.getLogger("hangar.auth")


class FailedAuthLimiter:
    def __init__(self, limit: int = 20, window: float = 60.0, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()
        self.failures = 0  # bad tokens seen
        self.blocked = 0  # requests refused with 429

    def _recent(self, address: str, now: float) -> deque:
        q = self._failures.get(address)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window:
            q.popleft()
        if not q:
            self._failures.pop(address, None)
        return q

    def retry_after(self, address: str) -> int | None:
        """Seconds to wait when ``address`` is blocked now; None when it may try."""
        if self.limit <= 0:
            return None
        with self._lock:
            now = self.clock()
            q = self._recent(address, now)
            if len(q) < self.limit:
                return None
            self.blocked += 1
            return max(1, math.ceil(q[-self.limit] + self.window - now))

    def failed(self, address: str) -> None:
        with self._lock:
            now = self.clock()
            q = self._recent(address, now)
            q.append(now)
            self._failures[address] = q
            self.failures += 1
            if len(q) == self.limit:
                log.warning("Blocking %s for %.0f s after %d failed authentications", address, self.window, self.limit)
            if len(self._failures) > 100_000:  # bound the memory a spray of addresses can take
                self._failures.clear()
