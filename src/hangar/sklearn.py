"""``hangar.sklearn``: save a fitted scikit-learn estimator or pipeline; load it back.

The estimator is pickled with cloudpickle. Unpickling runs code: load only packages you
trust. Hangar verifies every file's checksum before it unpickles, so a package altered after
it was saved is refused.
"""

from __future__ import annotations

import os

from hangar._logging import make_log_model

__all__ = ["load_model", "log_model", "save_model"]


def save_model(path, sk_model, *, input_example=None, signature=None, pip_requirements=None,
               extra_pip_requirements=None, metadata=None, pyfunc_predict_fn="predict"):
    """Save ``sk_model`` as a package at ``path``; returns the package path.

    ``pyfunc_predict_fn`` is the method that ``hangar.pyfunc.load_model(...).predict`` calls
    (``predict``, ``predict_proba``, ``transform``...). The requirements pin the installed
    scikit-learn, cloudpickle and numpy (plus any library the pickle references).
    """
    from hangar.models.flavors import sklearn as flavor

    return flavor.save_model(
        path, sk_model, input_example=input_example, signature=signature,
        pip_requirements=pip_requirements, extra_pip_requirements=extra_pip_requirements,
        metadata=metadata, pyfunc_predict_fn=pyfunc_predict_fn,
    )


def load_model(model_uri: str | os.PathLike, *, resolver=None):
    """The estimator saved in a package (a path, ``models:/...`` or ``runs:/...``)."""
    from hangar.models.flavors import sklearn as flavor
    from hangar.models.resolver import resolve_model_uri

    return flavor.load_model(resolve_model_uri(model_uri, resolver))


log_model = make_log_model(save_model)
