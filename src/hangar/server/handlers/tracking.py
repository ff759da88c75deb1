"""Experiments and runs: governed through their experiment (READ, EDIT, MANAGE)."""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.governance import grants
from hangar.governance import privileges as pv
from hangar.server.wire import int_param, str_field
from hangar.store.transactions import now_ms
from hangar.tracking.entities import Metric


def _str_list(body, name) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise InvalidArgumentError(f"{name!r} must be a list of strings")
    return [str(v) for v in value]


def create_experiment(ctx):
    """Any authenticated principal may create an experiment; it becomes its owner."""
    tags = ctx.body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise InvalidArgumentError("'tags' must be an object")
    experiment_id = ctx.tracking.create_experiment(str_field(ctx.body, "name", max_len=256), None, tags)
    grants.set_owner(ctx.engine, pv.EXPERIMENT, str(experiment_id), ctx.actor)
    return {"experiment_id": str(experiment_id)}


def get_experiment(ctx):
    return ctx.tracking.get_experiment(ctx.path_params["experiment_id"])


def search_experiments(ctx):
    b = ctx.body
    found, token = ctx.tracking.search_experiments(
        str_field(b, "filter", False), str_field(b, "view", False) or "active",
        int_param(b.get("max_results"), "max_results", 1000, 1, 50000), _str_list(b, "order_by"),
        str_field(b, "page_token", False))
    visible = [e for e in found if ctx.access.check(pv.EXPERIMENT, str(e.experiment_id), pv.READ)]
    return {"experiments": visible, "next_page_token": token}


def create_run(ctx):
    b = ctx.body
    tags = b.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise InvalidArgumentError("'tags' must be an object")
    return ctx.tracking.create_run(str(b.get("experiment_id")), str_field(b, "run_name", False, 250),
                                   int_param(b.get("start_time"), "start_time", None, 0, 10**15), tags,
                                   None, ctx.actor)


def get_run(ctx):
    return ctx.tracking.get_run(ctx.path_params["run_id"])


def update_run(ctx):
    b = ctx.body
    run_id = ctx.path_params["run_id"]
    ctx.tracking.update_run_info(run_id, status=str_field(b, "status", False, 20),
                                 end_time=int_param(b.get("end_time"), "end_time", None, 0, 10**15),
                                 run_name=str_field(b, "run_name", False, 250))
    return ctx.tracking.get_run(run_id).info


def log_batch(ctx):
    b = ctx.body
    metrics = []
    for m in b.get("metrics") or []:
        if not isinstance(m, dict):
            raise InvalidArgumentError("Each metric is an object {key, value, timestamp, step}")
        metrics.append(Metric(str_field(m, "key", max_len=250), m.get("value"),
                              int_param(m.get("timestamp"), "timestamp", now_ms(), 0, 10**15),
                              int_param(m.get("step"), "step", 0, -(2**63), 2**63 - 1)))
    params, tags = b.get("params") or {}, b.get("tags") or {}
    if not isinstance(params, dict) or not isinstance(tags, dict):
        raise InvalidArgumentError("'params' and 'tags' must be objects")
    ctx.tracking.log_batch(ctx.path_params["run_id"], metrics, params, tags)
    return {}


def metric_history(ctx):
    return {"metrics": ctx.tracking.get_metric_history(ctx.path_params["run_id"], ctx.path_params["key"])}


def search_runs(ctx):
    """Runs of the experiments asked for that the caller may READ (the others are left out)."""
    b = ctx.body
    wanted = _str_list(b, "experiment_ids") or ["0"]
    allowed = [e for e in wanted if e.isdigit() and ctx.access.check(pv.EXPERIMENT, str(int(e)), pv.READ)]
    if not allowed:
        return {"runs": [], "next_page_token": None}
    runs, token = ctx.tracking.search_runs(allowed, str_field(b, "filter", False), str_field(b, "view", False) or "active",
                                           int_param(b.get("max_results"), "max_results", 1000, 1, 50000),
                                           _str_list(b, "order_by"), str_field(b, "page_token", False))
    return {"runs": runs, "next_page_token": token}
