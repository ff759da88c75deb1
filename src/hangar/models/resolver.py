"""Resolve a model URI to a local package directory.

Local paths resolve here. ``models:/`` and ``runs:/`` URIs are resolved by a resolver that the
tracking/registry layer provides, found through the ``hangar.uri_resolvers`` entry point group
(so this layer never imports the layers above it), or passed in explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from hangar.errors import InvalidURIError, NotFoundError
from hangar.uri import is_remote_uri, parse_model_uri

ENTRY_POINT_GROUP = "hangar.uri_resolvers"


@runtime_checkable
class ModelResolver(Protocol):
    def resolve(self, uri: str) -> Path:
        """Return a local directory holding the complete package for ``uri``."""


def _entry_point_resolvers() -> dict[str, ModelResolver]:
    from importlib.metadata import entry_points

    out = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        out[ep.name] = ep.load()()
    return out


def resolve_model_uri(uri: str | os.PathLike, resolver: ModelResolver | None = None) -> Path:
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri:
        raise InvalidURIError(f"A model URI must be a non-empty string or path, got {uri!r}")
    if is_remote_uri(uri):
        parsed = parse_model_uri(uri)
        if resolver is None:
            resolver = _entry_point_resolvers().get(parsed.scheme)
        if resolver is None:
            raise NotFoundError(
                f"Cannot resolve {uri!r}: no resolver for '{parsed.scheme}:/' URIs is installed "
                "(the tracking and registry layer provides it); pass a local package path instead"
            )
        return Path(resolver.resolve(uri))
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if "://" in uri:
        raise InvalidURIError(
            f"Cannot load a model from {uri!r}: use a local path, models:/... or runs:/..."
        )
    path = Path(uri).expanduser()
    if not path.exists():
        raise NotFoundError(f"No model package at {path}: the path does not exist")
    return path
