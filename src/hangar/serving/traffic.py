"""Traffic split by weight: which served entity answers a request.

With a request id the choice is a pure function of the id (a client that retries with the same
id reaches the same version); without one it is random in proportion to the weights.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence


class TrafficSplit:
    def __init__(self, weights: Sequence[float]):
        if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        total = float(sum(weights))
        self._bounds: list[float] = []
        acc = 0.0
        for w in weights:
            acc += w / total
            self._bounds.append(acc)
        self._bounds[-1] = 1.0
        self._random = random.Random()

    def choose(self, request_id: str | bytes | None = None) -> int:
        """The index of the entity that serves this request (``request_id`` as text, or the header's bytes)."""
        if len(self._bounds) == 1:
            return 0
        if request_id:
            data = request_id if isinstance(request_id, bytes) else request_id.encode("utf-8", "surrogatepass")
            digest = hashlib.blake2b(data, digest_size=8).digest()
            point = int.from_bytes(digest, "big") / 2**64
        else:
            point = self._random.random()
        return min(bisect.bisect_right(self._bounds, point), len(self._bounds) - 1)
