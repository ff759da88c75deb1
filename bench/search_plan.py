"""Query plan and timing of run search on SQLite with 100,000 runs (a check script, not a test).

    .venv/bin/python bench/search_plan.py [--runs 100000] [--db PATH] [--analyze]

Builds a store with ``metadata.create_all`` (the schema's indexes included), bulk-inserts runs
with 5 params, 5 latest metrics and 3 tags each, then for a few searches prints the SQL, SQLite's
EXPLAIN QUERY PLAN and the median time of the id query, plus an indicative materialisation of one
page (runs, params, latest metrics and tags of 1,000 ids) so the whole search can be judged.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hangar.store import schema as s  # noqa: E402
from hangar.tracking.search import build_run_search  # noqa: E402

SEARCHES = [
    ("filter + order on one metric (target)", "metrics.m1 > 0.9", ["metrics.m1 DESC"]),
    ("filter on a metric, default order", "metrics.m1 > 0.9", None),
    ("order by a metric only", None, ["metrics.m2 DESC"]),
    ("param = and metric >", "params.p1 = 'v3' and metrics.m1 > 0.5", ["metrics.m1 DESC"]),
    ("tag LIKE, default order", "tags.t1 LIKE 'team-1%'", None),
    ("no filter, default order", None, None),
]


def build(path: Path, n_runs: int) -> None:
    engine = create_engine(f"sqlite:///{path}")
    s.metadata.create_all(engine)
    rnd = random.Random(7)
    raw = engine.raw_connection()
    cur = raw.cursor()
    cur.execute("INSERT INTO experiments VALUES (1, 'bench', '/tmp/a', 'active', 0, 0)")
    runs, params, metrics, tags = [], [], [], []
    for i in range(n_runs):
        rid = f"{i:032x}"
        runs.append((rid, 1, f"run-{i}", "FINISHED", 1_700_000_000_000 + i, None, "active", f"/a/{rid}", "me", None))
        params += [(rid, f"p{k}", f"v{rnd.randrange(10)}") for k in range(1, 6)]
        metrics += [(rid, f"m{k}", rnd.random(), 0, 0) for k in range(1, 6)]
        tags += [(rid, f"t{k}", f"team-{rnd.randrange(20)}") for k in range(1, 4)]
    cur.executemany("INSERT INTO runs (run_id, experiment_id, run_name, status, start_time, end_time, lifecycle_stage,"
                    " artifact_uri, user_id, parent_run_id) VALUES (?,?,?,?,?,?,?,?,?,?)", runs)
    cur.executemany("INSERT INTO params VALUES (?,?,?)", params)
    cur.executemany("INSERT INTO latest_metrics VALUES (?,?,?,?,?)", metrics)
    cur.executemany("INSERT INTO tags VALUES (?,?,?)", tags)
    raw.commit()
    raw.close()
    engine.dispose()


def explain(conn, stmt) -> list[str]:
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup)
    return [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)]


def materialise(conn, ids: list[str]) -> int:
    """Roughly what a store does with one page of ids: four IN queries keyed by the primary keys."""
    n = 0
    for table in (s.runs, s.params, s.latest_metrics, s.tags):
        n += len(conn.execute(select(table).where(table.c.run_id.in_(ids))).all())
    return n


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--db", type=Path, default=None, help="keep the store here (reused when it exists)")
    ap.add_argument("--analyze", action="store_true", help="run ANALYZE first (the planner then has statistics)")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="hangar-search-bench-")) / "bench.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        if not db.exists():
            t0 = time.perf_counter()
            build(db, args.runs)
            print(f"built {args.runs:,} runs in {db} in {time.perf_counter() - t0:.1f} s")
        report(db, args)
    finally:
        if args.db is None:
            shutil.rmtree(db.parent, ignore_errors=True)


def report(db: Path, args) -> None:
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        if args.analyze:
            conn.exec_driver_sql("ANALYZE")
        print(f"sqlite {conn.exec_driver_sql('select sqlite_version()').scalar()}, "
              f"{conn.exec_driver_sql('select count(*) from runs').scalar():,} runs, analyze={args.analyze}\n")
        for title, flt, order in SEARCHES:
            def query(flt=flt, order=order):
                return [r[0] for r in conn.execute(build_run_search([1], flt, order, "active", 1000, 0))]

            query()  # warm the page cache
            ms, ids = timed(query, args.repeat)
            mat_ms, n_rows = timed(lambda ids=ids: materialise(conn, ids[:1000]), args.repeat)
            print(f"== {title}: filter={flt!r} order_by={order!r}")
            for line in explain(conn, build_run_search([1], flt, order, "active", 1000, 0)):
                print("   plan:", line)
            print(f"   id query {ms:.1f} ms ({len(ids)} rows) + materialise {mat_ms:.1f} ms ({n_rows} rows)"
                  f" = {ms + mat_ms:.1f} ms\n")
    engine.dispose()


if __name__ == "__main__":
    main()
