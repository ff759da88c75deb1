"""The Hangar server: a REST API (``/api/v1``) over the stores, with authentication and grants.

An outer shell (nothing else imports it). ``routes`` is the one route table: every route's
method, path, handler and its single (securable type, securable, privilege) requirement;
``guard`` enforces it for every route in one place; ``handlers/`` hold one module per resource
and never check permissions themselves.
"""
