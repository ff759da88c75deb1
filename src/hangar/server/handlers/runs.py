"""Runs, their params, metrics, tags and dataset inputs: governed through their experiment.

Values go to the store as the client sent them, so that the store's validation (and its
messages) is the same through the server as in process.
"""

from __future__ import annotations

from hangar.errors import InvalidArgumentError
from hangar.governance import privileges as pv
from hangar.server.handlers.experiments import obj, str_list
from hangar.server.wire import int_param, str_field
from hangar.tracking.entities import Dataset, DatasetInput, Metric


def create_run(ctx):
    b = ctx.body
    run = ctx.tracking.create_run(str(b.get("experiment_id")), b.get("run_name"), b.get("start_time"),
                                  obj(b, "tags"), str_field(b, "parent_run_id", False, 64), ctx.actor)
    ctx.services.run_experiments.remember(run.info.run_id, run.info.experiment_id)
    return run


def get_run(ctx):
    return ctx.tracking.get_run(ctx.path_params["run_id"])


def update_run(ctx):
    b = ctx.body
    ctx.tracking.update_run_info(ctx.path_params["run_id"], status=b.get("status"), end_time=b.get("end_time"),
                                 run_name=b.get("run_name"))
    return {}


def delete_run(ctx):
    ctx.tracking.delete_run(ctx.path_params["run_id"])
    return {}


def restore_run(ctx):
    ctx.tracking.restore_run(ctx.path_params["run_id"])
    return {}


def metrics_from(items) -> list[Metric]:
    if not isinstance(items, list):
        raise InvalidArgumentError("'metrics' must be a list of {key, value, timestamp, step}")
    out = []
    for m in items:
        if not isinstance(m, dict):
            raise InvalidArgumentError("Each metric is an object {key, value, timestamp, step}")
        ts = m.get("timestamp")
        out.append(Metric(m.get("key"), m.get("value"), ts if ts is not None else _now(), m.get("step", 0)))
    return out


def _now() -> int:
    from hangar.store.transactions import now_ms

    return now_ms()


def log_batch(ctx):
    b = ctx.body
    ctx.tracking.log_batch(ctx.path_params["run_id"], metrics_from(b.get("metrics") or []), obj(b, "params"),
                           obj(b, "tags"))
    return {}


def log_param(ctx):
    ctx.tracking.log_param(ctx.path_params["run_id"], ctx.body.get("key"), ctx.body.get("value"))
    return {}


def log_metric(ctx):
    b = ctx.body
    ctx.tracking.log_metric(ctx.path_params["run_id"], b.get("key"), b.get("value"), b.get("timestamp"),
                            b.get("step", 0))
    return {}


def set_tag(ctx):
    ctx.tracking.set_tag(ctx.path_params["run_id"], ctx.body.get("key"), ctx.body.get("value"))
    return {}


def delete_tag(ctx):
    ctx.tracking.delete_tag(ctx.path_params["run_id"], str_field(ctx.query, "key"))
    return {}


def metric_history(ctx):
    return {"metrics": ctx.tracking.get_metric_history(ctx.path_params["run_id"], ctx.path_params["key"])}


def log_inputs(ctx):
    items = ctx.body.get("inputs")
    if not isinstance(items, list):
        raise InvalidArgumentError("'inputs' must be a list of {dataset, context}")
    inputs = []
    for item in items:
        ds = item.get("dataset") if isinstance(item, dict) else None
        if not isinstance(ds, dict):
            raise InvalidArgumentError("Each input is an object {dataset: {...}, context}")
        try:
            inputs.append(DatasetInput(Dataset(**ds), item.get("context")))
        except TypeError as exc:
            raise InvalidArgumentError(f"Invalid dataset: {exc}") from None
    ctx.tracking.log_inputs(ctx.path_params["run_id"], inputs)
    return {}


def search_runs(ctx):
    """Runs of the experiments asked for that the caller may READ (the others are left out)."""
    b = ctx.body
    wanted = str_list(b, "experiment_ids") or ["0"]
    allowed = [e for e in wanted if e.isdecimal() and ctx.access.check(pv.EXPERIMENT, str(int(e)), pv.READ)]
    if not allowed:
        return {"runs": [], "next_page_token": None}
    runs, token = ctx.tracking.search_runs(allowed, str_field(b, "filter", False), str_field(b, "view", False) or "active",
                                           int_param(b.get("max_results"), "max_results", 1000, 1, 50000),
                                           str_list(b, "order_by"), str_field(b, "page_token", False))
    return {"runs": runs, "next_page_token": token}
