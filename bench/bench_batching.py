#!/usr/bin/env python3
"""Adaptive batching benchmark: the same endpoint with batching on and off, under wrk at c=64.

The model (busy_model.py) holds the GIL for 20 ms per predict call plus 0.1 ms per row, so
without batching one worker answers at most ~50 req/s whatever the concurrency; with
``--max-batch-size 64`` one call can answer 64 requests. Target: batching on >= 10x the req/s of
batching off at c=64. Run with the Hangar venv's interpreter::

    .venv/bin/python bench/bench_batching.py                       # 15 s per point
    .venv/bin/python bench/bench_batching.py --duration 5

Both servers are ``hangar serve <package> --max-batch-size 64`` (plus ``--no-batching`` for the
second), pinned to one core with taskset, with wrk on the other, as in bench_serving.py. The mean
batch size comes from the server's own ``hangar_serving_batch_size`` histogram. Output: a table
on stdout and JSON in bench/out/batching.json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_serving import (
    BENCH_DIR,
    BODY,
    REPO_DIR,
    Server,
    check_answer,
    hangar_pythonpath,
    http_request,
    preflight,
    run_wrk,
    stop,
)
from bench_startup import BenchError, child_env, git_state

TARGET_RATIO = 10.0
SAVE_CODE = """\
import sys
import pandas as pd
import busy_model
import hangar.pyfunc as hp
hp.save_model(sys.argv[1], busy_model.BusyLenModel(), input_example=pd.DataFrame({"text": ["abc"]}))
"""


def batch_stats(port: int) -> dict:
    _, text = http_request(port, "GET", "/metrics", timeout=10)
    found = dict(re.findall(r"^hangar_serving_batch_size_(count|sum) (\S+)$", text.decode(), re.M))
    count, total = float(found.get("count", 0)), float(found.get("sum", 0))
    return {"batches": count, "rows": total, "mean_rows": total / count if count else None}


def measure(args, server: Server, label: str) -> dict:
    proc, port, t0, log = server.spawn(1)
    try:
        server.wait_ready(proc, port, t0, log, 120, 0.05)
        check_answer(server, port)
        if args.warmup > 0:
            run_wrk(port, args.concurrency, args.warmup, args.client_cpu, args.wrk_timeout)
        before = batch_stats(port)
        print(f"   {label}: wrk c={args.concurrency} {args.duration:g}s ...", end="", file=sys.stderr, flush=True)
        r = run_wrk(port, args.concurrency, args.duration, args.client_cpu, args.wrk_timeout)
        after = batch_stats(port)
        print(f" {r['rps']:8.1f} req/s  p50 {r['p50_s'] * 1000:7.1f} ms  p99 {r['p99_s'] * 1000:7.1f} ms  "
              f"errors {r['error_count']}", file=sys.stderr)
        batches = after["batches"] - before["batches"]
        r["mean_batch_rows"] = (after["rows"] - before["rows"]) / batches if batches else None
        r.pop("stdout", None)
        return r
    finally:
        stop(proc)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--wrk-timeout", default="30s")
    p.add_argument("--server-cpu", default="1")
    p.add_argument("--client-cpu", default="0")
    p.add_argument("--hangar-venv", type=Path, default=REPO_DIR / ".venv")
    p.add_argument("--hangar-src", type=Path, default=None, help="put this src/ first on Hangar's PYTHONPATH")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "out" / "batching.json")
    args = p.parse_args(argv)
    args.servers = ["hangar"]
    try:
        preflight(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {int(args.client_cpu)})
    work = Path(tempfile.mkdtemp(prefix="hangar-bench-batching-"))
    try:
        (work / "logs").mkdir()
        pkg = work / "busy-model"
        env = child_env(hangar_pythonpath(args))
        saved = subprocess.run([str(args.hangar_venv / "bin" / "python"), "-c", SAVE_CODE, str(pkg)], env=env,
                               cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        if saved.returncode != 0:
            raise BenchError(f"saving the busy model failed:\n{saved.stderr[-3000:]}")
        hangar = str(args.hangar_venv / "bin" / "hangar")
        common = ["--max-batch-size", str(args.max_batch_size), "--log-level", "warning"]
        results = {}
        for label, extra in (("batching on", []), ("batching off", ["--no-batching"])):
            server = Server("hangar", lambda port, w, extra=extra: [hangar, "serve", str(pkg), "--port", str(port),
                                                                     *common, *extra],
                            env, work, work / "logs", args.server_cpu)
            results[label] = measure(args, server, label)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)
    on, off = results["batching on"], results["batching off"]
    ratio = on["rps"] / off["rps"]
    print(f"\nBatching: busy model (20 ms + 0.1 ms/row, GIL held), 1-row dataframe_split, c={args.concurrency}, "
          f"{args.duration:g} s per point, max_batch_size {args.max_batch_size}")
    for label, r in results.items():
        mean = f"{r['mean_batch_rows']:.1f}" if r["mean_batch_rows"] else "-"
        print(f"  {label:<13} {r['rps']:9.1f} req/s  p50 {r['p50_s'] * 1000:7.1f} ms  p99 {r['p99_s'] * 1000:7.1f} ms"
              f"  mean batch {mean} rows  errors {r['error_count']}")
    print(f"  on/off: {ratio:.1f}x  (target >= {TARGET_RATIO:g}x: {'PASS' if ratio >= TARGET_RATIO else 'MISS'})")
    out = {"benchmark": "batching", "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
           "command": sys.argv, "git": git_state(), "body": BODY, "settings": {k: str(v) for k, v in vars(args).items()},
           "results": results, "ratio": ratio, "target": TARGET_RATIO, "pass": ratio >= TARGET_RATIO}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
