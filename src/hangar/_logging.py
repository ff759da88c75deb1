"""The ``log_model`` every flavor façade offers, built from its ``save_model``.

Kept here, above the package layer, so that ``hangar.models`` never imports tracking, and so
that importing a façade does not import SQLAlchemy until ``log_model`` is called.
"""

from __future__ import annotations

import dataclasses
import functools


def make_log_model(save_model):
    @functools.wraps(save_model, assigned=("__module__",))
    def log_model(name: str, *args, params: dict | None = None, tags: dict | None = None,
                  run_id: str | None = None, registered_model_name: str | None = None, **kwargs):
        from hangar.tracking.logged_models import log_model as log

        info = log(save_model, name, *args, params=params, tags=tags, run_id=run_id, **kwargs)
        if registered_model_name is not None:
            from hangar.catalog.fluent import registry

            version = registry().register_model(info.model_uri, registered_model_name)
            info = dataclasses.replace(info, registered_version=version)
        return info

    log_model.__doc__ = (
        f"Save with ``{save_model.__module__}.save_model`` (same arguments, without the path) as a "
        "logged model of the active run (or ``run_id``), with its own ``params`` and ``tags``.\n\n"
        "Returns a ModelInfo whose ``model_uri`` (``models:/<id>``) and ``run_uri`` "
        "(``runs:/<run-id>/<name>``) load it with ``hangar.pyfunc.load_model``. With "
        "``registered_model_name`` it is also registered as a new version of that model "
        "(``info.registered_version``)."
    )
    return log_model
