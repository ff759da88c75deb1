"""Custom Python models: a ``PythonModel`` instance (cloudpickle) or a model code file."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, ModelPackageError
from hangar.models.common import describe_package
from hangar.models.environment import modules_in_pickle, modules_in_source, requirements_for_modules
from hangar.models.package import PackageWriter
from hangar.models.python_model import PythonModel, PythonModelContext, overrides_stream, run_model_code

PICKLE_FILE = "python_model.pkl"
CODE_FILE = "python_model.py"
ARTIFACTS_DIR = "artifacts"
CODE_DIR = "code"


def save_model(path, python_model, *, artifacts: dict[str, str] | None = None, input_example: Any = None,
               signature=None, pip_requirements=None, extra_pip_requirements=None, code_paths=None,
               model_config: dict | None = None, task: str | None = None, metadata: dict | None = None):
    """Save a custom model. ``python_model`` is a PythonModel instance, a callable, or a .py file."""
    with PackageWriter(path) as w:
        modules: set[str] = set()
        conf: dict[str, Any] = {}
        if isinstance(python_model, (str, os.PathLike)):
            src = Path(python_model)
            if not src.is_file() or src.suffix != ".py":
                raise InvalidArgumentError(
                    f"python_model={python_model!r}: a model from code must be an existing .py file "
                    "that calls hangar.models.set_model(...)"
                )
            w.copy_in(src, CODE_FILE)
            conf["python_model"] = CODE_FILE
            conf["model_code"] = True
            modules |= modules_in_source(src)
            instance = None
        else:
            instance = python_model if isinstance(python_model, PythonModel) else _wrap_callable(python_model)
            import cloudpickle

            data = cloudpickle.dumps(instance)
            (w.dir / PICKLE_FILE).write_bytes(data)
            conf["python_model"] = PICKLE_FILE
            conf["cloudpickle_version"] = cloudpickle.__version__
            modules |= modules_in_pickle(data) | {"cloudpickle"}
        local = set()
        for code in code_paths or []:
            code = Path(code)
            w.copy_in(code, f"{CODE_DIR}/{code.name}")
            modules |= modules_in_source(code)
            local.add(code.stem)
        if code_paths:
            conf["code"] = CODE_DIR
        if artifacts:
            conf["artifacts"] = {}
            for name, src in artifacts.items():
                rel = f"{ARTIFACTS_DIR}/{name}"
                w.copy_in(_local_artifact(src), rel)
                conf["artifacts"][name] = rel
        if model_config:
            conf["model_config"] = model_config
        obj = instance if instance is not None else _run_code_model(w.dir / CODE_FILE, w.dir / CODE_DIR if code_paths else None)
        streamable = overrides_stream(obj) if isinstance(obj, PythonModel) else hasattr(obj, "predict_stream")
        modules.discard("hangar")
        reqs = requirements_for_modules(modules, skip=local)
        payload = describe_package(
            w, task=task, signature=signature, input_example=input_example, requirements=reqs,
            pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
            metadata=metadata,
        )
        mode = "payload" if payload else "list" if _takes_list(obj) else "dataframe"
        w.add_pyfunc(__name__, streamable=streamable, input_mode=mode, **conf)
    return w.path


def _takes_list(model) -> bool:
    """MLflow-style type hints: ``predict(self, context, model_input: list[str], ...)`` gets a
    plain list instead of a DataFrame (and the call never imports pandas)."""
    import typing

    fn = model.fn if isinstance(model, _CallableModel) else getattr(type(model), "predict", None)
    if fn is None:
        return False
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        return False
    params = [p for p in inspect.signature(fn).parameters if p not in ("self", "context")]
    hint = hints.get(params[0]) if params else None
    return (typing.get_origin(hint) or hint) is list


def _local_artifact(src: str) -> Path:
    if "://" in str(src) and not str(src).startswith("file://"):
        raise InvalidArgumentError(
            f"Artifact {src!r}: only local files can be packaged for now; download it first"
        )
    return Path(str(src).removeprefix("file://"))


def _run_code_model(code_file: Path, code_dir: Path | None):
    with _on_path(code_dir):
        obj = run_model_code(code_file)
    return obj if hasattr(obj, "predict") or not callable(obj) else _CallableModel(obj)


class _CallableModel(PythonModel):
    """Any plain function ``f(model_input)`` (or ``f(model_input, params)``) as a PythonModel."""

    def __init__(self, fn):
        self.fn = fn
        self._takes_params = _accepts_params(fn)

    def predict(self, context, model_input, params=None):
        return self.fn(model_input, params) if self._takes_params else self.fn(model_input)


def _accepts_params(fn) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return "params" in sig.parameters or len(sig.parameters) >= 2


def _wrap_callable(obj) -> PythonModel:
    if callable(obj) and not hasattr(obj, "predict"):
        return _CallableModel(obj)
    raise InvalidArgumentError(
        f"python_model must be a hangar.pyfunc.PythonModel instance, a callable, or a path to a .py "
        f"file; got {type(obj).__name__}"
    )


class _on_path:
    def __init__(self, directory: Path | None):
        self.directory = str(directory) if directory else None

    def __enter__(self):
        if self.directory and self.directory not in sys.path:
            sys.path.insert(0, self.directory)

    def __exit__(self, *exc):
        return False


class _Loaded:
    """Adapts the user's object to the flavor contract. A list of payloads reaches a
    payload-mode PythonModel one payload at a time, as MLflow users' classes expect."""

    def __init__(self, model, context: PythonModelContext, payload_mode: bool = False):
        self.model = model
        self.context = context
        self.payload_mode = payload_mode
        self._takes_params = "params" in inspect.signature(model.predict).parameters
        if overrides_stream(model) or (not isinstance(model, PythonModel) and hasattr(model, "predict_stream")):
            self.predict_stream = self._predict_stream

    def unwrap(self):
        return self.model

    def predict(self, model_input, params=None):
        if self.payload_mode and isinstance(model_input, list):
            return [self._predict_one(p, params) for p in model_input]
        return self._predict_one(model_input, params)

    def _predict_one(self, model_input, params):
        if self._takes_params:
            return self.model.predict(self.context, model_input, params=params)
        return self.model.predict(self.context, model_input)

    def _predict_stream(self, model_input, params=None):
        return self.model.predict_stream(self.context, model_input, params=params)


def _load_pyfunc(path: Path, manifest) -> _Loaded:
    conf = manifest.pyfunc_conf
    code_dir = path / conf["code"] if conf.get("code") else None
    model_file = path / conf.get("python_model", PICKLE_FILE)
    with _on_path(code_dir):
        if conf.get("model_code"):
            model = run_model_code(model_file)
            if not hasattr(model, "predict") and callable(model):
                model = _CallableModel(model)
        else:
            import cloudpickle

            try:
                with open(model_file, "rb") as f:
                    model = cloudpickle.load(f)
            except (ModuleNotFoundError, AttributeError) as exc:
                raise ModelPackageError(
                    f"Could not unpickle the model in {path}: {exc}. The model's code is not importable "
                    "here: pass its module with code_paths=[...] when saving, or install it"
                ) from None
    context = PythonModelContext(
        artifacts={k: str(path / v) for k, v in (conf.get("artifacts") or {}).items()},
        model_config=dict(conf.get("model_config") or {}),
    )
    if hasattr(model, "load_context"):
        model.load_context(context)
    return _Loaded(model, context, payload_mode=conf.get("input_mode") == "payload")


def load_model(path, manifest=None):
    """The user's own model object, with its context loaded."""
    from hangar.models.package import open_package

    manifest = manifest or open_package(path)
    return _load_pyfunc(Path(path), manifest).model
