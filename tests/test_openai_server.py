"""Tests for hangar.testing.openai_server, driven by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from hangar.testing.openai_server import (  # noqa: E402
    REDACTED,
    OpenAIServer,
    count_tokens,
    embedding_for,
    run_openai_server,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def srv():
    with run_openai_server(api_key="test-key", embedding_dim=8) as s:
        yield s


@pytest.fixture()
def client(srv):
    srv.requests.clear()
    with openai.OpenAI(base_url=srv.base_url, api_key=srv.api_key, max_retries=0, timeout=5) as c:
        yield c


def test_base_url_and_port(srv):
    assert srv.base_url == f"http://127.0.0.1:{srv.port}/v1"
    assert srv.port > 0
    assert srv.api_key == "test-key"


def test_chat_plain(client, srv):
    r = client.chat.completions.create(
        model="my-model",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello there world"},
        ],
    )
    assert r.model == "my-model"
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert isinstance(r.created, int)
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there world"
    assert choice.finish_reason == "stop"
    assert r.usage.prompt_tokens == 2 + 2 + 1 + 3
    assert r.usage.completion_tokens == 4
    assert r.usage.total_tokens == 12

    (rec,) = srv.requests
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.body["model"] == "my-model"
    assert rec.body["messages"][-1]["content"] == "hello there world"
    assert rec.headers["authorization"] == REDACTED
    assert "test-key" not in repr(rec)
    assert rec.authorized and rec.status == 200


def test_chat_is_deterministic_and_content_parts(client):
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a b"}, {"type": "text", "text": "c"}]}]
    a = client.chat.completions.create(model="m", messages=msgs)
    b = client.chat.completions.create(model="m", messages=msgs)
    assert a.choices[0].message.content == b.choices[0].message.content == "echo: a b c"
    assert a.usage == b.usage


def test_chat_max_tokens_truncates(client):
    r = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three four five"}], max_tokens=3
    )
    assert r.choices[0].message.content == "echo: one two"
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three"}], max_completion_tokens=2
    )
    assert r.choices[0].message.content == "echo: one"


def test_chat_streaming(client, srv):
    stream = client.chat.completions.create(
        model="stream-model",
        messages=[{"role": "user", "content": "stream  me please"}],
        stream=True,
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "stream-model" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream  me please"
    assert len(chunks) > 3  # word-by-word deltas
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert srv.requests[-1].body["stream"] is True


def test_chat_streaming_include_usage(client):
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "count these words"}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=2,
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == 3
    assert last.usage.completion_tokens == 2
    assert last.usage.total_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: count"


def test_raw_sse_ends_with_done(srv):
    r = httpx.post(
        f"{srv.base_url}/chat/completions",
        headers={"Authorization": "Bearer test-key"},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"


def test_completions(client):
    r = client.completions.create(model="cmpl-model", prompt="say something nice")
    assert r.object == "text_completion"
    assert r.model == "cmpl-model"
    assert r.choices[0].text == "echo: say something nice"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == 4

    r = client.completions.create(model="m", prompt=["a", "b c"], max_tokens=2)
    assert [c.text for c in r.choices] == ["echo: a", "echo: b"]
    assert [c.finish_reason for c in r.choices] == ["stop", "length"]


def test_completions_streaming(client):
    chunks = list(
        client.completions.create(
            model="m", prompt="one two", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: one two"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens == 2 + 3


def test_embeddings(client):
    # The client asks for base64 by default and decodes it.
    r = client.embeddings.create(model="emb", input="hello world")
    assert r.model == "emb"
    assert len(r.data) == 1
    vec = r.data[0].embedding
    assert len(vec) == 8
    assert vec == embedding_for("hello world", 8)
    assert abs(sum(v * v for v in vec) - 1.0) < 1e-5
    assert r.usage.prompt_tokens == 2 and r.usage.total_tokens == 2

    r2 = client.embeddings.create(model="emb", input=["hello world", "other"], encoding_format="float")
    assert [d.index for d in r2.data] == [0, 1]
    assert r2.data[0].embedding == vec
    assert r2.data[1].embedding != vec

    r3 = client.embeddings.create(model="emb", input="hello world", dimensions=5)
    assert len(r3.data[0].embedding) == 5


def test_models_list(client):
    models = client.models.list()
    ids = [m.id for m in models]
    assert ids == ["hangar-test-chat", "hangar-test-embed"]
    assert client.models.retrieve("hangar-test-chat").id == "hangar-test-chat"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_wrong_key_is_401(srv):
    srv.requests.clear()
    with openai.OpenAI(base_url=srv.base_url, api_key="wrong", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as ei:
            c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert ei.value.status_code == 401
    assert ei.value.code == "invalid_api_key"
    assert srv.requests[-1].status == 401 and not srv.requests[-1].authorized

    r = httpx.get(f"{srv.base_url}/models")  # no Authorization header at all
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "code"}


def test_bad_requests(srv):
    h = {"Authorization": "Bearer test-key"}
    r = httpx.post(f"{srv.base_url}/chat/completions", headers=h, json={"model": "m"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages"
    r = httpx.post(f"{srv.base_url}/chat/completions", headers=h, content=b"{not json")
    assert r.status_code == 400
    r = httpx.get(f"{srv.base_url}/nowhere", headers=h)
    assert r.status_code == 404 and "error" in r.json()


def test_429_then_success_is_retried():
    with run_openai_server(fail_first=2, fail_status=429) as s:
        with openai.OpenAI(base_url=s.base_url, api_key=s.api_key, max_retries=2) as c:
            t0 = time.monotonic()
            r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "retry"}])
            elapsed = time.monotonic() - t0
        assert r.choices[0].message.content == "echo: retry"
        assert [q.status for q in s.requests] == [429, 429, 200]
        assert elapsed < 1.0  # retry-after-ms keeps the client's backoff tiny


def test_429_headers_and_no_retry_exhaustion(srv):
    srv.requests.clear()
    srv.fail_next(1, 429)
    r = httpx.get(f"{srv.base_url}/models", headers={"Authorization": "Bearer test-key"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "0"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"

    srv.fail_next(1, 429)
    with openai.OpenAI(base_url=srv.base_url, api_key=srv.api_key, max_retries=0) as c:
        with pytest.raises(openai.RateLimitError):
            c.models.list()


def test_500_then_success_is_retried():
    with run_openai_server(fail_statuses=[500, 429]) as s:
        with openai.OpenAI(base_url=s.base_url, api_key=s.api_key, max_retries=3) as c:
            r = c.embeddings.create(model="e", input="x")
        assert len(r.data[0].embedding) == 16
        assert [q.status for q in s.requests] == [500, 429, 200]
    with run_openai_server(fail_first=1, fail_status=500) as s:
        with openai.OpenAI(base_url=s.base_url, api_key=s.api_key, max_retries=0) as c:
            with pytest.raises(openai.InternalServerError):
                c.models.list()


def test_no_auth_mode_and_clean_shutdown():
    t0 = time.monotonic()
    with run_openai_server(api_key=None) as s:
        r = httpx.get(f"{s.base_url}/models")
        assert r.status_code == 200
        port = s.port
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)


def test_shutdown_with_open_stream_is_bounded():
    t0 = time.monotonic()
    with run_openai_server(shutdown_timeout=2.0) as s:
        c = openai.OpenAI(base_url=s.base_url, api_key=s.api_key, max_retries=0)
        c.models.list()  # leaves a keep-alive connection open
    assert time.monotonic() - t0 < 3.5
    c.close()


def test_helpers():
    assert count_tokens("  a b\tc\n") == 3
    assert embedding_for("x", 4) == embedding_for("x", 4)
    assert embedding_for("x", 4) != embedding_for("y", 4)
    assert len(embedding_for("x", 70)) == 70
    s = OpenAIServer("k", fail_first=2)
    assert s.pending_faults == 2 and s.requests == []


def test_import_is_cheap():
    code = (
        "import sys; import hangar.testing.openai_server; "
        "bad = [m for m in ('starlette', 'uvicorn', 'openai', 'httpx') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
