"""Artifact repositories: where run artifacts and model packages are stored.

``get_artifact_repository(uri)`` gives a local folder for a path or ``file://`` URI and an fsspec
store for any other scheme (``s3://`` needs ``pip install 'hangar[s3]'``). Every path is relative
to the repository's root and validated; large files stream in chunks.
"""

from hangar.artifacts.base import ArtifactRepository, FileInfo
from hangar.artifacts.factory import get_artifact_repository
from hangar.artifacts.fsspec_repo import FsspecArtifactRepository
from hangar.artifacts.local import LocalArtifactRepository, local_path_from_uri
from hangar.artifacts.paths import validate_artifact_path

__all__ = [
    "ArtifactRepository",
    "FileInfo",
    "FsspecArtifactRepository",
    "LocalArtifactRepository",
    "get_artifact_repository",
    "local_path_from_uri",
    "validate_artifact_path",
]
