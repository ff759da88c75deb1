"""Grants (securable, principal, privilege) and owners; every change is audited (GRANT / REVOKE).

Owners of the catalog tree live in the ``owner`` column of catalogs, schemas and registered
models (the name of whoever created them); experiments and endpoints, whose tables have no such
column, record theirs in ``securable_owners``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from hangar.catalog import audit
from hangar.errors import AlreadyExistsError, NotFoundError
from hangar.governance import principals
from hangar.governance import privileges as pv
from hangar.store import schema as t
from hangar.store.transactions import now_ms, write_transaction
from hangar.store.upsert import insert_ignore


@dataclass(frozen=True)
class Grant:
    securable_type: str
    securable: str
    principal: str
    privilege: str
    granted_by: str
    granted_at: int


def _tx(engine):
    return write_transaction(engine, on_begin=audit.lock_for_append)


def grant(engine, securable_type: str, securable: str, principal: str, privilege: str, *, actor: str,
          request_id: str | None = None) -> Grant:
    securable = pv.normalise(securable_type, securable)
    pv.check_grantable(securable_type, privilege)
    ts = now_ms()
    with _tx(engine) as conn:
        p = principals.get_in(conn, principal)
        key = {"securable_type": securable_type, "securable": securable, "principal_id": p.id, "privilege": privilege}
        if conn.execute(select(t.grants.c.privilege).filter_by(**key)).first():
            raise AlreadyExistsError(f"{principal!r} already holds {privilege} on {securable_type} {securable!r}")
        conn.execute(t.grants.insert().values(**key, granted_by=actor, granted_at=ts))
        audit.append(conn, actor=actor, action="GRANT", securable_type=securable_type, securable=securable,
                     details={"principal": principal, "privilege": privilege}, request_id=request_id)
    return Grant(securable_type, securable, principal, privilege, actor, ts)


def revoke(engine, securable_type: str, securable: str, principal: str, privilege: str, *, actor: str,
           request_id: str | None = None) -> None:
    securable = pv.normalise(securable_type, securable)
    pv.check_grantable(securable_type, privilege)
    with _tx(engine) as conn:
        p = principals.get_in(conn, principal)
        if not conn.execute(delete(t.grants).where(
                t.grants.c.securable_type == securable_type, t.grants.c.securable == securable,
                t.grants.c.principal_id == p.id, t.grants.c.privilege == privilege)).rowcount:
            raise NotFoundError(f"{principal!r} holds no {privilege} on {securable_type} {securable!r}")
        audit.append(conn, actor=actor, action="REVOKE", securable_type=securable_type, securable=securable,
                     details={"principal": principal, "privilege": privilege}, request_id=request_id)


def list_grants(engine, securable_type: str | None = None, securable: str | None = None,
                principal: str | None = None) -> list[Grant]:
    """Grants made directly on a securable (not inherited ones), or held directly by a principal."""
    q = (select(t.grants, t.principals.c.name).join(t.principals, t.principals.c.id == t.grants.c.principal_id)
         .order_by(t.grants.c.securable_type, t.grants.c.securable, t.principals.c.name, t.grants.c.privilege))
    if securable_type is not None:
        q = q.where(t.grants.c.securable_type == pv.check_securable_type(securable_type))
        if securable is not None:
            q = q.where(t.grants.c.securable == pv.normalise(securable_type, securable))
    if principal is not None:
        q = q.where(t.principals.c.name == principal)
    with engine.connect() as conn:
        return [Grant(r.securable_type, r.securable, r.name, r.privilege, r.granted_by, r.granted_at)
                for r in conn.execute(q)]


def grants_of(conn, principal_ids, levels: list[tuple[str, str]] | None = None) -> list[tuple[str, str, str]]:
    """(securable_type, securable, privilege) held by any of ``principal_ids`` (on ``levels`` only, if given)."""
    q = select(t.grants.c.securable_type, t.grants.c.securable, t.grants.c.privilege).where(
        t.grants.c.principal_id.in_(sorted(principal_ids)))
    if levels is not None:
        q = q.where(t.grants.c.securable.in_(sorted({name for _, name in levels})))
    return [tuple(r) for r in conn.execute(q)]


_OWNER_COLUMNS = {
    pv.CATALOG: lambda name: select(t.catalogs.c.owner).where(t.catalogs.c.name == name),
    pv.SCHEMA: lambda name: select(t.schemas.c.owner).where(t.schemas.c.catalog_name == name.split(".")[0],
                                                          t.schemas.c.name == name.split(".")[-1]),
    pv.REGISTERED_MODEL: lambda name: select(t.registered_models.c.owner).where(
        t.registered_models.c.full_name == name, t.registered_models.c.deleted_at.is_(None)),
}


def owner_of(conn, securable_type: str, securable: str) -> str | None:
    if securable_type == pv.METASTORE:
        return None
    query = _OWNER_COLUMNS.get(securable_type)
    if query is None:
        query = select(t.securable_owners.c.owner).where(t.securable_owners.c.securable_type == securable_type,
                                                         t.securable_owners.c.securable == securable)
    else:
        query = query(securable)
    return conn.execute(query).scalar()


def set_owner_in(conn, securable_type: str, securable: str, owner: str) -> None:
    """Record the owner of an experiment or endpoint (inside the caller's transaction; first one wins)."""
    insert_ignore(conn, t.securable_owners, [{"securable_type": securable_type, "securable": securable,
                                              "owner": owner}], ["securable_type", "securable"])


def drop_for_deleted_in(conn, securable_type: str, securable: str, *, actor: str,
                        request_id: str | None = None) -> None:
    """Revoke every grant made on a securable that is being deleted (each revocation audited) and
    forget its recorded owner, so that a later object of the same name starts with none of them."""
    g = t.grants.c
    held = conn.execute(select(t.principals.c.name, g.privilege).join(t.principals, t.principals.c.id == g.principal_id)
                        .where(g.securable_type == securable_type, g.securable == securable)
                        .order_by(t.principals.c.name, g.privilege)).all()
    if held:
        conn.execute(delete(t.grants).where(g.securable_type == securable_type, g.securable == securable))
    for principal, privilege in held:
        audit.append(conn, actor=actor, action="REVOKE", securable_type=securable_type, securable=securable,
                     details={"principal": principal, "privilege": privilege,
                              "reason": f"the {securable_type} was deleted"}, request_id=request_id)
    conn.execute(delete(t.securable_owners).where(t.securable_owners.c.securable_type == securable_type,
                                                  t.securable_owners.c.securable == securable))


def set_owner(engine, securable_type: str, securable: str, owner: str) -> None:
    with write_transaction(engine) as conn:
        set_owner_in(conn, securable_type, securable, owner)
