"""Identity and permissions: principals, tokens, authenticators, privileges, grants, checks.

Why a package of its own, below ``catalog``, ``tracking``, ``serving`` and ``server``: the one
permission model covers every securable (the catalog tree, experiments, endpoints), so every
stage that owns a securable, and the server that fronts them all, must be able to import it;
``server/`` is an outer shell that nothing imports, so identity cannot live there, and putting
it in ``catalog/`` would make tracking and serving import the registry to ask about an
experiment or an endpoint. ``governance`` depends only on ``store`` (tables, transactions) and on
the audit log (``hangar.catalog.audit``, which itself depends only on ``store``).

Modules: ``privileges`` (securable types, privileges, what implies what), ``principals``
(users, groups, service principals, nested membership), ``tokens`` (personal access tokens),
``authn`` (the pluggable authenticator), ``grants`` (grant / revoke / list, owners; audited),
``access`` (``check`` and list filtering).
"""
