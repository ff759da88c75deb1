"""``hangar.<flavor>.log_model``: save a package into a run's experiment as a logged model.

The logged model is created PENDING with a lease, the package is saved locally (atomically)
and uploaded to its artifact location, and only then marked READY. A writer that dies leaves a
PENDING model whose lease expires to FAILED; nothing resolves a model that is not READY.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hangar.tracking.sql_logged_models import FAILED, READY


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    name: str
    run_id: str | None
    artifact_location: str
    flavors: tuple[str, ...]
    status: str
    registered_version: Any = None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_id}"

    @property
    def run_uri(self) -> str | None:
        return f"runs:/{self.run_id}/{self.name}" if self.run_id else None


def log_model(save_model: Callable, name: str, *args: Any, params: dict | None = None, tags: dict | None = None,
              run_id: str | None = None, client=None, **kwargs: Any) -> ModelInfo:
    """Call ``save_model(path, *args, **kwargs)`` and store the package as a logged model."""
    from hangar.models.manifest import Manifest
    from hangar.tracking import fluent

    c = client or fluent.client()
    rid = run_id or fluent._run_id()
    run = c.get_run(rid)
    lm = c.store.create_logged_model(run.info.experiment_id, name, source_run_id=rid, params=params, tags=tags)
    try:
        with tempfile.TemporaryDirectory(prefix="hangar-log-model-") as tmp:
            package = Path(save_model(Path(tmp) / "model", *args, **kwargs))
            flavors = list(Manifest.read(package).flavors)
            c.store.logged_model_artifacts(lm.model_id).log_artifacts(package, None)
        lm = c.store.finalize_logged_model(lm.model_id, READY, flavors=flavors)
    except BaseException:
        try:
            c.store.finalize_logged_model(lm.model_id, FAILED)
        except Exception:  # the original error matters more than the bookkeeping
            pass
        raise
    return ModelInfo(lm.model_id, lm.name, rid, lm.artifact_location, lm.flavors, lm.status)
