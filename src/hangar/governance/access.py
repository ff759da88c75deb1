"""Permission checks: ``check(identity, securable_type, securable, privilege)``.

An ``Access`` is made per request for one identity: it loads that principal's groups and grants
once, and looks up owners as it needs them (cached), so filtering a list of N items costs the
owner lookups of those items and nothing per grant. See ``privileges`` for the rules.
"""

from __future__ import annotations

from hangar.governance import grants as g
from hangar.governance import principals
from hangar.governance import privileges as pv
from hangar.governance.authn import Identity


class Access:
    """What one identity may do, evaluated against the store as it is now."""

    def __init__(self, engine, identity: Identity, cache=None):
        self.engine = engine
        self.identity = identity
        self._owners: dict[tuple[str, str], str | None] = {}
        self._names: set[str] = set()
        self._grants: dict[tuple[str, str], set[str]] = {}
        if identity.superuser or identity.principal_id is None:
            return
        held = cache.views.get(identity.principal_id) if cache is not None else None
        if held is not None:
            self._names, self._grants = held  # read-only from here on
            return
        from sqlalchemy import select

        from hangar.store import schema as t

        with engine.connect() as conn:
            ids = principals.effective_ids(conn, identity.principal_id)
            self._names = set(conn.execute(select(t.principals.c.name).where(t.principals.c.id.in_(sorted(ids))))
                              .scalars())
            for securable_type, securable, privilege in g.grants_of(conn, ids):
                self._grants.setdefault((securable_type, securable), set()).add(privilege)
        if cache is not None:  # (refreshed by this request's authentication, moments ago)
            cache.views[identity.principal_id] = (self._names, self._grants)

    # -- owners ------------------------------------------------------------------------
    def prime_owner(self, securable_type: str, securable: str, owner: str | None) -> None:
        """Tell the view an owner already read (a listed row), saving a query."""
        self._owners[(securable_type, securable)] = owner

    def _owns(self, level: tuple[str, str]) -> bool:
        if level[0] == pv.METASTORE:
            return False
        if level not in self._owners:
            with self.engine.connect() as conn:
                self._owners[level] = g.owner_of(conn, *level)
        return self._owners[level] in self._names

    # -- checks ------------------------------------------------------------------------
    def _holds(self, levels: list[tuple[str, str]], index: int, privilege: str) -> bool:
        """``privilege`` on ``levels[index]``, from a grant or ownership there or on any ancestor."""
        target_type = levels[index][0]
        for level in levels[:index + 1]:
            for granted in self._grants.get(level, ()):
                if privilege in pv.effective(granted, target_type):
                    return True
        return any(self._owns(level) for level in levels[:index + 1])

    def check(self, securable_type: str, securable: str, privilege: str) -> bool:
        if self.identity.superuser:
            return True
        levels = pv.chain(securable_type, securable)
        return all(self._holds(levels, i, p) for i, p in pv.requirements(securable_type, securable, privilege))

    def check_everywhere(self, securable_type: str, privilege: str) -> bool:
        """Whether a grant on the metastore gives ``privilege`` on every securable of this type."""
        if self.identity.superuser:
            return True
        root = (pv.METASTORE, pv.METASTORE_NAME)
        return any(privilege in pv.effective(p, securable_type) for p in self._grants.get(root, ()))

    def check_any(self, securable_type: str, securable: str, privileges) -> bool:
        return any(self.check(securable_type, securable, p) for p in privileges)

    def can_see(self, securable_type: str, securable: str) -> bool:
        """Whether a list may show this securable: the USE privileges on the way to it plus any privilege on it."""
        return self.check_any(securable_type, securable, pv.APPLICABLE[securable_type])

    def is_admin(self) -> bool:
        return self.check(pv.METASTORE, pv.METASTORE_NAME, pv.MANAGE)


def check(engine, identity: Identity, securable_type: str, securable: str, privilege: str) -> bool:
    """One check, with its own view (use ``Access`` to make several for the same caller)."""
    return Access(engine, identity).check(securable_type, pv.normalise(securable_type, securable), privilege)
