"""The fluent API (MLflow's names): an active experiment and a stack of active runs.

That state lives in context variables, so threads and asyncio tasks each see their own;
everything beneath takes explicit arguments.
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

from hangar.errors import InvalidArgumentError
from hangar.store.transactions import now_ms
from hangar.tracking.client import Client, runs_to_dataframe
from hangar.tracking.entities import DEFAULT_EXPERIMENT_ID, Experiment, Metric, Run

_tracking_uri: contextvars.ContextVar[str | None] = contextvars.ContextVar("hangar_tracking_uri", default=None)
_client: contextvars.ContextVar[Client | None] = contextvars.ContextVar("hangar_client", default=None)
_experiment_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hangar_experiment", default=None)
_runs: contextvars.ContextVar[tuple] = contextvars.ContextVar("hangar_runs", default=())


def set_tracking_uri(uri: str | os.PathLike | None) -> None:
    """Use this store (``sqlite:///...``, ``postgresql://...``, a path, or a server ``http://...``) from now on in
    this context."""
    _tracking_uri.set(os.fspath(uri) if uri is not None else None)
    _client.set(None)
    _experiment_id.set(None)


def get_tracking_uri() -> str:
    return client().tracking_uri


def client() -> Client:
    """The Client of the current tracking URI (opened once per context)."""
    c = _client.get()
    if c is None:
        c = Client(_tracking_uri.get())
        _client.set(c)
    return c


class ActiveRun:
    """What ``start_run`` returns; as a context manager it ends the run (FAILED on an exception)."""

    def __init__(self, run: Run):
        self.info = run.info
        self._token = None

    @property
    def data(self):
        return client().get_run(self.info.run_id).data

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(self, exc_type, exc, tb):
        if active_run() is not None and active_run().info.run_id == self.info.run_id:
            end_run("FAILED" if exc_type else "FINISHED")
        return False


def set_experiment(experiment_name: str | None = None, experiment_id: str | None = None) -> Experiment:
    """Make an experiment active, creating it by name if it does not exist."""
    c = client()
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidArgumentError("Pass exactly one of experiment_name or experiment_id")
    if experiment_id is not None:
        exp = c.get_experiment(experiment_id)
    else:
        exp = c.get_experiment_by_name(experiment_name)
        if exp is None:
            from hangar.errors import AlreadyExistsError, ConflictError

            try:
                exp = c.get_experiment(c.create_experiment(experiment_name))
            except (AlreadyExistsError, ConflictError):  # another process created it just now
                exp = c.get_experiment_by_name(experiment_name)
    if exp.lifecycle_stage != "active":
        raise InvalidArgumentError(f"Experiment {exp.name!r} is deleted; restore it first (Client.restore_experiment)")
    _experiment_id.set(exp.experiment_id)
    return exp


def _current_experiment_id() -> str:
    return _experiment_id.get() or os.environ.get("HANGAR_EXPERIMENT_ID") or DEFAULT_EXPERIMENT_ID


def active_run() -> ActiveRun | None:
    stack = _runs.get()
    return stack[-1] if stack else None


def start_run(run_id: str | None = None, experiment_id: str | None = None, run_name: str | None = None,
              nested: bool = False, tags: dict | None = None) -> ActiveRun:
    """Start a run (or resume ``run_id``); ``nested=True`` makes it a child of the active run."""
    c = client()
    parent = active_run()
    if parent is not None and not nested and run_id is None:
        raise InvalidArgumentError(
            f"Run {parent.info.run_id} is already active. End it with end_run(), or pass nested=True "
            "to start a child run"
        )
    if run_id is not None:
        run = c.get_run(run_id)
        if run.info.lifecycle_stage != "active":
            raise InvalidArgumentError(f"Run {run_id} is deleted; restore it before resuming it")
        c.update_run(run_id, status="RUNNING")
    else:
        run = c.create_run(experiment_id or _current_experiment_id(), run_name=run_name, tags=tags,
                           parent_run_id=parent.info.run_id if (parent and nested) else None)
    active = ActiveRun(run)
    _runs.set(_runs.get() + (active,))
    return active


def end_run(status: str = "FINISHED") -> None:
    stack = _runs.get()
    if not stack:
        return
    run = stack[-1]
    _runs.set(stack[:-1])
    client().set_terminated(run.info.run_id, status)


def _run_id() -> str:
    """The active run's id, starting a run if none is active (as MLflow does)."""
    run = active_run() or start_run()
    return run.info.run_id


def log_param(key: str, value) -> Any:
    client().log_param(_run_id(), key, value)
    return value


def log_params(params: dict) -> None:
    client().log_batch(_run_id(), params=params)


def log_metric(key: str, value, step: int | None = None, timestamp: int | None = None,
               model_id: str | None = None) -> None:
    """Log one value of a metric (history is kept); ``model_id`` also attaches it to a logged model."""
    c = client()
    run_id = _run_id()
    ts = timestamp if timestamp is not None else now_ms()
    c.log_metric(run_id, key, value, ts, step or 0)
    if model_id is not None:
        c.store.log_logged_model_metrics(model_id, [Metric(key, value, ts, step or 0)], run_id)


def log_metrics(metrics: dict, step: int | None = None, timestamp: int | None = None) -> None:
    ts = timestamp if timestamp is not None else now_ms()
    client().log_batch(_run_id(), metrics=[Metric(k, val, ts, step or 0) for k, val in metrics.items()])


def set_tag(key: str, value) -> None:
    client().set_tag(_run_id(), key, value)


def set_tags(tags: dict) -> None:
    client().log_batch(_run_id(), tags=tags)


def log_artifact(local_path, artifact_path: str | None = None) -> None:
    client().log_artifact(_run_id(), local_path, artifact_path)


def log_artifacts(local_dir, artifact_path: str | None = None) -> None:
    client().log_artifacts(_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    client().log_text(_run_id(), text, artifact_file)


def log_dict(dictionary: dict, artifact_file: str) -> None:
    client().log_dict(_run_id(), dictionary, artifact_file)


def log_input(dataset, context: str | None = None, *, name: str | None = None, source: str | None = None):
    """Record a dataset the run used: a Dataset, or data (DataFrame, Arrow table, rows) to describe."""
    from hangar.tracking.datasets import DatasetInput, dataset_from

    ds = dataset_from(dataset, name=name, source=source)
    client().log_inputs(_run_id(), [DatasetInput(ds, context)])
    return ds


def search_runs(experiment_ids: list | None = None, filter_string: str | None = None,
                order_by: list[str] | None = None, max_results: int = 1000, view: str = "active",
                output_format: str = "pandas", experiment_names: list[str] | None = None):
    """Runs of the given experiments (default: the active one), as a DataFrame or a list of Runs."""
    c = client()
    ids = list(experiment_ids or [])
    for name in experiment_names or []:
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise InvalidArgumentError(f"No experiment named {name!r}")
        ids.append(exp.experiment_id)
    if not ids:
        ids = [_current_experiment_id()]
    runs, _token = c.search_runs(ids, filter_string, view, max_results, order_by)
    if output_format == "list":
        return runs
    if output_format != "pandas":
        raise InvalidArgumentError(f"output_format is 'pandas' or 'list', not {output_format!r}")
    return runs_to_dataframe(runs)
