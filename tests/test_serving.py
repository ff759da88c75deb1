"""``hangar serve``: MLflow scoring protocol, OpenAI-compatible routes, health, metrics, errors,
against real uvicorn servers on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

import hangar.pyfunc as hp
from hangar.models import infer_signature
from hangar.serving.app import build_app

pytestmark = pytest.mark.timeout(120)


class TextLength(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["text"] == "boom").any():
            raise RuntimeError("secret internal detail")
        return (model_input["text"].str.len() * params["multiplier"]).to_numpy()


@contextlib.contextmanager
def running(app, servers: list | None = None):
    """The app under uvicorn in a background thread on a free loopback port, with the protocol
    ``hangar serve`` uses (its lane for ``POST /invocations``); the uvicorn server is appended to
    ``servers`` when given."""
    import uvicorn

    from hangar.serving.server import http_protocol

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", log_config=None, timeout_graceful_shutdown=1,
                            http=http_protocol(), access_log=False)
    server = uvicorn.Server(config)
    if servers is not None:
        servers.append(server)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def length_pkg(workdir):
    sig = infer_signature({"text": ["abc"]}, params={"multiplier": 1})
    return hp.save_model(workdir / "length", TextLength(), signature=sig, input_example={"text": ["abc"]})


@pytest.fixture(scope="module")
def length_url(length_pkg):
    with running(build_app(hp.load_model(length_pkg), model_uri=str(length_pkg))) as url:
        yield url


@pytest.fixture(scope="module")
def client(length_url):
    with httpx.Client(base_url=length_url, timeout=30) as c:
        yield c


# -- /invocations ------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": ["text"], "data": [["hello"], ["hi"]]}},
    {"dataframe_records": [{"text": "hello"}, {"text": "hi"}]},
    {"instances": [{"text": "hello"}, {"text": "hi"}]},
    {"inputs": {"text": ["hello", "hi"]}},
])
def test_invocations_json_formats(client, body):
    r = client.post("/invocations", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [5, 2]}


def test_invocations_csv_and_params(client):
    r = client.post("/invocations", content=b"text\nhello\nabc\n", headers={"Content-Type": "text/csv"})
    assert r.json() == {"predictions": [5, 3]}
    r = client.post("/invocations", json={"inputs": {"text": ["abc"]}, "params": {"multiplier": 3}})
    assert r.json() == {"predictions": [9]}


@pytest.mark.parametrize("kwargs,status,code,needle", [
    ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, 400, "MALFORMED_REQUEST", "JSON"),
    ({"json": {"inputs": {"txt": ["a"]}}}, 400, "SCHEMA_MISMATCH", "'text'"),
    ({"json": {"inputs": {"text": [1, 2]}}}, 400, "SCHEMA_MISMATCH", "string"),
    ({"json": {"inputs": {"text": ["a"]}, "params": {"nope": 1}}}, 400, "UNKNOWN_PARAM", "nope"),
    ({"json": {"inputs": {"text": ["a"]}, "params": {"multiplier": "x"}}}, 400, "SCHEMA_MISMATCH", "multiplier"),
    ({"json": {"rows": []}}, 400, "MALFORMED_REQUEST", "dataframe_split"),
    ({"content": b"text=a", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, 415,
     "UNSUPPORTED_MEDIA_TYPE", "application/json"),
    ({"json": {"inputs": {"text": ["boom"]}}}, 500, "MODEL_EXECUTION_ERROR", "server log"),
])
def test_invocations_errors(client, kwargs, status, code, needle):
    r = client.post("/invocations", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code and needle in body["message"]
    assert "secret" not in r.text and "Traceback" not in r.text
    assert client.post("/invocations", json={"inputs": {"text": ["ok"]}}).json() == {"predictions": [2]}


def test_payload_too_large(client):
    big = b'{"inputs": {"text": ["' + b"a" * (16 * 1024 * 1024) + b'"]}}'
    r = client.post("/invocations", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"

    def chunks():  # no Content-Length: the streamed size is checked
        for _ in range(17):
            yield b"a" * (1024 * 1024)

    r = client.post("/invocations", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error_code"] == "PAYLOAD_TOO_LARGE"
    assert client.get("/health").status_code == 200


def test_unknown_route_and_method(client):
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    r = client.get("/invocations")
    assert r.status_code == 405 and r.json()["error_code"] == "METHOD_NOT_ALLOWED"
    r = client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 404 and "/invocations" in r.json()["message"]


def test_health_ready_version_openapi(client, length_pkg):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    v = client.get("/version").json()
    assert v["model_uri"] == str(length_pkg) and v["model_uuid"] and v["hangar_version"]
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["dataframe_records"]["items"]["properties"]["text"] == {"type": "string"}
    assert body["properties"]["params"]["properties"]["multiplier"] == {"type": "integer", "default": 1}
    assert "text/csv" in doc["paths"]["/invocations"]["post"]["requestBody"]["content"]


def _metric(text: str, name: str, **labels) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_and_errors(client):
    before = client.get("/metrics").text
    client.post("/invocations", json={"inputs": {"text": ["abc"]}})
    client.post("/invocations", json={"inputs": {"text": ["abc"]}, "params": {"bad": 1}})
    after = client.get("/metrics").text
    ok = dict(route="/invocations", status="200")
    assert _metric(after, "hangar_serving_requests_total", **ok) == _metric(before, "hangar_serving_requests_total", **ok) + 1
    bad = dict(error_code="UNKNOWN_PARAM")
    assert _metric(after, "hangar_serving_errors_total", **bad) == _metric(before, "hangar_serving_errors_total", **bad) + 1
    assert "hangar_serving_request_duration_seconds_bucket" in after
    assert "hangar_serving_requests_in_flight" in after


# -- OpenAI-compatible routes ------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_url(workdir):
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import hangar.transformers as ht
    from hangar.testing.tiny_models import build_tiny_llama

    llama = build_tiny_llama(workdir / "tiny-llama")
    pipe = transformers.pipeline("text-generation", model=str(llama))
    pkg = ht.save_model(workdir / "chat", pipe, task="llm/v1/chat", generation_params={"max_new_tokens": 8})
    with running(build_app(hp.load_model(pkg), model_uri="models:/main.default.chat@champion")) as url:
        yield url


@pytest.fixture(scope="module")
def embed_url(workdir):
    st = pytest.importorskip("sentence_transformers")
    import hangar.sentence_transformers as hst
    from hangar.testing.tiny_models import build_tiny_sentence_transformer

    st_dir = build_tiny_sentence_transformer(workdir / "tiny-st")
    pkg = hst.save_model(workdir / "emb", st.SentenceTransformer(str(st_dir), device="cpu", local_files_only=True))
    with running(build_app(hp.load_model(pkg), model_uri=str(pkg))) as url:
        yield url


def _openai(url):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_openai_client_chat_and_stream(chat_url):
    client = _openai(chat_url)
    assert [m.id for m in client.models.list()] == ["main.default.chat@champion"]
    full = client.chat.completions.create(model="x", messages=MESSAGES, temperature=0, max_tokens=6,
                                          user="ignored-extra", seed=1)
    text = full.choices[0].message.content
    assert text and full.usage.completion_tokens == 6 and full.choices[0].finish_reason == "length"
    assert full.model == "main.default.chat@champion"
    chunks = list(client.chat.completions.create(model="x", messages=MESSAGES, temperature=0, max_tokens=6,
                                                  stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    joined = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert joined == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == full.usage.total_tokens


def test_chat_raw_sse_and_errors(chat_url):
    with httpx.Client(base_url=chat_url, timeout=60) as c:
        with c.stream("POST", "/v1/chat/completions", json={"messages": MESSAGES, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
        assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"
        r = c.post("/v1/chat/completions", json={"messages": "hi"})
        assert r.status_code == 400 and r.json()["error_code"] == "SCHEMA_MISMATCH"
        r = c.post("/v1/chat/completions", json={"messages": MESSAGES, "max_tokens": "many"})
        assert r.status_code == 400 and "max_tokens" in r.json()["message"]
        r = c.post("/v1/embeddings", json={"input": "x"})
        assert r.status_code == 404 and "/v1/chat/completions" in r.json()["message"]
        r = c.post("/invocations", json={"inputs": {"messages": MESSAGES}, "params": {"max_tokens": 2}})
        assert r.status_code == 200 and r.json()["predictions"]["usage"]["completion_tokens"] == 2
        r = c.post("/invocations", json={"inputs": {"messages": MESSAGES}, "params": {"seed": 2}})
        assert r.status_code == 400 and r.json()["error_code"] == "UNKNOWN_PARAM"
        doc = c.get("/openapi.json").json()
        assert "/v1/chat/completions" in doc["paths"] and "/v1/embeddings" not in doc["paths"]


def test_completions_route(workdir, chat_url):
    import transformers

    import hangar.transformers as ht

    pipe = transformers.pipeline("text-generation", model=str(workdir / "tiny-llama"))
    pkg = ht.save_model(workdir / "cmpl", pipe, task="llm/v1/completions", generation_params={"max_new_tokens": 5})
    with running(build_app(hp.load_model(pkg), model_uri=str(pkg))) as url:
        client = _openai(url)
        full = client.completions.create(model="x", prompt="Hello", max_tokens=5, temperature=0)
        assert full.choices[0].text and full.usage.completion_tokens == 5
        joined = "".join(c.choices[0].text for c in client.completions.create(
            model="x", prompt="Hello", max_tokens=5, temperature=0, stream=True) if c.choices)
        assert joined == full.choices[0].text


def test_openai_client_embeddings(embed_url):
    client = _openai(embed_url)
    res = client.embeddings.create(model="x", input=["The capital of France is Paris.", "bad"])
    assert [d.index for d in res.data] == [0, 1] and len(res.data[0].embedding) > 4
    floats = client.embeddings.create(model="x", input="bad", encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(res.data[1].embedding, rel=1e-5)
    r = httpx.post(f"{embed_url}/v1/chat/completions", json={"messages": MESSAGES})
    assert r.status_code == 404


# -- the command -------------------------------------------------------------------------------

def wait_ready(url: str, proc, output, seconds: float = 30) -> None:
    """Until ``hangar serve`` at ``url`` answers /ready (the demo's wait); else the test fails with ``output()``,
    its log, and the process is killed."""
    from hangar.demo_serve import wait_ready as until_ready
    from hangar.errors import HangarError

    try:
        until_ready(proc, url, seconds)
    except HangarError as exc:
        if proc.poll() is None:
            proc.kill()
        pytest.fail(f"{exc.message}\n{output()}")


@pytest.mark.parametrize("workers", [1, 2])
def test_hangar_serve_subprocess(length_pkg, workers):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(length_pkg), "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1",  # TextLength is pickled by reference
                                 "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, lambda: proc.stderr.read().decode())
        r = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"text": "four"}]})
        assert r.json() == {"predictions": [4]}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


PID_MODEL = '''
import os

import hangar.pyfunc as hp
from hangar.models import set_model


class Pid(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        return [os.getpid() for _ in model_input["text"]]


set_model(Pid())
'''


def _requests_total(text: str, route: str = "/invocations", status: str = "200") -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("hangar_serving_requests_total{") and f'route="{route}"' in line and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_count_every_worker(tmp_path, workers):
    """/metrics answers for the whole server: N requests spread over both workers (the model
    answers its pid, so the test knows both served) sum to N on every scrape, whichever worker
    answers it. One worker keeps in-memory metrics (no files); the files' folder is private to the
    server and removed when it exits."""
    (tmp_path / "pid.py").write_text(PID_MODEL)
    pkg = hp.save_model(tmp_path / "pid", python_model=str(tmp_path / "pid.py"), input_example={"text": ["a"]})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "hangar.cli.main", "serve", str(pkg), "--port", str(port),
                             "--workers", str(workers), "--log-level", "warning"], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(tmp)})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log.read_text, seconds=60)
        pids, sent = set(), 0
        while sent < 40 or (len(pids) < workers and sent < 400):  # a new connection each: the kernel picks a worker
            r = httpx.post(f"{url}/invocations", json={"inputs": {"text": ["x"]}}, timeout=10)
            assert r.status_code == 200, r.text
            pids.add(r.json()["predictions"][0])
            sent += 1
        assert len(pids) == workers, "every worker answered some requests"
        folders = list(tmp.glob("hangar-metrics-*"))
        assert len(folders) == (1 if workers > 1 else 0), folders
        for _ in range(8):  # fresh connections: the scrapes land on either worker
            text = httpx.get(f"{url}/metrics", timeout=5).text
            assert _requests_total(text) == sent, text
            assert "hangar_serving_requests_in_flight" in text and "hangar_serving_batch_size_bucket" in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list(tmp.glob("hangar-metrics-*")), "the metrics folder is removed at exit"
