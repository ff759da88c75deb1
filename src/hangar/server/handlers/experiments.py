"""Experiments: governed by their own READ, EDIT and MANAGE; the creator becomes the owner."""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.governance import grants
from hangar.governance import privileges as pv
from hangar.server.wire import int_param, str_field


def obj(body: dict, name: str) -> dict | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, dict) or not all(isinstance(k, str) for k in value)):
        raise InvalidArgumentError(f"{name!r} must be an object with string keys")
    return value


def str_list(body: dict, name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise InvalidArgumentError(f"{name!r} must be a list of strings")
    return [str(v) for v in value]


def create_experiment(ctx):
    """Any authenticated principal may create an experiment; it becomes its owner."""
    experiment_id = ctx.tracking.create_experiment(str_field(ctx.body, "name", max_len=10_000),
                                                   str_field(ctx.body, "artifact_location", False),
                                                   obj(ctx.body, "tags"))
    grants.set_owner(ctx.engine, pv.EXPERIMENT, str(experiment_id), ctx.actor)
    return {"experiment_id": str(experiment_id)}


def get_experiment(ctx):
    return ctx.tracking.get_experiment(ctx.path_params["experiment_id"])


def get_experiment_by_name(ctx):
    """The experiment of that name if the caller may READ it, else null (as for a name never used)."""
    exp = ctx.tracking.get_experiment_by_name(str_field(ctx.query, "name"))
    if exp is None or not ctx.access.check(pv.EXPERIMENT, str(exp.experiment_id), pv.READ):
        return {"experiment": None}
    return {"experiment": exp}


def search_experiments(ctx):
    b = ctx.body
    found, token = ctx.tracking.search_experiments(
        str_field(b, "filter", False), str_field(b, "view", False) or "active",
        int_param(b.get("max_results"), "max_results", 1000, 1, 50000), str_list(b, "order_by"),
        str_field(b, "page_token", False))
    visible = [e for e in found if ctx.access.check(pv.EXPERIMENT, str(e.experiment_id), pv.READ)]
    return {"experiments": visible, "next_page_token": token}


def delete_experiment(ctx):
    ctx.tracking.delete_experiment(ctx.path_params["experiment_id"])
    return {}


def restore_experiment(ctx):
    ctx.tracking.restore_experiment(ctx.path_params["experiment_id"])
    return {}


def set_experiment_tag(ctx):
    ctx.tracking.set_experiment_tag(ctx.path_params["experiment_id"], str_field(ctx.body, "key"), ctx.body.get("value"))
    return {}
