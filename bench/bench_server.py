#!/usr/bin/env python3
"""Server benchmarks: ``hangar server`` vs ``mlflow server``, both on SQLite, in the same run.

    .venv/bin/python bench/bench_server.py                       # full sizes (MLflow's side takes minutes)
    .venv/bin/python bench/bench_server.py --n 100 --skip-mlflow  # a quick look at Hangar alone
    .venv/bin/python bench/bench_server.py --mlflow-python /path/to/.venv-mlflow/bin/python

* (a) ``--n`` (1,000) single ``log_metric`` calls on one run, through the server.
* (b) ``--n`` runs, each create -> 5 params (one batch) -> 5 metrics (one batch) -> finished.
  Each side uses its own Python client (Hangar's ``Client("http://...")``, ``MlflowClient``) in a
  fresh process (server_child.py); every call returns after the server committed its write.
* auth: median latency of ``GET /api/v1/models/main.default.m`` on two servers of this build,
  one with auth (admin bearer token) and one with ``--no-auth``, the same httpx client code,
  alternating blocks of requests so that drift hits both alike.
* start-up: median time from spawn to ``/ready`` answering 200 on an already-migrated store,
  one worker; and the server's resident memory once idle (process tree).

Targets (issue 6): (a) and (b) >= 20x faster than MLflow; auth < 10 %; spawn->ready < 1 s;
idle RSS < 200 MB. Results are printed and written as JSON (default bench/out/server.json).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DEFAULT_MLFLOW_PYTHON = BENCH_DIR / ".venv-mlflow" / "bin" / "python"
HANGAR_MAIN = "from hangar.cli.main import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HANGAR_", "MLFLOW_"))
           and k != "VIRTUAL_ENV"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _answers_200(url: str, path: str) -> bool:
    """One GET on a fresh connection; http.client, so that polling costs the starting server (on a 2-core
    machine) almost no CPU (a new httpx client per probe builds an SSL context: ~10 ms of CPU each)."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_ready(url: str, proc: subprocess.Popen, path: str, timeout: float = 120.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {proc.returncode}")
        if _answers_200(url, path):
            return time.perf_counter()
        time.sleep(0.005)
    raise RuntimeError(f"{url}{path} did not answer within {timeout} s")


def rss_mb(pid: int) -> float:
    import psutil

    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2**20


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Hangar:
    """``hangar server`` of this checkout on one SQLite store."""

    def __init__(self, folder: Path, auth: bool = True):
        self.folder, self.auth = folder, auth
        self.env = clean_env(PYTHONPATH=REPO_DIR / "src", HANGAR_HOME=folder / "home")

    def spawn(self) -> tuple[subprocess.Popen, str, float]:
        port = free_port()
        cmd = [sys.executable, "-c", HANGAR_MAIN, "server", "--port", str(port), "--store",
               f"sqlite:///{self.folder / 'hangar.db'}", "--artifacts", str(self.folder / "artifacts"),
               "--log-level", "warning", *([] if self.auth else ["--no-auth"])]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        return proc, url, wait_ready(url, proc, "/ready") - t0

    @property
    def token(self) -> str | None:
        path = self.folder / "home" / "server" / "bootstrap-admin-token"
        return path.read_text().strip() if self.auth else None


def run_child(python: Path, side: str, url: str, n: int, env: dict) -> dict:
    out = subprocess.run([str(python), str(BENCH_DIR / "server_child.py"), side, url, str(n)], env=env,
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"{side} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def tracking(args, tmp: Path) -> dict:
    results: dict = {}
    h = Hangar(tmp / "hangar-tracking")
    proc, url, _ = h.spawn()
    try:
        results["hangar"] = run_child(Path(sys.executable), "hangar", url, args.n,
                                      {**h.env, "HANGAR_HOME": str(tmp / "client-home"), "HANGAR_TOKEN": h.token})
    finally:
        stop(proc)
    if args.skip_mlflow:
        return results
    folder = tmp / "mlflow"
    folder.mkdir()
    port = free_port()
    mlflow_bin = Path(args.mlflow_python).parent / "mlflow"
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                             "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], env=clean_env(), cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        results["mlflow_start_s"] = wait_ready(url, proc, "/health", 300) - t0
        time.sleep(2)
        results["mlflow_idle_rss_mb"] = rss_mb(proc.pid)
        results["mlflow"] = run_child(Path(args.mlflow_python), "mlflow", url, args.n, clean_env())
    finally:
        stop(proc)
    return results


def auth_cost(args, tmp: Path) -> dict:
    import httpx

    servers = [Hangar(tmp / "auth-on"), Hangar(tmp / "auth-off", auth=False)]
    procs, clients = [], []
    try:
        for h in servers:
            proc, url, _ = h.spawn()
            procs.append(proc)
            headers = {"Authorization": f"Bearer {h.token}"} if h.token else {}
            c = httpx.Client(base_url=url + "/api/v1", headers=headers)
            assert c.post("/models", json={"name": "main.default.m"}).status_code == 201
            clients.append(c)
        samples: list[list[float]] = [[], []]
        for _ in range(args.auth_requests // args.auth_block):
            for i, c in enumerate(clients):
                for _ in range(args.auth_block):
                    t0 = time.perf_counter()
                    r = c.get("/models/main.default.m")
                    samples[i].append(time.perf_counter() - t0)
                    assert r.status_code == 200
        on, off = (statistics.median(s) * 1000 for s in samples)
        p90 = [statistics.quantiles(s, n=10)[-1] * 1000 for s in samples]
        return {"auth_median_ms": on, "noauth_median_ms": off, "auth_p90_ms": p90[0], "noauth_p90_ms": p90[1],
                "overhead": on / off - 1, "requests_each": len(samples[0])}
    finally:
        for c in clients:
            c.close()
        for proc in procs:
            stop(proc)


def startup(args, tmp: Path) -> dict:
    h = Hangar(tmp / "startup")
    proc, _, first = h.spawn()  # migrates the store and bootstraps the admin
    stop(proc)
    times, rss = [], None
    for i in range(args.spawn_samples):
        proc, _, took = h.spawn()
        times.append(took)
        if i == 0:
            time.sleep(2)
            rss = rss_mb(proc.pid)
        stop(proc)
    return {"first_start_s": first, "spawn_to_ready_median_s": statistics.median(times),
            "spawn_to_ready_s": times, "idle_rss_mb": rss}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="log_metric calls in (a), runs in (b)")
    p.add_argument("--skip-mlflow", action="store_true")
    p.add_argument("--mlflow-python", default=str(DEFAULT_MLFLOW_PYTHON),
                   help="python of a venv with mlflow (bash bench/setup_mlflow_venv.sh makes bench/.venv-mlflow)")
    p.add_argument("--auth-requests", type=int, default=3000, help="GETs per server in the auth comparison")
    p.add_argument("--auth-block", type=int, default=100)
    p.add_argument("--spawn-samples", type=int, default=7)
    p.add_argument("--out", default=str(BENCH_DIR / "out" / "server.json"))
    args = p.parse_args(argv)
    if not args.skip_mlflow and not Path(args.mlflow_python).exists():
        p.error(f"no MLflow venv at {args.mlflow_python}: run bash bench/setup_mlflow_venv.sh, pass --mlflow-python, "
                "or --skip-mlflow")
    tmp = Path(tempfile.mkdtemp(prefix="hangar-bench-server-"))
    try:
        res = {"when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "n": args.n,
               "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
               "startup": startup(args, tmp), "auth": auth_cost(args, tmp), "tracking": tracking(args, tmp)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t = res["tracking"]
    print(f"(a) {args.n} log_metric: hangar {t['hangar']['a_s']:.2f} s", end="")
    if "mlflow" in t:
        print(f", mlflow {t['mlflow']['a_s']:.2f} s -> {t['mlflow']['a_s'] / t['hangar']['a_s']:.1f}x", end="")
    print(f"\n(b) {args.n} runs x (5 params + 5 metrics): hangar {t['hangar']['b_s']:.2f} s", end="")
    if "mlflow" in t:
        print(f", mlflow {t['mlflow']['b_s']:.2f} s -> {t['mlflow']['b_s'] / t['hangar']['b_s']:.1f}x", end="")
        print(f"\nmlflow server: {t['mlflow_start_s']:.1f} s to /health, {t['mlflow_idle_rss_mb']:.0f} MB idle", end="")
    a = res["auth"]
    print(f"\nauth: GET model median {a['auth_median_ms']:.3f} ms with auth vs {a['noauth_median_ms']:.3f} ms without "
          f"({a['overhead'] * 100:+.1f} %); p90 {a['auth_p90_ms']:.3f} / {a['noauth_p90_ms']:.3f} ms")
    s = res["startup"]
    print(f"start-up: spawn -> /ready median {s['spawn_to_ready_median_s'] * 1000:.0f} ms "
          f"(first start, migrating: {s['first_start_s'] * 1000:.0f} ms); idle RSS {s['idle_rss_mb']:.0f} MB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
