"""Principals, nested groups, tokens, grants and checks, on the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from hangar.catalog import audit
from hangar.catalog.store import SqlRegistry
from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError
from hangar.governance import grants, principals, tokens
from hangar.governance import privileges as pv
from hangar.governance.access import Access
from hangar.governance.authn import BearerTokenAuthenticator, Identity, NoAuthAuthenticator
from hangar.store import schema as t


def ident(engine, name):
    p = principals.get(engine, name)
    return Identity(p.name, p.id, p.kind)


def can(engine, name, kind, securable, privilege):
    return Access(engine, ident(engine, name)).check(kind, securable, privilege)


def test_nested_groups_give_their_grants_and_cycles_are_refused(store):
    e = store.engine
    for name, kind in [("alice", "user"), ("inner", "group"), ("outer", "group"), ("bot", "service_principal")]:
        principals.create(e, name, kind, actor="t")
    principals.add_member(e, "inner", "alice", actor="t")
    principals.add_member(e, "outer", "inner", actor="t")
    assert principals.effective_groups(e, "alice") == ["inner", "outer"]
    grants.grant(e, "experiment", "0", "outer", "READ", actor="t")
    assert can(e, "alice", "experiment", "0", "READ") and not can(e, "bot", "experiment", "0", "READ")
    with pytest.raises(ConflictError, match="cycle"):
        principals.add_member(e, "inner", "outer", actor="t")
    with pytest.raises(ConflictError):
        principals.add_member(e, "outer", "outer", actor="t")
    with pytest.raises(InvalidArgumentError, match="not a group"):
        principals.add_member(e, "alice", "bot", actor="t")
    with pytest.raises(AlreadyExistsError):
        principals.add_member(e, "inner", "alice", actor="t")
    principals.remove_member(e, "outer", "inner", actor="t")
    assert principals.effective_groups(e, "alice") == ["inner"]
    assert not can(e, "alice", "experiment", "0", "READ")


def test_grants_inherit_downward_and_need_the_use_privileges(store):
    e = store.engine
    reg = SqlRegistry(store, actor="owner")
    reg.create_catalog("cat")
    reg.create_schema("cat.sch")
    reg.create_registered_model("cat.sch.m")
    for name in ("owner", "bob", "carol"):
        principals.create(e, name, actor="t")
    grants.grant(e, "catalog", "cat", "bob", "EXECUTE", actor="admin")
    assert not can(e, "bob", "registered_model", "cat.sch.m", "EXECUTE")  # no USE_CATALOG / USE_SCHEMA yet
    grants.grant(e, "catalog", "cat", "bob", "USE_CATALOG", actor="admin")
    assert not can(e, "bob", "registered_model", "cat.sch.m", "EXECUTE")
    grants.grant(e, "schema", "cat.sch", "bob", "USE_SCHEMA", actor="admin")
    assert can(e, "bob", "registered_model", "cat.sch.m", "EXECUTE")  # the catalog's grant reaches the model
    assert not can(e, "bob", "registered_model", "cat.sch.m", "MANAGE")
    assert can(e, "owner", "registered_model", "cat.sch.m", "MANAGE")  # the owner holds everything beneath
    grants.grant(e, "metastore", "metastore", "carol", "ALL_PRIVILEGES", actor="admin")
    assert can(e, "carol", "registered_model", "cat.sch.m", "APPLY_TAG") and can(e, "carol", "experiment", "0", "EDIT")
    grants.revoke(e, "catalog", "cat", "bob", "EXECUTE", actor="admin")
    assert not can(e, "bob", "registered_model", "cat.sch.m", "EXECUTE")
    with store.engine.connect() as conn:
        actions = [(r.action, r.securable, r.details["privilege"]) for r in audit.list_records(conn, actor="admin")]
    assert ("REVOKE", "cat", "EXECUTE") in actions and ("GRANT", "cat.sch", "USE_SCHEMA") in actions


def test_experiment_privileges_nest_and_grants_are_validated(store):
    e = store.engine
    principals.create(e, "dora", actor="t")
    grants.grant(e, "experiment", "0", "dora", "EDIT", actor="t")
    assert can(e, "dora", "experiment", "0", "READ") and not can(e, "dora", "experiment", "0", "MANAGE")
    with pytest.raises(InvalidArgumentError):
        grants.grant(e, "experiment", "0", "dora", "EXECUTE", actor="t")
    with pytest.raises(InvalidArgumentError):
        grants.grant(e, "registered_model", "cat.sch.m", "dora", "USE_CATALOG", actor="t")
    with pytest.raises(InvalidArgumentError):
        grants.grant(e, "catalog", "x' OR '1'='1", "dora", "USE_CATALOG", actor="t")
    assert pv.effective("ALL_PRIVILEGES", "endpoint") == {"QUERY", "MANAGE"}


def test_tokens_are_random_stored_as_digests_and_expire_or_are_revoked(store):
    e = store.engine
    principals.create(e, "erin", actor="t")
    made = tokens.create(e, "erin", "laptop", actor="erin")
    assert made.token.startswith("hgr_") and len(made.token) == 47 and made.token not in repr(made)
    with e.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(select(t.tokens)) for v in row)
        audit_text = " ".join(str(r) for r in audit.list_records(conn))
    assert made.token not in dump and tokens.digest(made.token) in dump and made.token not in audit_text
    auth = BearerTokenAuthenticator(e)
    assert auth.authenticate({"authorization": f"Bearer {made.token}"}).name == "erin"
    from hangar.errors import UnauthenticatedError

    for bad in ["Bearer", "Basic abc", f"Bearer {made.token[:-1]}x", "Bearer hgr_short", f"bearer {made.token}x"]:
        with pytest.raises(UnauthenticatedError):
            auth.authenticate({"authorization": bad})
    with pytest.raises(UnauthenticatedError):
        auth.authenticate({})
    with e.begin() as conn:
        conn.execute(update(t.tokens).where(t.tokens.c.id == made.info.id).values(expires_at=1))
    with pytest.raises(UnauthenticatedError):
        auth.authenticate({"authorization": f"Bearer {made.token}"})
    second = tokens.create(e, "erin", "ci", lifetime_days=None, actor="erin")
    tokens.revoke(e, second.info.id, actor="erin", principal="erin")
    with pytest.raises(UnauthenticatedError):
        auth.authenticate({"authorization": f"Bearer {second.token}"})
    third = tokens.create(e, "erin", "x", actor="erin")
    principals.set_disabled(e, "erin", True, actor="admin")
    with pytest.raises(UnauthenticatedError):
        auth.authenticate({"authorization": f"Bearer {third.token}"})
    assert NoAuthAuthenticator("me").authenticate({}).superuser


def test_migration_creates_the_identity_tables(store):
    from sqlalchemy import inspect

    with store.engine.connect() as conn:
        missing = [t for t in ("principals", "group_members", "tokens", "grants", "securable_owners")
                   if not inspect(conn).has_table(t)]
    assert not missing


def test_deleting_a_securable_removes_its_grants_so_a_new_one_of_the_same_name_inherits_nothing(store):
    e = store.engine
    principals.create(e, "bob", "user", actor="t")
    reg = SqlRegistry(store, actor="admin")
    reg.create_catalog("c")
    reg.create_schema("c.s")
    reg.create_registered_model("c.s.m")
    for kind, name, privilege in [("catalog", "c", "USE_CATALOG"), ("catalog", "c", "CREATE_SCHEMA"),
                                  ("schema", "c.s", "USE_SCHEMA"), ("registered_model", "c.s.m", "EXECUTE")]:
        grants.grant(e, kind, name, "bob", privilege, actor="admin")
    reg.delete_registered_model("c.s.m")
    reg.delete_schema("c.s")
    reg.delete_catalog("c")
    assert grants.list_grants(e, principal="bob") == []
    with e.connect() as conn:
        revoked = [(r.securable_type, r.securable, r.details["privilege"])
                   for r in audit.list_records(conn, action="REVOKE", descending=False)]
    assert revoked == [("registered_model", "c.s.m", "EXECUTE"), ("schema", "c.s", "USE_SCHEMA"),
                       ("catalog", "c", "CREATE_SCHEMA"), ("catalog", "c", "USE_CATALOG")]
    reg.create_catalog("c")  # someone else's new catalog of the same name
    reg.create_schema("c.s")
    assert not can(e, "bob", "catalog", "c", "USE_CATALOG") and not can(e, "bob", "schema", "c.s", "USE_SCHEMA")
    assert not can(e, "bob", "catalog", "c", "CREATE_SCHEMA")
    with e.connect() as conn:
        assert audit.verify(conn).ok
