"""``hangar.pyfunc``: save any Python model, load any package as ``predict`` / ``predict_stream``."""

from __future__ import annotations

import os

from hangar._logging import make_log_model
from hangar.models.pyfunc import PyFuncModel, load_pyfunc
from hangar.models.python_model import PythonModel, PythonModelContext

__all__ = ["PyFuncModel", "PythonModel", "PythonModelContext", "load_model", "log_model", "save_model"]


def save_model(path, python_model, *, artifacts=None, input_example=None, signature=None,
               pip_requirements=None, extra_pip_requirements=None, code_paths=None,
               model_config=None, task=None, metadata=None):
    """Save a custom model as a package at ``path``.

    ``python_model`` is a :class:`PythonModel` instance (pickled with cloudpickle), a plain
    callable, or the path of a ``.py`` file that calls ``hangar.models.set_model`` (model from
    code: no pickle). ``task`` is ``llm/v1/chat``, ``llm/v1/completions`` or
    ``llm/v1/embeddings`` for models that take OpenAI-style payloads.
    """
    from hangar.models.flavors import python_model as flavor

    return flavor.save_model(
        path, python_model, artifacts=artifacts, input_example=input_example, signature=signature,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
        code_paths=code_paths, model_config=model_config, task=task, metadata=metadata,
    )


def load_model(model_uri: str | os.PathLike, *, verify: bool = True, resolver=None) -> PyFuncModel:
    """Load any package (a path, ``models:/...`` or ``runs:/...``) as a :class:`PyFuncModel`."""
    from hangar.models.resolver import resolve_model_uri

    return load_pyfunc(resolve_model_uri(model_uri, resolver), verify=verify)


log_model = make_log_model(save_model)
