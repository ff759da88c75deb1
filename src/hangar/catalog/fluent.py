"""``hangar.register_model`` and the registry client of the current tracking context."""

from __future__ import annotations

import contextvars
import os

from hangar.catalog.store import SqlRegistry, open_registry

_registry: contextvars.ContextVar[tuple | None] = contextvars.ContextVar("hangar_registry", default=None)


def registry() -> SqlRegistry:
    """The registry over the fluent API's current store (opened once per context)."""
    from hangar.tracking import fluent

    tracking = fluent.client()
    held = _registry.get()
    if held is None or held[0] is not tracking:
        held = (tracking, open_registry(tracking.store, cache_dir=tracking.settings.cache_dir))
        _registry.set(held)
    return held[1]


def register_model(model_uri: str | os.PathLike, name: str, *, comment: str | None = None, tags: dict | None = None):
    """Register a package (``models:/<logged-model-id>``, ``runs:/<run>/<name>`` or a path) as a
    new version of ``name`` (``catalog.schema.model``; a bare name lives in ``main.default``)."""
    return registry().register_model(model_uri, name, comment=comment, tags=tags)
