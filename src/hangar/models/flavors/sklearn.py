"""scikit-learn estimators and pipelines, serialized with cloudpickle.

Trust: unpickling runs code. A package holding a pickled estimator is as trusted as code from
whoever wrote it: load only packages you trust. Hangar verifies every file's checksum against
the manifest before it unpickles anything, so a package changed after it was saved is refused,
but a checksum cannot tell you whether the author was honest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hangar.errors import InvalidArgumentError, ModelPackageError
from hangar.models.common import describe_package
from hangar.models.environment import merge_requirements, modules_in_pickle, pin, requirements_for_modules
from hangar.models.package import PackageWriter

FLAVOR_NAME = "sklearn"
MODEL_FILE = "model.pkl"
SERIALIZATION_FORMAT = "cloudpickle"
DEFAULT_PREDICT_FN = "predict"


def save_model(path, sk_model, *, input_example: Any = None, signature=None, pip_requirements=None,
               extra_pip_requirements=None, metadata: dict | None = None,
               pyfunc_predict_fn: str = DEFAULT_PREDICT_FN):
    """Save a fitted estimator (or pipeline) as a package at ``path``.

    ``pyfunc_predict_fn`` names the method the ``python_function`` view calls: ``predict``,
    ``predict_proba``, ``predict_log_proba``, ``decision_function``, ``transform``...
    Without a ``signature``, one is inferred from ``input_example`` and from what that method
    returns for it.
    """
    _check_estimator(sk_model, pyfunc_predict_fn)
    import cloudpickle

    with PackageWriter(path) as w:
        data = cloudpickle.dumps(sk_model)
        (w.dir / MODEL_FILE).write_bytes(data)
        if signature is None and input_example is not None:
            signature = _infer_signature(sk_model, pyfunc_predict_fn, input_example)
        modules = modules_in_pickle(data) - {"hangar"}
        reqs = merge_requirements(requirements_for_modules(modules), pin("scikit-learn", "cloudpickle", "numpy"))
        describe_package(
            w, task=None, signature=signature, input_example=input_example, requirements=reqs,
            pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
            metadata=metadata,
        )
        w.add_flavor(FLAVOR_NAME, pickled_model=MODEL_FILE, serialization_format=SERIALIZATION_FORMAT,
                     sklearn_version=_sklearn_version(), code=None)
        w.add_pyfunc(__name__, input_mode="dataframe", predict_fn=pyfunc_predict_fn,
                     model_path=MODEL_FILE)
    return w.path


def _check_estimator(sk_model: Any, predict_fn: str) -> None:
    if isinstance(sk_model, type):
        raise InvalidArgumentError(
            f"sk_model is the class {sk_model.__name__}, not a fitted instance; pass the estimator object"
        )
    if not isinstance(predict_fn, str) or not predict_fn.isidentifier():
        raise InvalidArgumentError(f"pyfunc_predict_fn must be a method name such as 'predict', got {predict_fn!r}")
    if not callable(getattr(sk_model, predict_fn, None)):
        raise InvalidArgumentError(
            f"{type(sk_model).__name__} has no method {predict_fn!r} (pyfunc_predict_fn); "
            "use one it has, such as 'predict', 'predict_proba' or 'transform'"
        )


def _sklearn_version() -> str | None:
    import importlib.metadata as md

    try:
        return md.version("scikit-learn")
    except md.PackageNotFoundError:
        return None


def _infer_signature(sk_model, predict_fn: str, input_example: Any):
    """Inputs from the example; outputs from running ``predict_fn`` on it (best effort)."""
    from hangar.models.infer import infer_signature
    from hangar.models.inputs import to_dataframe

    output = None
    try:
        output = _call(sk_model, predict_fn, to_dataframe(input_example))
    except Exception:  # noqa: BLE001 - an example the model rejects still gives an input schema
        output = None
    try:
        return infer_signature(input_example, output, payload=False)
    except InvalidArgumentError:
        return infer_signature(input_example, payload=False)


def _call(sk_model, predict_fn: str, df):
    """Call the estimator the way it was fitted: by column name if it knows names, else by
    position; one column for a model fitted on a 1-d input (a text pipeline) goes in as 1-d."""
    if getattr(sk_model, "feature_names_in_", None) is None and hasattr(df, "to_numpy"):
        if df.shape[1] == 1 and getattr(sk_model, "n_features_in_", None) is None:
            df = df.iloc[:, 0].to_numpy()
        else:
            df = df.to_numpy()
    return getattr(sk_model, predict_fn)(df)


class _SklearnPyfunc:
    def __init__(self, sk_model, predict_fn: str):
        self.sk_model = sk_model
        self.predict_fn = predict_fn

    def unwrap(self):
        return self.sk_model

    def predict(self, model_input, params=None):
        return _call(self.sk_model, self.predict_fn, model_input)


def _read_model(path: Path, file_name: str, serialization_format: str):
    if serialization_format != SERIALIZATION_FORMAT:
        raise ModelPackageError(
            f"The sklearn model in {path} is stored as {serialization_format!r}; this Hangar reads "
            f"{SERIALIZATION_FORMAT!r} only. Upgrade Hangar."
        )
    import cloudpickle

    model_file = path / file_name
    try:
        with open(model_file, "rb") as f:
            return cloudpickle.load(f)
    except FileNotFoundError:
        raise ModelPackageError(f"The package at {path} has no {file_name}") from None
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ModelPackageError(
            f"Could not unpickle the scikit-learn model in {path}: {exc}. Install the versions in its "
            "requirements.txt (for example with `hangar env create`)"
        ) from None


def _load_pyfunc(path: Path, manifest) -> _SklearnPyfunc:
    conf = manifest.pyfunc_conf or {}
    flavor = manifest.flavors.get(FLAVOR_NAME) or {}
    model = _read_model(Path(path), conf.get("model_path") or flavor.get("pickled_model", MODEL_FILE),
                        flavor.get("serialization_format", SERIALIZATION_FORMAT))
    predict_fn = conf.get("predict_fn", DEFAULT_PREDICT_FN)
    if not callable(getattr(model, predict_fn, None)):
        raise ModelPackageError(f"The model in {path} ({type(model).__name__}) has no method {predict_fn!r}")
    return _SklearnPyfunc(model, predict_fn)


def load_model(path, manifest=None):
    """The estimator itself, after the package's checksums are verified."""
    from hangar.models.package import open_package

    path = Path(path)
    manifest = manifest or open_package(path)
    flavor = manifest.flavors.get(FLAVOR_NAME)
    if flavor is None:
        raise ModelPackageError(
            f"The package at {path} has no sklearn flavor (it has {list(manifest.flavors)}); "
            "load it with hangar.pyfunc.load_model"
        )
    return _read_model(path, flavor.get("pickled_model", MODEL_FILE),
                       flavor.get("serialization_format", SERIALIZATION_FORMAT))
