"""Registering a version through the server, and loading one.

A client registers in three steps: ``CREATE_VERSION`` makes a PENDING version with a lease,
the files are uploaded to ``/artifacts/models/{name}/versions/{version}/files/...`` (only
while PENDING), and ``FINALIZE_VERSION`` has the server compute every file's checksum from
storage, check it against the package's manifest and mark the version READY (or FAILED).
"""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.server.handlers.models import _name, _tags
from hangar.server.wire import int_param, str_field


def create_version(ctx):
    b = ctx.body
    lm_id = str_field(b, "logged_model_id", False, 64)
    if lm_id is not None:
        ctx.tracking.get_logged_model(lm_id)  # must exist in this store
    return ctx.registry.begin_version(
        _name(ctx), str_field(b, "source", max_len=4000), lm_id, str_field(b, "run_id", False, 64),
        comment=str_field(b, "comment", False), tags=_tags(b),
        lease_seconds=int_param(b.get("lease_seconds"), "lease_seconds", 900, 1, 7 * 86400), create_model=False)


def finalize_version(ctx):
    status = ctx.body.get("status", "READY")
    if status == "FAILED":
        return ctx.registry.fail_version(_name(ctx), ctx.path_params["version"],
                                         str_field(ctx.body, "message", False) or "the client gave up")
    if status != "READY":
        raise InvalidArgumentError(f"A version is finalized as READY or FAILED, not {status!r}")
    return ctx.registry.finalize_uploaded_version(_name(ctx), ctx.path_params["version"])


def load_version(ctx):
    """The READY version to load (by ?version= or ?alias=); the load is audited."""
    q = ctx.query
    if (q.get("version") is None) == (q.get("alias") is None):
        raise InvalidArgumentError("Give exactly one of ?version= and ?alias=")
    name = _name(ctx)
    uri = f"models:/{name}@{q['alias']}" if q.get("alias") is not None else f"models:/{name}/{q['version']}"
    return ctx.registry.version_to_load(uri)
