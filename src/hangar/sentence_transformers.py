"""``hangar.sentence_transformers``: save a ``SentenceTransformer`` as a package, load it back.

This module shares its name with the library it wraps but never imports it: the flavor module
does, with absolute imports, so ``import sentence_transformers`` keeps meaning the library.
"""

from __future__ import annotations

import os

from hangar._logging import make_log_model
from hangar.models.flavors.sentence_transformers import DEFAULT_TASK

__all__ = ["DEFAULT_TASK", "load_model", "log_model", "save_model"]


def save_model(path, model, *, task=DEFAULT_TASK, signature=None, input_example=None, pip_requirements=None,
               extra_pip_requirements=None, metadata=None):
    """Save ``model`` (a ``SentenceTransformer`` or the local directory of one) at ``path``.

    The package answers ``llm/v1/embeddings`` (``{"input": str | [str]}`` → an OpenAI
    embeddings response with token usage). ``task=None`` asks for the table view instead: a
    text column in, one vector (list of floats) per row out.
    """
    from hangar.models.flavors import sentence_transformers as flavor

    return flavor.save_model(
        path, model, task=task, signature=signature, input_example=input_example,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements, metadata=metadata,
    )


def load_model(model_uri: str | os.PathLike, *, resolver=None):
    """The ``SentenceTransformer`` saved in a package (a path, ``models:/...`` or ``runs:/...``)."""
    from hangar.models.flavors import sentence_transformers as flavor
    from hangar.models.resolver import resolve_model_uri

    return flavor.load_model(resolve_model_uri(model_uri, resolver))


log_model = make_log_model(save_model)
