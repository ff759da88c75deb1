"""Principals: users, groups and service principals; nested group membership (no cycles).

Principals are named (the name is what the audit log and owner columns record) and never
deleted, only disabled, so that the audit trail keeps naming someone who existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from hangar.catalog import audit
from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.store.transactions import now_ms, write_transaction

USER, GROUP, SERVICE_PRINCIPAL = "user", "group", "service_principal"
KINDS = (USER, GROUP, SERVICE_PRINCIPAL)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,255}$")
_MAX_DEPTH = 64  # nesting deeper than this is refused as if it were a cycle


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    kind: str
    created_at: int
    created_by: str
    disabled: bool = False


def _row(r) -> Principal:
    return Principal(r.id, r.name, r.kind, r.created_at, r.created_by, bool(r.disabled))


def check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError(f"Invalid principal name {name!r}: letters, digits and _ . @ + - (at most 256)")
    return name


def _tx(engine):
    return write_transaction(engine, on_begin=audit.lock_for_append)


def create(engine, name: str, kind: str = USER, *, actor: str, request_id: str | None = None) -> Principal:
    check_name(name)
    if kind not in KINDS:
        raise InvalidArgumentError(f"A principal is one of {', '.join(KINDS)}, not {kind!r}")
    with _tx(engine) as conn:
        if conn.execute(select(t.principals.c.id).where(t.principals.c.name == name)).first():
            raise AlreadyExistsError(f"Principal {name!r} already exists")
        conn.execute(t.principals.insert().values(name=name, kind=kind, created_at=now_ms(), created_by=actor,
                                                  disabled=False))
        audit.append(conn, actor=actor, action="CREATE_PRINCIPAL", securable_type="metastore",
                     securable="metastore", details={"principal": name, "kind": kind}, request_id=request_id)
        return get_in(conn, name)


def get_in(conn, name: str) -> Principal:
    r = conn.execute(select(t.principals).where(t.principals.c.name == name)).first()
    if r is None:
        raise NotFoundError(f"No principal {name!r}")
    return _row(r)


def get(engine, name: str) -> Principal:
    with engine.connect() as conn:
        return get_in(conn, name)


def list_all(engine, kind: str | None = None) -> list[Principal]:
    q = select(t.principals).order_by(t.principals.c.name)
    if kind is not None:
        q = q.where(t.principals.c.kind == kind)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(q)]


def set_disabled(engine, name: str, disabled: bool, *, actor: str, request_id: str | None = None) -> None:
    with _tx(engine) as conn:
        get_in(conn, name)
        conn.execute(update(t.principals).where(t.principals.c.name == name).values(disabled=bool(disabled)))
        audit.append(conn, actor=actor, action="DISABLE_PRINCIPAL" if disabled else "ENABLE_PRINCIPAL",
                     securable_type="metastore", securable="metastore", details={"principal": name},
                     request_id=request_id)


def groups_of(conn, principal_ids: set[int] | list[int]) -> set[int]:
    """Every group the given principals belong to, directly or through nested groups."""
    found: set[int] = set()
    frontier = set(principal_ids)
    for _ in range(_MAX_DEPTH):
        if not frontier:
            break
        rows = conn.execute(select(t.group_members.c.group_id).where(
            t.group_members.c.member_id.in_(sorted(frontier)))).scalars().all()
        frontier = set(rows) - found - set(principal_ids)
        found |= frontier
    return found


def effective_ids(conn, principal_id: int) -> set[int]:
    """The principal and every group it is in (nesting followed)."""
    return {principal_id} | groups_of(conn, {principal_id})


def add_member(engine, group: str, member: str, *, actor: str, request_id: str | None = None) -> None:
    """Put ``member`` (any principal, groups included) into ``group``; a cycle is refused."""
    with _tx(engine) as conn:
        g, m = get_in(conn, group), get_in(conn, member)
        if g.kind != GROUP:
            raise InvalidArgumentError(f"{group!r} is a {g.kind}, not a group")
        if g.id == m.id:
            raise ConflictError(f"A group cannot contain itself ({group!r})")
        # a cycle: the group is already (transitively) inside the member
        if m.kind == GROUP and m.id in ({g.id} | groups_of(conn, {g.id})):
            raise ConflictError(f"Adding {member!r} to {group!r} would make a cycle: {group!r} is already inside {member!r}")
        if conn.execute(select(t.group_members.c.group_id).where(t.group_members.c.group_id == g.id,
                                                                 t.group_members.c.member_id == m.id)).first():
            raise AlreadyExistsError(f"{member!r} is already a member of {group!r}")
        conn.execute(t.group_members.insert().values(group_id=g.id, member_id=m.id))
        audit.append(conn, actor=actor, action="ADD_MEMBER", securable_type="metastore", securable="metastore",
                     details={"group": group, "member": member}, request_id=request_id)


def remove_member(engine, group: str, member: str, *, actor: str, request_id: str | None = None) -> None:
    with _tx(engine) as conn:
        g, m = get_in(conn, group), get_in(conn, member)
        if not conn.execute(delete(t.group_members).where(t.group_members.c.group_id == g.id,
                                                          t.group_members.c.member_id == m.id)).rowcount:
            raise NotFoundError(f"{member!r} is not a direct member of {group!r}")
        audit.append(conn, actor=actor, action="REMOVE_MEMBER", securable_type="metastore", securable="metastore",
                     details={"group": group, "member": member}, request_id=request_id)


def members(engine, group: str) -> list[Principal]:
    """Direct members of a group."""
    with engine.connect() as conn:
        g = get_in(conn, group)
        rows = conn.execute(select(t.principals).join(t.group_members, t.group_members.c.member_id == t.principals.c.id)
                            .where(t.group_members.c.group_id == g.id).order_by(t.principals.c.name))
        return [_row(r) for r in rows]


def effective_groups(engine, name: str) -> list[str]:
    """Names of every group ``name`` is in, through nesting too."""
    with engine.connect() as conn:
        p = get_in(conn, name)
        ids = groups_of(conn, {p.id})
        if not ids:
            return []
        return list(conn.execute(select(t.principals.c.name).where(t.principals.c.id.in_(sorted(ids)))
                                 .order_by(t.principals.c.name)).scalars())
