"""ServingAuthorizer's cache under concurrency: one decision per token at a time, renewed in the
background for a caller who keeps calling, and revocations still honoured within the TTL."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hangar.errors import PermissionDeniedError, StoreUnavailableError, UnauthenticatedError
from hangar.serving.auth import REFRESH_AT, ServingAuthorizer

TTL = 5.0


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Decider:
    """Counts its calls; ``allowed`` decides; each call can be held until ``release`` is set."""

    def __init__(self, allowed: bool = True, caller: str | None = "alice"):
        self.allowed, self.caller = allowed, caller
        self.calls: list[str | None] = []
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def __call__(self, token: str, request_id: str | None):
        self.calls.append(request_id)
        assert self.release.wait(10)
        if self.fail:
            raise ConnectionError("the store is down")
        return self.caller, self.allowed


def _authorizer(decider, clock):
    return ServingAuthorizer(None, "endpoint", "bot", "QUERY", ttl_s=TTL, clock=clock, decider=decider)


def _headers(token: str = "tok") -> dict:
    return {"authorization": f"Bearer {token}"}


async def _settled(auth, timeout: float = 10.0) -> None:
    """Until no decision is being made (a renewal has been cached, or has failed and been logged)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while auth._pending:
        assert asyncio.get_running_loop().time() < deadline, "a decision never finished"
        await asyncio.sleep(0.005)


def test_concurrent_requests_share_one_decision_when_the_cached_one_has_expired():
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        assert await auth.authorize(_headers(), "r0") == "alice"
        clock.now += TTL + 1  # expired
        decider.release.clear()
        tasks = [asyncio.ensure_future(auth.authorize(_headers(), f"r{i}")) for i in range(1, 65)]
        await asyncio.sleep(0.05)
        assert auth.allowed_now("Bearer tok") is None  # expired, being decided: the ASGI path waits
        decider.release.set()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == ["alice"] * 64
    assert decider.calls == ["r0", "r1"]  # not 64 lookups


def test_a_shared_denial_is_decided_and_audited_again_for_each_request():
    decider, clock = Decider(allowed=False), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        decider.release.clear()
        tasks = [asyncio.ensure_future(auth.authorize(_headers(), f"r{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        decider.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, PermissionDeniedError) for r in results)
    assert sorted(decider.calls) == ["r0", "r1", "r2"]  # r0's (shared), then one for each request that waited


def test_an_active_caller_is_renewed_in_the_background_and_never_waits():
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        assert await auth.authorize(_headers(), "r0") == "alice"
        clock.now += TTL * REFRESH_AT - 0.1  # not yet due
        assert auth.allowed_now("Bearer tok") == "alice"
        assert not auth._pending
        assert decider.calls == ["r0"]
        clock.now += 0.2  # due: the lane still answers from the cache and starts one renewal
        decider.release.clear()
        assert auth.allowed_now("Bearer tok") == "alice"
        assert auth.allowed_now("Bearer tok") == "alice"
        assert await auth.authorize(_headers(), "r1") == "alice"  # no wait, no second renewal
        decider.release.set()
        await _settled(auth)
        assert decider.calls == ["r0", None]
        clock.now += TTL * (1 - REFRESH_AT) + 0.5  # past the first decision's expiry, within the renewal's
        assert auth.allowed_now("Bearer tok") == "alice"

    asyncio.run(main())


@pytest.mark.parametrize("revoked, error, calls", [
    ("grant", PermissionDeniedError, ["r0", None, "r1"]),  # a denial is decided (and audited) per request
    ("token", UnauthenticatedError, ["r0", None]),  # a bad token is remembered: no lookup for r1
])
def test_a_revocation_found_by_a_renewal_takes_effect_at_once(revoked, error, calls):
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        assert await auth.authorize(_headers(), "r0") == "alice"
        if revoked == "grant":
            decider.allowed = False
        else:
            decider.caller = None
        clock.now += TTL * REFRESH_AT + 0.1
        assert auth.allowed_now("Bearer tok") == "alice"  # the old decision, until the renewal says otherwise
        await _settled(auth)
        assert auth.allowed_now("Bearer tok") is None
        with pytest.raises(error):
            await auth.authorize(_headers(), "r1")

    asyncio.run(main())
    assert decider.calls == calls


def test_a_failed_renewal_lets_the_decision_expire_and_the_next_request_decides(caplog):
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        assert await auth.authorize(_headers(), "r0") == "alice"
        decider.fail = True
        clock.now += TTL * REFRESH_AT + 0.1
        assert auth.allowed_now("Bearer tok") == "alice"
        await _settled(auth)
        clock.now += TTL
        assert auth.allowed_now("Bearer tok") is None
        with pytest.raises(StoreUnavailableError) as refused:  # 503: retry, not a 500
            await auth.authorize(_headers(), "r1")
        assert refused.value.http_status == 503 and "Retry" in refused.value.message
        decider.fail = False
        assert await auth.authorize(_headers(), "r2") == "alice"

    with caplog.at_level("WARNING", logger="hangar.serving"):
        asyncio.run(main())
    assert "Renewing a caller's authorization failed" in caplog.text
    assert "tok" not in caplog.text.replace("authorization", "")  # the token itself is never logged


def test_a_request_that_leaves_does_not_cancel_the_decision_others_wait_for():
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)

    async def main():
        decider.release.clear()
        first = asyncio.ensure_future(auth.authorize(_headers(), "r0"))
        second = asyncio.ensure_future(auth.authorize(_headers(), "r1"))
        await asyncio.sleep(0.05)
        first.cancel()  # its client disconnected
        decider.release.set()
        assert await second == "alice"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    assert decider.calls == ["r0"]


def test_outside_an_event_loop_allowed_now_answers_without_renewing():
    decider, clock = Decider(), Clock()
    auth = _authorizer(decider, clock)
    assert asyncio.run(auth.authorize(_headers(), "r0")) == "alice"
    clock.now += TTL * REFRESH_AT + 0.1
    assert auth.allowed_now("Bearer tok") == "alice"
    assert decider.calls == ["r0"]
