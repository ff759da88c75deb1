"""Who may query a served model: bearer tokens and one privilege, checked before any model work.

An endpoint requires QUERY on the endpoint (``hangar grants add endpoint NAME QUERY user``);
``hangar serve --auth`` on a registered model requires USE_CATALOG, USE_SCHEMA and EXECUTE on it,
as loading it would. Tokens are the same personal access tokens the Hangar server uses.

Decisions are cached per token for ``ttl_s`` seconds (default 5): a request then costs one
SHA-256 and a dict lookup, not two database queries. A revoked token or a removed grant takes
effect within that time. Store lookups run in a worker thread, never on the event loop. Denied
requests (403) are appended to the audit log; unauthenticated ones (401) are not, so a flood of
guessed tokens cannot fill it.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from hangar.errors import PermissionDeniedError, UnauthenticatedError

_MAX_CACHED = 10_000


@dataclass(frozen=True)
class Decision:
    caller: str | None       # the principal's name, None when unauthenticated
    allowed: bool
    expires: float


class ServingAuthorizer:
    def __init__(self, engine, securable_type: str, securable: str, privilege: str, *, ttl_s: float = 5.0,
                 clock=time.monotonic):
        self.engine = engine
        self.securable_type = securable_type
        self.securable = securable
        self.privilege = privilege
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, Decision] = {}

    async def authorize(self, headers: dict[str, str], request_id: str | None = None) -> str:
        """The caller's name; UnauthenticatedError (401) or PermissionDeniedError (403)."""
        import anyio

        from hangar.governance.authn import GENERIC_401, bearer_token

        token = bearer_token(headers)
        if token is None:
            raise UnauthenticatedError(GENERIC_401)
        key = hashlib.sha256(token.encode()).hexdigest()
        decision = self._cache.get(key)
        if decision is None or decision.expires <= self._clock():
            decision = await anyio.to_thread.run_sync(self._decide, token, request_id)
            if decision.allowed:  # a denial is decided (and audited) afresh every time
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = decision
        if decision.caller is None:
            raise UnauthenticatedError(GENERIC_401)
        if not decision.allowed:
            raise PermissionDeniedError(f"{decision.caller} lacks {self.privilege} on {self.securable_type} "
                                        f"{self.securable}; ask its owner for a grant")
        return decision.caller

    def _decide(self, token: str, request_id: str | None) -> Decision:
        from hangar.catalog import audit
        from hangar.governance.access import check
        from hangar.governance.authn import BearerTokenAuthenticator

        expires = self._clock() + self.ttl_s
        try:
            identity = BearerTokenAuthenticator(self.engine).authenticate({"authorization": f"Bearer {token}"})
        except UnauthenticatedError:
            return Decision(None, False, expires)
        allowed = check(self.engine, identity, self.securable_type, self.securable, self.privilege)
        if not allowed:
            audit.record(self.engine, actor=identity.name, action=f"QUERY_{self.securable_type.upper()}",
                         securable_type=self.securable_type, securable=self.securable, outcome="DENIED",
                         details={"privilege": self.privilege}, request_id=request_id)
        return Decision(identity.name, allowed, expires)

