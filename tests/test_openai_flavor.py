"""The openai flavor against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import socket

import pytest
import yaml

pytest.importorskip("openai")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import hangar.openai  # noqa: E402
import hangar.pyfunc  # noqa: E402
from hangar.errors import (  # noqa: E402
    InvalidArgumentError,
    MissingCredentialError,
    SchemaMismatchError,
    StreamingNotSupportedError,
    UnknownParamError,
    UpstreamAPIError,
)
from hangar.testing.openai_server import embedding_for, run_openai_server  # noqa: E402

pytestmark = pytest.mark.timeout(60)

KEY = "sk-hangar-test-0123456789abcdef"
ENV = "HANGAR_TEST_OPENAI_KEY"
HI = {"messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def srv():
    with run_openai_server(api_key=KEY, embedding_dim=8) as s:
        yield s


@pytest.fixture(autouse=True)
def _env(srv, monkeypatch):
    srv.requests.clear()
    monkeypatch.setenv(ENV, KEY)


@pytest.fixture()
def save(srv, tmp_path):
    """Save a package pointed at the test server; returns its path."""
    counter = iter(range(1000))

    def _save(model="hangar-test-chat", task="llm/v1/chat", **kw):
        kw.setdefault("base_url", srv.base_url)
        kw.setdefault("api_key_env", ENV)
        return hangar.openai.save_model(tmp_path / f"m{next(counter)}", model, task, **kw)

    return _save


def bodies(srv):
    return [r.body for r in srv.requests]


# -- saving -------------------------------------------------------------------------------

def test_manifest_records_settings_but_never_the_key(save, srv, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path = save(default_params={"temperature": 0.2}, system_prompt="Be brief.",
                headers_env={"X-Org": ENV}, input_example=HI)
    conf = yaml.safe_load((path / "MLmodel").read_text())
    flavor = conf["flavors"]["openai"]
    assert flavor["model"] == "hangar-test-chat"
    assert flavor["task"] == "llm/v1/chat"
    assert flavor["base_url"] == srv.base_url
    assert flavor["api_key_env"] == ENV
    assert flavor["default_params"] == {"temperature": 0.2}
    assert flavor["max_retries"] == 3 and flavor["timeout"] == 60
    assert conf["flavors"]["python_function"]["loader_module"] == "hangar.models.flavors.openai"
    assert conf["flavors"]["python_function"]["input_mode"] == "payload"
    assert conf["metadata"]["task"] == "llm/v1/chat"
    reqs = (path / "requirements.txt").read_text()
    assert "openai==" in reqs and "httpx==" in reqs
    files = [p for p in path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p


def test_default_signatures_per_task(save):
    chat = hangar.pyfunc.load_model(save())
    assert chat.signature.inputs.names == ["messages"]
    params = {p.name: p for p in chat.signature.params.params}
    assert {"temperature", "max_tokens", "top_p", "stop"} <= set(params)
    assert params["temperature"].type == "double" and params["max_tokens"].type == "long"
    assert params["stop"].shape == (-1,)
    assert chat.streamable

    emb = hangar.pyfunc.load_model(save("hangar-test-embed", "llm/v1/embeddings"))
    assert emb.signature.inputs.names == ["input"]
    assert not emb.streamable
    comp = hangar.pyfunc.load_model(save(task="llm/v1/completions"))
    assert comp.signature.inputs.names == ["prompt"]


@pytest.mark.parametrize("kwargs", [
    {"api_key_env": "sk-live-abc123"},            # a key where its variable's name belongs
    {"base_url": "https://user:secret@example.com/v1"},
    {"base_url": "example.com"},
    {"task": "llm/v1/rerank"},
    {"system_prompt": "x", "task": "llm/v1/embeddings"},
    {"default_params": {"model": "other"}},
    {"headers_env": {"X-Org": "not a name"}},
    {"max_retries": -1},
])
def test_save_rejects_bad_arguments(save, kwargs, tmp_path):
    with pytest.raises(InvalidArgumentError):
        save(**kwargs)
    assert not any(p.name.startswith("m") for p in tmp_path.iterdir())


# -- chat ---------------------------------------------------------------------------------

def test_chat_predict_prepends_system_prompt(save, srv):
    model = hangar.pyfunc.load_model(save(system_prompt="Be brief."))
    out = model.predict(HI)
    assert out["object"] == "chat.completion"
    assert out["model"] == "hangar-test-chat"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "echo: hello there", "refusal": None}
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    (body,) = bodies(srv)
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, HI["messages"][0]]
    assert body["model"] == "hangar-test-chat" and "stream" not in body


def test_chat_predict_stream(save, srv):
    model = hangar.pyfunc.load_model(save())
    chunks = list(model.predict_stream(HI))
    assert "".join(c["delta"] for c in chunks) == "echo: hello there"
    assert len([c for c in chunks if c["delta"]]) == 3
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert any(c.get("finish_reason") == "stop" for c in chunks)
    (body,) = bodies(srv)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    with pytest.raises(SchemaMismatchError):
        model.predict_stream([HI, HI])  # a batch does not stream


def test_batch_of_two_payloads(save, srv):
    model = hangar.pyfunc.load_model(save())
    batch = [HI, {"messages": [{"role": "user", "content": "second one"}]}]
    out = model.predict(batch)
    assert isinstance(out, list) and len(out) == 2
    assert [r["choices"][0]["message"]["content"] for r in out] == ["echo: hello there", "echo: second one"]
    assert len(srv.requests) == 2


def test_params_payload_fields_and_defaults_forwarded(save, srv):
    model = hangar.pyfunc.load_model(save(default_params={"temperature": 0.7, "top_p": 0.5, "user": "saved"}))
    payload = {**HI, "model": "ignored", "stream": True, "user": "from-payload", "seed": 1}
    out = model.predict(payload, params={"temperature": 0.1, "max_tokens": 2, "stop": ["zz"]})
    assert out["choices"][0]["message"]["content"] == "echo: hello"
    assert out["choices"][0]["finish_reason"] == "length"
    (body,) = bodies(srv)
    assert body["model"] == "hangar-test-chat"
    assert body["temperature"] == 0.1 and body["top_p"] == 0.5 and body["max_tokens"] == 2
    assert body["stop"] == ["zz"] and body["seed"] == 1 and body["user"] == "from-payload"
    assert "stream" not in body and "stream_options" not in body
    # a string-valued default param becomes an overridable param of the signature
    model.predict(HI, params={"user": "from-params"})
    assert bodies(srv)[-1]["user"] == "from-params"


def test_headers_from_environment(save, srv, monkeypatch):
    monkeypatch.setenv("HANGAR_TEST_ORG", "org-42")
    hangar.pyfunc.load_model(save(headers_env={"X-Org": "HANGAR_TEST_ORG"})).predict(HI)
    assert srv.requests[0].headers["x-org"] == "org-42"


# -- completions and embeddings ------------------------------------------------------------

def test_completions_predict_and_stream(save, srv):
    model = hangar.pyfunc.load_model(save(task="llm/v1/completions"))
    out = model.predict({"prompt": "say this"}, params={"max_tokens": 10})
    assert out["object"] == "text_completion"
    assert out["choices"][0]["text"] == "echo: say this"
    assert out["usage"]["prompt_tokens"] == 2
    chunks = list(model.predict_stream({"prompt": "say this"}))
    assert "".join(c["delta"] for c in chunks) == "echo: say this"
    assert "usage" in chunks[-1]
    assert bodies(srv)[0]["prompt"] == "say this" and bodies(srv)[0]["max_tokens"] == 10


def test_embeddings_single_and_list(save, srv):
    model = hangar.pyfunc.load_model(save("hangar-test-embed", "llm/v1/embeddings"))
    one = model.predict({"input": "x"})
    assert one["object"] == "list"
    assert [d["embedding"] for d in one["data"]] == [embedding_for("x", 8)]
    assert one["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    many = model.predict({"input": ["a", "b"]}, params={"dimensions": 4})
    assert [d["index"] for d in many["data"]] == [0, 1]
    assert [d["embedding"] for d in many["data"]] == [embedding_for("a", 4), embedding_for("b", 4)]
    assert bodies(srv)[0]["encoding_format"] == "float"
    assert bodies(srv)[1]["dimensions"] == 4
    with pytest.raises(StreamingNotSupportedError):
        model.predict_stream({"input": "x"})


# -- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("task,payload", [
    ("llm/v1/chat", {"prompt": "wrong field"}),
    ("llm/v1/chat", {"messages": "not a list"}),
    ("llm/v1/chat", {"messages": [{"content": "no role"}]}),
    ("llm/v1/chat", "just a string"),
    ("llm/v1/completions", {"prompt": ["a", "b"]}),
    ("llm/v1/embeddings", {"input": 5}),
    ("llm/v1/embeddings", {"input": [1.5, "x"]}),
])
def test_bad_payload_is_a_schema_mismatch(save, srv, task, payload):
    model = hangar.pyfunc.load_model(save(task=task))
    with pytest.raises(SchemaMismatchError):
        model.predict(payload)
    assert srv.requests == []


def test_bad_params_are_rejected_before_any_request(save, srv):
    model = hangar.pyfunc.load_model(save())
    with pytest.raises(UnknownParamError):
        model.predict(HI, params={"temprature": 0.1})
    with pytest.raises(SchemaMismatchError):
        model.predict(HI, params={"max_tokens": "many"})
    assert srv.requests == []


def test_missing_env_var_is_a_clear_error_at_load(save, monkeypatch):
    path = save()
    monkeypatch.delenv(ENV)
    with pytest.raises(MissingCredentialError) as info:
        hangar.pyfunc.load_model(path)
    assert ENV in str(info.value)
    assert info.value.error_code == "MISSING_CREDENTIAL"


def test_wrong_key_is_upstream_error_without_the_key(save, srv, monkeypatch):
    path = save()
    wrong = "sk-wrong-key-ffffffffffff"
    monkeypatch.setenv(ENV, wrong)
    model = hangar.pyfunc.load_model(path)
    with pytest.raises(UpstreamAPIError) as info:
        model.predict(HI)
    err = info.value
    assert err.upstream_status == 401 and err.http_status == 502
    assert ENV in err.message and "401" in err.message
    assert wrong not in str(err) and KEY not in str(err)
    assert err.__context__ is None and err.__cause__ is None  # nothing that holds the request headers
    assert len(srv.requests) == 1  # a 401 is not retried
    with pytest.raises(UpstreamAPIError) as info:
        list(model.predict_stream(HI))
    assert wrong not in str(info.value)


def test_429_then_success_is_retried(save, srv):
    model = hangar.pyfunc.load_model(save())
    srv.fail_next(2, 429)
    out = model.predict(HI)
    assert out["choices"][0]["message"]["content"] == "echo: hello there"
    assert [r.status for r in srv.requests] == [429, 429, 200]


def test_500_then_success_is_retried(save, srv):
    model = hangar.pyfunc.load_model(save(max_retries=1))
    srv.fail_next(1, 500)
    assert model.predict(HI)["object"] == "chat.completion"
    assert [r.status for r in srv.requests] == [500, 200]


@pytest.mark.parametrize("status", [429, 503])
def test_persistent_failure_becomes_upstream_error(save, srv, status):
    model = hangar.pyfunc.load_model(save(max_retries=1))
    srv.fail_next(2, status)
    with pytest.raises(UpstreamAPIError) as info:
        model.predict(HI)
    assert info.value.upstream_status == status
    assert str(status) in info.value.message and "after 1 retry" in info.value.message
    assert KEY not in str(info.value)
    assert [r.status for r in srv.requests] == [status, status]


def test_stream_failure_becomes_upstream_error(save, srv):
    model = hangar.pyfunc.load_model(save(max_retries=0))
    srv.fail_next(1, 500)
    with pytest.raises(UpstreamAPIError):
        list(model.predict_stream(HI))


def test_unreachable_server_is_upstream_error(save):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = hangar.pyfunc.load_model(save(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0, timeout=5))
    with pytest.raises(UpstreamAPIError) as info:
        model.predict(HI)
    assert f"127.0.0.1:{port}" in info.value.message and KEY not in str(info.value)


# -- load_model ---------------------------------------------------------------------------

def test_load_model_exposes_client_and_settings(save, srv):
    path = save(timeout=7, max_retries=2, default_params={"temperature": 0.3})
    m = hangar.openai.load_model(path)
    assert isinstance(m, hangar.openai.OpenAIModel)
    assert m.model == "hangar-test-chat" and m.task == "llm/v1/chat"
    assert m.settings.default_params == {"temperature": 0.3} and m.settings.api_key_env == ENV
    assert str(m.client.base_url).rstrip("/") == srv.base_url
    assert m.client.max_retries == 2 and m.client.timeout == 7
    assert m.client.api_key == KEY
    assert KEY not in repr(m) and KEY not in repr(m.settings)
    r = m.client.models.list()
    assert [x.id for x in r.data] == ["hangar-test-chat", "hangar-test-embed"]
    m.close()


def test_no_key_for_self_hosted_servers(srv, tmp_path):
    with run_openai_server(api_key=None) as open_srv:
        path = hangar.openai.save_model(tmp_path / "m", "local", base_url=open_srv.base_url, api_key_env=None)
        out = hangar.pyfunc.load_model(path).predict(HI)
    assert out["choices"][0]["message"]["content"] == "echo: hello there"


def test_public_api_is_sorted_and_shadows_nothing():
    import openai

    assert hangar.openai.__all__ == sorted(hangar.openai.__all__)
    assert openai.__name__ == "openai" and hasattr(openai, "OpenAI")
    assert hangar.openai is not openai
