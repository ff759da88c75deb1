"""``hangar.transformers``: save a Hugging Face ``transformers`` pipeline as a package, load it back.

This module shares its name with the library it wraps but never imports it: the flavor module
does, with absolute imports, so ``import transformers`` keeps meaning the library everywhere.
"""

from __future__ import annotations

import os

from hangar._logging import make_log_model
from hangar.models.flavors.transformers import DEFAULT_TASK

__all__ = ["DEFAULT_TASK", "load_model", "log_model", "save_model"]


def save_model(path, model, *, task=DEFAULT_TASK, tokenizer=None, pipeline_task=None, generation_params=None,
               signature=None, input_example=None, pip_requirements=None, extra_pip_requirements=None,
               metadata=None):
    """Save ``model`` (a ``transformers.Pipeline``, a ``(model, tokenizer)`` pair or a local model
    directory) as a package at ``path``, with the weights as safetensors under ``<path>/model``.

    Text generation answers ``llm/v1/chat`` when the tokenizer has a chat template (else
    ``llm/v1/completions``); pass ``task="llm/v1/completions"`` to take ``{"prompt": ...}``
    instead. Feature extraction answers ``llm/v1/embeddings`` (mean-pooled); text classification
    takes a table with a ``text`` column and returns ``label``/``score``. ``task=None`` asks for
    the table view of any pipeline. ``generation_params`` sets the generation defaults
    (``max_new_tokens``, ``temperature``, ``top_p``, other ``generate`` options); each request may
    override them with the params ``max_tokens``, ``temperature``, ``top_p`` and ``stop``.
    """
    from hangar.models.flavors import transformers as flavor

    return flavor.save_model(
        path, model, task=task, tokenizer=tokenizer, pipeline_task=pipeline_task,
        generation_params=generation_params, signature=signature, input_example=input_example,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements, metadata=metadata,
    )


def load_model(model_uri: str | os.PathLike, *, resolver=None):
    """The ``transformers.Pipeline`` saved in a package (a path, ``models:/...`` or ``runs:/...``)."""
    from hangar.models.flavors import transformers as flavor
    from hangar.models.resolver import resolve_model_uri

    return flavor.load_model(resolve_model_uri(model_uri, resolver))


log_model = make_log_model(save_model)
