"""Local Hugging Face models: a ``transformers`` pipeline saved as safetensors, loaded offline.

Supported pipeline tasks and what the package answers:

- ``text-generation`` with a chat template → ``llm/v1/chat`` (``{"messages": [...]}`` →
  ``chat.completion``); with ``task="llm/v1/completions"`` → ``{"prompt": "..."}`` →
  ``text_completion``. Both stream (``predict_stream``) through ``TextIteratorStreamer``.
- ``feature-extraction`` → ``llm/v1/embeddings`` (``{"input": str | [str]}``, mean-pooled).
- ``text-classification`` → a table with a ``text`` column → a DataFrame of ``label``/``score``.

``task=None`` asks for the table view of any of them (a prompt column → generated strings, a
text column → vectors). Weights and tokenizer live in ``<package>/model``; loading reads only
that directory (``local_files_only=True``), so it never needs the network.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hangar.errors import HangarError, InvalidArgumentError, ModelExecutionError, SchemaMismatchError, require
from hangar.models import llm_payloads as llm
from hangar.models.common import describe_package
from hangar.models.environment import pin
from hangar.models.inputs import text_column
from hangar.models.llm_payloads import embedding_texts
from hangar.models.package import PackageWriter

FLAVOR_NAME = "transformers"
EXTRA = "transformers"
MODEL_DIR = "model"

TEXT_GENERATION = "text-generation"
TEXT_CLASSIFICATION = "text-classification"
FEATURE_EXTRACTION = "feature-extraction"
PIPELINE_TASKS = (FEATURE_EXTRACTION, TEXT_CLASSIFICATION, TEXT_GENERATION)
_PIPELINE_ALIASES = {"sentiment-analysis": TEXT_CLASSIFICATION}

CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
_TASKS_FOR_PIPELINE = {TEXT_GENERATION: (CHAT, COMPLETIONS), FEATURE_EXTRACTION: (EMBEDDINGS,),
                       TEXT_CLASSIFICATION: ()}

DEFAULT_MAX_NEW_TOKENS = 128
_EMBED_BATCH = 32


class _DefaultTask:
    """``task`` left out: the natural task of the pipeline (``task=None`` means the table view)."""

    def __repr__(self) -> str:
        return "DEFAULT_TASK"


DEFAULT_TASK = _DefaultTask()


# ------------------------------------------------------------------------------------------
# Saving
# ------------------------------------------------------------------------------------------

def save_model(path, model, *, task=DEFAULT_TASK, tokenizer=None, pipeline_task: str | None = None,
               generation_params: dict | None = None, signature=None, input_example: Any = None,
               pip_requirements=None, extra_pip_requirements=None, metadata: dict | None = None):
    """Save a transformers ``Pipeline``, a ``(model, tokenizer)`` pair or a local model directory.

    ``task`` defaults to ``llm/v1/chat`` for text generation with a chat template,
    ``llm/v1/completions`` without one, ``llm/v1/embeddings`` for feature extraction and the
    table view (``None``) for text classification. ``generation_params`` are the defaults for
    ``generate`` (``max_new_tokens``, ``temperature``, ``top_p``, any other generate option).
    """
    hf_model, tok, ptask = _resolve_model(model, tokenizer, pipeline_task, task)
    task = _resolve_task(task, ptask, tok)
    gen = _generation_defaults(generation_params) if ptask == TEXT_GENERATION else None
    if signature is None:
        signature = _default_signature(task, ptask, gen, input_example)
    with PackageWriter(path) as w:
        target = w.dir / MODEL_DIR
        try:
            hf_model.save_pretrained(target, safe_serialization=True)
            tok.save_pretrained(target)
        except Exception as exc:  # a model that cannot be serialised is the caller's problem
            raise InvalidArgumentError(f"Could not save the model as safetensors: {type(exc).__name__}: {exc}") from exc
        payload = describe_package(
            w, task=task, signature=signature, input_example=input_example,
            requirements=pin("transformers", "torch", "safetensors", "tokenizers"),
            pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
            metadata=metadata,
        )
        if payload != (task is not None):
            wanted = f"an OpenAI-style payload dict for {task}" if task else "table rows (a text column)"
            raise InvalidArgumentError(f"input_example does not fit the task: pass {wanted}")
        transformers = require("transformers", EXTRA)
        w.add_flavor(
            FLAVOR_NAME, data=MODEL_DIR, pipeline_task=ptask, model_class=type(hf_model).__name__,
            model_name=_model_name(hf_model), generation_params=gen,
            transformers_version=transformers.__version__,
        )
        w.add_pyfunc(__name__, streamable=ptask == TEXT_GENERATION and task is not None,
                     input_mode="payload" if payload else "dataframe")
    return w.path


def _resolve_model(model, tokenizer, pipeline_task, task):
    """``(hf_model, tokenizer, pipeline_task)`` from whatever the caller passed."""
    transformers = require("transformers", EXTRA)
    ptask = None
    hf_model = tok = None
    if isinstance(model, transformers.Pipeline):
        hf_model, tok, ptask = model.model, model.tokenizer, model.task
    elif isinstance(model, (tuple, list)) and len(model) == 2:
        hf_model, tok = model
    elif isinstance(model, (str, os.PathLike)):
        directory = Path(model).expanduser()
        if not (directory / "config.json").is_file():
            raise InvalidArgumentError(
                f"model={str(model)!r} is not a local Hugging Face model directory (no config.json). "
                "Hangar saves models without the network: download the model first "
                "(huggingface-cli download ...) and pass its directory, or pass a pipeline"
            )
        ptask = pipeline_task or _task_from_config(transformers.AutoConfig.from_pretrained(
            directory, local_files_only=True), task)
        hf_model = _auto_class(transformers, _canonical_task(ptask)).from_pretrained(directory, local_files_only=True)
        if tokenizer is None:
            tok = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    elif isinstance(model, transformers.PreTrainedModel):
        hf_model = model
    else:
        raise InvalidArgumentError(
            f"model must be a transformers Pipeline, a (model, tokenizer) pair or a local model "
            f"directory; got {type(model).__name__}"
        )
    if not isinstance(hf_model, transformers.PreTrainedModel):
        raise InvalidArgumentError(f"Expected a transformers PreTrainedModel, got {type(hf_model).__name__}")
    tok = tokenizer if tokenizer is not None else tok
    if tok is None:
        raise InvalidArgumentError("A tokenizer is needed: pass tokenizer=... (or a pipeline that has one)")
    ptask = _canonical_task(pipeline_task or ptask or _task_from_config(hf_model.config, task))
    return hf_model, tok, ptask


def _canonical_task(ptask: str) -> str:
    ptask = _PIPELINE_ALIASES.get(ptask, ptask)
    if ptask not in PIPELINE_TASKS:
        raise InvalidArgumentError(
            f"Pipeline task {ptask!r} is not supported; use one of {', '.join(PIPELINE_TASKS)}"
        )
    return ptask


def _task_from_config(config, task) -> str:
    if task in (CHAT, COMPLETIONS):
        return TEXT_GENERATION
    if task == EMBEDDINGS:
        return FEATURE_EXTRACTION
    arch = (getattr(config, "architectures", None) or [""])[0]
    if arch.endswith(("ForCausalLM", "LMHeadModel")):
        return TEXT_GENERATION
    if arch.endswith("ForSequenceClassification"):
        return TEXT_CLASSIFICATION
    if arch.endswith("Model"):
        return FEATURE_EXTRACTION
    raise InvalidArgumentError(
        f"Cannot tell which pipeline task a {arch or 'model'} serves; pass pipeline_task= "
        f"({', '.join(PIPELINE_TASKS)})"
    )


def _auto_class(transformers, ptask: str):
    return {TEXT_GENERATION: transformers.AutoModelForCausalLM,
            TEXT_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
            FEATURE_EXTRACTION: transformers.AutoModel}[ptask]


def _resolve_task(task, ptask: str, tok) -> str | None:
    has_template = bool(getattr(tok, "chat_template", None))
    if task is DEFAULT_TASK:
        if ptask == TEXT_GENERATION:
            return CHAT if has_template else COMPLETIONS
        return EMBEDDINGS if ptask == FEATURE_EXTRACTION else None
    if task is None:
        return None
    if task not in _TASKS_FOR_PIPELINE[ptask]:
        allowed = ", ".join(repr(t) for t in (*_TASKS_FOR_PIPELINE[ptask], None))
        raise InvalidArgumentError(f"task={task!r} does not fit a {ptask} pipeline; use one of {allowed}")
    if task == CHAT and not has_template:
        raise InvalidArgumentError(
            "task='llm/v1/chat' needs a tokenizer with a chat template (tokenizer.chat_template is "
            "empty); set one, or save with task='llm/v1/completions'"
        )
    return task


def _generation_defaults(params: dict | None) -> dict:
    gen = dict(params or {})
    if "max_tokens" in gen:
        gen["max_new_tokens"] = gen.pop("max_tokens")
    gen.setdefault("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    return gen


def _default_signature(task, ptask, gen, input_example):
    from hangar.models.infer import infer_schema
    from hangar.models.signature import ColSpec, ModelSignature, ParamSchema, ParamSpec, Schema

    if input_example is not None:
        inputs = infer_schema(input_example, payload=task is not None)
    elif task == CHAT:
        message = {"type": "object", "properties": {"role": {"type": "string", "required": True},
                                                    "content": {"type": "string", "required": True}}}
        inputs = Schema([ColSpec({"type": "array", "items": message}, name="messages")])
    elif task == COMPLETIONS:
        inputs = Schema([ColSpec({"type": "string"}, name="prompt")])
    elif task == EMBEDDINGS:
        inputs = Schema([ColSpec({"type": "any"}, name="input")])
    else:
        inputs = Schema([ColSpec({"type": "string"}, name="prompt" if ptask == TEXT_GENERATION else "text")])
    params = None
    if gen is not None:
        params = ParamSchema([
            ParamSpec("max_tokens", "long", int(gen["max_new_tokens"])),
            ParamSpec("temperature", "double", _default_temperature(gen)),
            ParamSpec("top_p", "double", float(gen.get("top_p", 1.0))),
            ParamSpec("stop", "string", None, shape=(-1,)),
        ])
    return ModelSignature(inputs=inputs, params=params)


def _default_temperature(gen: dict) -> float:
    """Greedy (0) unless the saved generation params sample."""
    if gen.get("do_sample") is False:
        return 0.0
    return float(gen.get("temperature", 1.0 if gen.get("do_sample") else 0.0))


def _model_name(hf_model) -> str:
    name = str(getattr(hf_model.config, "_name_or_path", "") or getattr(hf_model, "name_or_path", "") or "")
    return Path(name).name or "hangar"



# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------

def _flavor_conf(manifest) -> dict:
    conf = manifest.flavors.get(FLAVOR_NAME)
    if conf is None:
        from hangar.errors import ModelPackageError

        raise ModelPackageError(f"This package has no '{FLAVOR_NAME}' flavor (it has {list(manifest.flavors)})")
    return conf


def _load_pipeline(model_dir: Path, conf: dict):
    transformers = require("transformers", EXTRA)
    torch = require("torch", EXTRA)
    ptask = conf["pipeline_task"]
    model = _auto_class(transformers, ptask).from_pretrained(str(model_dir), local_files_only=True)
    model.eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return transformers.pipeline(ptask, model=model, tokenizer=tok, device=device)


def load_model(path, manifest=None):
    """The ``transformers`` pipeline saved in the package at ``path``."""
    from hangar.models.package import open_package

    manifest = manifest or open_package(path)
    conf = _flavor_conf(manifest)
    return _load_pipeline(Path(path) / conf.get("data", MODEL_DIR), conf)


def _load_pyfunc(path: Path, manifest) -> _PipelineModel:
    conf = _flavor_conf(manifest)
    pipe = _load_pipeline(Path(path) / conf.get("data", MODEL_DIR), conf)
    return _PipelineModel(pipe, conf, manifest.task)


# ------------------------------------------------------------------------------------------
# The pyfunc view
# ------------------------------------------------------------------------------------------

class _PipelineModel:
    def __init__(self, pipeline, conf: dict, task: str | None):
        self.pipeline = pipeline
        self.model = pipeline.model
        self.tokenizer = pipeline.tokenizer
        self.pipeline_task = conf["pipeline_task"]
        self.task = task
        self.model_name = conf.get("model_name") or "hangar"
        self.generation_params = dict(conf.get("generation_params") or {})

    def unwrap(self):
        return self.pipeline

    # -- predict -----------------------------------------------------------------------
    def predict(self, model_input, params=None):
        if self.task is None:
            return self._predict_table(model_input, params)
        batch, single = llm.as_batch(model_input)
        if self.task == EMBEDDINGS:
            out = [self._embeddings(p) for p in batch]
        else:
            out = [self._complete(p, params) for p in batch]
        return out[0] if single else out

    def predict_stream(self, model_input, params=None) -> Iterator[dict]:
        if self.pipeline_task != TEXT_GENERATION or self.task is None:
            from hangar.errors import StreamingNotSupportedError

            raise StreamingNotSupportedError("Only chat and completion models stream; call predict instead")
        if isinstance(model_input, list):
            raise SchemaMismatchError("predict_stream takes one payload (a dict), not a list of them")
        prompt_ids, settings = self._prepare_generation(model_input, params)
        return _stream(self, prompt_ids, settings)

    # -- generation --------------------------------------------------------------------
    def _prepare_generation(self, payload: dict, params: dict | None):
        if self.task == CHAT:
            messages = llm.messages_of(payload)
            try:
                text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            except Exception as exc:
                raise SchemaMismatchError(f"The chat template rejected these messages: {exc}") from None
            enc = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        else:
            prompt = payload.get("prompt") if isinstance(payload, dict) else payload
            if isinstance(prompt, list) and len(prompt) == 1:
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise SchemaMismatchError(f"Expected {{'prompt': '...'}} with a string prompt, got {type(prompt).__name__}")
            enc = self.tokenizer(prompt, return_tensors="pt")
        settings = _settings(self.generation_params, params, payload if isinstance(payload, dict) else {})
        return enc["input_ids"].to(self.model.device), settings

    def _generate(self, prompt_ids, settings: dict, streamer=None, cancel: threading.Event | None = None):
        torch = require("torch", EXTRA)
        kwargs = _generate_kwargs(self.model, self.tokenizer, settings)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if cancel is not None:
            kwargs["stopping_criteria"] = _cancel_criteria(cancel)
        with torch.inference_mode():
            out = self.model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids), **kwargs)
        return out[0, prompt_ids.shape[1]:].tolist()

    def _finish(self, new_ids: list[int], settings: dict, text: str | None = None) -> tuple[str, str]:
        """The reply text (cut at a stop string) and its finish reason."""
        if text is None:
            text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        cut = _find_stop(text, settings["stop"])
        if cut is not None:
            return text[:cut], "stop"
        eos = _eos_ids(self.model, self.tokenizer)
        if new_ids and new_ids[-1] in eos:
            return text, "stop"
        return text, "length" if len(new_ids) >= settings["max_tokens"] else "stop"

    def _complete(self, payload: dict, params: dict | None) -> dict:
        prompt_ids, settings = self._prepare_generation(payload, params)
        new_ids = self._generate(prompt_ids, settings)
        text, reason = self._finish(new_ids, settings)
        usage = llm.usage(int(prompt_ids.shape[1]), len(new_ids))
        build = llm.chat_response if self.task == CHAT else llm.completion_response
        return build(text, model=self.model_name, finish_reason=reason, usage_=usage)

    # -- embeddings and tables ---------------------------------------------------------
    def _embeddings(self, payload: dict) -> dict:
        texts = embedding_texts(payload.get("input") if isinstance(payload, dict) else payload)
        vectors, tokens = self._encode(texts)
        return llm.embeddings_response(vectors, model=self.model_name, usage_=llm.usage(tokens, 0))

    def _encode(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Mean-pooled last hidden states (padding masked out) and the number of tokens read."""
        torch = require("torch", EXTRA)
        vectors: list[list[float]] = []
        tokens = 0
        limit = getattr(self.model.config, "max_position_embeddings", None) or 512
        max_length = min(int(getattr(self.tokenizer, "model_max_length", limit) or limit), int(limit))
        for start in range(0, len(texts), _EMBED_BATCH):
            chunk = texts[start:start + _EMBED_BATCH]
            enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            enc = {k: v.to(self.model.device) for k, v in enc.items()}
            with torch.inference_mode():
                out = self.model(**enc)
            hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors.extend(pooled.float().cpu().tolist())
            tokens += int(enc["attention_mask"].sum())
        return vectors, tokens

    def _predict_table(self, df, params):
        texts = text_column(df, "prompt" if self.pipeline_task == TEXT_GENERATION else "text")
        if self.pipeline_task == TEXT_CLASSIFICATION:
            import pandas as pd

            results = self.pipeline(texts, truncation=True) if texts else []
            rows = [r[0] if isinstance(r, list) else r for r in results]
            return pd.DataFrame({"label": [r["label"] for r in rows],
                                 "score": [float(r["score"]) for r in rows]}, index=df.index)
        if self.pipeline_task == FEATURE_EXTRACTION:
            return self._encode(texts)[0]
        out = []
        for text in texts:
            prompt_ids, settings = self._prepare_generation({"prompt": text}, params)
            out.append(self._finish(self._generate(prompt_ids, settings), settings)[0])
        return out


# ------------------------------------------------------------------------------------------
# Helpers: settings, generate kwargs, stop strings, streaming
# ------------------------------------------------------------------------------------------

def _settings(defaults: dict, params: dict | None, payload: dict) -> dict:
    """Effective generation settings: flavor defaults < params < fields of the request payload."""
    settings = {"max_tokens": defaults.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS),
                "temperature": _default_temperature(defaults),
                "top_p": defaults.get("top_p", 1.0), "stop": None}
    for source in (params or {}, payload):
        for name in ("max_tokens", "temperature", "top_p", "stop"):
            if source.get(name) is not None:
                settings[name] = source[name]
        if source is payload and payload.get("max_completion_tokens") is not None:
            settings["max_tokens"] = payload["max_completion_tokens"]
    mt, temp, top_p, stop = settings["max_tokens"], settings["temperature"], settings["top_p"], settings["stop"]
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        raise SchemaMismatchError(f"max_tokens must be a positive integer, got {mt!r}")
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or temp < 0:
        raise SchemaMismatchError(f"temperature must be a number >= 0, got {temp!r}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
        raise SchemaMismatchError(f"top_p must be a number in (0, 1], got {top_p!r}")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) for s in stop)):
        raise SchemaMismatchError(f"stop must be a string or a list of strings, got {stop!r}")
    settings["stop"] = [s for s in stop or () if s] or None
    settings["extra"] = {k: v for k, v in defaults.items()
                         if k not in ("max_new_tokens", "temperature", "top_p", "do_sample")}
    return settings


def _generate_kwargs(model, tokenizer, settings: dict) -> dict:
    config = copy.deepcopy(model.generation_config)
    config.max_new_tokens = settings["max_tokens"]
    config.max_length = None
    if settings["temperature"] > 0:
        config.do_sample = True
        config.temperature = float(settings["temperature"])
        config.top_p = float(settings["top_p"])
    else:  # greedy: clear sampling knobs so generate does not warn about them
        config.do_sample = False
        config.temperature = None
        config.top_p = None
        config.top_k = None
        config.min_p = None
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if settings["stop"]:
        config.stop_strings = list(settings["stop"])
    for name, value in settings["extra"].items():  # other generate options saved with the model
        setattr(config, name, value)
    return {"generation_config": config, "tokenizer": tokenizer}


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _find_stop(text: str, stop: list[str] | None) -> int | None:
    hits = [i for i in (text.find(s) for s in stop or ()) if i >= 0]
    return min(hits) if hits else None


def _held_back(text: str, stop: list[str] | None) -> int:
    """How many trailing characters might start a stop string (kept back while streaming)."""
    keep = 0
    for s in stop or ():
        for n in range(min(len(s) - 1, len(text)), keep, -1):
            if text.endswith(s[:n]):
                keep = n
                break
    return keep


def _cancel_criteria(cancel: threading.Event):
    transformers = require("transformers", EXTRA)
    torch = require("torch", EXTRA)

    class _Cancelled(transformers.StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    return transformers.StoppingCriteriaList([_Cancelled()])


def _stream(model: _PipelineModel, prompt_ids, settings: dict) -> Iterator[dict]:
    """Generate in a background thread; yield ``{"delta": ...}`` chunks, then usage.

    The thread always ends: closing the generator early cancels generation at the next token,
    and an exception raised inside ``generate`` is re-raised here.
    """
    transformers = require("transformers", EXTRA)
    streamer = transformers.TextIteratorStreamer(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel = threading.Event()
    result: dict[str, Any] = {}

    def work():
        try:
            result["ids"] = model._generate(prompt_ids, settings, streamer=streamer, cancel=cancel)
        except BaseException as exc:  # handed to the consumer below
            result["error"] = exc
            streamer.end()

    thread = threading.Thread(target=work, name="hangar-transformers-generate", daemon=True)
    thread.start()
    stop = settings["stop"]
    text, sent = "", 0
    try:
        for piece in streamer:
            text += piece
            cut = _find_stop(text, stop)
            if cut is not None:
                text = text[:cut]
                cancel.set()
                break
            ready = len(text) - _held_back(text, stop)
            if ready > sent:
                yield {"delta": text[sent:ready]}
                sent = ready
    finally:
        cancel.set()
        thread.join()
    if "error" in result:
        exc = result["error"]
        if isinstance(exc, HangarError):
            raise exc
        raise ModelExecutionError(f"The model failed while generating: {type(exc).__name__}: {exc}") from exc
    new_ids = result.get("ids", [])
    if len(text) > sent:
        yield {"delta": text[sent:]}
    _, reason = model._finish(new_ids, settings, text=model.tokenizer.decode(new_ids, skip_special_tokens=True))
    yield {"delta": "", "finish_reason": reason, "usage": llm.usage(int(prompt_ids.shape[1]), len(new_ids))}
