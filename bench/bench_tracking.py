#!/usr/bin/env python3
"""Tracking benchmarks: Hangar vs MLflow 3.x on SQLite, the same call sequences, fresh processes.

Run with the Hangar venv's interpreter (MLflow lives in its own venv, made by
``bash bench/setup_mlflow_venv.sh``)::

    .venv/bin/python bench/bench_tracking.py                         # full sizes, ~4-5 min
    .venv/bin/python bench/bench_tracking.py --metrics-a 100 --runs-b 100 --runs-c100k 0   # quick check

Every measurement is one fresh child process (tracking_child.py, run as ``python -c``) with a
fresh store (a new temporary directory holding an SQLite file). The child times the call
sequence itself, from the first call to the last, after the import and after opening the store
(``set_tracking_uri`` + ``set_experiment``, which creates the schema); those two are reported
apart, and so is the process wall time from spawn to exit.

* (a) one run, ``--metrics-a`` (1,000) single ``log_metric(key, value, step=i)`` calls.
* (b) ``--runs-b`` (1,000) runs, each ``start_run`` -> ``log_params`` (5) -> ``log_metrics`` (5) -> end.
* (c) a store of ``--runs-c`` (1,000) runs, each with params p0..p4, metrics m0..m4 (m1 uniform,
  fixed seed) and a tag, written by each library's client API (setup, not timed); then, in a
  new process, ``search_runs(filter_string="metrics.m1 > 0.9", order_by=["metrics.m1 DESC"],
  max_results=1000, output_format="list")``: the first call, then the median of
  ``--search-repeat`` more. Both systems must return the same runs in the same order (compared
  by name, m1, params, metrics and the user tag) and match what the data says.
* (c-100k) Hangar only: ``--runs-c100k`` (100,000) runs bulk-inserted with SQLAlchemy Core into
  Hangar's tables (the public API takes 1.5-2 ms a run here, 2.5-3 min for 100,000; no bulk API),
  then the same search, which materialises 1,000 runs.

Targets (from the requirements): (a) and (b) >= 20x faster than MLflow, (c) >= 10x, (c-100k)
under 200 ms. Results are printed and written as JSON (default bench/out/tracking.json).
With ``--profile auto`` (the default) Hangar's side of every missed target is re-run under
cProfile in a child, and the top functions are printed and saved.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tracking_child  # bench/ is on sys.path: it is the script's directory
from bench_startup import (
    DEFAULT_MLFLOW_PYTHON,
    REPO_DIR,
    BenchError,
    child_env,
    git_state,
    last_json_line,
    lib_version,
    run_once,
)

BENCH_DIR = Path(__file__).resolve().parent
CHILD_CODE = (BENCH_DIR / "tracking_child.py").read_text()
DEFAULT_OUT = BENCH_DIR / "out" / "tracking.json"
LIBS = ("hangar", "mlflow")

TARGET_AB_RATIO = 20.0
TARGET_C_RATIO = 10.0
TARGET_C100K_MS = 200.0
SEED_C, SEED_C100K = 3, 4
FILTER_FMT = "metrics.m1 > {threshold}"


# --------------------------------------------------------------------------- running children


class Runner:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.pythons = {"hangar": args.hangar_python, "mlflow": args.mlflow_python}
        self.n = 0

    def store(self, label: str) -> Path:
        self.n += 1
        d = self.work / f"{self.n:02d}-{label}"
        d.mkdir()
        return d

    def child(self, lib: str, case: str, store: Path, **spec) -> dict:
        spec = {"lib": lib, "case": case, "store": str(store), **spec}
        argv = [str(self.pythons[lib]), "-c", CHILD_CODE, json.dumps(spec)]
        what = f"{lib} {case} " + " ".join(f"{k}={v}" for k, v in spec.items()
                                            if k in ("n", "repeat", "synchronous_full", "bulk"))
        print(f"  {what} ...", end="", file=sys.stderr, flush=True)
        wall, proc = run_once(argv, child_env(), store, self.args.timeout)
        out = last_json_line(proc.stdout)
        out["wall_s"] = wall
        key = "timed_s" if "timed_s" in out else "populate_s"
        print(f" {out[key]:.3f} s ({key}), wall {wall:.1f} s", file=sys.stderr, flush=True)
        return out


def med(xs):
    return statistics.median(xs) if xs else None


def expected_search(n: int, seed: int, threshold: float, max_results: int) -> list[float]:
    """m1 of the runs the search should return, in order (from the same data as the children)."""
    m1 = [metrics["m1"] for _, _, metrics, _ in tracking_child.dataset(n, seed)]
    return sorted((v for v in m1 if v > threshold), reverse=True)[:max_results]


def check_equal(results: dict, expect_m1: list[float]) -> dict:
    """Both systems' (c) results: the same count, m1 sequence and run contents, as expected."""
    h, m = results["hangar"], results["mlflow"]
    return {
        "count": {"hangar": len(h), "mlflow": len(m), "expected": len(expect_m1)},
        "same_count": len(h) == len(m) == len(expect_m1),
        "same_m1_order": [r[1] for r in h] == [r[1] for r in m] == expect_m1,
        "same_runs": h == m,  # run name, m1, params, metrics, user tag (mlflow.* tags left out)
    }


# --------------------------------------------------------------------------- the benchmark


def bench(args, runner: Runner, result: dict) -> tuple[dict, list[str]]:
    problems: list[str] = []
    thr = args.threshold
    flt = FILTER_FMT.format(threshold=thr)
    raw: dict = {"a": {lib: [] for lib in LIBS}, "b": {lib: [] for lib in LIBS},
                 "c_search": {lib: [] for lib in LIBS}}
    stores: dict = {}

    # (a), (b): fresh store per child, Hangar and MLflow back to back (the order flips each repeat).
    # The information-only Hangar child with synchronous=FULL runs next to them, so that its ratio to
    # MLflow is taken under the same conditions.
    full = not args.no_sync_full
    sync_full = {"a": [], "b": []}
    for rep in range(args.repeat):
        order = ["hangar", *(["hangar_full"] if full else []), "mlflow"]
        if rep % 2:
            order.reverse()
        for case, n in (("a", args.metrics_a), ("b", args.runs_b)):
            what = f"{args.metrics_a} log_metric calls" if case == "a" else f"{args.runs_b} runs"
            print(f"\n({case}) {what}, repeat {rep + 1}/{args.repeat}", file=sys.stderr)
            for who in order:
                if who == "hangar_full":
                    sync_full[case].append(runner.child("hangar", case, runner.store(f"{case}-hangar-full"), n=n,
                                                        synchronous_full=True))
                else:
                    raw[case][who].append(runner.child(who, case, runner.store(f"{case}-{who}"), n=n))

    for lib in ("hangar_full", *LIBS):
        for o in (sync_full["a"] if lib == "hangar_full" else raw["a"][lib]):
            c = o["check"]
            if not (c["history_len"] == args.metrics_a and c["values_match"]):
                problems.append(f"(a) {lib}: metric history does not match what was logged: {c}")
        for o in (sync_full["b"] if lib == "hangar_full" else raw["b"][lib]):
            c = o["check"]
            if not (c["runs"] == c["finished"] == args.runs_b and c["params_per_run"] == [5]
                    and c["metrics_per_run"] == [5]):
                problems.append(f"(b) {lib}: the store does not hold what was logged: {c}")

    # (c): populate (setup, not timed as a result), then search in fresh processes.
    print(f"\n(c) populate {args.runs_c} runs per system (setup)", file=sys.stderr)
    populate = {}
    for lib in LIBS:
        stores[lib] = runner.store(f"c-{lib}")
        populate[lib] = runner.child(lib, "c_populate", stores[lib], n=args.runs_c, seed=SEED_C)
        if populate[lib]["check"]["runs"] != args.runs_c:
            problems.append(f"(c) {lib}: populated {populate[lib]['check']['runs']} runs, not {args.runs_c}")
    print(f"(c) search_runs({flt!r}), {args.search_repeat} timed calls after the first", file=sys.stderr)
    for rep in range(args.repeat):
        for lib in (LIBS if rep % 2 == 0 else LIBS[::-1]):
            raw["c_search"][lib].append(runner.child(
                lib, "c_search", stores[lib], threshold=thr, max_results=args.max_results,
                repeat=args.search_repeat, pandas=not args.no_pandas))
    expect = expected_search(args.runs_c, SEED_C, thr, args.max_results)
    equal = check_equal({lib: raw["c_search"][lib][0]["results"] for lib in LIBS}, expect)
    for lib in LIBS:
        for o in raw["c_search"][lib]:
            if not o["check"]["same_on_repeat"]:
                problems.append(f"(c) {lib}: repeated searches returned different results")
    if not (equal["same_count"] and equal["same_m1_order"] and equal["same_runs"]):
        problems.append(f"(c) results differ: {equal}")

    # (c-100k): Hangar only, bulk-inserted store.
    c100k = None
    if args.runs_c100k:
        print(f"\n(c-100k) Hangar: bulk-insert {args.runs_c100k:,} runs (setup), then search", file=sys.stderr)
        stores["c100k"] = runner.store("c100k-hangar")
        pop = runner.child("hangar", "c100k_populate", stores["c100k"], n=args.runs_c100k, seed=SEED_C100K,
                           bulk=True)
        searches = [runner.child("hangar", "c_search", stores["c100k"], threshold=thr, max_results=args.max_results,
                                 repeat=args.search_repeat) for _ in range(args.repeat)]
        exp100 = expected_search(args.runs_c100k, SEED_C100K, thr, args.max_results)
        got = [r[1] for r in searches[0]["results"]]
        check = {"count": len(got), "expected_count": len(exp100), "same_m1_order": got == exp100,
                 "materialised_ok": searches[0]["check"]}
        if not check["same_m1_order"]:
            problems.append(f"(c-100k) Hangar's results are not the expected top {args.max_results} by m1")
        for s in searches:
            s.pop("results", None)
        c100k = {"runs": args.runs_c100k, "populate": {k: pop[k] for k in ("populate_s", "wall_s", "check")},
                 "search": searches, "timed_median_s": med([s["timed_s"] for s in searches]),
                 "first_median_s": med([s["first_s"] for s in searches]), "check": check}

    for lib in LIBS:
        for o in raw["c_search"][lib]:
            o.pop("results", None)

    # ---- aggregate
    def agg(case, lib, key="timed_s"):
        return med([o[key] for o in raw[case][lib]])

    cases = {}
    for case in ("a", "b", "c_search"):
        cases[case] = {lib: {
            "timed_median_s": agg(case, lib),
            "first_median_s": agg(case, lib, "first_s") if case == "c_search" else None,
            "import_median_s": agg(case, lib, "import_s"),
            "store_open_median_s": agg(case, lib, "store_open_s"),
            "wall_median_s": agg(case, lib, "wall_s"),
            "sqlite": raw[case][lib][0]["sqlite"],
            "children": raw[case][lib],
        } for lib in LIBS}
    cases["c_populate"] = {lib: {k: populate[lib][k] for k in ("populate_s", "wall_s", "store_open_s", "check")}
                           for lib in LIBS}
    ratios = {case: cases[case]["mlflow"]["timed_median_s"] / cases[case]["hangar"]["timed_median_s"]
              for case in ("a", "b", "c_search")}
    ratios["c_search_first"] = (cases["c_search"]["mlflow"]["first_median_s"]
                                / cases["c_search"]["hangar"]["first_median_s"])
    if full:
        for case in ("a", "b"):
            ratios[f"{case}_hangar_synchronous_full"] = (cases[case]["mlflow"]["timed_median_s"]
                                                          / med([o["timed_s"] for o in sync_full[case]]))
    # Hangar and MLflow children of the same repeat ran back to back: their ratio, repeat by repeat.
    ratios["per_repeat"] = {case: [m["timed_s"] / h["timed_s"] for h, m in zip(raw[case]["hangar"], raw[case]["mlflow"])]
                            for case in ("a", "b", "c_search")}
    targets = {
        "a_ratio_ge_20x": ratios["a"] >= TARGET_AB_RATIO,
        "b_ratio_ge_20x": ratios["b"] >= TARGET_AB_RATIO,
        "c_ratio_ge_10x": ratios["c_search"] >= TARGET_C_RATIO,
    }
    if c100k is not None:
        targets["c100k_under_200ms"] = c100k["timed_median_s"] * 1000 < TARGET_C100K_MS
    result.update(cases=cases, ratios=ratios, targets=targets, c_equal=equal, c100k=c100k,
                  hangar_synchronous_full={case: {"timed_median_s": med([o["timed_s"] for o in runs]), "children": runs}
                                           for case, runs in sync_full.items()} if full else None,
                  problems=problems)
    return stores, problems


# --------------------------------------------------------------------------- output


def fmt_t(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.2f} s" if s >= 1 else f"{s * 1000:.1f} ms"


def table_rows(args, result) -> list[tuple[str, str, str, str, str]]:
    cs, r, tg = result["cases"], result["ratios"], result["targets"]
    pf = lambda ok: "PASS" if ok else "FAIL"  # noqa: E731
    rows = [
        (f"(a) 1 run, {args.metrics_a:,} x log_metric(step=i)", fmt_t(cs["a"]["hangar"]["timed_median_s"]),
         fmt_t(cs["a"]["mlflow"]["timed_median_s"]), f"{r['a']:.1f}x",
         f">= {TARGET_AB_RATIO:.0f}x: {pf(tg['a_ratio_ge_20x'])}"),
        (f"(b) {args.runs_b:,} runs: start, log_params(5), log_metrics(5), end",
         fmt_t(cs["b"]["hangar"]["timed_median_s"]), fmt_t(cs["b"]["mlflow"]["timed_median_s"]), f"{r['b']:.1f}x",
         f">= {TARGET_AB_RATIO:.0f}x: {pf(tg['b_ratio_ge_20x'])}"),
        (f"(c) search_runs, {args.runs_c:,} runs, {result['c_equal']['count']['hangar']} hits "
         f"(median of {args.search_repeat})", fmt_t(cs["c_search"]["hangar"]["timed_median_s"]),
         fmt_t(cs["c_search"]["mlflow"]["timed_median_s"]), f"{r['c_search']:.1f}x",
         f">= {TARGET_C_RATIO:.0f}x: {pf(tg['c_ratio_ge_10x'])}"),
        ("(c) search_runs, first call in the process", fmt_t(cs["c_search"]["hangar"]["first_median_s"]),
         fmt_t(cs["c_search"]["mlflow"]["first_median_s"]), f"{r['c_search_first']:.1f}x", "information"),
    ]
    c100k = result.get("c100k")
    if c100k:
        rows += [
            (f"(c-100k) search_runs, {c100k['runs']:,} runs, {c100k['check']['count']:,} materialised "
             f"(median of {args.search_repeat})", fmt_t(c100k["timed_median_s"]), "-", "-",
             f"< {TARGET_C100K_MS:.0f} ms: {pf(tg['c100k_under_200ms'])}"),
            ("(c-100k) search_runs, first call in the process", fmt_t(c100k["first_median_s"]), "-", "-",
             "information"),
        ]
    sf = result.get("hangar_synchronous_full")
    if sf:
        rows += [
            ("(a) Hangar with PRAGMA synchronous=FULL", fmt_t(sf["a"]["timed_median_s"]),
             fmt_t(cs["a"]["mlflow"]["timed_median_s"]), f"{r['a_hangar_synchronous_full']:.1f}x", "information"),
            ("(b) Hangar with PRAGMA synchronous=FULL", fmt_t(sf["b"]["timed_median_s"]),
             fmt_t(cs["b"]["mlflow"]["timed_median_s"]), f"{r['b_hangar_synchronous_full']:.1f}x", "information"),
        ]
    pd_h = cs["c_search"]["hangar"]["children"][0].get("pandas")
    pd_m = cs["c_search"]["mlflow"]["children"][0].get("pandas")
    if pd_h and pd_m:
        rows += [
            ("(c) same search as DataFrame, output_format='pandas' (median)", fmt_t(pd_h["median_s"]), fmt_t(pd_m["median_s"]),
             f"{pd_m['median_s'] / pd_h['median_s']:.1f}x", "information"),
            ("(c) same search as DataFrame, first call (Hangar imports pandas here)", fmt_t(pd_h["first_s"]),
             fmt_t(pd_m["first_s"]),
             f"{pd_m['first_s'] / pd_h['first_s']:.1f}x", "information"),
        ]
    imp = {lib: med([cs[c][lib]["import_median_s"] for c in ("a", "b", "c_search")]) for lib in LIBS}
    rows += [
        ("import (hangar.tracking.fluent | mlflow), in the child", fmt_t(imp["hangar"]), fmt_t(imp["mlflow"]),
         f"{imp['mlflow'] / imp['hangar']:.1f}x", "information"),
        ("store open on a fresh store (set_tracking_uri + set_experiment)",
         fmt_t(med([cs[c]["hangar"]["store_open_median_s"] for c in ("a", "b")])),
         fmt_t(med([cs[c]["mlflow"]["store_open_median_s"] for c in ("a", "b")])), "-", "information"),
        ("process wall, spawn to exit, (a) child", fmt_t(cs["a"]["hangar"]["wall_median_s"]),
         fmt_t(cs["a"]["mlflow"]["wall_median_s"]),
         f"{cs['a']['mlflow']['wall_median_s'] / cs['a']['hangar']['wall_median_s']:.1f}x", "information"),
        ("process wall, spawn to exit, (b) child", fmt_t(cs["b"]["hangar"]["wall_median_s"]),
         fmt_t(cs["b"]["mlflow"]["wall_median_s"]),
         f"{cs['b']['mlflow']['wall_median_s'] / cs['b']['hangar']['wall_median_s']:.1f}x", "information"),
        (f"(c) populate {args.runs_c:,} runs via client API (setup)",
         fmt_t(result["cases"]["c_populate"]["hangar"]["populate_s"]),
         fmt_t(result["cases"]["c_populate"]["mlflow"]["populate_s"]), "-", "setup, not a result"),
    ]
    if c100k:
        rows.append((f"(c-100k) bulk insert {c100k['runs']:,} runs, SQLAlchemy Core (setup)",
                     fmt_t(c100k["populate"]["populate_s"]), "-", "-", "setup, not a result"))
    return rows


def print_table(args, result) -> None:
    v = result["versions"]
    print(f"\nTracking benchmark (SQLite; hangar {v['hangar']}, mlflow {v['mlflow']}, Python "
          f"{platform.python_version()}, SQLite {v.get('sqlite')}; {args.repeat} fresh process(es) per system "
          f"and case, median)\n")
    rows = table_rows(args, result)
    w = max(len(r[0]) for r in rows) + 2
    print(f"  {'measurement':{w}}{'hangar':>11}{'mlflow':>11}{'mlflow/hangar':>15}   target")
    for name, h, m, r, t in rows:
        print(f"  {name:{w}}{h:>11}{m:>11}{r:>15}   {t}")
    pr = result["ratios"]["per_repeat"]
    print("\n  ratio of each repeat (hangar and mlflow children run back to back): " + "; ".join(
        f"({c[0]}) " + ", ".join(f"{x:.1f}x" for x in pr[c]) for c in ("a", "b", "c_search")))
    eq = result["c_equal"]
    print(f"  (c) results: {eq['count']['hangar']} | {eq['count']['mlflow']} runs (expected "
          f"{eq['count']['expected']}); same m1 order: {eq['same_m1_order']}; same runs (name, params, metrics, "
          f"user tag): {eq['same_runs']}")
    if result.get("c100k"):
        ck = result["c100k"]["check"]
        print(f"  (c-100k) results: {ck['count']} runs, expected top {ck['expected_count']} by m1: "
              f"{ck['same_m1_order']}")
    sq = {lib: result["cases"]["a"][lib]["sqlite"] for lib in LIBS}
    print(f"  SQLite settings as the stores run: hangar journal_mode={sq['hangar']['journal_mode']} "
          f"synchronous={sq['hangar']['synchronous']}, mlflow journal_mode={sq['mlflow']['journal_mode']} "
          f"synchronous={sq['mlflow']['synchronous']} (1 = NORMAL, 2 = FULL)")
    la, lb = result["host"]["loadavg_before"], result["host"]["loadavg_after"]
    print(f"  load average before {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}, after {lb[0]:.2f} / {lb[1]:.2f} / "
          f"{lb[2]:.2f} on {result['host']['cpus']} CPUs")
    if result["problems"]:
        print("\n  CHECKS FAILED:")
        for p in result["problems"]:
            print(f"    - {p}")


def markdown_table(args, result) -> str:
    lines = ["| Measurement | Hangar | MLflow | MLflow / Hangar | Target |", "| --- | ---: | ---: | ---: | --- |"]
    for name, h, m, r, t in table_rows(args, result):
        t = t.replace("PASS", "**pass**").replace("FAIL", "**FAIL**")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in (name, h, m, r, t)) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- profiling


def profile_hangar(args, runner: Runner, stores: dict, result: dict) -> None:
    """Re-run Hangar's side of the chosen cases under cProfile (one child each) and keep the top."""
    missed = {k for k, ok in result["targets"].items() if not ok}
    want = {"a": "a_ratio_ge_20x", "b": "b_ratio_ge_20x", "c_search": "c_ratio_ge_10x",
            "c100k": "c100k_under_200ms"}
    chosen = [c for c, t in want.items() if args.profile == "always" or t in missed]
    chosen = [c for c in chosen if c != "c100k" or "c100k" in stores]
    if not chosen:
        return
    thr = args.threshold
    out = {}
    for case in chosen:
        prof = runner.work / f"profile-{case}.pstats"
        print(f"\n(profile) Hangar {case} under cProfile", file=sys.stderr)
        if case in ("a", "b"):
            n = args.metrics_a if case == "a" else args.runs_b
            o = runner.child("hangar", case, runner.store(f"{case}-hangar-prof"), n=n, profile=str(prof))
        else:
            store = stores["hangar"] if case == "c_search" else stores["c100k"]
            o = runner.child("hangar", "c_search", store, threshold=thr, max_results=args.max_results,
                             repeat=args.search_repeat, profile=str(prof), return_results=False)
        out[case] = {"timed_s_under_profile": o["timed_s"], **top_functions(prof)}
    result["hangar_profile"] = out
    for case, rep in out.items():
        print(f"\ncProfile of Hangar's {case} (the timed calls; profiler overhead inflates the times): "
              f"{rep['total_s']:.3f} s profiled")
        print("  by cumulative time:")
        for r in rep["cumulative"][:args.profile_top]:
            print(f"    {r['cum_s'] * 1000:9.1f} ms cum {r['tot_s'] * 1000:9.1f} ms self {r['calls']:>8}  {r['func']}")
        print("  by self time:")
        for r in rep["self"][:args.profile_top]:
            print(f"    {r['tot_s'] * 1000:9.1f} ms self {r['cum_s'] * 1000:9.1f} ms cum {r['calls']:>8}  {r['func']}")


def top_functions(path: Path, n: int = 40) -> dict:
    st = pstats.Stats(str(path))

    def name(f):
        file, line, fn = f
        file = file.replace(str(REPO_DIR) + "/", "").replace(str(Path(sys.prefix)) + "/", "")
        if "site-packages/" in file:
            file = file.split("site-packages/", 1)[1]
        return f"{file}:{line}({fn})"

    rows = [{"func": name(f), "calls": cc, "tot_s": tt, "cum_s": ct}
            for f, (cc, _nc, tt, ct, _callers) in st.stats.items()]
    return {"total_s": st.total_tt,
            "cumulative": sorted(rows, key=lambda r: -r["cum_s"])[:n],
            "self": sorted(rows, key=lambda r: -r["tot_s"])[:n]}


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics-a", type=int, default=1000, help="(a) log_metric calls in one run (default 1000)")
    p.add_argument("--runs-b", type=int, default=1000, help="(b) runs (default 1000)")
    p.add_argument("--runs-c", type=int, default=1000, help="(c) runs in the searched store (default 1000)")
    p.add_argument("--runs-c100k", type=int, default=100_000,
                   help="(c-100k) runs in Hangar's bulk-inserted store (default 100000; 0 skips it)")
    p.add_argument("--threshold", type=float, default=0.9, help="(c) filter metrics.m1 > X (default 0.9, ~10%%)")
    p.add_argument("--max-results", type=int, default=1000, help="(c) max_results (default 1000)")
    p.add_argument("--search-repeat", type=int, default=10, help="(c) timed searches after the first (default 10)")
    p.add_argument("--repeat", type=int, default=3,
                   help="fresh processes per system for (a), (b) and the (c) search, interleaved (default 3)")
    p.add_argument("--no-sync-full", action="store_true",
                   help="skip the information rows: Hangar (a), (b) with PRAGMA synchronous=FULL")
    p.add_argument("--no-pandas", action="store_true", help="skip the information rows: (c) as a DataFrame")
    p.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                   help="cProfile Hangar's side: of missed targets (auto, default), of every case, or never")
    p.add_argument("--profile-top", type=int, default=15, help="functions printed per profile (default 15)")
    p.add_argument("--hangar-python", type=Path, default=Path(sys.executable),
                   help="interpreter of the Hangar venv (default: the one running this script)")
    p.add_argument("--mlflow-python", type=Path, default=DEFAULT_MLFLOW_PYTHON,
                   help=f"interpreter of the MLflow venv (default: {DEFAULT_MLFLOW_PYTHON.relative_to(REPO_DIR)})")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per child process (default 1800)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"JSON output (default {DEFAULT_OUT.relative_to(REPO_DIR)})")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown (for RESULTS.md)")
    p.add_argument("--keep", action="store_true", help="keep the temporary stores and print where they are")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    for name in ("metrics_a", "runs_b", "runs_c", "search_repeat", "repeat", "max_results"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def preflight(args) -> None:
    for lib, py in (("hangar", args.hangar_python), ("mlflow", args.mlflow_python)):
        if lib == "mlflow" and not py.exists():
            raise BenchError(f"MLflow venv not found ({py}). Create it with:\n    bash bench/setup_mlflow_venv.sh")
        mod = "hangar.tracking.fluent" if lib == "hangar" else "mlflow"
        proc = subprocess.run([str(py), "-c", f"import {mod}"], env=child_env(), cwd=tempfile.gettempdir(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            hint = ("run this script with the Hangar venv's python (.venv/bin/python bench/bench_tracking.py)"
                    if lib == "hangar" else "(re)create the venv with: bash bench/setup_mlflow_venv.sh")
            raise BenchError(f"`{py} -c 'import {mod}'` failed; {hint}\n{proc.stderr[-1500:]}")


def versions(args, cwd) -> dict:
    v = {"hangar": lib_version(args.hangar_python, "hangar", cwd), "hangar_python": str(args.hangar_python),
         "mlflow": lib_version(args.mlflow_python, "mlflow", cwd), "mlflow_python": str(args.mlflow_python)}
    for lib, py in (("hangar", args.hangar_python), ("mlflow", args.mlflow_python)):
        v[f"sqlalchemy_{lib}"] = lib_version(py, "sqlalchemy", cwd)
        proc = subprocess.run([str(py), "-c", "import sqlite3; print(sqlite3.sqlite_version)"], env=child_env(),
                              cwd=cwd, stdout=subprocess.PIPE, text=True)
        v[f"sqlite_{lib}"] = proc.stdout.strip() or None
    v["sqlite"] = v["sqlite_hangar"] if v["sqlite_hangar"] == v["sqlite_mlflow"] else \
        f"{v['sqlite_hangar']} | {v['sqlite_mlflow']}"
    return v


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        preflight(args)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="hangar-bench-tracking-"))
    result: dict = {
        "benchmark": "tracking",
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg())},
        "git": git_state(),
        "command": " ".join([".venv/bin/python", "bench/bench_tracking.py", *(argv if argv is not None else sys.argv[1:])]),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "filter": FILTER_FMT.format(threshold=args.threshold), "order_by": ["metrics.m1 DESC"],
        "seeds": {"c": SEED_C, "c100k": SEED_C100K},
        "versions": versions(args, work),
    }
    runner = Runner(args, work)
    t0 = time.perf_counter()
    try:
        stores, problems = bench(args, runner, result)
        result["host"]["loadavg_after"] = list(os.getloadavg())
        print_table(args, result)
        if args.markdown:
            print("\n" + markdown_table(args, result))
        if args.profile != "never":
            profile_hangar(args, runner, stores, result)
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"\n(kept the temporary stores in {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["elapsed_s"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out} ({result['elapsed_s']:.0f} s in all)")
    if problems:
        return 2
    return (0 if all(result["targets"].values()) else 1) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
