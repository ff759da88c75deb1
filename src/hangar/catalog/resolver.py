"""The ``models:/`` and ``runs:/`` resolver: registered names through the registry, logged
models and runs through tracking. Registered in the ``hangar.uri_resolvers`` entry points."""

from __future__ import annotations

from pathlib import Path

from hangar.uri import parse_model_uri


class RegistryResolver:
    def __init__(self, registry=None):
        self._registry = registry

    def resolve(self, uri: str) -> Path:
        from hangar.tracking.resolver import TrackingResolver

        parsed = parse_model_uri(uri)
        if parsed.scheme == "runs" or parsed.logged_model_id is not None:
            if self._registry is None:
                return TrackingResolver().resolve(uri)
            return TrackingResolver(self._registry._tracking_client()).resolve(uri)
        if self._registry is None:
            from hangar.catalog.fluent import registry

            return registry().resolve(uri)
        return self._registry.resolve(uri)
