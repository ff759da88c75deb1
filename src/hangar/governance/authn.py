"""Authentication: who is calling. Pluggable, so OIDC can come later without touching handlers.

An ``Authenticator`` turns a request's headers into an ``Identity`` or raises
``UnauthenticatedError``. The server holds one and calls it in one place (the route guard);
handlers only ever see the ``Identity``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hangar.errors import UnauthenticatedError

GENERIC_401 = "Authentication required: send 'Authorization: Bearer <token>' with a valid, unexpired token"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. ``superuser`` is only ever true with authentication off."""

    name: str
    principal_id: int | None
    kind: str = "user"
    superuser: bool = False
    token_id: str | None = None


class Authenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        """The caller, or ``UnauthenticatedError`` (missing, malformed, unknown, expired, revoked)."""


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(GENERIC_401)
    return token.strip()


class BearerTokenAuthenticator:
    """Personal access tokens from ``hangar.governance.tokens``."""

    def __init__(self, engine, cache=None):
        self.engine = engine
        self.cache = cache  # a GovernanceCache: one query a request instead of several

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        from hangar.governance import tokens

        token = bearer_token(headers)
        if token is None:
            raise UnauthenticatedError(GENERIC_401)
        if self.cache is None:
            with self.engine.connect() as conn:
                owner = tokens.lookup(conn, token)
        else:
            owner = self._cached_lookup(token)
        if owner is None:
            raise UnauthenticatedError(GENERIC_401)
        if tokens.touch(self.engine, owner.token_id, owner.last_used_at) and self.cache is not None:
            self.cache.tokens.pop(tokens.digest(token), None)
        return Identity(owner.name, owner.principal_id, owner.kind, token_id=owner.token_id)

    def _cached_lookup(self, token: str):
        from hangar.governance import tokens
        from hangar.store.transactions import now_ms

        if not tokens.well_formed(token):
            return None
        key = tokens.digest(token)
        self.cache.refresh(self.engine)
        held = self.cache.tokens.get(key)
        if held is None:
            with self.engine.connect() as conn:
                owner = tokens.lookup(conn, token)
                if owner is None:
                    return None
                held = (owner, tokens.expires_at(conn, owner.token_id))
                self.cache.tokens[key] = held
        owner, expires_at = held
        if expires_at is not None and expires_at <= now_ms():
            return None
        return owner


class NoAuthAuthenticator:
    """Authentication off (``hangar server --no-auth``): every caller acts as ``name`` with every privilege."""

    def __init__(self, name: str):
        self.identity = Identity(name, None, "user", superuser=True)

    def authenticate(self, headers: Mapping[str, str]) -> Identity:
        return self.identity


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine (where running without auth is safe)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_choice(host: str, no_auth: bool, insecure: bool,
                      consequence: str = "act as an administrator") -> None:
    """Running without auth is refused on an address other machines can reach, unless ``--insecure``."""
    from hangar.errors import InvalidArgumentError

    if no_auth and not is_loopback(host) and not insecure:
        raise InvalidArgumentError(
            f"Without auth, anyone who can reach {host} could {consequence}; listen on 127.0.0.1, "
            "or add --insecure if that is really what you want"
        )
