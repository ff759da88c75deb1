"""Who may query a served model: bearer tokens and one privilege, checked before any model work.

An endpoint requires QUERY on the endpoint (``hangar grants add endpoint NAME QUERY user``);
``hangar serve --auth`` on a registered model requires USE_CATALOG, USE_SCHEMA and EXECUTE on it,
as loading it would. Tokens are the same personal access tokens the Hangar server uses.

The decision is made by the metadata store (a database the serving process opens) or, when the
process was pointed at a Hangar server (``HANGAR_TRACKING_URI=http://…``), by that server: the
caller's token is forwarded to ``…/query-access`` and the server authenticates it, checks the
privilege and audits a denial, exactly as for its own routes.

Decisions are cached per token for ``ttl_s`` seconds (default 5): a request then costs one
SHA-256 and a dict lookup, not a database query or a call to the server (and an allowed caller's
request can take the serving lane, ``allowed_now``). A revoked token or a
removed grant takes effect within that time. A token is decided once at a time: requests that
come while its decision is being made wait for that one (else an expiry under load would send
one lookup per waiting request, 64 at once at 64 connections). And an allowed caller who is
still calling has the decision renewed in the background once it is ``REFRESH_AT`` of its
lifetime old, so its requests never wait for a lookup; the renewal is a decision like any other,
so a revocation still takes effect within ``ttl_s``. A token that fails to authenticate is remembered
as bad for the same time, and after ``failure_limit`` bad tokens in a minute a client address
gets 429 (so guessing costs neither the store nor the server more lookups, and through a server
a guesser cannot use up the failed-authentication allowance of the serving host's address).
Lookups run in a worker thread, never on the event loop. Denied requests (403) are appended to
the audit log; unauthenticated ones (401) are not, so a flood of guessed tokens cannot fill it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass

from hangar.errors import (
    HangarError,
    PermissionDeniedError,
    StoreUnavailableError,
    TooManyRequestsError,
    UnauthenticatedError,
)

_MAX_CACHED = 10_000
REFRESH_AT = 0.8  # of a decision's lifetime: an allowed caller's decision is renewed from then on

log = logging.getLogger("hangar.serving")


@dataclass(frozen=True)
class Decision:
    caller: str | None       # the principal's name, None when unauthenticated
    allowed: bool
    expires: float


class StoreDecider:
    """Decides in the metadata store itself."""

    def __init__(self, engine, securable_type: str, securable: str, privilege: str):
        self.engine = engine
        self.securable_type, self.securable, self.privilege = securable_type, securable, privilege

    def __call__(self, token: str, request_id: str | None) -> tuple[str | None, bool]:
        from hangar.catalog import audit
        from hangar.governance.access import check
        from hangar.governance.authn import BearerTokenAuthenticator

        try:
            identity = BearerTokenAuthenticator(self.engine).authenticate({"authorization": f"Bearer {token}"})
        except UnauthenticatedError:
            return None, False
        allowed = check(self.engine, identity, self.securable_type, self.securable, self.privilege)
        if not allowed:
            audit.record(self.engine, actor=identity.name, action=f"QUERY_{self.securable_type.upper()}",
                         securable_type=self.securable_type, securable=self.securable, outcome="DENIED",
                         details={"privilege": self.privilege}, request_id=request_id)
        return identity.name, allowed


class ServerDecider:
    """Asks a Hangar server, with the caller's own token (the server audits a denial as QUERY_ENDPOINT
    or QUERY_REGISTERED_MODEL), over a client of its own that carries no token of this process."""

    def __init__(self, server_url: str, securable_type: str, securable: str, privilege: str):
        from hangar.remote import ServerClient

        kinds = {"endpoint": "endpoints", "registered_model": "models"}
        if securable_type not in kinds:
            raise ValueError(f"No query-access route for a {securable_type}")
        self.server = server = ServerClient(server_url, None, timeout=10)
        self.path = f"/{kinds[securable_type]}/{server.quote(securable)}/query-access"
        self.securable_type, self.securable, self.privilege = securable_type, securable, privilege

    def __call__(self, token: str, request_id: str | None) -> tuple[str | None, bool]:
        headers = {"Authorization": f"Bearer {token}"}
        if request_id:
            headers["X-Request-Id"] = request_id
        try:
            answer = self.server.request("GET", self.path, headers=headers)
        except UnauthenticatedError:
            return None, False
        except PermissionDeniedError:
            return "this token's principal", False
        return str(answer.get("principal") or "?"), bool(answer.get("allowed"))


class ServingAuthorizer:
    def __init__(self, engine, securable_type: str, securable: str, privilege: str, *, ttl_s: float = 5.0,
                 clock=time.monotonic, decider=None, failure_limit: int = 20):
        from hangar.governance.auth_failures import FailedAuthLimiter

        self.securable_type = securable_type
        self.securable = securable
        self.privilege = privilege
        self.ttl_s = ttl_s
        self._clock = clock
        self._decide_with = decider or StoreDecider(engine, securable_type, securable, privilege)
        self._cache: dict[str, Decision] = {}
        self._pending: dict[str, asyncio.Future] = {}  # the decision being made, per token hash
        self.failures = FailedAuthLimiter(failure_limit, 60.0, clock=clock)

    @classmethod
    def through_server(cls, server_url: str, securable_type: str, securable: str, privilege: str, **kwargs):
        return cls(None, securable_type, securable, privilege,
                   decider=ServerDecider(server_url, securable_type, securable, privilege), **kwargs)

    async def authorize(self, headers: dict[str, str], request_id: str | None = None, client: str = "-") -> str:
        """The caller's name; UnauthenticatedError (401), PermissionDeniedError (403) or, after too many bad
        tokens from ``client``, TooManyRequestsError (429)."""
        import anyio

        from hangar.governance.authn import GENERIC_401, bearer_token

        token = bearer_token(headers)
        if token is None:
            raise UnauthenticatedError(GENERIC_401)
        key = hashlib.sha256(token.encode()).hexdigest()
        decision = self._cache.get(key)
        now = self._clock()
        if decision is None or decision.expires <= now:
            wait = self.failures.retry_after(client)
            if wait is not None:
                raise TooManyRequestsError(f"Too many failed authentications from this address; retry in {wait} s",
                                           wait)
            decision, shared = await self._decision(key, token, request_id)
            if shared and decision.caller is not None and not decision.allowed:
                # a denial is decided (and audited) afresh for every request
                decision = await anyio.to_thread.run_sync(self._decide, token, request_id)
            if decision.caller is None:
                self.failures.failed(client)
        elif decision.allowed:
            self._refresh_if_due(key, token, decision, now)
        if decision.caller is None:
            raise UnauthenticatedError(GENERIC_401)
        if not decision.allowed:
            raise PermissionDeniedError(f"{decision.caller} lacks {self.privilege} on {self.securable_type} "
                                        f"{self.securable}; ask its owner for a grant")
        return decision.caller

    def allowed_now(self, authorization: str | None) -> str | None:
        """The caller's name when a fresh cached decision already allows this ``Authorization`` value;
        else None (no token, a malformed one, no decision or an expired one, a refusal): ``authorize``
        decides, and answers the refusals."""
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        decision = self._cache.get(key)
        now = self._clock()
        if decision is None or not decision.allowed or decision.expires <= now:
            return None
        self._refresh_if_due(key, token, decision, now)
        return decision.caller

    async def _decision(self, key: str, token: str, request_id: str | None) -> tuple[Decision, bool]:
        """``(decision, shared)``: the decision being made for this token, or a new one (made in a
        worker thread and cached); ``shared`` when another request started it. Shielded: a caller
        that leaves does not cancel the decision the others wait for."""
        pending = self._pending.get(key)
        shared = pending is not None
        if pending is None:
            pending = self._start(key, token, request_id)
        return await asyncio.shield(pending), shared

    def _start(self, key: str, token: str, request_id: str | None) -> asyncio.Future:
        import anyio

        async def decide() -> Decision:
            decision = await anyio.to_thread.run_sync(self._decide, token, request_id)
            if decision.allowed or decision.caller is None:
                if len(self._cache) >= _MAX_CACHED:
                    self._cache.clear()
                self._cache[key] = decision
            else:  # refused now: nothing cached lets it in any longer
                self._cache.pop(key, None)
            return decision

        future = asyncio.ensure_future(decide())
        self._pending[key] = future

        def done(_):
            if self._pending.get(key) is future:
                del self._pending[key]
            if not future.cancelled():
                future.exception()  # retrieved: a failure is answered to the requests that wait, if any

        future.add_done_callback(done)
        return future

    def _refresh_if_due(self, key: str, token: str, decision: Decision, now: float) -> None:
        """Renew an allowed caller's decision in the background once it is ``REFRESH_AT`` of its
        lifetime old (one renewal at a time; a failed one is logged and the decision expires)."""
        if key in self._pending or decision.expires - now > self.ttl_s * (1 - REFRESH_AT):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # (called outside the event loop: the decision simply expires)
            return
        future = self._start(key, token, None)
        future.add_done_callback(_log_failed_renewal)

    def _decide(self, token: str, request_id: str | None) -> Decision:
        """The decision for ``token``; StoreUnavailableError (503) when whoever decides did not answer
        (a database that is down, a server that cannot be reached), so that the caller is told to
        retry rather than given a 500."""
        expires = self._clock() + self.ttl_s
        try:
            caller, allowed = self._decide_with(token, request_id)
        except HangarError:
            raise
        except Exception as exc:  # (logged by type and first line: a driver's message may carry its SQL)
            text = str(exc).strip()
            first = text.splitlines()[0][:200] if text else ""
            log.error("Checking a caller's authorization failed: %s: %s", type(exc).__name__, first)
            raise StoreUnavailableError(
                "The caller's authorization could not be checked: the metadata store (or Hangar server) that "
                "decides it did not answer. Retry shortly."
            ) from exc
        return Decision(caller, allowed, expires)


def _log_failed_renewal(future: asyncio.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("Renewing a caller's authorization failed: %s", future.exception())
