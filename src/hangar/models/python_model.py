"""The base class for custom models, ported unchanged from MLflow's ``PythonModel``."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PythonModelContext:
    """What ``load_context`` and ``predict`` receive: artifact paths and the model config."""

    artifacts: dict[str, str] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)


class PythonModel:
    """Subclass and implement ``predict``; optionally ``load_context`` and ``predict_stream``."""

    def load_context(self, context: PythonModelContext) -> None:
        """Called once after loading, before the first predict (load weights, clients...)."""

    def predict(self, context: PythonModelContext, model_input: Any, params: dict | None = None) -> Any:
        raise NotImplementedError("A PythonModel must implement predict(self, context, model_input, params=None)")

    def predict_stream(self, context: PythonModelContext, model_input: Any,
                       params: dict | None = None) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} does not implement predict_stream")


def overrides_stream(model: Any) -> bool:
    method = getattr(type(model), "predict_stream", None)
    return method is not None and method is not PythonModel.predict_stream


_code_model: contextvars.ContextVar = contextvars.ContextVar("hangar_code_model")


def set_model(model: Any) -> None:
    """Called by a "model from code" file to name the object it defines (as in MLflow)."""
    holder = _code_model.get(None)
    if holder is None:
        from hangar.errors import InvalidArgumentError

        raise InvalidArgumentError(
            "set_model() is only meaningful inside a model code file being saved or loaded by Hangar"
        )
    holder.append(model)


def run_model_code(path) -> Any:
    """Execute a model code file and return the object it passed to ``set_model``."""
    import runpy

    from hangar.errors import ModelPackageError

    holder: list = []
    token = _code_model.set(holder)
    try:
        runpy.run_path(str(path), run_name="__hangar_model__")
    finally:
        _code_model.reset(token)
    if not holder:
        raise ModelPackageError(
            f"The model code file {path} never called hangar.models.set_model(<model>); add that "
            "call at the end of the file"
        )
    return holder[-1]
