"""Personal access tokens: 256 random bits, shown once, stored only as a SHA-256 digest.

A token reads ``hgr_<43 url-safe characters>`` (``secrets.token_urlsafe(32)``), so a leaked one
is easy to recognise and scan for. A fast digest is right for random tokens: there is nothing to
brute-force that a slow password hash would protect, and it keeps authentication cheap on every
request. Lookup is by the digest (a unique index); the stored digest is then compared in
constant time. Tokens expire (``expires_at``) and can be revoked; neither is ever undone.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update

from hangar.catalog import audit
from hangar.errors import InvalidArgumentError, NotFoundError
from hangar.governance import principals
from hangar.store import schema as t
from hangar.store.transactions import now_ms, write_transaction

PREFIX = "hgr_"
_TOKEN_CHARS = 43  # len(secrets.token_urlsafe(32))
MAX_LIFETIME_DAYS = 3650
LAST_USED_RESOLUTION_MS = 60_000  # last_used_at is written at most once a minute per token


@dataclass(frozen=True)
class TokenInfo:
    """A token's record: never the token itself."""

    id: str
    principal: str
    name: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    token: str  # shown once; only its digest is stored

    def __repr__(self) -> str:  # never print the secret by accident
        return f"NewToken(info={self.info!r}, token='{PREFIX}…')"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


_WELL_FORMED = re.compile(re.escape(PREFIX) + f"[A-Za-z0-9_-]{{{_TOKEN_CHARS}}}")


def well_formed(token) -> bool:
    return isinstance(token, str) and _WELL_FORMED.fullmatch(token) is not None


def create(engine, principal: str, name: str = "token", *, lifetime_days: float | None = 90, actor: str,
           request_id: str | None = None) -> NewToken:
    """A new token for ``principal``; ``lifetime_days=None`` never expires (service principals)."""
    if not isinstance(name, str) or not 0 < len(name) <= 128:
        raise InvalidArgumentError("A token name is 1 to 128 characters")
    if lifetime_days is not None and (isinstance(lifetime_days, bool) or not 0 < float(lifetime_days) <= MAX_LIFETIME_DAYS):
        raise InvalidArgumentError(f"A token lives more than 0 and at most {MAX_LIFETIME_DAYS} days")
    token = PREFIX + secrets.token_urlsafe(32)
    token_id = uuid.uuid4().hex[:16]
    ts = now_ms()
    expires = None if lifetime_days is None else ts + int(float(lifetime_days) * 86_400_000)
    with write_transaction(engine, on_begin=audit.lock_for_append) as conn:
        p = principals.get_in(conn, principal)
        conn.execute(t.tokens.insert().values(id=token_id, principal_id=p.id, digest=digest(token), name=name,
                                              created_at=ts, expires_at=expires, revoked_at=None, last_used_at=None))
        audit.append(conn, actor=actor, action="CREATE_TOKEN", securable_type="metastore", securable="metastore",
                     details={"principal": principal, "token_id": token_id, "expires_at": expires},
                     request_id=request_id)
    return NewToken(TokenInfo(token_id, principal, name, ts, expires, None, None), token)


def _info(r) -> TokenInfo:
    return TokenInfo(r.id, r.principal_name, r.name, r.created_at, r.expires_at, r.revoked_at, r.last_used_at)


def _select():
    return (select(t.tokens, t.principals.c.name.label("principal_name"))
            .join(t.principals, t.principals.c.id == t.tokens.c.principal_id))


def list_for(engine, principal: str | None = None) -> list[TokenInfo]:
    q = _select().order_by(t.tokens.c.created_at)
    if principal is not None:
        q = q.where(t.principals.c.name == principal)
    with engine.connect() as conn:
        return [_info(r) for r in conn.execute(q)]


def revoke(engine, token_id: str, *, actor: str, principal: str | None = None, request_id: str | None = None) -> None:
    """Revoke a token by id (only ``principal``'s own when given); revoking twice is harmless."""
    with write_transaction(engine, on_begin=audit.lock_for_append) as conn:
        q = _select().where(t.tokens.c.id == str(token_id))
        if principal is not None:
            q = q.where(t.principals.c.name == principal)
        row = conn.execute(q).first()
        if row is None:
            raise NotFoundError(f"No token {token_id!r}" + (f" of {principal!r}" if principal else ""))
        if row.revoked_at is None:
            conn.execute(update(t.tokens).where(t.tokens.c.id == row.id).values(revoked_at=now_ms()))
            audit.append(conn, actor=actor, action="REVOKE_TOKEN", securable_type="metastore", securable="metastore",
                         details={"principal": row.principal_name, "token_id": row.id}, request_id=request_id)


@dataclass(frozen=True)
class TokenOwner:
    principal_id: int
    name: str
    kind: str
    token_id: str
    last_used_at: int | None


def lookup(conn, token: str, now: int | None = None) -> TokenOwner | None:
    """The enabled principal holding this live token, or None (unknown, expired, revoked, disabled)."""
    if not well_formed(token):
        return None
    wanted = digest(token)
    row = conn.execute(select(t.tokens.c.id, t.tokens.c.digest, t.tokens.c.expires_at, t.tokens.c.revoked_at,
                              t.tokens.c.last_used_at, t.principals.c.id.label("pid"), t.principals.c.name,
                              t.principals.c.kind, t.principals.c.disabled)
                       .join(t.principals, t.principals.c.id == t.tokens.c.principal_id)
                       .where(t.tokens.c.digest == wanted)).first()
    if row is None or not hmac.compare_digest(row.digest, wanted):
        return None
    now = now_ms() if now is None else now
    if row.revoked_at is not None or row.disabled or (row.expires_at is not None and row.expires_at <= now):
        return None
    return TokenOwner(row.pid, row.name, row.kind, row.id, row.last_used_at)


def touch(engine, token_id: str, last_used_at: int | None) -> bool:
    """Record use, at most once per ``LAST_USED_RESOLUTION_MS`` (a write per request would cost more);
    whether it wrote."""
    ts = now_ms()
    if last_used_at is not None and ts - last_used_at < LAST_USED_RESOLUTION_MS:
        return False
    with write_transaction(engine) as conn:
        conn.execute(update(t.tokens).where(t.tokens.c.id == token_id).values(last_used_at=ts))
    return True


def expires_at(conn, token_id: str) -> int | None:
    return conn.execute(select(t.tokens.c.expires_at).where(t.tokens.c.id == token_id)).scalar()
