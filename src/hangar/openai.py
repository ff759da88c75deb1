"""``hangar.openai``: package a model served by any OpenAI-compatible API.

Chat, completions and embeddings against OpenAI itself or any server that speaks its REST API
(a hosted provider, vLLM, llama.cpp, ...). The package stores the model name, task, base URL
and the *name* of the environment variable holding the key; the key is read at load time::

    import hangar.openai, hangar.pyfunc

    hangar.openai.save_model("assistant", "gpt-4o-mini", system_prompt="Be brief.")
    model = hangar.pyfunc.load_model("assistant")          # reads $OPENAI_API_KEY
    model.predict({"messages": [{"role": "user", "content": "Hi"}]})

The ``openai`` library itself is imported lazily by the flavor (``hangar.errors.require``), so
this module's name shadows nothing.
"""

from __future__ import annotations

import os

from hangar._logging import make_log_model
from hangar.models.flavors.openai import OpenAIModel, OpenAISettings, default_signature

__all__ = ["OpenAIModel", "OpenAISettings", "default_signature", "load_model", "log_model", "save_model"]


def save_model(path, model: str, task: str = "llm/v1/chat", *, base_url: str | None = None,
               api_key_env: str | None = "OPENAI_API_KEY", system_prompt: str | None = None,
               default_params: dict | None = None, headers_env: dict[str, str] | None = None,
               timeout: float = 60, max_retries: int = 3, signature=None, input_example=None,
               pip_requirements=None, extra_pip_requirements=None, metadata=None):
    """Save a package at ``path`` that calls ``model`` on the API at ``base_url``.

    ``task`` is ``llm/v1/chat``, ``llm/v1/completions`` or ``llm/v1/embeddings``.
    ``api_key_env`` names the environment variable holding the key (``None``: send no key);
    ``headers_env`` maps extra header names to the variables holding their values.
    ``system_prompt`` (chat only) is prepended to every conversation. ``default_params``
    (e.g. ``{"temperature": 0.2}``) go with every request; a payload's extra fields and the
    ``params`` argument of ``predict`` override them. ``timeout`` (seconds) and ``max_retries``
    (on connection errors, 408, 409, 429 and 5xx, honouring ``Retry-After``) configure the
    client. Without ``signature`` the task's default one is used (see ``default_signature``).
    """
    from hangar.models.flavors import openai as flavor

    return flavor.save_model(
        path, model, task, base_url=base_url, api_key_env=api_key_env, system_prompt=system_prompt,
        default_params=default_params, headers_env=headers_env, timeout=timeout,
        max_retries=max_retries, signature=signature, input_example=input_example,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
        metadata=metadata,
    )


def load_model(model_uri: str | os.PathLike, *, verify: bool = True, resolver=None) -> OpenAIModel:
    """Load a package (a path, ``models:/...`` or ``runs:/...``) as an :class:`OpenAIModel`.

    The object exposes the configured ``client`` (an ``openai.OpenAI``), the saved
    ``settings``, and ``predict`` / ``predict_stream`` without the signature checks that
    ``hangar.pyfunc.load_model`` adds.
    """
    from hangar.models.flavors import openai as flavor
    from hangar.models.package import open_package
    from hangar.models.resolver import resolve_model_uri

    path = resolve_model_uri(model_uri, resolver)
    return flavor.load_model(path, open_package(path, verify=verify))


log_model = make_log_model(save_model)
