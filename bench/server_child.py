"""One side of bench_server.py, run in a fresh process: ``python server_child.py hangar|mlflow URL N``.

Prints one JSON line: (a) N single log_metric calls on one run, (b) N runs, each create ->
5 params (one batch) -> 5 metrics (one batch) -> finished. Every call returns after the server
has committed its write. The Hangar side reads HANGAR_TOKEN for its bearer token.
"""

from __future__ import annotations

import json
import sys
import time


def hangar(url: str, n: int) -> dict:
    from hangar.tracking.client import Client
    from hangar.tracking.entities import Metric

    c = Client(url)
    exp = c.create_experiment(f"bench-{time.time_ns()}")
    run = c.create_run(exp).info.run_id
    t0 = time.perf_counter()
    for i in range(n):
        c.log_metric(run, "m", float(i), step=i)
    a = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        rid = c.create_run(exp, run_name=f"r{i}").info.run_id
        c.log_batch(rid, params={f"p{k}": k for k in range(5)})
        ts = int(time.time() * 1000)
        c.log_batch(rid, metrics=[Metric(f"m{k}", float(k), ts, 0) for k in range(5)])
        c.set_terminated(rid)
    b = time.perf_counter() - t0
    assert len(c.get_metric_history(run, "m")) == n
    assert len(c.search_runs(exp, max_results=50000)[0]) == n + 1
    return {"a_s": a, "b_s": b}


def mlflow(url: str, n: int) -> dict:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri=url)
    exp = c.create_experiment(f"bench-{time.time_ns()}")
    run = c.create_run(exp).info.run_id
    t0 = time.perf_counter()
    for i in range(n):
        c.log_metric(run, "m", float(i), step=i)
    a = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(n):
        rid = c.create_run(exp, run_name=f"r{i}").info.run_id
        c.log_batch(rid, params=[Param(f"p{k}", str(k)) for k in range(5)])
        ts = int(time.time() * 1000)
        c.log_batch(rid, metrics=[Metric(f"m{k}", float(k), ts, 0) for k in range(5)])
        c.set_terminated(rid)
    b = time.perf_counter() - t0
    assert len(c.get_metric_history(run, "m")) == n
    return {"a_s": a, "b_s": b}


if __name__ == "__main__":
    side, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps((hangar if side == "hangar" else mlflow)(url, n)), flush=True)
