"""Trivial pyfunc models used by bench_startup.py.

Each model returns the length of each input string. The classes live in this
importable module (bench/ is put on PYTHONPATH in the benchmark's child
processes) so that both libraries pickle them by reference, and loading a model
imports this small file rather than unpickling a class by value.

Only one of the two libraries is installed in each benchmark virtualenv, so the
classes are created on first attribute access (PEP 562 ``__getattr__``): asking
for ``HangarLenModel`` imports ``hangar.pyfunc`` and nothing else, and asking for
``MlflowLenModel`` imports ``mlflow.pyfunc`` and nothing else. Either class can
be found again by name (``trivial_models.HangarLenModel``), which is all that
pickling by reference needs.
"""

from __future__ import annotations

__all__ = ["HangarLenModel", "MlflowLenModel", "lengths"]


def lengths(model_input):
    """Length of each input string.

    Accepts a list/tuple of strings, a pandas Series, or a pandas DataFrame
    (first column is used) -- MLflow turns a list input into a one-column
    DataFrame when the model has a column-based signature.
    """
    if hasattr(model_input, "iloc") and hasattr(model_input, "columns"):  # DataFrame
        model_input = model_input.iloc[:, 0]
    if hasattr(model_input, "tolist"):  # Series / ndarray
        model_input = model_input.tolist()
    if isinstance(model_input, str):
        model_input = [model_input]
    return [len(s) for s in model_input]


def _predict(self, context, model_input, params=None):
    return lengths(model_input)


def _make(name):
    if name == "HangarLenModel":
        from hangar.pyfunc import PythonModel
    elif name == "MlflowLenModel":
        from mlflow.pyfunc import PythonModel
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = type(
        name,
        (PythonModel,),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": "Returns the length of each input string.",
            "predict": _predict,
        },
    )
    globals()[name] = cls
    return cls


def __getattr__(name):
    return _make(name)
