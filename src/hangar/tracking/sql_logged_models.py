"""Datasets (run inputs) and logged models: the parts of the SQL tracking store that link runs
to the data they read and the model packages they produced."""

from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import and_, select, update

from hangar.errors import InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.store.transactions import now_ms
from hangar.store.upsert import insert_ignore, upsert
from hangar.tracking import validation as v
from hangar.tracking.entities import ACTIVE, Dataset, DatasetInput, LoggedModel, Metric

PENDING, READY, FAILED = "PENDING", "READY", "FAILED"
MODEL_STATUSES = (PENDING, READY, FAILED)
DEFAULT_LEASE_SECONDS = 600



def dataset_id(experiment_id: int, name: str, digest: str) -> str:
    return hashlib.sha256(f"{experiment_id}\x00{name}\x00{digest}".encode()).hexdigest()[:32]


class LoggedModelsMixin:
    # -- datasets ----------------------------------------------------------------------
    def log_inputs(self, run_id: str, inputs: list[DatasetInput]) -> None:
        with self._tx() as conn:
            self._active_run(conn, run_id)
            eid = conn.execute(select(t.runs.c.experiment_id).where(t.runs.c.run_id == run_id)).scalar()
            ds_rows, in_rows = [], []
            for item in inputs:
                d = item.dataset
                v.name("dataset", d.name)
                did = dataset_id(eid, d.name, d.digest)
                ds_rows.append({"dataset_id": did, "experiment_id": eid, "name": d.name, "digest": d.digest,
                                "source_type": d.source_type, "source": d.source, "schema": d.schema,
                                "profile": d.profile})
                in_rows.append({"dataset_id": did, "run_id": run_id, "context": item.context})
            insert_ignore(conn, t.datasets, ds_rows, ["dataset_id"])
            insert_ignore(conn, t.inputs, in_rows, ["dataset_id", "run_id"])

    def _load_inputs(self, conn, run_ids: list[str]) -> dict:
        out: dict = {}
        if not run_ids:
            return out
        q = (select(t.inputs.c.run_id, t.inputs.c.context, t.datasets)
             .join(t.datasets, t.datasets.c.dataset_id == t.inputs.c.dataset_id)
             .where(t.inputs.c.run_id.in_(run_ids)))
        for r in conn.execute(q):
            ds = Dataset(r.name, r.digest, r.source_type, r.source, r.schema, r.profile)
            out.setdefault(r.run_id, []).append(DatasetInput(ds, r.context))
        return out

    # -- logged models -----------------------------------------------------------------
    def create_logged_model(self, experiment_id, name: str, source_run_id: str | None = None,
                            params: dict | None = None, tags: dict | None = None,
                            lease_seconds: int = DEFAULT_LEASE_SECONDS) -> LoggedModel:
        """A PENDING logged model with an artifact location; its lease expires if the writer dies."""
        v.name("model", name)
        eid = self._exp_id(experiment_id)
        model_id = f"m-{uuid.uuid4().hex}"
        ts = now_ms()
        with self._tx() as conn:
            self._expire_leases(conn, ts)
            exp = conn.execute(select(t.experiments.c.artifact_location).where(
                t.experiments.c.experiment_id == eid)).first()
            if exp is None:
                raise NotFoundError(f"No experiment with id {experiment_id!r}")
            if source_run_id is not None:
                self._active_run(conn, source_run_id)
            location = f"{exp.artifact_location}/models/{model_id}/artifacts"
            conn.execute(t.logged_models.insert().values(
                model_id=model_id, experiment_id=eid, name=name, source_run_id=source_run_id,
                artifact_location=location, status=PENDING, flavors=None, creation_time=ts, last_updated_time=ts,
                lifecycle_stage=ACTIVE, lease_expires=ts + lease_seconds * 1000))
            if params:
                conn.execute(t.logged_model_params.insert(), [
                    {"model_id": model_id, "key": v.key("param", k), "value": v.param_value(k, val)}
                    for k, val in params.items()])
            if tags:
                conn.execute(t.logged_model_tags.insert(), [
                    {"model_id": model_id, "key": v.key("tag", k), "value": v.tag_value(k, val)}
                    for k, val in tags.items()])
        return self.get_logged_model(model_id)

    @staticmethod
    def _expire_leases(conn, ts: int) -> None:
        conn.execute(update(t.logged_models).where(
            t.logged_models.c.status == PENDING, t.logged_models.c.lease_expires < ts).values(
            status=FAILED, last_updated_time=ts))

    def finalize_logged_model(self, model_id: str, status: str, flavors: list[str] | None = None) -> LoggedModel:
        if status not in (READY, FAILED):
            raise InvalidArgumentError(f"A logged model is finalized as READY or FAILED, not {status!r}")
        with self._tx() as conn:
            row = conn.execute(select(t.logged_models.c.status).where(t.logged_models.c.model_id == model_id)).first()
            if row is None:
                raise NotFoundError(f"No logged model with id {model_id!r}")
            if row.status != PENDING:
                raise InvalidArgumentError(
                    f"Logged model {model_id} is {row.status}; only a PENDING model can be finalized "
                    "(its lease may have expired: log the model again)"
                )
            conn.execute(update(t.logged_models).where(t.logged_models.c.model_id == model_id).values(
                status=status, flavors=json.dumps(flavors) if flavors is not None else None,
                last_updated_time=now_ms(), lease_expires=None))
        return self.get_logged_model(model_id)

    def get_logged_model(self, model_id: str) -> LoggedModel:
        with self._read() as conn:
            models = self._load_logged_models(conn, [model_id])
        if not models:
            raise NotFoundError(f"No logged model with id {model_id!r}")
        return models[0]

    def find_logged_model(self, run_id: str, name: str) -> LoggedModel | None:
        """The newest READY logged model called ``name`` produced by a run (for ``runs:/`` URIs)."""
        with self._read() as conn:
            row = conn.execute(select(t.logged_models.c.model_id).where(
                t.logged_models.c.source_run_id == run_id, t.logged_models.c.name == name,
                t.logged_models.c.status == READY).order_by(t.logged_models.c.creation_time.desc()).limit(1)).first()
            if row is None:
                return None
            return self._load_logged_models(conn, [row.model_id])[0]

    def _load_logged_models(self, conn, ids: list[str]) -> list[LoggedModel]:
        if not ids:
            return []
        rows = {r.model_id: r for r in conn.execute(select(t.logged_models).where(t.logged_models.c.model_id.in_(ids)))}
        params, tags, metrics = {}, {}, {}
        for table, target in ((t.logged_model_params, params), (t.logged_model_tags, tags),
                              (t.logged_model_metrics, metrics)):
            for r in conn.execute(select(table.c.model_id, table.c.key, table.c.value).where(table.c.model_id.in_(ids))):
                target.setdefault(r[0], {})[r[1]] = r[2]
        out = []
        for mid in ids:
            r = rows.get(mid)
            if r is None:
                continue
            out.append(LoggedModel(r.model_id, str(r.experiment_id), r.name, r.source_run_id, r.artifact_location,
                                   r.status, tuple(json.loads(r.flavors)) if r.flavors else (), r.creation_time,
                                   r.last_updated_time, params.get(mid, {}), tags.get(mid, {}), metrics.get(mid, {})))
        return out

    def set_logged_model_tags(self, model_id: str, tags: dict) -> None:
        self.get_logged_model(model_id)
        with self._tx() as conn:
            upsert(conn, t.logged_model_tags, [{"model_id": model_id, "key": v.key("tag", k),
                                                "value": v.tag_value(k, val)} for k, val in tags.items()],
                   ["model_id", "key"], ["value"])

    def log_logged_model_metrics(self, model_id: str, metrics: list[Metric], run_id: str | None = None) -> None:
        rows = [{"model_id": model_id, "key": v.key("metric", m.key), "value": v.metric_value(m.key, m.value),
                 "timestamp": m.timestamp, "step": m.step, "run_id": run_id} for m in metrics]
        self.get_logged_model(model_id)
        with self._tx() as conn:
            upsert(conn, t.logged_model_metrics, rows, ["model_id", "key"], ["value", "timestamp", "step", "run_id"],
                   where=lambda table, ex: and_(ex.step >= table.c.step))

    def search_logged_models(self, experiment_ids: list, filter_string: str | None = None, max_results: int = 1000,
                             order_by: list[str] | None = None, page_token: str | None = None):
        from hangar.tracking.search import build_logged_model_search, decode_page_token, encode_page_token

        offset = decode_page_token(page_token) if page_token else 0
        stmt = build_logged_model_search([self._exp_id(e) for e in experiment_ids], filter_string, order_by,
                                         max_results, offset)
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(stmt)]
            more = len(ids) > max_results
            models = self._load_logged_models(conn, ids[:max_results])
        return models, (encode_page_token(offset + max_results) if more else None)
