"""Pick the artifact repository for a URI by its scheme."""

from __future__ import annotations

import os
from typing import Any

from hangar.artifacts.base import ArtifactRepository
from hangar.artifacts.fsspec_repo import FsspecArtifactRepository
from hangar.artifacts.local import LocalArtifactRepository
from hangar.errors import InvalidURIError

_NOT_STORES = {
    "runs": "resolve runs:/ URIs to the run's artifact location first",
    "models": "resolve models:/ URIs to the version's storage location first",
    "http": "artifacts behind a Hangar server are reached through its client, not as a filesystem",
    "https": "artifacts behind a Hangar server are reached through its client, not as a filesystem",
}


def get_artifact_repository(uri: str | os.PathLike, storage_options: dict[str, Any] | None = None) -> ArtifactRepository:
    """A repository rooted at ``uri``: a plain path or ``file://`` URI is a local folder; any other
    scheme (``s3://``, ``gs://``, ``memory://``, ...) goes through fsspec with ``storage_options``."""
    text = os.fspath(uri)
    if not isinstance(text, str) or not text:
        raise InvalidURIError(f"An artifact location is required, got {uri!r}.")
    head = text.split(":", 1)[0].lower() if ":" in text else ""
    scheme = head if "://" in text or head in _NOT_STORES or head == "file" else ""
    if not scheme or scheme == "file":
        return LocalArtifactRepository(text)
    if scheme in _NOT_STORES:
        raise InvalidURIError(f"{text!r} is not an artifact store location: {_NOT_STORES[scheme]}.")
    return FsspecArtifactRepository(text, storage_options)
