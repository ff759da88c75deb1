"""``hangar.Client``: the full tracking API over one store, with explicit arguments."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hangar.config import Settings, local_user
from hangar.errors import InvalidArgumentError
from hangar.store.transactions import now_ms
from hangar.tracking.entities import DEFAULT_EXPERIMENT_ID, TERMINAL_STATUSES, Metric, Run
from hangar.tracking.sql_store import SqlTrackingStore


def open_store(tracking_uri: str | None = None, artifact_root: str | None = None,
               settings: Settings | None = None):
    """A ``SqlTrackingStore`` for a database URI or path; a ``RestTrackingStore`` for ``http(s)://``
    (a Hangar server: ``artifact_root`` is then the server's business and is ignored)."""
    settings = settings or Settings.from_env()
    uri = os.fspath(tracking_uri) if tracking_uri else settings.store_uri
    if uri.startswith(("http://", "https://")):
        from hangar.remote import token_for
        from hangar.tracking.rest_store import RestTrackingStore

        return RestTrackingStore(uri, token_for(settings, uri))
    if "://" not in uri and not uri.startswith("sqlite:"):
        uri = f"sqlite:///{Path(uri).expanduser().absolute()}"
    return SqlTrackingStore(uri, artifact_root or settings.artifacts_uri)


class Client:
    """Experiments, runs, metrics, artifacts, datasets and logged models.

    ``Client()`` uses ``HANGAR_TRACKING_URI`` or the SQLite store under ``HANGAR_HOME``.
    """

    def __init__(self, tracking_uri: str | None = None, artifact_root: str | None = None,
                 settings: Settings | None = None, store: SqlTrackingStore | None = None):
        self.settings = settings or Settings.from_env()
        self.store = store or open_store(tracking_uri, artifact_root, self.settings)

    @property
    def tracking_uri(self) -> str:
        return self.store.uri

    # -- experiments -------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None = None, tags: dict | None = None) -> str:
        return self.store.create_experiment(name, artifact_location, tags)

    def get_experiment(self, experiment_id):
        return self.store.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str):
        return self.store.get_experiment_by_name(name)

    def search_experiments(self, filter_string: str | None = None, view: str = "active", max_results: int = 1000,
                           order_by: list[str] | None = None, page_token: str | None = None):
        return self.store.search_experiments(filter_string, view, max_results, order_by, page_token)

    def delete_experiment(self, experiment_id) -> None:
        self.store.delete_experiment(experiment_id)

    def restore_experiment(self, experiment_id) -> None:
        self.store.restore_experiment(experiment_id)

    def set_experiment_tag(self, experiment_id, key: str, value) -> None:
        self.store.set_experiment_tag(experiment_id, key, value)

    # -- runs --------------------------------------------------------------------------
    def create_run(self, experiment_id=DEFAULT_EXPERIMENT_ID, run_name: str | None = None,
                   tags: dict | None = None, parent_run_id: str | None = None, start_time: int | None = None) -> Run:
        return self.store.create_run(experiment_id, run_name, start_time, tags, parent_run_id, local_user())

    def get_run(self, run_id: str) -> Run:
        return self.store.get_run(run_id)

    def set_terminated(self, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> None:
        if status not in TERMINAL_STATUSES:
            raise InvalidArgumentError(f"A run ends as one of {', '.join(TERMINAL_STATUSES)}, not {status!r}")
        self.store.update_run_info(run_id, status=status, end_time=end_time or now_ms())

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        self.store.update_run_info(run_id, status=status, run_name=name)

    def delete_run(self, run_id: str) -> None:
        self.store.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.store.restore_run(run_id)

    def log_param(self, run_id: str, key: str, value) -> None:
        self.store.log_param(run_id, key, value)

    def log_metric(self, run_id: str, key: str, value, timestamp: int | None = None, step: int | None = None) -> None:
        self.store.log_metric(run_id, key, value, timestamp, step or 0)

    def log_batch(self, run_id: str, metrics: list[Metric] = (), params: dict | None = None,
                  tags: dict | None = None) -> None:
        self.store.log_batch(run_id, list(metrics), params, tags)

    def set_tag(self, run_id: str, key: str, value) -> None:
        self.store.set_tag(run_id, key, value)

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.delete_tag(run_id, key)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.store.get_metric_history(run_id, key)

    def search_runs(self, experiment_ids: list | str | None = None, filter_string: str | None = None,
                    view: str = "active", max_results: int = 1000, order_by: list[str] | None = None,
                    page_token: str | None = None):
        """``(runs, next_page_token)``; see :func:`runs_to_dataframe` for a table."""
        if experiment_ids is None:
            experiment_ids = [DEFAULT_EXPERIMENT_ID]
        elif isinstance(experiment_ids, (str, int)):
            experiment_ids = [experiment_ids]
        return self.store.search_runs(list(experiment_ids), filter_string, view, max_results, order_by, page_token)

    # -- datasets ----------------------------------------------------------------------
    def log_inputs(self, run_id: str, inputs: list) -> None:
        self.store.log_inputs(run_id, inputs)

    # -- artifacts ---------------------------------------------------------------------
    def artifact_repository(self, run_id: str):
        return self.store.run_artifacts(run_id)

    def log_artifact(self, run_id: str, local_path: str | os.PathLike, artifact_path: str | None = None) -> None:
        path = Path(local_path)
        repo = self.artifact_repository(run_id)
        if path.is_dir():
            repo.log_artifacts(path, artifact_path)
        elif path.is_file():
            repo.log_artifact(path, artifact_path)
        else:
            raise InvalidArgumentError(f"Cannot log {local_path}: no such file or directory")

    def log_artifacts(self, run_id: str, local_dir: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not Path(local_dir).is_dir():
            raise InvalidArgumentError(f"Cannot log {local_dir}: it is not a directory")
        self.artifact_repository(run_id).log_artifacts(Path(local_dir), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._log_file(run_id, artifact_file, text.encode("utf-8"))

    def log_dict(self, run_id: str, dictionary: dict, artifact_file: str) -> None:
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_dump(dictionary, sort_keys=False).encode("utf-8")
        else:
            data = json.dumps(dictionary, indent=2, default=str).encode("utf-8")
        self._log_file(run_id, artifact_file, data)

    def _log_file(self, run_id: str, artifact_file: str, data: bytes) -> None:
        if not artifact_file or artifact_file.endswith("/"):
            raise InvalidArgumentError(f"artifact_file {artifact_file!r} must name a file")
        self.artifact_repository(run_id).write_bytes(artifact_file, data)

    def list_artifacts(self, run_id: str, path: str | None = None):
        return self.artifact_repository(run_id).list_artifacts(path)

    def download_artifacts(self, run_id: str, path: str, dst_path: str | os.PathLike | None = None) -> Path:
        dst = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="hangar-artifacts-"))
        return self.artifact_repository(run_id).download_artifacts(path, dst)

    # -- logged models -----------------------------------------------------------------
    def get_logged_model(self, model_id: str):
        return self.store.get_logged_model(model_id)

    def search_logged_models(self, experiment_ids: list | None = None, filter_string: str | None = None,
                             max_results: int = 1000, order_by: list[str] | None = None,
                             page_token: str | None = None):
        return self.store.search_logged_models(list(experiment_ids or [DEFAULT_EXPERIMENT_ID]), filter_string,
                                               max_results, order_by, page_token)


def runs_to_dataframe(runs: list[Run]) -> Any:
    """MLflow's ``search_runs`` table: one row a run; ``metrics.*``, ``params.*``, ``tags.*`` columns."""
    import pandas as pd

    rows = []
    for r in runs:
        i = r.info
        row = {"run_id": i.run_id, "experiment_id": i.experiment_id, "run_name": i.run_name, "status": i.status,
               "artifact_uri": i.artifact_uri, "start_time": pd.to_datetime(i.start_time, unit="ms", utc=True),
               "end_time": pd.to_datetime(i.end_time, unit="ms", utc=True) if i.end_time else pd.NaT}
        row.update({f"metrics.{k}": val for k, val in r.data.metrics.items()})
        row.update({f"params.{k}": val for k, val in r.data.params.items()})
        row.update({f"tags.{k}": val for k, val in r.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)
