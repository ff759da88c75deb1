"""Child process of bench_tracking.py: one call sequence, one library, one fresh store.

Not run directly: bench_tracking.py passes this file's text to ``python -c`` (so that no
script path inside the git checkout is the run's "source", which MLflow would inspect with
git), with one JSON argument::

    {"lib": "hangar"|"mlflow", "case": "a"|"b"|"c_populate"|"c_search"|"c100k_populate",
     "store": "/abs/dir", ...case settings...}

It prints one JSON line: the import time, the store-open time, the timed call sequence and
the facts the parent checks. Only the standard library is imported before the timed import.
"""

import time

T_START = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

EXPERIMENT = "bench"
PARAM_KEYS = [f"p{k}" for k in range(5)]
METRIC_KEYS = [f"m{k}" for k in range(5)]
USER_TAG = "team"

# Set by start() in the child; the parent imports this module only for dataset().
SPEC: dict = {}
LIB = STORE = URI = EID = T = None
t_import = None


def start() -> None:
    """Read the spec, move into the store's directory, then import the library (timed)."""
    global SPEC, LIB, STORE, URI, T, t_import
    SPEC = json.loads(sys.argv[1])
    LIB = SPEC["lib"]
    STORE = SPEC["store"]
    URI = "sqlite:///" + os.path.join(STORE, "tracking.db")  # absolute, so sqlite:////abs/path
    os.chdir(STORE)  # MLflow's default artifact root is relative to the working directory
    os.environ["HANGAR_HOME"] = os.path.join(STORE, "hangar-home")  # Hangar's artifacts land here
    t0 = time.perf_counter()
    if LIB == "hangar":
        import hangar.tracking.fluent as lib
    else:
        import mlflow as lib
    t_import = time.perf_counter() - t0
    T = lib


def dataset(n: int, seed: int):
    """The (c) runs: 5 params, 5 metrics (m1 uniform in [0, 1)), one user tag. Same on both sides;
    the parent computes the expected search results from it too."""
    rnd = random.Random(seed)
    for i in range(n):
        params = {k: f"v{rnd.randrange(10)}" for k in PARAM_KEYS}
        metrics = {k: rnd.random() for k in METRIC_KEYS}
        yield f"r{i}", params, metrics, {USER_TAG: f"team-{i % 20}"}


def engine():
    if LIB == "hangar":
        return T.client().store.engine
    from mlflow.tracking._tracking_service.utils import _get_store

    return _get_store().engine


def sqlite_settings() -> dict:
    with engine().connect() as conn:
        out = {}
        for p in ("journal_mode", "synchronous"):
            out[p] = conn.exec_driver_sql(f"PRAGMA {p}").scalar()
        return out


def force_synchronous_full() -> None:
    """Information-only variant: Hangar with SQLite's default durability (fsync every commit),
    as MLflow's store runs. New pooled connections get PRAGMA synchronous=FULL after Hangar's own
    connect hook (which sets NORMAL)."""
    from sqlalchemy import event

    eng = engine()
    eng.dispose()

    @event.listens_for(eng, "connect")
    def _full(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()


def open_store() -> str:
    """set_tracking_uri + set_experiment: creates the schema on a fresh store (reported apart)."""
    T.set_tracking_uri(URI)
    exp = T.set_experiment(EXPERIMENT)
    return exp.experiment_id


class Profiler:
    def __init__(self, path):
        self.path = path
        self.prof = None

    def __enter__(self):
        if self.path:
            import cProfile

            self.prof = cProfile.Profile()
            self.prof.enable()
        return self

    def __exit__(self, *exc):
        if self.prof is not None:
            self.prof.disable()
            self.prof.dump_stats(self.path)
        return False


def case_a(out: dict) -> None:
    n = SPEC["n"]
    rnd = random.Random(1)
    values = [rnd.random() for _ in range(n)]
    with Profiler(SPEC.get("profile")):
        t0 = time.perf_counter()
        with T.start_run() as run:
            for i in range(n):
                T.log_metric("loss", values[i], step=i)
        t1 = time.perf_counter()
    out["timed_s"] = t1 - t0
    if LIB == "hangar":
        hist = T.client().get_metric_history(run.info.run_id, "loss")
    else:
        hist = T.MlflowClient().get_metric_history(run.info.run_id, "loss")
    out["check"] = {"history_len": len(hist), "last_step": max(m.step for m in hist),
                    "values_match": sorted((m.step, m.value) for m in hist) == list(enumerate(values))}


def case_b(out: dict) -> None:
    n = SPEC["n"]
    rnd = random.Random(2)
    rows = [({k: f"v{rnd.randrange(10)}" for k in PARAM_KEYS}, {k: rnd.random() for k in METRIC_KEYS})
            for _ in range(n)]
    with Profiler(SPEC.get("profile")):
        t0 = time.perf_counter()
        for params, metrics in rows:
            with T.start_run():
                T.log_params(params)
                T.log_metrics(metrics)
        t1 = time.perf_counter()
    out["timed_s"] = t1 - t0
    runs = all_runs(EID)
    out["check"] = {"runs": len(runs), "finished": sum(r.info.status == "FINISHED" for r in runs),
                    "params_per_run": sorted({len(r.data.params) for r in runs}),
                    "metrics_per_run": sorted({len(r.data.metrics) for r in runs})}


def populate_public(eid: str, n: int, seed: int) -> None:
    """The (c) store through each library's client API: create_run(tags) -> log_batch -> terminate."""
    if LIB == "hangar":
        from hangar.tracking.entities import Metric

        c = T.client()
        for name, params, metrics, tags in dataset(n, seed):
            ts = int(time.time() * 1000)
            run = c.create_run(eid, run_name=name, tags=tags)
            c.log_batch(run.info.run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()], params=params)
            c.set_terminated(run.info.run_id)
    else:
        from mlflow.entities import Metric, Param

        c = T.MlflowClient()
        for name, params, metrics, tags in dataset(n, seed):
            ts = int(time.time() * 1000)
            run = c.create_run(eid, run_name=name, tags=tags)
            c.log_batch(run.info.run_id, metrics=[Metric(k, v, ts, 0) for k, v in metrics.items()],
                        params=[Param(k, v) for k, v in params.items()])
            c.set_terminated(run.info.run_id)


def populate_bulk(eid: str, n: int, seed: int, batch: int = 20_000) -> None:
    """Hangar only: the same rows as populate_public, bulk-inserted with SQLAlchemy Core into the
    tables of hangar.store.schema (as bench/search_plan.py does), in large executemany batches
    inside one transaction. Metric history rows (metrics) are written too, not only latest_metrics."""
    import uuid

    from hangar.store import schema as s

    c = T.client()
    art = c.get_experiment(eid).artifact_location
    ts0 = int(time.time() * 1000)
    user = "bench"
    runs, params, metrics, latest, tags = [], [], [], [], []

    def flush(conn):
        for table, rows in ((s.runs, runs), (s.params, params), (s.metrics, metrics),
                            (s.latest_metrics, latest), (s.tags, tags)):
            if rows:
                conn.execute(table.insert(), rows)
                rows.clear()

    with c.store.engine.connect() as conn:
        with conn.begin():
            for i, (name, p, m, tg) in enumerate(dataset(n, seed)):
                rid = uuid.uuid4().hex
                ts = ts0 + i
                runs.append({"run_id": rid, "experiment_id": int(eid), "run_name": name, "status": "FINISHED",
                             "start_time": ts, "end_time": ts + 1, "lifecycle_stage": "active",
                             "artifact_uri": f"{art}/{rid}/artifacts", "user_id": user, "parent_run_id": None})
                params += [{"run_id": rid, "key": k, "value": val} for k, val in p.items()]
                metrics += [{"run_id": rid, "key": k, "value": val, "timestamp": ts, "step": 0} for k, val in m.items()]
                latest += [{"run_id": rid, "key": k, "value": val, "timestamp": ts, "step": 0} for k, val in m.items()]
                tags += [{"run_id": rid, "key": k, "value": val} for k, val in tg.items()]
                if len(runs) >= batch:
                    flush(conn)
            flush(conn)


def all_runs(eid: str) -> list:
    """Every run of the experiment (for checks, not timed)."""
    return T.search_runs(experiment_ids=[eid], max_results=50000, output_format="list")


def describe(runs) -> list:
    """What the parent compares: name, m1, params, metrics and the user's tags (not mlflow.*)."""
    return [[r.info.run_name, r.data.metrics.get("m1"), dict(sorted(r.data.params.items())),
             dict(sorted(r.data.metrics.items())),
             {k: v for k, v in sorted(r.data.tags.items()) if not k.startswith("mlflow.")}] for r in runs]


def case_c_search(out: dict) -> None:
    flt = f"metrics.m1 > {SPEC['threshold']}"
    order = ["metrics.m1 DESC"]
    mx = SPEC["max_results"]
    kw = {"experiment_ids": [EID], "filter_string": flt, "order_by": order, "max_results": mx,
          "output_format": "list"}
    t0 = time.perf_counter()
    runs = T.search_runs(**kw)  # first call (also the warm-up)
    out["first_s"] = time.perf_counter() - t0
    times = []
    with Profiler(SPEC.get("profile")):
        for _ in range(SPEC["repeat"]):
            t0 = time.perf_counter()
            again = T.search_runs(**kw)
            times.append(time.perf_counter() - t0)
    out["timed_s"] = statistics.median(times)
    out["samples_s"] = times
    desc = describe(runs)
    out["check"] = {"count": len(runs), "same_on_repeat": describe(again) == desc,
                    "tags_per_run": sorted({len(r.data.tags) for r in runs}),
                    "params_per_run": sorted({len(r.data.params) for r in runs}),
                    "metrics_per_run": sorted({len(r.data.metrics) for r in runs})}
    out["results"] = desc if SPEC.get("return_results", True) else None
    if SPEC.get("pandas"):
        # Information only: the same search as a DataFrame (MLflow's default output format).
        # The first call includes importing pandas where the library has not imported it yet.
        kw["output_format"] = "pandas"
        had_pandas = "pandas" in sys.modules
        times = []
        for _ in range(1 + SPEC["repeat"]):
            t0 = time.perf_counter()
            df = T.search_runs(**kw)
            times.append(time.perf_counter() - t0)
        out["pandas"] = {"first_s": times[0], "median_s": statistics.median(times[1:]), "rows": len(df),
                         "pandas_imported_before": had_pandas}


def main() -> None:
    out = {"lib": LIB, "case": SPEC["case"], "import_s": t_import}
    global EID
    t0 = time.perf_counter()
    EID = eid = open_store()
    out["store_open_s"] = time.perf_counter() - t0
    if SPEC.get("synchronous_full"):
        force_synchronous_full()
    out["sqlite"] = sqlite_settings()
    case = SPEC["case"]
    if case == "a":
        case_a(out)
    elif case == "b":
        case_b(out)
    elif case in ("c_populate", "c100k_populate"):
        t0 = time.perf_counter()
        if SPEC.get("bulk"):
            populate_bulk(eid, SPEC["n"], SPEC["seed"])
        else:
            populate_public(eid, SPEC["n"], SPEC["seed"])
        out["populate_s"] = time.perf_counter() - t0
        with engine().connect() as conn:
            out["check"] = {"runs": conn.exec_driver_sql("SELECT count(*) FROM runs").scalar()}
    elif case == "c_search":
        case_c_search(out)
    else:
        raise SystemExit(f"unknown case {case!r}")
    out["total_in_child_s"] = time.perf_counter() - T_START
    print(json.dumps(out))


if __name__ == "__main__":  # also under ``python -c``
    start()
    main()
