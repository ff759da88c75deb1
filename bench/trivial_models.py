"""Trivial pyfunc models used by bench_startup.py, bench_serving.py and bench_batch.py.

Each model returns the length of each input string. There are two variants per
library:

* ``HangarLenModel`` / ``MlflowLenModel``: ``predict(self, context, model_input,
  params=None)`` with no type hints. Both libraries pass a pandas DataFrame.
* ``HangarListLenModel`` / ``MlflowListLenModel``: ``predict`` is annotated
  ``model_input: list[str]`` and ``-> list[int]`` (MLflow's type-hint idiom).
  Both libraries then pass a plain ``list[str]``. Hangar never imports pandas on
  this path. MLflow validates the input against the type hint instead of the
  DataFrame schema.

The classes live in this importable module (bench/ is put on PYTHONPATH in the
benchmark's child processes) so that both libraries pickle them by reference, and
loading a model imports this small file rather than unpickling a class by value.

Only one of the two libraries is installed in each benchmark virtualenv, so the
classes are created on first attribute access (PEP 562 ``__getattr__``): asking
for ``HangarLenModel`` imports ``hangar.pyfunc`` and nothing else, and asking for
``MlflowLenModel`` imports ``mlflow.pyfunc`` and nothing else. Each class can be
found again by name (``trivial_models.HangarLenModel``), which is all that
pickling by reference needs.

``HangarSpinModel`` / ``MlflowSpinModel`` (dataframe variant, used by bench_batch.py's
scaling case) are CPU-bound instead: each row costs ``SPIN_ITERS`` iterations of a
pure-Python linear congruential step (about 1 ms here), holding the GIL throughout, and
the prediction is the generator's last value seeded by the string's length.

This module deliberately does not use ``from __future__ import annotations``.
The type hints of the list variant are set explicitly as real ``list[str]`` /
``list[int]`` objects on the function's ``__annotations__``. That way
``typing.get_type_hints`` resolves them for the dynamically created classes
without evaluating any strings.
"""

__all__ = ["HangarLenModel", "MlflowLenModel", "HangarListLenModel", "MlflowListLenModel", "HangarSpinModel",
           "MlflowSpinModel", "SPIN_ITERS", "lengths", "spin"]

# Iterations of spin() per row: about 1 ms of pure-Python work on the 2-vCPU bench VM.
SPIN_ITERS = 7000

# class name -> (library, variant)
_CLASSES = {
    "HangarLenModel": ("hangar", "dataframe"),
    "MlflowLenModel": ("mlflow", "dataframe"),
    "HangarListLenModel": ("hangar", "list"),
    "MlflowListLenModel": ("mlflow", "list"),
    "HangarSpinModel": ("hangar", "spin"),
    "MlflowSpinModel": ("mlflow", "spin"),
}


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


def spin(seed, iterations=SPIN_ITERS):
    """``iterations`` steps of a linear congruential generator: GIL-holding pure-Python work."""
    x = seed
    for _ in range(iterations):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def _predict_function(variant):
    """A fresh ``predict`` function for one class (MLflow wraps ``predict`` per class)."""
    if variant == "list":

        def predict(self, context, model_input, params=None):
            if not isinstance(model_input, list):
                # Fail loudly: the benchmark must measure the list path, not a DataFrame one.
                raise TypeError(f"expected a list (type-hint path), got {type(model_input).__name__}")
            return [len(s) for s in model_input]

        predict.__annotations__ = {"model_input": list[str], "return": list[int]}
    elif variant == "spin":

        def predict(self, context, model_input, params=None):
            return [spin(n) for n in lengths(model_input)]

    else:

        def predict(self, context, model_input, params=None):
            return lengths(model_input)

    return predict


def _make(name):
    try:
        lib, variant = _CLASSES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    if lib == "hangar":
        from hangar.pyfunc import PythonModel
    else:
        from mlflow.pyfunc import PythonModel
    predict = _predict_function(variant)
    predict.__module__ = __name__
    predict.__qualname__ = f"{name}.predict"
    doc = "Returns the length of each input string."
    if variant == "list":
        doc += " ``predict`` is type-hinted ``list[str] -> list[int]``."
    elif variant == "spin":
        doc = "Spends about 1 ms of GIL-holding Python work on each input string (``spin``)."
    cls = type(name, (PythonModel,), {"__module__": __name__, "__qualname__": name, "__doc__": doc,
                                      "predict": predict})
    globals()[name] = cls
    return cls


def __getattr__(name):
    return _make(name)


def __dir__():
    return sorted({*globals(), *_CLASSES})
