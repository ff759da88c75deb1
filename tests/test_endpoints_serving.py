"""``hangar endpoints serve``: traffic split, alias following under load with zero failures, rate
limits, the inference table through SIGTERM, secrets, and a client that leaves a stream."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from test_serving import wait_ready

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

LEN_MODEL = '''
import os
import time

import hangar.pyfunc as hp
from hangar.models import set_model


class Length(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep(float(os.environ.get("HANGAR_TEST_PREDICT_DELAY", "0")))
        return [len(t) * {scale} for t in model_input["text"]]


set_model(Length())
'''

STREAM_MODEL = '''
import os
import time

import hangar.pyfunc as hp
from hangar.models import set_model
from hangar.models.llm_payloads import chat_response


class Talker(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return [chat_response("hello world") for _ in model_input]

    def predict_stream(self, context, model_input, params=None):
        marker = os.environ["HANGAR_TEST_STREAM_MARKER"]
        try:
            for i in range(400):
                with open(marker, "a") as f:
                    f.write("t")
                yield {"delta": f"word{i} "}
                time.sleep(0.02)
        finally:
            with open(marker, "a") as f:
                f.write("|closed")


set_model(Talker())
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, proc, base, log):
        self.proc, self.base, self.log = proc, base, log

    def post(self, body, headers=None, timeout=10):
        return httpx.post(f"{self.base}/invocations", json=body, headers=headers or {}, timeout=timeout)


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    return {**os.environ, "HANGAR_HOME": str(home)}


def _hangar(env, *args, timeout=120):
    done = subprocess.run([sys.executable, "-m", "hangar.cli.main", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


def _register(env, tmp_path, name: str, code: str, versions=(1,), task=None) -> None:
    """Register one version per entry of ``versions`` (each a scale factor) via the Python API in
    a child process using the same HANGAR_HOME as the server."""
    script = tmp_path / f"register_{name.replace('.', '_')}.py"
    script.write_text(f'''
import hangar, hangar.pyfunc as hp
from hangar.models import infer_signature
from pathlib import Path
code = {code!r}
for scale in {list(versions)!r}:
    d = Path({str(tmp_path)!r}) / f"{name}-{{scale}}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.py").write_text(code.replace("{{scale}}", str(scale)))
    kw = dict(task={task!r}, input_example={{"messages": [{{"role": "user", "content": "hi"}}]}}) if {task!r} else \\
        dict(input_example={{"text": ["hi"]}})
    pkg = hp.save_model(d / "pkg", python_model=str(d / "model.py"), **kw)
    hangar.register_model(str(pkg), {name!r})
''')
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _serve(env, tmp_path, name: str, config: dict, extra_env=None, auth: bool = False) -> Served:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    _hangar(env, "endpoints", "create", name, "--config", path)
    port = _free_port()
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "endpoints", "serve", name, "--port", str(port),
                             "--log-level", "info", *([] if auth else ["--no-auth"])],
                            env={**env, **(extra_env or {})}, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return _wait_ready(Served(proc, f"http://127.0.0.1:{port}", log))


def _wait_ready(served: Served, timeout: float = 90) -> Served:
    wait_ready(served.base, served.proc, served.log.read_text, timeout)
    return served


def _metric(served: Served, name: str) -> float:
    """The sum of a metric's samples on the endpoint's /metrics."""
    text = httpx.get(f"{served.base}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {")


def _stop(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        served.proc.wait(timeout=60)


def test_traffic_split_by_weight_and_request_id(env, tmp_path):
    _register(env, tmp_path, "main.default.split", LEN_MODEL, versions=(1, 10))
    _hangar(env, "aliases", "set", "main.default.split", "champion", "1")
    _hangar(env, "aliases", "set", "main.default.split", "challenger", "2")
    served = _serve(env, tmp_path, "split", {"served_entities": [
        {"model": "models:/main.default.split@champion", "weight": 75},
        {"model": "models:/main.default.split@challenger", "weight": 25}]})
    try:
        by_version: dict[str, int] = {}
        first: dict[str, str] = {}
        for i in range(200):
            r = served.post({"inputs": {"text": ["abc"]}}, headers={"x-request-id": f"id-{i}"})
            assert r.status_code == 200, r.text
            version = r.headers["x-hangar-served-by"]
            assert r.json()["predictions"] == [3 if version.endswith("/1") else 30]
            by_version[version] = by_version.get(version, 0) + 1
            first[f"id-{i}"] = version
            assert r.headers["x-request-id"] == f"id-{i}"
        assert set(by_version) == {"main.default.split/1", "main.default.split/2"}
        assert 0.6 < by_version["main.default.split/1"] / 200 < 0.9
        for i in range(30):  # the same request id reaches the same version every time
            r = served.post({"inputs": {"text": ["abc"]}}, headers={"x-request-id": f"id-{i}"})
            assert r.headers["x-hangar-served-by"] == first[f"id-{i}"]
        version_doc = httpx.get(f"{served.base}/version").json()
        assert [e["version"] for e in version_doc["served_entities"]] == ["main.default.split/1", "main.default.split/2"]
        lineage = _hangar(env, "lineage", "endpoint", "split", "--json").stdout
        assert "main.default.split/1" in lineage and "main.default.split/2" in lineage
    finally:
        _stop(served)


def test_alias_move_under_load_drops_no_request(env, tmp_path):
    _register(env, tmp_path, "main.default.live", LEN_MODEL, versions=(1, 100))
    _hangar(env, "aliases", "set", "main.default.live", "champion", "1")
    served = _serve(env, tmp_path, "live", {"served_entities": [{"model": "models:/main.default.live@champion"}],
                                            "alias_poll_seconds": 0.2})
    results: list[tuple[int, str, object]] = []
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{served.base}/invocations", json={"inputs": {"text": ["abcd"]}})
                    results.append((r.status_code, r.headers.get("x-hangar-served-by", ""), r.json()))
                except httpx.HTTPError as exc:
                    results.append((0, "", repr(exc)))

    threads = [threading.Thread(target=load) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        _hangar(env, "aliases", "set", "main.default.live", "champion", "2")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(v.endswith("/2") for _, v, _ in results[-50:]):
            time.sleep(0.1)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join()
        _stop(served)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    versions = [v for _, v, _ in results]
    assert "main.default.live/1" in versions and "main.default.live/2" in versions, "the switch happened under load"
    for _, version, body in results:
        assert body["predictions"] == [4 if version.endswith("/1") else 400], "each answer matches its version"
    switch = versions.index("main.default.live/2")
    assert len(results) > 200 and versions[switch:].count("main.default.live/1") <= 8, "no flapping back"


def test_rate_limit_inference_table_and_sigterm_drain(env, tmp_path):
    import pyarrow.parquet as pq

    _register(env, tmp_path, "main.default.tbl", LEN_MODEL, versions=(1,))
    table_dir = tmp_path / "inference"
    served = _serve(env, tmp_path, "tbl", {
        "served_entities": [{"model": "models:/main.default.tbl/1"}],
        "limits": {"rate_per_minute": 30},
        "inference_table": {"parquet": str(table_dir), "flush_seconds": 60, "flush_rows": 100000}},
        extra_env={"HANGAR_TEST_PREDICT_DELAY": "1.0"})
    statuses, answers = [], {}
    try:
        def call(i):
            r = served.post({"inputs": {"text": ["x" * i]}}, headers={"x-request-id": f"r{i}"})
            statuses.append(r.status_code)
            answers[f"r{i}"] = r
        threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # SIGTERM only once all 30 admitted requests are in the server
            if _metric(served, "hangar_serving_requests_in_flight") + statuses.count(200) >= 30 \
                    and statuses.count(429) == 10:
                break
            time.sleep(0.02)
        served.proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert served.proc.wait(timeout=60) == 0
    finally:
        _stop(served)
    assert statuses.count(200) == 30 and statuses.count(429) == 10, statuses
    limited = next(r for r in answers.values() if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1 and limited.json()["error_code"] == "RATE_LIMITED"
    rows = pq.read_table(table_dir).to_pylist()
    assert len(rows) == 40, "every request, the refused ones too, was written when the server drained"
    by_id = {r["request_id"]: r for r in rows}
    ok = [r for r in rows if r["status_code"] == 200]
    assert all(r["model_version"] == "main.default.tbl/1" and r["latency_ms"] > 0 for r in ok)
    sample = by_id[next(k for k, v in answers.items() if v.status_code == 200)]
    assert json.loads(sample["response"]) == answers[sample["request_id"]].json()
    assert json.loads(sample["request"])["inputs"]["text"][0] == "x" * int(sample["request_id"][1:])
    assert sum(r["error_code"] == "RATE_LIMITED" for r in rows) == 10


def test_secrets_come_from_files_and_never_reach_store_logs_or_table(env, tmp_path):
    pytest.importorskip("openai")
    import pyarrow.parquet as pq

    from hangar.testing.openai_server import run_openai_server

    secret = "sk-test-" + "9" * 24
    (tmp_path / "key").write_text(secret + "\n")
    with run_openai_server(api_key=secret) as upstream:
        script = tmp_path / "reg_openai.py"
        script.write_text(f'''
import hangar, hangar.openai
pkg = hangar.openai.save_model({str(tmp_path / "chat")!r}, "gpt-test", "llm/v1/chat", base_url={upstream.base_url!r},
                               api_key_env="UPSTREAM_KEY")
hangar.register_model(str(pkg), "main.default.proxy")
''')
        done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        served = _serve(env, tmp_path, "proxy", {
            "served_entities": [{"model": "models:/main.default.proxy/1"}],
            "secrets": {"UPSTREAM_KEY": {"file": str(tmp_path / "key")}},
            "inference_table": {"parquet": str(tmp_path / "inf"), "flush_seconds": 0.1}})
        try:
            import openai

            client = openai.OpenAI(base_url=f"{served.base}/v1", api_key="caller-key")
            answer = client.chat.completions.create(model="proxy", messages=[{"role": "user", "content": "ping"}])
            assert answer.choices[0].message.content == "echo: ping"
            assert answer.usage.completion_tokens == 2
        finally:
            _stop(served)
    stored = _hangar(env, "endpoints", "get", "proxy", "--json").stdout
    assert secret not in stored and str(tmp_path / "key") in stored
    assert secret not in served.log.read_text()
    rows = pq.read_table(tmp_path / "inf").to_pylist()
    assert len(rows) == 1 and rows[0]["completion_tokens"] == 2 and rows[0]["prompt_tokens"] == 1
    assert secret not in json.dumps(rows)
    home = Path(env["HANGAR_HOME"])
    for path in home.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert secret.encode() not in path.read_bytes(), path


def test_client_leaving_a_stream_stops_generation_and_is_recorded(env, tmp_path):
    import pyarrow.parquet as pq

    _register(env, tmp_path, "main.default.talker", STREAM_MODEL, versions=(1,), task="llm/v1/chat")
    marker = tmp_path / "stream-marker"
    served = _serve(env, tmp_path, "talker", {
        "served_entities": [{"model": "models:/main.default.talker/1"}],
        "inference_table": {"parquet": str(tmp_path / "inf"), "flush_seconds": 0.1}},
        extra_env={"HANGAR_TEST_STREAM_MARKER": str(marker)})
    try:
        with httpx.Client(timeout=10) as client:
            with client.stream("POST", f"{served.base}/v1/chat/completions",
                               json={"model": "talker", "stream": True,
                                     "messages": [{"role": "user", "content": "talk"}]}) as r:
                assert r.status_code == 200
                got = 0
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        got += 1
                    if got >= 3:
                        break  # leave mid-stream
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "|closed" not in marker.read_text():
            time.sleep(0.05)
        assert "|closed" in marker.read_text(), "the model's generator was closed"
        assert marker.read_text().count("t") < 200, "generation stopped early"
        r = served.post({"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, "the worker is healthy afterwards"
    finally:
        _stop(served)
    rows = pq.read_table(tmp_path / "inf").to_pylist()
    stream_row = next(r for r in rows if r["route"] == "/v1/chat/completions")
    assert stream_row["cancelled"] is True


def test_hangar_serve_follows_an_alias_like_an_endpoint(env, tmp_path):
    _register(env, tmp_path, "main.default.solo", LEN_MODEL, versions=(1, 7))
    _hangar(env, "aliases", "set", "main.default.solo", "champion", "1")
    port = _free_port()
    log = tmp_path / "solo.log"
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", "models:/main.default.solo@champion",
                             "--port", str(port)], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(served)
        r = served.post({"inputs": {"text": ["ab"]}})
        assert (r.json()["predictions"], r.headers["x-hangar-served-by"]) == ([2], "main.default.solo/1")
        _hangar(env, "aliases", "set", "main.default.solo", "champion", "2")
        deadline = time.monotonic() + 20  # the default poll is 5 s
        while time.monotonic() < deadline:
            r = served.post({"inputs": {"text": ["ab"]}})
            if r.headers["x-hangar-served-by"] == "main.default.solo/2":
                break
            time.sleep(0.2)
        assert (r.json()["predictions"], r.headers["x-hangar-served-by"]) == ([14], "main.default.solo/2")
    finally:
        _stop(served)
    assert "now serving version 2" in log.read_text()


def test_hangar_serve_with_an_inference_table(env, tmp_path, pg_uri):
    _register(env, tmp_path, "main.default.rec", LEN_MODEL, versions=(1,))
    port = _free_port()
    log = tmp_path / "rec.log"
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", "models:/main.default.rec/1",
                             "--port", str(port), "--inference-table", f"{pg_uri}#served"], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    served = Served(proc, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(served)
        for i in range(5):
            assert served.post({"inputs": {"text": ["a" * i]}}).status_code == 200
        assert served.post({"inputs": {"wrong": [1]}}).status_code == 400
    finally:
        _stop(served)
    import sqlalchemy as sa

    engine = sa.create_engine(pg_uri)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT status_code, error_code, model_version FROM served ORDER BY timestamp_ms")).all()
    engine.dispose()
    assert [r.status_code for r in rows] == [200] * 5 + [400]
    assert rows[-1].error_code == "SCHEMA_MISMATCH" and rows[0].model_version == "main.default.rec/1"


def test_endpoint_auth_tokens_query_grants_and_audit(env, tmp_path):
    from hangar.catalog import audit
    from hangar.config import Settings
    from hangar.governance import grants, principals, tokens
    from hangar.tracking.client import Client

    _register(env, tmp_path, "main.default.guarded", LEN_MODEL, versions=(1,))
    store = Client(Settings(home=Path(env["HANGAR_HOME"])).store_uri).store
    engine = store.engine
    for name in ("alice", "bob"):
        principals.create(engine, name, actor="admin")
    alice = tokens.create(engine, "alice", actor="admin")
    bob = tokens.create(engine, "bob", actor="admin")
    grants.grant(engine, "endpoint", "guarded", "alice", "QUERY", actor="admin")
    served = _serve(env, tmp_path, "guarded", {"served_entities": [{"model": "models:/main.default.guarded/1"}],
                                               "limits": {"rate_per_minute": 1000}}, auth=True)
    body = {"inputs": {"text": ["abc"]}}
    try:
        anonymous = served.post(body)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
        assert served.post(body, headers={"authorization": "Bearer hgr_not-a-real-token"}).status_code == 401
        denied = served.post(body, headers={"authorization": f"Bearer {bob.token}", "x-request-id": "req-bob"})
        assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"
        ok = served.post(body, headers={"authorization": f"Bearer {alice.token}"})
        assert ok.status_code == 200 and ok.json()["predictions"] == [3]
        assert httpx.get(f"{served.base}/health").status_code == 200, "probes need no token"
        assert httpx.get(f"{served.base}/metrics").status_code == 401
        tokens.revoke(engine, alice.info.id, actor="admin")
        deadline = time.monotonic() + 15  # decisions are cached for 5 s
        while time.monotonic() < deadline:
            if served.post(body, headers={"authorization": f"Bearer {alice.token}"}).status_code == 401:
                break
            time.sleep(0.25)
        assert served.post(body, headers={"authorization": f"Bearer {alice.token}"}).status_code == 401
    finally:
        _stop(served)
    with engine.connect() as conn:
        denials = [r for r in audit.list_records(conn, securable="guarded") if r.outcome == "DENIED"]
    assert denials and denials[0].actor == "bob" and denials[0].request_id == "req-bob"
    assert alice.token not in served.log.read_text() and bob.token not in served.log.read_text()
    store.close()


def test_serving_beyond_loopback_needs_auth(env, tmp_path):
    refused = subprocess.run([sys.executable, "-m", "hangar.cli.main", "serve", str(tmp_path), "--host", "0.0.0.0"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--insecure" in refused.stderr and "Traceback" not in refused.stderr
    refused = subprocess.run([sys.executable, "-m", "hangar.cli.main", "endpoints", "serve", "x", "--host", "0.0.0.0",
                              "--no-auth"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--insecure" in refused.stderr
    refused = subprocess.run([sys.executable, "-m", "hangar.cli.main", "serve", str(tmp_path), "--auth"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--auth needs a registered model" in refused.stderr


def _update(env, tmp_path, name: str, config: dict, tag: str) -> None:
    path = tmp_path / f"{name}-{tag}.yaml"
    path.write_text(yaml.safe_dump(config))
    _hangar(env, "endpoints", "update", name, "--config", path)


def _wait_for(predicate, timeout: float = 30, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_config_update_under_load_switches_live_with_no_failed_request(env, tmp_path):
    """Weights, a new entity (another version), new batching settings and a removed entity, each
    applied by `hangar endpoints update` to the running server while 8 threads send requests."""
    _register(env, tmp_path, "main.default.upd", LEN_MODEL, versions=(1, 100))
    one, two = "models:/main.default.upd/1", "models:/main.default.upd/2"
    served = _serve(env, tmp_path, "upd", {"served_entities": [{"name": "a", "model": one}], "alias_poll_seconds": 0.2})
    results: list[tuple[int, str, object, float]] = []
    stop = threading.Event()

    def load():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post(f"{served.base}/invocations", json={"inputs": {"text": ["abcd"]}})
                    results.append((r.status_code, r.headers.get("x-hangar-served-by", ""), r.json(), time.monotonic()))
                except httpx.HTTPError as exc:
                    results.append((0, "", repr(exc), time.monotonic()))

    def revision() -> int:
        return httpx.get(f"{served.base}/version", timeout=5).json()["revision"]

    threads = [threading.Thread(target=load) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        _update(env, tmp_path, "upd", {"served_entities": [
            {"name": "a", "model": one, "weight": 50, "max_batch_size": 8},
            {"name": "b", "model": two, "weight": 50}], "alias_poll_seconds": 0.2}, "split")
        _wait_for(lambda: revision() == 2, what="revision 2 to be applied")
        split_at = time.monotonic()
        time.sleep(1.5)
        _update(env, tmp_path, "upd", {"served_entities": [{"name": "b", "model": two}], "alias_poll_seconds": 0.2},
                "only-b")
        _wait_for(lambda: revision() == 3, what="revision 3 to be applied")
        only_b_at = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
        _stop(served)
    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:5]
    for _, version, body, _ in results:
        assert body["predictions"] == [4 if version.endswith("/1") else 400], "each answer matches its version"
    during_split = [v for _, v, _, at in results if split_at < at < only_b_at - 0.5]
    share = during_split.count("main.default.upd/2") / len(during_split)
    assert len(during_split) > 50 and 0.3 < share < 0.7, (len(during_split), share)
    assert {v for _, v, _, at in results if at > only_b_at + 0.1} == {"main.default.upd/2"}, "the removed entity is gone"
    log = served.log.read_text()
    assert "config revision 2 applied (loading b; rebuilding (new settings) a)" in log
    assert "config revision 3 applied (removing a; re-weighting b)" in log
    lineage = _hangar(env, "lineage", "endpoint", "upd", "--json").stdout
    assert "main.default.upd/2" in lineage, "the version loaded by the update is in lineage"


def test_bad_update_keeps_serving_and_a_deleted_endpoint_answers_404(env, tmp_path):
    _register(env, tmp_path, "main.default.keep", LEN_MODEL, versions=(1, 10))
    served = _serve(env, tmp_path, "keep", {"served_entities": [{"model": "models:/main.default.keep/1"}],
                                            "alias_poll_seconds": 0.2})
    body = {"inputs": {"text": ["ab"]}}
    try:
        _update(env, tmp_path, "keep", {"served_entities": [{"model": "models:/main.default.keep/99"}],
                                        "alias_poll_seconds": 0.2}, "bad")
        _wait_for(lambda: "revision 2 of its config cannot be applied" in served.log.read_text(), what="the error")
        for _ in range(20):
            r = served.post(body)
            assert (r.status_code, r.json(), r.headers["x-hangar-served-by"]) == (200, {"predictions": [2]},
                                                                                  "main.default.keep/1")
        assert httpx.get(f"{served.base}/version").json()["revision"] == 1
        assert "still serving revision 1" in served.log.read_text()
        assert _metric(served, 'hangar_endpoint_config_reloads_total{outcome="failed"}') == 1
        _update(env, tmp_path, "keep", {"served_entities": [{"model": "models:/main.default.keep/2"}],
                                        "alias_poll_seconds": 0.2}, "good")
        _wait_for(lambda: served.post(body).json() == {"predictions": [20]}, what="the good update")
        _hangar(env, "endpoints", "delete", "keep")
        _wait_for(lambda: served.post(body).status_code == 404, what="the deletion to be noticed")
        gone = served.post(body)
        assert gone.json()["error_code"] == "ENDPOINT_NOT_FOUND" and "was deleted" in gone.json()["message"]
        assert httpx.get(f"{served.base}/ready").status_code == 503
        assert httpx.get(f"{served.base}/health").status_code == 200
        bad_json = httpx.post(f"{served.base}/invocations", content=b"{not json", timeout=5)
        assert bad_json.status_code == 404 and bad_json.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        path = tmp_path / "again.yaml"
        path.write_text(yaml.safe_dump({"served_entities": [{"model": "models:/main.default.keep/1"}]}))
        _hangar(env, "endpoints", "create", "keep", "--config", path)
        _wait_for(lambda: served.post(body).status_code == 200, what="the endpoint created again to be served")
        assert httpx.get(f"{served.base}/ready").status_code == 200
    finally:
        _stop(served)
    assert served.proc.returncode == 0
    log = served.log.read_text()
    assert "Endpoint keep was deleted" in log and "Traceback" not in log


PID_MODEL = '''
import os

import hangar.pyfunc as hp
from hangar.models import set_model


class Pid(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return [os.getpid() + 0 * {scale} for _ in model_input["text"]]


set_model(Pid())
'''


def test_two_workers_each_apply_an_update_and_metrics_add_up(env, tmp_path):
    """`--workers 2`: each worker follows the stored config itself, so after an update both answer
    from the new version; /metrics counts every worker's requests on every scrape."""
    _register(env, tmp_path, "main.default.pids", PID_MODEL, versions=(1, 2))
    config = {"served_entities": [{"name": "main", "model": "models:/main.default.pids/1"}], "alias_poll_seconds": 0.2}
    path = tmp_path / "pids.yaml"
    path.write_text(yaml.safe_dump(config))
    _hangar(env, "endpoints", "create", "pids", "--config", path)
    port = _free_port()
    log = tmp_path / "pids.log"
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "endpoints", "serve", "pids", "--port", str(port),
                             "--workers", "2", "--no-auth"], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    served = _wait_ready(Served(proc, f"http://127.0.0.1:{port}", log))

    sent: list[str] = []  # the version that answered each request sent

    def post() -> httpx.Response:
        r = served.post({"inputs": {"text": ["x"]}})  # a new connection each: the kernel picks a worker
        assert r.status_code == 200, r.text
        sent.append(r.headers["x-hangar-served-by"])
        return r

    def workers_serving(version: str) -> set:
        pids = set()
        for _ in range(400):
            r = post()
            if r.headers["x-hangar-served-by"] == version:
                pids.add(r.json()["predictions"][0])
            if len(pids) == 2 and len(sent) >= 20:
                break
        return pids

    try:
        assert len(workers_serving("main.default.pids/1")) == 2
        _update(env, tmp_path, "pids", {**config, "served_entities": [{"name": "main",
                                                                          "model": "models:/main.default.pids/2"}]}, "v2")
        _wait_for(lambda: post().headers["x-hangar-served-by"] == "main.default.pids/2", what="the update")
        time.sleep(1.0)  # both workers poll every 0.2 s
        assert len(workers_serving("main.default.pids/2")) == 2, "both workers switched"
        for _ in range(6):
            text = httpx.get(f"{served.base}/metrics", timeout=5).text
            invocations = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                              if line.startswith("hangar_serving_requests_total{") and "/invocations" in line)
            assert invocations == len(sent), (invocations, len(sent))
            assert 'hangar_endpoint_served_version{served_entity="main",version="main.default.pids/2"} 1.0' in text
            assert 'hangar_endpoint_config_reloads_total{outcome="applied"} 2.0' in text, "one per worker"
    finally:
        _stop(served)
    assert served.proc.returncode == 0
