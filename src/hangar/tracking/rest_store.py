"""The tracking store over a Hangar server: the same methods as ``SqlTrackingStore``, each one
HTTP call on a kept-alive connection; the server's JSON errors come back as the same exceptions.

``open_store("http://host:port")`` returns one; the token comes from ``HANGAR_TOKEN`` or the
credentials file of ``hangar auth login``.
"""

from __future__ import annotations

from hangar.remote import ServerClient
from hangar.tracking.entities import (
    DEFAULT_EXPERIMENT_ID,
    Dataset,
    DatasetInput,
    Experiment,
    LoggedModel,
    Metric,
    Run,
    RunData,
    RunInfo,
)
from hangar.tracking.sql_logged_models import DEFAULT_LEASE_SECONDS


def experiment(d: dict) -> Experiment:
    return Experiment(**d)


def run(d: dict) -> Run:
    inputs = tuple(DatasetInput(Dataset(**i["dataset"]), i.get("context")) for i in d.get("inputs") or ())
    return Run(RunInfo(**d["info"]), RunData(**d["data"]), inputs)


def logged_model(d: dict) -> LoggedModel:
    return LoggedModel(**{**d, "flavors": tuple(d.get("flavors") or ())})


def _metric(m: Metric) -> dict:
    return {"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}


class RestTrackingStore:
    """Experiments, runs, params, metrics, tags, datasets and logged models, through a server."""

    remote = True

    def __init__(self, uri: str, token: str | None = None, server: ServerClient | None = None):
        self.server = server or ServerClient(uri, token)
        self.uri = self.server.url
        self.artifact_root = f"{self.uri}/api/v1/artifacts"  # shown only; files go through the routes below

    def _call(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        return self.server.request(method, path, body, query)

    @staticmethod
    def _q(value) -> str:
        return ServerClient.quote(value)

    def close(self) -> None:
        self.server.close()

    # -- artifacts -------------------------------------------------------------------------
    def run_artifacts(self, run_id: str):
        from hangar.artifacts.http_repo import HttpArtifactRepository

        return HttpArtifactRepository(self.server, f"/artifacts/runs/{self._q(run_id)}")

    def logged_model_artifacts(self, model_id: str):
        from hangar.artifacts.http_repo import HttpArtifactRepository

        return HttpArtifactRepository(self.server, f"/artifacts/logged-models/{self._q(model_id)}")

    # -- experiments -----------------------------------------------------------------------
    def create_experiment(self, name: str, artifact_location: str | None = None, tags: dict | None = None) -> str:
        body = {"name": name, "artifact_location": artifact_location, "tags": tags}
        return self._call("POST", "/experiments", body)["experiment_id"]

    def get_experiment(self, experiment_id) -> Experiment:
        return experiment(self._call("GET", f"/experiments/{self._q(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._call("GET", "/experiment-by-name", query={"name": name})["experiment"]
        return None if found is None else experiment(found)

    def search_experiments(self, filter_string: str | None = None, view: str = "active", max_results: int = 1000,
                           order_by: list[str] | None = None, page_token: str | None = None):
        out = self._call("POST", "/experiments/search", {"filter": filter_string, "view": view,
                                                         "max_results": max_results, "order_by": order_by,
                                                         "page_token": page_token})
        return [experiment(e) for e in out["experiments"]], out["next_page_token"]

    def delete_experiment(self, experiment_id) -> None:
        self._call("DELETE", f"/experiments/{self._q(experiment_id)}")

    def restore_experiment(self, experiment_id) -> None:
        self._call("POST", f"/experiments/{self._q(experiment_id)}/restore")

    def set_experiment_tag(self, experiment_id, key: str, value) -> None:
        self._call("POST", f"/experiments/{self._q(experiment_id)}/tags", {"key": key, "value": value})

    # -- runs ------------------------------------------------------------------------------
    def create_run(self, experiment_id=DEFAULT_EXPERIMENT_ID, run_name: str | None = None,
                   start_time: int | None = None, tags: dict | None = None, parent_run_id: str | None = None,
                   user_id: str = "unknown") -> Run:
        """``user_id`` is the authenticated principal's name on the server, whatever is passed here."""
        return run(self._call("POST", "/runs", {"experiment_id": str(experiment_id), "run_name": run_name,
                                                "start_time": start_time, "tags": tags,
                                                "parent_run_id": parent_run_id}))

    def get_run(self, run_id: str) -> Run:
        return run(self._call("GET", f"/runs/{self._q(run_id)}"))

    def update_run_info(self, run_id: str, status: str | None = None, end_time: int | None = None,
                        run_name: str | None = None) -> None:
        self._call("PATCH", f"/runs/{self._q(run_id)}", {"status": status, "end_time": end_time, "run_name": run_name})

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{self._q(run_id)}")

    def restore_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{self._q(run_id)}/restore")

    def log_batch(self, run_id: str, metrics: list[Metric] = (), params: dict | None = None,
                  tags: dict | None = None) -> None:
        self._call("POST", f"/runs/{self._q(run_id)}/log-batch",
                   {"metrics": [_metric(m) for m in metrics], "params": params, "tags": tags})

    def log_param(self, run_id: str, key: str, value) -> None:
        self._call("POST", f"/runs/{self._q(run_id)}/params", {"key": key, "value": value})

    def log_metric(self, run_id: str, key: str, value, timestamp: int | None = None, step: int = 0) -> None:
        self._call("POST", f"/runs/{self._q(run_id)}/metrics",
                   {"key": key, "value": value, "timestamp": timestamp, "step": step})

    def set_tag(self, run_id: str, key: str, value) -> None:
        self._call("POST", f"/runs/{self._q(run_id)}/tags", {"key": key, "value": value})

    def delete_tag(self, run_id: str, key: str) -> None:
        self._call("DELETE", f"/runs/{self._q(run_id)}/tags", query={"key": key})

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        out = self._call("GET", f"/runs/{self._q(run_id)}/metrics/{self._q(key)}")
        return [Metric(**m) for m in out["metrics"]]

    def search_runs(self, experiment_ids: list, filter_string: str | None = None, view: str = "active",
                    max_results: int = 1000, order_by: list[str] | None = None, page_token: str | None = None):
        out = self._call("POST", "/runs/search", {"experiment_ids": [str(e) for e in experiment_ids],
                                                  "filter": filter_string, "view": view, "max_results": max_results,
                                                  "order_by": order_by, "page_token": page_token})
        return [run(r) for r in out["runs"]], out["next_page_token"]

    # -- datasets and logged models ----------------------------------------------------------
    def log_inputs(self, run_id: str, inputs: list[DatasetInput]) -> None:
        from dataclasses import asdict

        self._call("POST", f"/runs/{self._q(run_id)}/inputs", {"inputs": [asdict(i) for i in inputs]})

    def create_logged_model(self, experiment_id, name: str, source_run_id: str | None = None,
                            params: dict | None = None, tags: dict | None = None,
                            lease_seconds: int = DEFAULT_LEASE_SECONDS) -> LoggedModel:
        return logged_model(self._call("POST", "/logged-models", {
            "experiment_id": str(experiment_id), "name": name, "source_run_id": source_run_id, "params": params,
            "tags": tags, "lease_seconds": lease_seconds}))

    def finalize_logged_model(self, model_id: str, status: str, flavors: list[str] | None = None) -> LoggedModel:
        return logged_model(self._call("POST", f"/logged-models/{self._q(model_id)}/finalize",
                                       {"status": status, "flavors": flavors}))

    def get_logged_model(self, model_id: str) -> LoggedModel:
        return logged_model(self._call("GET", f"/logged-models/{self._q(model_id)}"))

    def find_logged_model(self, run_id: str, name: str) -> LoggedModel | None:
        found = self._call("GET", f"/runs/{self._q(run_id)}/logged-models/{self._q(name)}")["logged_model"]
        return None if found is None else logged_model(found)

    def set_logged_model_tags(self, model_id: str, tags: dict) -> None:
        self._call("POST", f"/logged-models/{self._q(model_id)}/tags", {"tags": tags})

    def log_logged_model_metrics(self, model_id: str, metrics: list[Metric], run_id: str | None = None) -> None:
        self._call("POST", f"/logged-models/{self._q(model_id)}/metrics",
                   {"metrics": [_metric(m) for m in metrics], "run_id": run_id})

    def search_logged_models(self, experiment_ids: list, filter_string: str | None = None, max_results: int = 1000,
                             order_by: list[str] | None = None, page_token: str | None = None):
        out = self._call("POST", "/logged-models/search", {
            "experiment_ids": [str(e) for e in experiment_ids], "filter": filter_string, "max_results": max_results,
            "order_by": order_by, "page_token": page_token})
        return [logged_model(m) for m in out["logged_models"]], out["next_page_token"]
