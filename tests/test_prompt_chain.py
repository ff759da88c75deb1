"""prompt and chain flavors, composed over other packages (pinned, embedded) and code steps."""

import shutil
import sys
from pathlib import Path

import pytest
import yaml

import hangar.chain as hc
import hangar.prompt as hpr
import hangar.pyfunc as hp
from hangar.errors import CorruptPackageError, InvalidArgumentError, SchemaMismatchError, StreamingNotSupportedError
from hangar.models import infer_signature
from hangar.models.llm_payloads import chat_response

ASSETS = Path(__file__).parent / "assets"
sys.path.insert(0, str(ASSETS))
from chain_steps import add_context, shout  # noqa: E402

CHAT = {"messages": [{"role": "user", "content": "hello"}]}


class Transcript(hp.PythonModel):
    """Answers with the whole conversation it was sent, so tests can see what a step produced."""

    def predict(self, context, model_input, params=None):
        text = " | ".join(f"{m['role']}:{m['content']}" for m in model_input["messages"])
        return chat_response(f"{text} [max_tokens={params['max_tokens']}]")

    def predict_stream(self, context, model_input, params=None):
        for m in model_input["messages"]:
            yield {"delta": m["content"] + ";"}


@pytest.fixture
def chat_pkg(tmp_path):
    sig = infer_signature(CHAT, params={"max_tokens": 8})
    return hp.save_model(tmp_path / "llm", Transcript(), signature=sig, task="llm/v1/chat")


def answer(resp):
    return resp["choices"][0]["message"]["content"]


def test_prompt_renders_without_target(tmp_path):
    p = hp.load_model(hpr.save_model(tmp_path / "p", "Tell me about {{ topic }} in {{n}} words", defaults={"n": 5}))
    assert p.predict({"topic": ["cats", "dogs"]}) == ["Tell me about cats in 5 words", "Tell me about dogs in 5 words"]
    assert p.predict([{"topic": "owls", "n": 3}]) == ["Tell me about owls in 3 words"]
    with pytest.raises(SchemaMismatchError, match="missing column"):
        p.predict({"subject": ["cats"]})


def test_prompt_chat_template_with_target(tmp_path, chat_pkg):
    path = hpr.save_model(tmp_path / "p", [{"role": "system", "content": "You help with {{product}}."}],
                          defaults={"product": "Hangar"}, target=chat_pkg, task="llm/v1/chat",
                          generation_params={"max_tokens": 4})
    p = hp.load_model(path)
    assert answer(p.predict(CHAT)) == "system:You help with Hangar. | user:hello [max_tokens=4]"
    assert answer(p.predict({**CHAT, "product": "boats"}, params={"max_tokens": 9})).endswith("boats. | user:hello [max_tokens=9]")
    assert "".join(c["delta"] for c in p.predict_stream(CHAT)) == "You help with Hangar.;hello;"


def test_prompt_text_template_targets_chat_model(tmp_path, chat_pkg):
    p = hp.load_model(hpr.save_model(tmp_path / "p", "Summarize: {{text}}", target=chat_pkg))
    assert p.predict({"text": ["a b"]}) == ["user:Summarize: a b [max_tokens=8]"]


def test_prompt_validation(tmp_path):
    with pytest.raises(InvalidArgumentError, match="non-empty string or a list"):
        hpr.save_model(tmp_path / "a", 3)
    with pytest.raises(InvalidArgumentError, match="role"):
        hpr.save_model(tmp_path / "b", [{"role": "wizard", "content": "x"}])
    with pytest.raises(InvalidArgumentError, match="does not use"):
        hpr.save_model(tmp_path / "c", "hi {{a}}", defaults={"b": 1})
    assert not any(tmp_path.iterdir())


def test_prompt_never_executes_template_code(tmp_path):
    p = hp.load_model(hpr.save_model(tmp_path / "p", "{{x}} {{ __import__('os') }}"))
    assert p.predict({"x": ["ok"]}) == ["ok {{ __import__('os') }}"]


def test_chat_chain_is_small_and_pins_its_steps(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "chain", [hc.Prompt("You help with {{product}}.", defaults={"product": "Hangar"}),
                                              hc.Model(chat_pkg)], task="llm/v1/chat")
    conf = yaml.safe_load((path / "MLmodel").read_text())
    step = conf["flavors"]["chain"]["steps"][1]
    assert step["ref"]["uri"] == str(chat_pkg) and len(step["ref"]["manifest_sha256"]) == 64
    assert not (path / "steps").exists()  # referenced, not copied
    assert "max_tokens" in conf["signature"]["params"]  # a chat chain accepts its model's params
    chain = hp.load_model(path)
    assert answer(chain.predict(CHAT, params={"max_tokens": 2})) == "system:You help with Hangar. | user:hello [max_tokens=2]"
    assert chain.streamable
    assert "".join(c["delta"] for c in chain.predict_stream(CHAT)) == "You help with Hangar.;hello;"


def test_chain_detects_a_changed_step(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "chain", [hc.Model(chat_pkg)], task="llm/v1/chat")
    shutil.rmtree(chat_pkg)
    hp.save_model(chat_pkg, Transcript(), task="llm/v1/chat")  # same path, different package
    with pytest.raises(CorruptPackageError, match="has changed since this package was saved"):
        hp.load_model(path)


def test_embedded_chain_is_self_contained(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "chain", [hc.Model(chat_pkg, embed=True)], task="llm/v1/chat")
    shutil.rmtree(chat_pkg)
    assert answer(hp.load_model(path).predict(CHAT)) == "user:hello [max_tokens=8]"


def test_chain_with_code_steps_and_parsers(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "chain", [hc.Prompt("Q: {{q}}", role="user"), hc.Model(chat_pkg),
                                              hc.Parser("text"), shout])
    assert (path / "code").is_dir() and not list(path.rglob("*.pkl"))
    out = hp.load_model(path).predict({"q": ["one", "two"]})
    assert out == ["USER:Q: ONE [MAX_TOKENS=8]", "USER:Q: TWO [MAX_TOKENS=8]"]


def test_chain_python_step_receives_params(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "chain", [add_context, hc.Model(chat_pkg)], task="llm/v1/chat")
    assert answer(hp.load_model(path).predict(CHAT, params={"max_tokens": 3})) == "user:hello | user:(n=3) [max_tokens=3]"


def test_chain_json_and_regex_parsers(tmp_path):
    class Says(hp.PythonModel):
        def predict(self, context, model_input, params=None):
            return [chat_response('Sure! {"label": "spam", "score": 0.9} done') for _ in range(len(model_input))]

    src = hp.save_model(tmp_path / "says", Says())
    j = hp.load_model(hc.save_model(tmp_path / "j", [hc.Model(src), hc.Parser("json")]))
    assert j.predict(["x"]) == [{"label": "spam", "score": 0.9}]
    r = hp.load_model(hc.save_model(tmp_path / "r", [hc.Model(src), hc.Parser("regex", r'"label": "(\w+)"')]))
    assert r.predict(["x", "y"]) == ["spam", "spam"]


def test_chain_not_streamable_when_a_step_follows_the_model(tmp_path, chat_pkg):
    chain = hp.load_model(hc.save_model(tmp_path / "c", [hc.Model(chat_pkg), hc.Parser("json")], task="llm/v1/chat"))
    assert not chain.streamable
    with pytest.raises(StreamingNotSupportedError):
        chain.predict_stream(CHAT)


def test_chain_step_validation(tmp_path, chat_pkg):
    with pytest.raises(InvalidArgumentError, match="non-empty list"):
        hc.save_model(tmp_path / "a", [])
    with pytest.raises(InvalidArgumentError, match="lambdas and nested functions"):
        hc.save_model(tmp_path / "b", [lambda v: v])
    with pytest.raises(InvalidArgumentError, match="unknown parser"):
        hc.save_model(tmp_path / "c", [hc.Parser("yaml")])
    with pytest.raises(InvalidArgumentError, match="names an alias"):
        hc.save_model(tmp_path / "d", [hc.Model("models:/assistant@champion")])
    with pytest.raises(InvalidArgumentError, match="use chain.Model"):
        hc.save_model(tmp_path / "e", [42])
    assert not any(p.name in "abcde" for p in tmp_path.iterdir())


def test_chain_requirements_are_the_union(tmp_path, chat_pkg):
    path = hc.save_model(tmp_path / "c", [hc.Model(chat_pkg), hc.Parser("text"), shout])
    reqs = (path / "requirements.txt").read_text().split()
    assert any(r.startswith("cloudpickle==") for r in reqs)  # from the referenced model
    assert reqs[0].startswith("hangar==")


def test_prompt_targeting_an_openai_compatible_endpoint(tmp_path, monkeypatch):
    from hangar.testing.openai_server import run_openai_server

    monkeypatch.setenv("DEMO_KEY", "sk-test-secret-value")
    with run_openai_server(api_key="sk-test-secret-value") as server:
        path = hpr.save_model(tmp_path / "p", "You answer questions about {{topic}}.", defaults={"topic": "boats"},
                              task="llm/v1/chat", target={"model": "hangar-test-chat", "base_url": server.base_url,
                                                          "api_key_env": "DEMO_KEY"})
        assert (path / "target" / "MLmodel").is_file()
        for f in path.rglob("*"):
            if f.is_file():
                assert b"sk-test-secret-value" not in f.read_bytes()
        p = hp.load_model(path)
        assert answer(p.predict(CHAT)) == "echo: hello"
        sent = server.requests[-1].body["messages"]
        assert sent[0] == {"role": "system", "content": "You answer questions about boats."}
        assert "".join(c.get("delta", "") for c in p.predict_stream(CHAT)) == "echo: hello"
