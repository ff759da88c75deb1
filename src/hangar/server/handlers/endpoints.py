"""Endpoints (real-time deployments) through the server: their stored definitions, and the one
question a serving process asks per new caller, "may this token query you?".

Any authenticated principal may create an endpoint and becomes its owner (MANAGE, hence QUERY);
it must also be able to use every registered model the endpoint serves (the route table's
``also``: EXECUTE on each). QUERY lets a principal read an endpoint's definition and call it;
MANAGE lets it change or delete it. A serving process (``hangar endpoints serve`` pointed at the
server) forwards its callers' tokens to ``.../query-access``: the guard then authenticates that
caller, checks QUERY and audits a denial, exactly as for any other route.
"""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.governance import privileges as pv
from hangar.server.wire import str_field


def _store(ctx):
    from hangar.serving.endpoint_store import EndpointStore

    return EndpointStore(ctx.engine, ctx.actor, ctx.request_id)


def entity_json(ep) -> dict:
    return {"name": ep.name, "config": ep.config.to_dict(), "revision": ep.revision, "created_by": ep.created_by,
            "created_at": ep.created_at, "updated_by": ep.updated_by, "updated_at": ep.updated_at}


def config_in_body(ctx):
    """The body's ``config``, validated as ``hangar endpoints create --config`` validates a YAML file."""
    from hangar.serving.endpoint_config import parse_endpoint_config

    data = ctx.body.get("config")
    if not isinstance(data, dict):
        raise InvalidArgumentError("The request needs 'config': the endpoint's config as a JSON object "
                                   "(what endpoint.yaml holds: served_entities, limits, ...)")
    return parse_endpoint_config(data)


def create_endpoint(ctx):
    name = str_field(ctx.body, "name", max_len=128)
    return entity_json(_store(ctx).create(name, config_in_body(ctx)))


def list_endpoints(ctx):
    return {"endpoints": [entity_json(ep) for ep in _store(ctx).list()
                          if ctx.access.can_see(pv.ENDPOINT, ep.name)]}


def get_endpoint(ctx):
    return entity_json(_store(ctx).get(ctx.path_params["name"]))


def update_endpoint(ctx):
    return entity_json(_store(ctx).update(ctx.path_params["name"], config_in_body(ctx)))


def delete_endpoint(ctx):
    name = ctx.path_params["name"]
    _store(ctx).delete(name)
    return {"deleted": name}


def query_access(ctx):
    """Reached only when the guard found that the caller holds the route's privilege: who it is."""
    return {"principal": ctx.actor, "allowed": True}
