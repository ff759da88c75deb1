"""Logged models: governed through their experiment (READ to see, EDIT to write)."""

from __future__ import annotations

from hangar.governance import privileges as pv
from hangar.server.handlers.experiments import obj, str_list
from hangar.server.handlers.runs import metrics_from
from hangar.server.wire import int_param, str_field


def create_logged_model(ctx):
    b = ctx.body
    return ctx.tracking.create_logged_model(
        str(b.get("experiment_id")), b.get("name"), str_field(b, "source_run_id", False, 64), obj(b, "params"),
        obj(b, "tags"), int_param(b.get("lease_seconds"), "lease_seconds", 900, -86400, 7 * 86400))


def get_logged_model(ctx):
    return ctx.tracking.get_logged_model(ctx.path_params["model_id"])


def finalize_logged_model(ctx):
    return ctx.tracking.finalize_logged_model(ctx.path_params["model_id"], ctx.body.get("status"),
                                              str_list(ctx.body, "flavors"))


def set_logged_model_tags(ctx):
    ctx.tracking.set_logged_model_tags(ctx.path_params["model_id"], obj(ctx.body, "tags") or {})
    return {}


def log_logged_model_metrics(ctx):
    ctx.tracking.log_logged_model_metrics(ctx.path_params["model_id"], metrics_from(ctx.body.get("metrics") or []),
                                          str_field(ctx.body, "run_id", False, 64))
    return {}


def find_logged_model(ctx):
    return {"logged_model": ctx.tracking.find_logged_model(ctx.path_params["run_id"], ctx.path_params["name"])}


def search_logged_models(ctx):
    """Logged models of the experiments asked for that the caller may READ."""
    b = ctx.body
    wanted = str_list(b, "experiment_ids") or ["0"]
    allowed = [e for e in wanted if e.isdecimal() and ctx.access.check(pv.EXPERIMENT, str(int(e)), pv.READ)]
    if not allowed:
        return {"logged_models": [], "next_page_token": None}
    found, token = ctx.tracking.search_logged_models(
        allowed, str_field(b, "filter", False), int_param(b.get("max_results"), "max_results", 1000, 1, 50000),
        str_list(b, "order_by"), str_field(b, "page_token", False))
    return {"logged_models": found, "next_page_token": token}
