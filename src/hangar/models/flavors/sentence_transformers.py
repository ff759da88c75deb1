"""Sentence embeddings: a ``sentence_transformers.SentenceTransformer`` saved whole, loaded offline.

By default the package answers ``llm/v1/embeddings`` (``{"input": str | [str]}`` → an OpenAI
embeddings response with token usage). Saved with ``task=None`` it takes a table with one text
column instead and returns one vector (a list of floats) per row.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, ModelPackageError, require
from hangar.models import llm_payloads as llm
from hangar.models.common import describe_package
from hangar.models.environment import pin
from hangar.models.inputs import text_column
from hangar.models.llm_payloads import embedding_texts
from hangar.models.package import PackageWriter

FLAVOR_NAME = "sentence_transformers"
EXTRA = "sentence-transformers"
MODEL_DIR = "model"
EMBEDDINGS = "llm/v1/embeddings"


class _DefaultTask:
    """``task`` left out: ``llm/v1/embeddings`` (``task=None`` means the table view)."""

    def __repr__(self) -> str:
        return "DEFAULT_TASK"


DEFAULT_TASK = _DefaultTask()


def save_model(path, model, *, task=DEFAULT_TASK, signature=None, input_example: Any = None,
               pip_requirements=None, extra_pip_requirements=None, metadata: dict | None = None):
    """Save a ``SentenceTransformer`` (or the local directory of one) as a package at ``path``."""
    st = require("sentence_transformers", EXTRA)
    directory = None
    if isinstance(model, (str, os.PathLike)):
        directory = Path(model).expanduser()
        if not directory.is_dir():
            raise InvalidArgumentError(
                f"model={str(model)!r} is not a local directory. Hangar saves models without the "
                "network: download the model first and pass its directory, or pass a SentenceTransformer"
            )
        model = st.SentenceTransformer(str(directory), device="cpu", local_files_only=True)
    if not isinstance(model, st.SentenceTransformer):
        raise InvalidArgumentError(
            f"model must be a sentence_transformers.SentenceTransformer or a local directory; got {type(model).__name__}"
        )
    if task is DEFAULT_TASK:
        task = EMBEDDINGS
    if task not in (EMBEDDINGS, None):
        raise InvalidArgumentError(f"task={task!r}: a sentence-transformers model answers {EMBEDDINGS!r} or None (table view)")
    if signature is None:
        signature = _default_signature(task, input_example)
    with PackageWriter(path) as w:
        try:
            model.save(str(w.dir / MODEL_DIR), safe_serialization=True, create_model_card=False)
        except TypeError:  # older releases without these keywords
            model.save(str(w.dir / MODEL_DIR))
        payload = describe_package(
            w, task=task, signature=signature, input_example=input_example,
            requirements=pin("sentence-transformers", "transformers", "torch", "safetensors", "tokenizers"),
            pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
            metadata=metadata,
        )
        if payload != (task is not None):
            raise InvalidArgumentError(
                "input_example does not match the task: pass {'input': [...]} for llm/v1/embeddings, "
                "or table rows (a text column) for task=None"
            )
        w.add_flavor(FLAVOR_NAME, data=MODEL_DIR, model_name=_model_name(model, directory),
                     embedding_dimension=_dimension(model), max_seq_length=getattr(model, "max_seq_length", None),
                     sentence_transformers_version=st.__version__)
        w.add_pyfunc(__name__, streamable=False, input_mode="payload" if payload else "dataframe")
    return w.path


def _default_signature(task, input_example):
    from hangar.models.infer import infer_schema
    from hangar.models.signature import ColSpec, ModelSignature, Schema

    if input_example is not None:
        return ModelSignature(inputs=infer_schema(input_example, payload=task is not None))
    if task == EMBEDDINGS:
        return ModelSignature(inputs=Schema([ColSpec({"type": "any"}, name="input")]))
    return ModelSignature(inputs=Schema([ColSpec({"type": "string"}, name="text")]))


def _dimension(model) -> int | None:
    fn = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    try:
        return int(fn()) if fn else None
    except Exception:  # some modules cannot tell before encoding
        return None


def _model_name(model, source: Path | None) -> str:
    card = getattr(model, "model_card_data", None)
    name = getattr(card, "model_id", None) or getattr(card, "base_model", None) or (source.name if source else "")
    return Path(str(name)).name or "hangar"



# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------

def _flavor_conf(manifest) -> dict:
    conf = manifest.flavors.get(FLAVOR_NAME)
    if conf is None:
        raise ModelPackageError(f"This package has no '{FLAVOR_NAME}' flavor (it has {list(manifest.flavors)})")
    return conf


def _load(model_dir: Path):
    st = require("sentence_transformers", EXTRA)
    return st.SentenceTransformer(str(model_dir), local_files_only=True)


def load_model(path, manifest=None):
    """The ``SentenceTransformer`` saved in the package at ``path``."""
    from hangar.models.package import open_package

    manifest = manifest or open_package(path)
    return _load(Path(path) / _flavor_conf(manifest).get("data", MODEL_DIR))


def _load_pyfunc(path: Path, manifest) -> _EmbeddingModel:
    conf = _flavor_conf(manifest)
    return _EmbeddingModel(_load(Path(path) / conf.get("data", MODEL_DIR)), conf, manifest.task)


class _EmbeddingModel:
    def __init__(self, model, conf: dict, task: str | None):
        self.model = model
        self.task = task
        self.model_name = conf.get("model_name") or "hangar"

    def unwrap(self):
        return self.model

    def predict(self, model_input, params=None):
        if self.task is None:
            return self._encode(text_column(model_input))
        batch, single = llm.as_batch(model_input)
        out = [self._embeddings(p) for p in batch]
        return out[0] if single else out

    def _embeddings(self, payload) -> dict:
        texts = embedding_texts(payload.get("input") if isinstance(payload, dict) else payload)
        vectors = self._encode(texts)
        return llm.embeddings_response(vectors, model=self.model_name, usage_=llm.usage(self._count_tokens(texts), 0))

    def _encode(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        array = self.model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
        return array.astype("float32").tolist()

    def _count_tokens(self, texts: list[str]) -> int:
        if not texts:
            return 0
        features = (getattr(self.model, "preprocess", None) or self.model.tokenize)(texts)
        mask = features.get("attention_mask")
        return int(mask.sum()) if mask is not None else sum(len(ids) for ids in features["input_ids"])
