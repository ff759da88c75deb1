"""The tracking store on SQL (SQLite or PostgreSQL), written with SQLAlchemy Core.

Every write is one transaction that is committed before the call returns, so another process
sees it at once; speed comes from doing little per call (one round of statements, no ORM).
"""

from __future__ import annotations

import functools
import uuid

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import OperationalError

from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.store.engine import create_store_engine
from hangar.store.migrate import ensure_schema
from hangar.store.transactions import now_ms, read_connection, write_transaction
from hangar.store.upsert import insert_ignore, upsert, upsert_statement
from hangar.tracking import validation as v
from hangar.tracking.entities import (
    ACTIVE,
    DEFAULT_EXPERIMENT_ID,
    DEFAULT_EXPERIMENT_NAME,
    DELETED,
    RUN_STATUSES,
    Experiment,
    Metric,
    Run,
    RunData,
    RunInfo,
)
from hangar.tracking.sql_logged_models import LoggedModelsMixin

VIEWS = ("active", "deleted", "all")
HOT_TABLES = ("runs", "params", "tags", "metrics", "latest_metrics")  # what the SQLite hot writes change
_CHUNK = 10000  # ids per IN (...) query: under SQLite's 32,766 bound-parameter limit


def _chunks(items: list, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _newer(table, excluded):
    return or_(excluded.step > table.c.step,
               and_(excluded.step == table.c.step, excluded.timestamp >= table.c.timestamp))


class SqlTrackingStore(LoggedModelsMixin):
    """Experiments, runs, params, metrics, tags, datasets and logged models in one database."""

    remote = False  # the REST store (tracking.rest_store) says True

    def __init__(self, uri: str, artifact_root: str):
        self.uri = uri
        self.artifact_root = str(artifact_root).rstrip("/")
        self.engine = create_store_engine(uri)
        from hangar.store.rawsql import HeldConnection

        # The hot writes' connection (SQLite). It may change only these tables, which the server's
        # governance memo does not depend on, so that memo can watch its data_version (see governance.cache).
        self.hot = HeldConnection(self.engine, writable=HOT_TABLES)
        try:
            ensure_schema(self.engine)
            self._ensure_default_experiment()
        except OperationalError as exc:
            from hangar.errors import StoreUnavailableError

            shown = self.engine.url.render_as_string(hide_password=True)
            raise StoreUnavailableError(
                f"Cannot open the store at {shown}: {str(exc.orig).strip().splitlines()[0]}. Check that the "
                "database is running and reachable (HANGAR_TRACKING_URI)"
            ) from None

    def close(self) -> None:
        self.hot.close()
        self.engine.dispose()

    def run_artifacts(self, run_id: str):
        """The artifact repository of a run."""
        from hangar.artifacts import get_artifact_repository

        return get_artifact_repository(self.get_run(run_id).info.artifact_uri)

    def logged_model_artifacts(self, model_id: str):
        """The artifact repository holding a logged model's package."""
        from hangar.artifacts import get_artifact_repository

        return get_artifact_repository(self.get_logged_model(model_id).artifact_location)

    def _statements(self, conn) -> dict:
        """The hot path's statements, built once per store (building costs more than running)."""
        stmts = getattr(self, "_stmts", None)
        if stmts is None:
            stmts = {
                "run_stage": select(t.runs.c.lifecycle_stage).where(t.runs.c.run_id == bindparam("rid")),
                "insert_metrics": t.metrics.insert(),
                "upsert_latest": upsert_statement(conn, t.latest_metrics, ["run_id", "key"],
                                                  ["value", "timestamp", "step"], where=_newer),
                "upsert_tags": upsert_statement(conn, t.tags, ["run_id", "key"], ["value"]),
                "insert_params": t.params.insert(),
                "existing_params": select(t.params.c.key, t.params.c.value).where(
                    t.params.c.run_id == bindparam("rid"), t.params.c.key.in_(bindparam("keys", expanding=True))),
                "experiment_for_run": select(t.experiments.c.artifact_location, t.experiments.c.lifecycle_stage)
                .where(t.experiments.c.experiment_id == bindparam("eid")),
                "insert_run": t.runs.insert(),
                "insert_tags": t.tags.insert(),
                "update_run": update(t.runs).where(
                    t.runs.c.run_id == bindparam("rid"), t.runs.c.lifecycle_stage == ACTIVE).values(
                    status=func.coalesce(bindparam("new_status", type_=t.runs.c.status.type), t.runs.c.status),
                    end_time=func.coalesce(bindparam("new_end", type_=t.runs.c.end_time.type), t.runs.c.end_time),
                    run_name=func.coalesce(bindparam("new_name", type_=t.runs.c.run_name.type), t.runs.c.run_name)),
                "runs_by_ids": select(t.runs).where(t.runs.c.run_id.in_(bindparam("ids", expanding=True))),
                **{f"{table.name}_by_ids": select(table.c.run_id, table.c.key, table.c.value).where(
                    table.c.run_id.in_(bindparam("ids", expanding=True)))
                   for table in (t.params, t.tags, t.latest_metrics)},
            }
            self._stmts = stmts
        return stmts

    # -- transactions (see hangar.store.transactions) ----------------------------------
    def _tx(self):
        return write_transaction(self.engine)

    def _read(self):
        return read_connection(self.engine)

    # -- experiments -------------------------------------------------------------------
    def _ensure_default_experiment(self) -> None:
        with self._read() as conn:
            if conn.execute(select(t.experiments.c.experiment_id).where(t.experiments.c.experiment_id == 0)).first():
                return
        ts = now_ms()
        with self._tx() as conn:
            insert_ignore(conn, t.experiments, [{
                "experiment_id": 0, "name": DEFAULT_EXPERIMENT_NAME, "artifact_location": f"{self.artifact_root}/0",
                "lifecycle_stage": ACTIVE, "creation_time": ts, "last_update_time": ts}], ["experiment_id"])

    def create_experiment(self, name: str, artifact_location: str | None = None, tags: dict | None = None) -> str:
        v.name("experiment", name)
        ts = now_ms()
        with self._tx() as conn:
            if conn.execute(select(t.experiments.c.experiment_id).where(t.experiments.c.name == name)).first():
                raise AlreadyExistsError(f"An experiment named {name!r} already exists (deleted ones keep their name)")
            # (a concurrent creation of the same name surfaces as a ConflictError from _tx)
            result = conn.execute(t.experiments.insert().values(
                name=name, artifact_location=artifact_location or "", lifecycle_stage=ACTIVE,
                creation_time=ts, last_update_time=ts))
            exp_id = result.inserted_primary_key[0]
            if not artifact_location:
                conn.execute(update(t.experiments).where(t.experiments.c.experiment_id == exp_id)
                             .values(artifact_location=f"{self.artifact_root}/{exp_id}"))
            if tags:
                conn.execute(t.experiment_tags.insert(), [
                    {"experiment_id": exp_id, "key": v.key("tag", k), "value": v.tag_value(k, val)}
                    for k, val in tags.items()])
        return str(exp_id)

    def _experiment_from_row(self, conn, row) -> Experiment:
        tags = dict(conn.execute(select(t.experiment_tags.c.key, t.experiment_tags.c.value)
                                 .where(t.experiment_tags.c.experiment_id == row.experiment_id)).all())
        return Experiment(str(row.experiment_id), row.name, row.artifact_location, row.lifecycle_stage,
                          row.creation_time, row.last_update_time, tags)

    @staticmethod
    def _exp_id(experiment_id) -> int:
        try:
            eid = int(experiment_id)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"Experiment id must be a number, got {experiment_id!r}") from None
        if not 0 <= eid < 2**63:  # no such id can exist (and a database would refuse the comparison)
            raise NotFoundError(f"No experiment with id {experiment_id!r}")
        return eid

    def get_experiment(self, experiment_id) -> Experiment:
        with self._read() as conn:
            row = conn.execute(select(t.experiments).where(
                t.experiments.c.experiment_id == self._exp_id(experiment_id))).first()
            if row is None:
                raise NotFoundError(f"No experiment with id {experiment_id!r}")
            return self._experiment_from_row(conn, row)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as conn:
            row = conn.execute(select(t.experiments).where(t.experiments.c.name == name)).first()
            return None if row is None else self._experiment_from_row(conn, row)

    def search_experiments(self, filter_string: str | None = None, view: str = "active", max_results: int = 1000,
                           order_by: list[str] | None = None, page_token: str | None = None):
        from hangar.tracking.search import build_experiment_search, decode_page_token, encode_page_token

        offset = decode_page_token(page_token) if page_token else 0
        stmt = build_experiment_search(filter_string, order_by, self._view(view), max_results, offset)
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(stmt)]
            more = len(ids) > max_results
            ids = ids[:max_results]
            rows = {r.experiment_id: r for r in conn.execute(select(t.experiments).where(
                t.experiments.c.experiment_id.in_(ids)))} if ids else {}
            out = [self._experiment_from_row(conn, rows[i]) for i in ids]
        return out, (encode_page_token(offset + max_results) if more else None)

    def _set_experiment_stage(self, experiment_id, stage: str) -> None:
        eid = self._exp_id(experiment_id)
        if eid == 0 and stage == DELETED:
            raise InvalidArgumentError("The default experiment cannot be deleted")
        with self._tx() as conn:
            n = conn.execute(update(t.experiments).where(t.experiments.c.experiment_id == eid)
                             .values(lifecycle_stage=stage, last_update_time=now_ms())).rowcount
            if not n:
                raise NotFoundError(f"No experiment with id {experiment_id!r}")
            conn.execute(update(t.runs).where(t.runs.c.experiment_id == eid).values(lifecycle_stage=stage))

    def delete_experiment(self, experiment_id) -> None:
        """Soft delete: the experiment and its runs are hidden until restored (or collected by gc)."""
        self._set_experiment_stage(experiment_id, DELETED)

    def restore_experiment(self, experiment_id) -> None:
        self._set_experiment_stage(experiment_id, ACTIVE)

    def set_experiment_tag(self, experiment_id, key: str, value) -> None:
        eid = self._exp_id(experiment_id)
        self.get_experiment(eid)
        with self._tx() as conn:
            upsert(conn, t.experiment_tags, [{"experiment_id": eid, "key": v.key("tag", key),
                                              "value": v.tag_value(key, value)}], ["experiment_id", "key"], ["value"])

    # -- runs --------------------------------------------------------------------------
    def create_run(self, experiment_id=DEFAULT_EXPERIMENT_ID, run_name: str | None = None,
                   start_time: int | None = None, tags: dict | None = None, parent_run_id: str | None = None,
                   user_id: str = "unknown") -> Run:
        eid = self._exp_id(experiment_id)
        run_id = uuid.uuid4().hex
        run_name = v.name("run", run_name) if run_name is not None else f"run-{run_id[:8]}"
        start = v.int_value("start_time", start_time) if start_time is not None else now_ms()
        tag_rows = [{"run_id": run_id, "key": v.key("tag", k), "value": v.tag_value(k, val)}
                    for k, val in (tags or {}).items()]
        run_row = {"run_id": run_id, "experiment_id": eid, "run_name": run_name, "status": "RUNNING",
                   "start_time": start, "end_time": None, "lifecycle_stage": ACTIVE, "artifact_uri": None,
                   "user_id": user_id, "parent_run_id": parent_run_id}
        if self.engine.dialect.name == "sqlite" and parent_run_id is None:
            artifact_uri = self._create_run_sqlite(eid, experiment_id, run_row, tag_rows)
            info = RunInfo(run_id, str(eid), run_name, "RUNNING", start, None, ACTIVE, artifact_uri, user_id, None)
            return Run(info, RunData(tags={r["key"]: r["value"] for r in tag_rows}))
        with self._tx() as conn:
            stmts = self._statements(conn)
            exp = conn.execute(stmts["experiment_for_run"], {"eid": eid}).first()
            if exp is None:
                raise NotFoundError(f"No experiment with id {experiment_id!r}")
            if exp.lifecycle_stage != ACTIVE:
                raise InvalidArgumentError(f"Experiment {experiment_id} is deleted; restore it before starting runs")
            if parent_run_id is not None:
                self._active_run(conn, parent_run_id)
            artifact_uri = f"{exp.artifact_location}/{run_id}/artifacts"
            conn.execute(stmts["insert_run"], {**run_row, "artifact_uri": artifact_uri})
            if tag_rows:
                conn.execute(stmts["insert_tags"], tag_rows)
        info = RunInfo(run_id, str(eid), run_name, "RUNNING", start, None, ACTIVE, artifact_uri, user_id, parent_run_id)
        return Run(info, RunData(tags={r["key"]: r["value"] for r in tag_rows}))

    def _create_run_sqlite(self, eid: int, experiment_id, run_row: dict, tag_rows: list[dict]) -> str:
        from hangar.store.rawsql import sqlite_write

        raw = self._raw_statements()
        with sqlite_write(self.hot) as cur:
            exp = raw["experiment_for_run"].execute(cur, {"eid": eid}).fetchone()
            if exp is None:
                raise NotFoundError(f"No experiment with id {experiment_id!r}")
            if exp[1] != ACTIVE:
                raise InvalidArgumentError(f"Experiment {experiment_id} is deleted; restore it before starting runs")
            artifact_uri = f"{exp[0]}/{run_row['run_id']}/artifacts"
            raw["insert_run"].execute(cur, {**run_row, "artifact_uri": artifact_uri})
            if tag_rows:
                raw["insert_tags"].executemany(cur, tag_rows)
        return artifact_uri

    def _active_run(self, conn, run_id: str):
        row = conn.execute(self._statements(conn)["run_stage"], {"rid": run_id}).first()
        if row is None:
            raise NotFoundError(f"No run with id {run_id!r}")
        if row.lifecycle_stage != ACTIVE:
            raise InvalidArgumentError(f"Run {run_id} is deleted; restore it before writing to it")
        return row

    def update_run_info(self, run_id: str, status: str | None = None, end_time: int | None = None,
                        run_name: str | None = None) -> None:
        if status is not None and status not in RUN_STATUSES:
            raise InvalidArgumentError(f"Unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}")
        if run_name is not None:
            v.name("run", run_name)
        if end_time is not None:
            v.int_value("end_time", end_time)
        if status is None and end_time is None and run_name is None:
            return
        values = {"rid": run_id, "new_status": status, "new_end": end_time, "new_name": run_name}
        if self.engine.dialect.name == "sqlite":
            from hangar.store.rawsql import sqlite_write

            with sqlite_write(self.hot) as cur:
                changed = self._raw_statements()["update_run"].execute(cur, values).rowcount
            if not changed:
                with self._read() as conn:
                    self._active_run(conn, run_id)
            return
        with self._tx() as conn:
            changed = conn.execute(self._statements(conn)["update_run"], {
                "rid": run_id, "new_status": status, "new_end": end_time, "new_name": run_name}).rowcount
            if not changed:
                self._active_run(conn, run_id)  # raises: not found, or deleted

    def _set_run_stage(self, run_id: str, stage: str) -> None:
        with self._tx() as conn:
            if not conn.execute(update(t.runs).where(t.runs.c.run_id == run_id).values(lifecycle_stage=stage)).rowcount:
                raise NotFoundError(f"No run with id {run_id!r}")

    def delete_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, DELETED)

    def restore_run(self, run_id: str) -> None:
        self._set_run_stage(run_id, ACTIVE)

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            runs = self._load_runs(conn, [run_id], with_inputs=True)
        if not runs:
            raise NotFoundError(f"No run with id {run_id!r}")
        return runs[0]

    def _load_runs(self, conn, run_ids: list[str], with_inputs: bool = False) -> list[Run]:
        """Runs with their params, latest metrics and tags, in the order of ``run_ids``."""
        rows, params, metrics, tags = {}, {}, {}, {}
        stmts = self._statements(conn)
        for chunk in _chunks(run_ids):
            for r in conn.execute(stmts["runs_by_ids"], {"ids": chunk}).all():
                rows[r.run_id] = r
            for name, target in (("params", params), ("tags", tags), ("latest_metrics", metrics)):
                for rid, key, value in conn.execute(stmts[f"{name}_by_ids"], {"ids": chunk}).all():
                    target.setdefault(rid, {})[key] = value
        inputs = self._load_inputs(conn, run_ids) if with_inputs else {}
        out = []
        for rid in run_ids:
            r = rows.get(rid)
            if r is None:
                continue
            info = RunInfo(r.run_id, str(r.experiment_id), r.run_name, r.status, r.start_time, r.end_time,
                           r.lifecycle_stage, r.artifact_uri, r.user_id, r.parent_run_id)
            out.append(Run(info, RunData(params.get(rid, {}), metrics.get(rid, {}), tags.get(rid, {})),
                           tuple(inputs.get(rid, ()))))
        return out

    # -- params, metrics, tags ---------------------------------------------------------
    def log_batch(self, run_id: str, metrics: list[Metric] = (), params: dict | None = None,
                  tags: dict | None = None) -> None:
        """Metrics, params and tags in one transaction: all stored, or none."""
        param_rows = [{"run_id": run_id, "key": v.key("param", k), "value": v.param_value(k, val)}
                      for k, val in (params or {}).items()]
        tag_rows = [{"run_id": run_id, "key": v.key("tag", k), "value": v.tag_value(k, val)}
                    for k, val in (tags or {}).items()]
        metric_rows = [{"run_id": run_id, "key": v.key("metric", m.key), "value": v.metric_value(m.key, m.value),
                        "timestamp": v.int_value("A metric timestamp", m.timestamp),
                        "step": v.int_value("A metric step", m.step)} for m in metrics]
        if self.engine.dialect.name == "sqlite":
            return self._log_batch_sqlite(run_id, metric_rows, param_rows, tag_rows)
        with self._tx() as conn:
            stmts = self._statements(conn)
            self._active_run(conn, run_id)  # one indexed lookup; gives "deleted" its own message
            if param_rows:
                self._insert_params(conn, run_id, param_rows)
            if metric_rows:
                conn.execute(stmts["insert_metrics"], metric_rows)
                conn.execute(stmts["upsert_latest"], list(_latest(metric_rows).values()))
            if tag_rows:
                conn.execute(stmts["upsert_tags"], tag_rows)

    def _log_batch_sqlite(self, run_id: str, metric_rows: list[dict], param_rows: list[dict],
                          tag_rows: list[dict]) -> None:
        """log_batch on SQLite: the same statements, run as compiled SQL text (see store.rawsql)."""
        from hangar.store.rawsql import sqlite_write

        raw = self._raw_statements()
        with sqlite_write(self.hot) as cur:
            row = raw["run_stage"].execute(cur, {"rid": run_id}).fetchone()
            if row is None or row[0] != ACTIVE:
                with self._read() as conn:
                    self._active_run(conn, run_id)  # raises the precise error
            if param_rows:
                existing = dict(raw["run_params"].execute(cur, {"rid": run_id}).fetchall())
                _check_params_unchanged(run_id, param_rows, existing)
                new = [r for r in param_rows if r["key"] not in existing]
                if new:
                    raw["insert_params"].executemany(cur, new)
            if metric_rows:
                raw["insert_metrics"].executemany(cur, metric_rows)
                raw["upsert_latest"].executemany(cur, list(_latest(metric_rows).values()))
            if tag_rows:
                raw["upsert_tags"].executemany(cur, tag_rows)

    def _raw_statements(self) -> dict:
        raw = getattr(self, "_raw", None)
        if raw is None:
            from hangar.store.rawsql import CompiledStatement

            with self._read() as conn:
                stmts = self._statements(conn)
            d = self.engine.dialect
            metric_cols = ["run_id", "key", "value", "timestamp", "step"]
            run_params = select(t.params.c.key, t.params.c.value).where(t.params.c.run_id == bindparam("rid"))
            raw = {"run_stage": CompiledStatement(stmts["run_stage"], d),
                   "run_params": CompiledStatement(run_params, d),
                   "insert_params": CompiledStatement(stmts["insert_params"], d, ["run_id", "key", "value"]),
                   "insert_run": CompiledStatement(stmts["insert_run"], d, list(t.runs.c.keys())),
                   "insert_tags": CompiledStatement(stmts["insert_tags"], d, ["run_id", "key", "value"]),
                   "experiment_for_run": CompiledStatement(stmts["experiment_for_run"], d),
                   "update_run": CompiledStatement(stmts["update_run"], d),
                   "insert_metrics": CompiledStatement(stmts["insert_metrics"], d, metric_cols),
                   "upsert_latest": CompiledStatement(stmts["upsert_latest"], d, metric_cols),
                   "upsert_tags": CompiledStatement(stmts["upsert_tags"], d, ["run_id", "key", "value"])}
            self._raw = raw
        return raw

    def _insert_params(self, conn, run_id: str, rows: list[dict]) -> None:
        stmts = self._statements(conn)
        existing = dict(conn.execute(stmts["existing_params"], {"rid": run_id, "keys": [r["key"] for r in rows]}).all())
        _check_params_unchanged(run_id, rows, existing)
        new = [r for r in rows if r["key"] not in existing]
        if new:
            conn.execute(stmts["insert_params"], new)

    def log_param(self, run_id: str, key: str, value) -> None:
        self.log_batch(run_id, params={v.key("param", key): value})

    def log_metric(self, run_id: str, key: str, value, timestamp: int | None = None, step: int = 0) -> None:
        self.log_batch(run_id, metrics=[Metric(key, value, timestamp if timestamp is not None else now_ms(), step)])

    def set_tag(self, run_id: str, key: str, value) -> None:
        self.log_batch(run_id, tags={v.key("tag", key): value})

    def delete_tag(self, run_id: str, key: str) -> None:
        with self._tx() as conn:
            self._active_run(conn, run_id)
            if not conn.execute(delete(t.tags).where(t.tags.c.run_id == run_id, t.tags.c.key == key)).rowcount:
                raise NotFoundError(f"Run {run_id} has no tag {key!r}")

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self._read() as conn:
            if conn.execute(select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)).first() is None:
                raise NotFoundError(f"No run with id {run_id!r}")
            rows = conn.execute(select(t.metrics.c.key, t.metrics.c.value, t.metrics.c.timestamp, t.metrics.c.step)
                                .where(t.metrics.c.run_id == run_id, t.metrics.c.key == key)
                                .order_by(t.metrics.c.step, t.metrics.c.timestamp, t.metrics.c.id)).all()
        return [Metric(*r) for r in rows]

    # -- search ------------------------------------------------------------------------
    @staticmethod
    def _view(view: str) -> str:
        if view not in VIEWS:
            raise InvalidArgumentError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
        return view

    def search_runs(self, experiment_ids: list, filter_string: str | None = None, view: str = "active",
                    max_results: int = 1000, order_by: list[str] | None = None,
                    page_token: str | None = None) -> tuple[list[Run], str | None]:
        from hangar.tracking.search import decode_page_token, encode_page_token

        if not isinstance(max_results, int) or not 1 <= max_results <= 50000:
            raise InvalidArgumentError(f"max_results must be an integer from 1 to 50000, got {max_results!r}")
        offset = decode_page_token(page_token) if page_token else 0
        ids = tuple(self._exp_id(e) for e in experiment_ids)
        stmt = _run_search_statement(ids, filter_string, tuple(order_by or ()), self._view(view), max_results, offset)
        with self._read() as conn:
            run_ids = [r[0] for r in conn.execute(stmt)]
            more = len(run_ids) > max_results
            runs = self._load_runs(conn, run_ids[:max_results])
        return runs, (encode_page_token(offset + max_results) if more else None)

    def count_runs(self, experiment_id) -> int:
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(t.runs).where(
                t.runs.c.experiment_id == self._exp_id(experiment_id))).scalar()


@functools.lru_cache(maxsize=256)
def _run_search_statement(experiment_ids: tuple, filter_string, order_by: tuple, view: str, max_results: int,
                          offset: int):
    """The SQL of a search, built once per distinct search (like a prepared-statement cache):
    dashboards repeat the same searches, and building the statement costs more than running it.
    The rows are always read fresh."""
    from hangar.tracking.search import build_run_search

    return build_run_search(list(experiment_ids), filter_string, list(order_by) or None, view, max_results, offset)


def _check_params_unchanged(run_id: str, rows: list[dict], existing: dict) -> None:
    for r in rows:
        old = existing.get(r["key"])
        if old is not None and old != r["value"]:
            raise ConflictError(
                f"Param {r['key']!r} of run {run_id} is already {old!r}; params are immutable, so it cannot "
                f"become {r['value']!r}. Use a new param name or a new run"
            )


def _latest(rows: list[dict]) -> dict:
    """Per key, the row with the highest (step, timestamp) in a batch."""
    best: dict = {}
    for r in rows:
        cur = best.get(r["key"])
        if cur is None or (r["step"], r["timestamp"]) >= (cur["step"], cur["timestamp"]):
            best[r["key"]] = r
    return best
