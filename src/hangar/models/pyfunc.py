"""The universal view of a package: ``predict`` and ``predict_stream`` with signature checks."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hangar.errors import (
    HangarError,
    ModelExecutionError,
    ModelPackageError,
    StreamingNotSupportedError,
    UnsupportedFormatError,
)
from hangar.models.enforce import enforce_dataframe, enforce_list, enforce_params, enforce_payload
from hangar.models.inputs import LLM_TASKS
from hangar.models.manifest import Manifest
from hangar.models.package import open_package, read_input_example


class PyFuncModel:
    """A loaded package. ``predict`` checks inputs and params against the signature first."""

    def __init__(self, impl: Any, manifest: Manifest, path: Path):
        self._impl = impl
        self.metadata = manifest
        self.path = path
        conf = manifest.pyfunc_conf or {}
        mode = conf.get("input_mode")
        if mode is None:
            info = manifest.saved_input_example_info or {}
            mode = "payload" if manifest.task in LLM_TASKS or info.get("type") == "json_object" else "dataframe"
        self.input_mode = mode

    @property
    def signature(self):
        return self.metadata.signature

    @property
    def task(self) -> str | None:
        return self.metadata.task

    @property
    def streamable(self) -> bool:
        return hasattr(self._impl, "predict_stream") and bool((self.metadata.pyfunc_conf or {}).get("streamable"))

    @property
    def input_example(self) -> Any:
        return read_input_example(self.path, self.metadata)

    def unwrap_python_model(self) -> Any:
        """The user's own object (a PythonModel, a pipeline, ...)."""
        return getattr(self._impl, "unwrap", lambda: self._impl)()

    def prepare(self, data: Any, params: dict | None = None) -> tuple[Any, dict | None]:
        """Input and params checked against the signature, in the shape the model receives."""
        sig = self.metadata.signature
        inputs = sig.inputs if sig is not None else None
        if self.input_mode == "payload":
            data = enforce_payload(data, inputs)
        elif self.input_mode == "list":
            data = enforce_list(data, inputs)
        else:
            data = enforce_dataframe(data, inputs)
        params = enforce_params(params, sig.params if sig is not None else None)
        return data, params

    def predict(self, data: Any, params: dict | None = None) -> Any:
        data, params = self.prepare(data, params)
        try:
            return self._impl.predict(data, params=params)
        except HangarError:
            raise
        except Exception as exc:
            raise ModelExecutionError(f"The model failed while predicting: {type(exc).__name__}: {exc}") from exc

    def predict_stream(self, data: Any, params: dict | None = None) -> Iterator[Any]:
        if not self.streamable:
            raise StreamingNotSupportedError(
                "This model does not support streaming (its flavor or class has no predict_stream); "
                "call predict instead"
            )
        data, params = self.prepare(data, params)
        return self._impl.predict_stream(data, params=params)

    def __repr__(self) -> str:
        flavors = ", ".join(self.metadata.flavors)
        return f"<PyFuncModel {self.path} flavors=[{flavors}] task={self.task}>"


FLAVOR_ENTRY_POINTS = "hangar.flavors"
_BUILTIN_PREFIX = "hangar.models.flavors."


def _is_registered_flavor(module_name: str) -> bool:
    """Built-in flavors, or modules a distribution registers as a flavor (as simonw/llm does
    for plugins): a manifest cannot make Hangar import an arbitrary module."""
    if module_name.startswith(_BUILTIN_PREFIX) and module_name.count(".") == 3:
        return True
    from importlib.metadata import entry_points

    return any(ep.value.split(":")[0] == module_name for ep in entry_points(group=FLAVOR_ENTRY_POINTS))


def load_pyfunc(path: str | os.PathLike, verify: bool = True) -> PyFuncModel:
    """Open a local package directory and load its ``python_function`` view."""
    root = Path(path)
    manifest = open_package(root, verify=verify)
    conf = manifest.pyfunc_conf
    if conf is None:
        raise ModelPackageError(
            f"The package at {root} has no python_function flavor (it has {list(manifest.flavors)}); "
            "load it with its own flavor's load_model"
        )
    module_name = conf.get("loader_module")
    if not module_name:
        raise ModelPackageError(f"The package at {root}: python_function has no loader_module")
    if not _is_registered_flavor(module_name):
        raise UnsupportedFormatError(
            f"The package at {root} is loaded by {module_name!r}, which is not a registered Hangar "
            "flavor (was it written by another tool?). Hangar only imports loaders registered in the "
            f"'{FLAVOR_ENTRY_POINTS}' entry-point group; install the package that provides the flavor"
        )
    try:
        loader = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnsupportedFormatError(
            f"The package at {root} needs the flavor module {module_name!r}, which this Hangar "
            f"does not have ({exc}). Upgrade Hangar or install the extra for that flavor."
        ) from None
    impl = loader._load_pyfunc(root, manifest)
    return PyFuncModel(impl, manifest, root)
