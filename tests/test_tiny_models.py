"""The tiny offline test models build quickly, deterministically, and load like real checkpoints."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from hangar.testing.tiny_models import (
    build_tiny_classifier,
    build_tiny_llama,
    build_tiny_sentence_transformer,
)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-classifier"))


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory):
    pytest.importorskip("sentence_transformers")
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


# --- llama --------------------------------------------------------------------------------------


def test_tiny_llama_files(tiny_llama):
    names = {p.name for p in tiny_llama.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not any(n.endswith(".bin") for n in names)


def test_tiny_llama_loads_and_runs(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert isinstance(model, LlamaForCausalLM)
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size) == (64, 2, 512)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.max_position_embeddings) == (4, 2, 256)
    assert len(tok) == 512
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|endoftext|>", "<|im_end|>", "<pad>")

    text = "What is the capital of France?"
    enc = tok(text, return_tensors="pt")
    assert tok.decode(enc["input_ids"][0]) == text  # byte-level BPE round-trips exactly
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, enc["input_ids"].shape[1], 512)

    out = model.generate(**enc, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (1, enc["input_ids"].shape[1] + 5)


def test_tiny_llama_chat_template(tiny_llama):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    rendered = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    without = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert not without.endswith("assistant\n")
    # the ChatML markers are single special tokens
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
    assert tok.convert_tokens_to_ids("<|im_end|>") in ids


def test_tiny_llama_text_generation_pipeline(tiny_llama):
    from transformers import pipeline

    pipe = pipeline("text-generation", model=str(tiny_llama))
    out = pipe("Hello there", max_new_tokens=4, do_sample=False)
    assert isinstance(out[0]["generated_text"], str)
    assert out[0]["generated_text"].startswith("Hello there")

    chat = pipe([{"role": "user", "content": "Hi"}], max_new_tokens=4, do_sample=False)
    messages = chat[0]["generated_text"]
    assert messages[-1]["role"] == "assistant"
    assert isinstance(messages[-1]["content"], str)


def test_tiny_llama_is_deterministic(tiny_llama, tmp_path):
    again = build_tiny_llama(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (tiny_llama / name).read_bytes(), name


# --- classifier --------------------------------------------------------------------------------


def test_tiny_classifier_text_classification(tiny_classifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    assert model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    enc = tok(["I love it", "I hate it"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**enc).logits.shape == (2, 2)

    clf = pipeline("text-classification", model=str(tiny_classifier))
    results = clf(["I love this movie", "This was terrible"])
    assert len(results) == 2
    for r in results:
        assert r["label"] in {"NEGATIVE", "POSITIVE"}
        assert 0.0 <= r["score"] <= 1.0


def test_tiny_classifier_feature_extraction(tiny_classifier):
    import numpy as np
    from transformers import AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(tiny_classifier)
    n_tokens = len(tok("hello world")["input_ids"])
    fe = pipeline("feature-extraction", model=str(tiny_classifier))
    features = np.asarray(fe("hello world"))
    assert features.shape == (1, n_tokens, 32)


def test_tiny_classifier_is_deterministic(tiny_classifier, tmp_path):
    again = build_tiny_classifier(tmp_path / "again")
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (tiny_classifier / name).read_bytes(), name


# --- sentence-transformers ---------------------------------------------------------------------


def test_tiny_sentence_transformer(tiny_st, tmp_path):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    assert (tiny_st / "modules.json").is_file()
    model = SentenceTransformer(str(tiny_st), device="cpu")
    emb = model.encode(["hello world", "the capital of France is Paris", "x"])
    assert isinstance(emb, np.ndarray)
    assert emb.shape == (3, 32)
    assert emb.dtype == np.float32
    assert np.isfinite(emb).all()
    # same input, same embedding; different inputs differ
    again = model.encode(["hello world"])
    assert np.allclose(again[0], emb[0], atol=1e-6)
    assert not np.allclose(emb[0], emb[1])
    # and a second build gives the same model
    other = SentenceTransformer(str(build_tiny_sentence_transformer(tmp_path / "again")), device="cpu")
    assert np.allclose(other.encode(["hello world"])[0], emb[0], atol=1e-6)
