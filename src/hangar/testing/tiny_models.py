"""Tiny, randomly initialised models built fully offline for tests.

Every builder is deterministic (fixed seeds, a built-in corpus for the tokenizers), needs no
network and no downloaded weights, and finishes in well under a second on a CPU. The outputs are
ordinary Hugging Face directories, so ``transformers.pipeline(..., model=path)``,
``AutoModel*.from_pretrained(path)`` and ``sentence_transformers.SentenceTransformer(path)`` load
them exactly as they would load a real checkpoint.

Heavy libraries (torch, transformers, tokenizers, sentence-transformers) are imported inside the
functions so that importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "CORPUS",
    "CHATML_TEMPLATE",
    "build_tiny_llama",
    "build_tiny_classifier",
    "build_tiny_sentence_transformer",
]

SEED = 0

# A small built-in English corpus to train the tokenizers on. Plain ASCII on purpose.
CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog did not mind; it was a warm afternoon and
the sun was shining on the green hills. Paris is the capital of France, Berlin is the capital of
Germany, and Rome is the capital of Italy. Many people like to travel in the summer, when the
days are long and the nights are short.

A model is a function that maps inputs to outputs. We train a model on data, we test it on data
it has never seen, and then we deploy it so that other people can use it. Good models are small,
fast and accurate. Bad models are slow, expensive and wrong. Most models are somewhere in between,
and the work of an engineer is to measure where, and to make the model better over time.

What is the capital of France? The capital of France is Paris. What is the largest planet in the
solar system? The largest planet is Jupiter. How many days are there in a week? There are seven
days in a week: Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday.

I love this movie, it was wonderful and the actors were great. I hated this film, it was boring
and far too long. The food was delicious and the service was friendly. The room was dirty and the
staff were rude. This is the best day of my life! This is the worst thing that has ever happened.

Hello, how are you today? I am fine, thank you. Can you help me with my homework? Of course, what
do you need? Please write a short poem about the sea. The sea is blue, the sea is wide, the waves
come in and out with the tide. Thank you very much. You are welcome, have a nice day.

Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 2024. Symbols: + - * / = ( ) [ ] { } < > ! ? . , ; :
" ' @ # $ % & _ | ~ ^ ` \\ and a new line.
"""

# ChatML, as used by SmolLM2/Qwen-style chat models.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_LLAMA_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
_BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _corpus_lines() -> list[str]:
    return [line for line in CORPUS.splitlines() if line.strip()]


@contextlib.contextmanager
def _seeded(seed: int = SEED):
    """Seed torch's CPU RNG for the block without disturbing the caller's RNG state."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def _single_threaded_tokenizers():
    """Train tokenizers single-threaded: deterministic, and no fork warnings afterwards."""
    old = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = old


def _prepare_dir(path) -> Path:
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------


def _train_byte_level_bpe(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(_LLAMA_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    with _single_threaded_tokenizers():
        tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    return tok


def _make_llama_tokenizer(vocab_size: int):
    from transformers import PreTrainedTokenizerFast

    tok = _train_byte_level_bpe(vocab_size)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=256,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.chat_template = CHATML_TEMPLATE
    return hf_tok


def _train_wordpiece(vocab_size: int):
    """A BERT-style WordPiece tokenizer whose vocabulary is derived deterministically.

    (``tokenizers``' WordPieceTrainer is not deterministic from run to run, so the vocabulary is
    built here: special tokens, every corpus character with and without the ``##`` prefix, then
    the most frequent whole words, ties broken alphabetically.)
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for line in _corpus_lines():
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)):
            words[word] += 1
    chars = sorted({c for w in words for c in w})
    tokens = list(_BERT_SPECIAL_TOKENS) + chars + ["##" + c for c in chars]
    seen = set(tokens)
    for word, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(tokens) >= vocab_size:
            break
        if word not in seen:
            tokens.append(word)
            seen.add(word)
    vocab = {tok: i for i, tok in enumerate(tokens)}

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.add_special_tokens(list(_BERT_SPECIAL_TOKENS))
    return tok


def _make_bert_tokenizer(vocab_size: int, max_length: int):
    from transformers import BertTokenizerFast

    tok = _train_wordpiece(vocab_size)
    return BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=True,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def build_tiny_llama(path) -> Path:
    """Write a 2-layer random ``LlamaForCausalLM`` plus a 512-token BPE tokenizer to ``path``.

    The tokenizer has ``bos_token='<|endoftext|>'``, ``eos_token='<|im_end|>'``,
    ``pad_token='<pad>'`` and a ChatML ``chat_template``. Weights are saved as safetensors.
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = _prepare_dir(path)
    tokenizer = _make_llama_tokenizer(vocab_size=512)
    vocab_size = 512
    assert len(tokenizer) <= vocab_size, len(tokenizer)

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with _seeded():
        model = LlamaForCausalLM(config)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=16,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def _tiny_bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        type_vocab_size=2,
        pad_token_id=0,
        **extra,
    )


def build_tiny_classifier(path) -> Path:
    """Write a tiny random ``BertForSequenceClassification`` (NEGATIVE/POSITIVE) to ``path``.

    Loadable by ``pipeline("text-classification", model=path)`` and (as a base ``BertModel``) by
    ``pipeline("feature-extraction", model=path)``.
    """
    from transformers import BertForSequenceClassification

    out = _prepare_dir(path)
    tokenizer = _make_bert_tokenizer(vocab_size=512, max_length=128)
    config = _tiny_bert_config(
        len(tokenizer),
        num_labels=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
        problem_type="single_label_classification",
    )
    with _seeded():
        model = BertForSequenceClassification(config)
    model.eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_sentence_transformer(path) -> Path:
    """Write a tiny random BERT wrapped as a sentence-transformers model (mean pooling) to ``path``.

    ``SentenceTransformer(path).encode(texts)`` returns 32-dimensional embeddings.
    """
    from transformers import BertModel

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # older releases
        from sentence_transformers.models import Pooling, Transformer
    from sentence_transformers import SentenceTransformer

    out = _prepare_dir(path)
    tokenizer = _make_bert_tokenizer(vocab_size=512, max_length=128)
    config = _tiny_bert_config(len(tokenizer))
    with _seeded():
        bert = BertModel(config)
    bert.eval()

    # models.Transformer loads from a directory: stage the base model next to the output.
    staging = Path(tempfile.mkdtemp(prefix=".tiny-bert-", dir=out.parent))
    try:
        bert.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        transformer = Transformer(str(staging), max_seq_length=128)
        # sentence-transformers >= 6 renamed get_word_embedding_dimension
        dim_fn = getattr(transformer, "get_embedding_dimension", None)
        dim = dim_fn() if dim_fn is not None else transformer.get_word_embedding_dimension()
        pooling = Pooling(dim, "mean")
        st_model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
        st_model.save(str(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
