"""The caller, principals, tokens, grants and the audit log."""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.governance import grants, principals, tokens
from hangar.governance import privileges as pv
from hangar.server.wire import int_param, str_field


def whoami(ctx):
    ident = ctx.identity
    groups = principals.effective_groups(ctx.engine, ident.name) if ident.principal_id is not None else []
    return {"name": ident.name, "kind": ident.kind, "groups": groups, "auth": not ident.superuser}


# -- principals --------------------------------------------------------------------------
def create_principal(ctx):
    return principals.create(ctx.engine, str_field(ctx.body, "name", max_len=256),
                             str_field(ctx.body, "kind", False) or principals.USER, actor=ctx.actor,
                             request_id=ctx.request_id)


def list_principals(ctx):
    return {"principals": principals.list_all(ctx.engine, ctx.query.get("kind") or None)}


def get_principal(ctx):
    name = ctx.path_params["principal"]
    p = principals.get(ctx.engine, name)
    out = {"principal": p, "groups": principals.effective_groups(ctx.engine, name)}
    if p.kind == principals.GROUP:
        out["members"] = [m.name for m in principals.members(ctx.engine, name)]
    return out


def add_member(ctx):
    principals.add_member(ctx.engine, ctx.path_params["principal"], str_field(ctx.body, "member", max_len=256),
                          actor=ctx.actor, request_id=ctx.request_id)
    return {}


def remove_member(ctx):
    principals.remove_member(ctx.engine, ctx.path_params["principal"], ctx.path_params["member"], actor=ctx.actor,
                             request_id=ctx.request_id)
    return {}


# -- tokens ------------------------------------------------------------------------------
def _lifetime(body):
    days = body.get("lifetime_days", 90)
    if days is not None and (isinstance(days, bool) or not isinstance(days, (int, float))):
        raise InvalidArgumentError("'lifetime_days' must be a number of days, or null for no expiry")
    return days


def _new_token(ctx, principal: str):
    made = tokens.create(ctx.engine, principal, str_field(ctx.body, "name", False, 128) or "token",
                         lifetime_days=_lifetime(ctx.body), actor=ctx.actor, request_id=ctx.request_id)
    return {"token": made.token, "info": made.info}


def create_own_token(ctx):
    if ctx.identity.principal_id is None:
        raise InvalidArgumentError("With authentication off there is no principal to create a token for")
    return _new_token(ctx, ctx.identity.name)


def create_token_for(ctx):
    return _new_token(ctx, ctx.path_params["principal"])


def list_own_tokens(ctx):
    return {"tokens": tokens.list_for(ctx.engine, ctx.identity.name)}


def revoke_own_token(ctx):
    tokens.revoke(ctx.engine, ctx.path_params["token_id"], actor=ctx.actor, principal=ctx.identity.name,
                  request_id=ctx.request_id)
    return {}


# -- grants ------------------------------------------------------------------------------
def list_grants(ctx):
    p = ctx.path_params
    return {"grants": grants.list_grants(ctx.engine, p["securable_type"], p["securable"])}


def add_grant(ctx):
    p = ctx.path_params
    return grants.grant(ctx.engine, p["securable_type"], p["securable"], str_field(ctx.body, "principal", max_len=256),
                        str_field(ctx.body, "privilege", max_len=32), actor=ctx.actor, request_id=ctx.request_id)


def remove_grant(ctx):
    p, q = ctx.path_params, ctx.query
    grants.revoke(ctx.engine, p["securable_type"], p["securable"], str_field(q, "principal", max_len=256),
                  str_field(q, "privilege", max_len=32), actor=ctx.actor, request_id=ctx.request_id)
    return {}


def my_grants(ctx):
    return {"grants": grants.list_grants(ctx.engine, principal=ctx.identity.name)}


# -- audit -------------------------------------------------------------------------------
def _may_read_audit(access, record) -> bool:
    """A record is shown to whoever may MANAGE its securable (metastore admins see everything)."""
    kind, name = record.securable_type, record.securable
    if kind not in pv.SECURABLE_TYPES:
        return False
    try:
        name = pv.normalise(kind, name)
    except InvalidArgumentError:
        return False
    return access.check(kind, name, pv.MANAGE)


def list_audit(ctx):
    from hangar.catalog import audit

    q = ctx.query
    with ctx.engine.connect() as conn:
        records = audit.list_records(conn, securable=q.get("securable") or None, under=q.get("under") or None,
                                     securable_prefix=q.get("securable_prefix") or None,
                                     descending=q.get("descending", "true") != "false",
                                     action=q.get("action") or None, actor=q.get("actor") or None,
                                     since_ms=int_param(q.get("since_ms"), "since_ms", None, 0, 10**15),
                                     until_ms=int_param(q.get("until_ms"), "until_ms", None, 0, 10**15),
                                     limit=int_param(q.get("limit"), "limit", 1000, 1, 100_000))
    if not ctx.access.is_admin():
        records = [r for r in records if _may_read_audit(ctx.access, r)]
    return {"records": records}


def verify_audit(ctx):
    from hangar.catalog import audit

    with ctx.engine.connect() as conn:
        anchor = ctx.query.get("anchor")
        return audit.verify(conn, anchor=anchor) if anchor else audit.verify(conn)
