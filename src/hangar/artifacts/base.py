"""The artifact-repository interface: what tracking and the registry need from storage.

Public methods validate every path, walk trees and stream downloads here, once; a backend only
implements a handful of primitives over already-validated relative paths (``rel``, '' = root).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hangar.artifacts.paths import join_artifact_path, validate_artifact_path
from hangar.artifacts.streams import atomic_write
from hangar.errors import InvalidArgumentError, NotFoundError


@dataclass(frozen=True)
class FileInfo:
    """One entry of a listing: ``path`` is relative to the repository root, POSIX-style."""

    path: str
    is_dir: bool
    size: int | None = None  # bytes; None for a directory


class ArtifactRepository(ABC):
    """Files stored under one root URI. Paths are relative to the root, with '/' separators."""

    uri: str

    # -- primitives a backend implements (``rel`` is validated and normalized) --------------------

    @abstractmethod
    def _stat(self, rel: str) -> FileInfo | None:
        """The entry at ``rel`` ('' = root), or None when nothing is there."""

    @abstractmethod
    def _children(self, rel: str) -> list[FileInfo]:
        """Direct children of the directory ``rel``."""

    @abstractmethod
    def _walk_files(self, rel: str) -> Iterator[FileInfo]:
        """Every file under the directory ``rel``, recursively."""

    @abstractmethod
    def _open(self, rel: str) -> BinaryIO:
        """A binary reader for the file ``rel``; NotFoundError when it is missing."""

    @abstractmethod
    def _put_file(self, rel: str, local_file: Path) -> None:
        """Store ``local_file`` at ``rel``, streaming it, replacing what was there."""

    @abstractmethod
    def _put_bytes(self, rel: str, data: bytes) -> None:
        """Store a small payload at ``rel``."""

    @abstractmethod
    def _delete(self, rel: str, info: FileInfo) -> None:
        """Remove the file or tree at ``rel`` (which exists; ``info`` says which)."""

    # -- public API --------------------------------------------------------------------------------

    def log_artifact(self, local_file: str | os.PathLike, artifact_path: str | None = None) -> str:
        """Upload one local file under ``artifact_path`` (a directory); return its stored path."""
        src = Path(local_file)
        if not src.exists():
            raise NotFoundError(f"Cannot log {src}: no such file.")
        if not src.is_file():
            raise InvalidArgumentError(f"Cannot log {src} with log_artifact: it is not a file (use log_artifacts for a directory).")
        rel = validate_artifact_path(join_artifact_path(validate_artifact_path(artifact_path), src.name), allow_root=False)
        self._put_file(rel, src)
        return rel

    def log_artifacts(self, local_dir: str | os.PathLike, artifact_path: str | None = None) -> list[str]:
        """Upload every file under ``local_dir`` into ``artifact_path``; return the stored paths.

        Files are uploaded one by one, each atomically; every destination path is checked first,
        so a tree with an unsafe name uploads nothing.
        """
        src = Path(local_dir)
        if not src.is_dir():
            raise NotFoundError(f"Cannot log {src}: no such directory.")
        base = validate_artifact_path(artifact_path)
        plan = [
            (path, validate_artifact_path(join_artifact_path(base, path.relative_to(src).as_posix()), allow_root=False))
            for path in _local_files(src)
        ]
        for path, rel in plan:
            self._put_file(rel, path)
        return [rel for _, rel in plan]

    def put_file(self, path: str, local_file: str | os.PathLike) -> str:
        """Store the local file at exactly ``path`` (streamed, atomically); return the stored path."""
        rel = validate_artifact_path(path, allow_root=False)
        self._put_file(rel, Path(local_file))
        return rel

    def stat(self, path: str | None = None) -> FileInfo | None:
        """The file or directory at ``path``, or None when nothing is there."""
        return self._stat(validate_artifact_path(path))

    def walk_files(self, path: str | None = None) -> list[FileInfo]:
        """Every file under the directory ``path`` (default: the root), recursively, sorted."""
        rel = validate_artifact_path(path)
        info = self._stat(rel)
        if info is None or not info.is_dir:
            return []
        return sorted(self._walk_files(rel), key=lambda f: f.path)

    def write_bytes(self, path: str, data: bytes) -> str:
        """Store a small payload (a dict as JSON, a text) at ``path``; return the stored path."""
        rel = validate_artifact_path(path, allow_root=False)
        self._put_bytes(rel, bytes(data))
        return rel

    def write_text(self, path: str, text: str, encoding: str = "utf-8") -> str:
        return self.write_bytes(path, text.encode(encoding))

    def open_read(self, path: str) -> BinaryIO:
        """A binary file object reading ``path`` in chunks; use it as a context manager."""
        return self._open(validate_artifact_path(path, allow_root=False))

    def read_bytes(self, path: str) -> bytes:
        """The whole content of a small artifact (use open_read or download_artifacts for big ones)."""
        with self.open_read(path) as f:
            return f.read()

    def read_text(self, path: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(path).decode(encoding)

    def exists(self, path: str | None = None) -> bool:
        return self._stat(validate_artifact_path(path)) is not None

    def list_artifacts(self, path: str | None = None) -> list[FileInfo]:
        """Direct children of the directory ``path`` (default: the root), sorted by path.

        Like MLflow, a path that is a file or names nothing lists as empty.
        """
        rel = validate_artifact_path(path)
        info = self._stat(rel)
        if info is None or not info.is_dir:
            return []
        return sorted(self._children(rel), key=lambda f: f.path)

    def download_artifacts(self, path: str | None, dst_dir: str | os.PathLike) -> Path:
        """Copy the file or directory ``path`` into ``dst_dir``; return the local copy's path.

        Every file streams in chunks into a temp file that is renamed into place. Downloading the
        root ('' or None) copies its contents straight into ``dst_dir``.
        """
        rel = validate_artifact_path(path)
        info = self._stat(rel)
        if info is None:
            raise NotFoundError(f"No artifact at '{rel}' under {self.uri}.")
        dst_root = Path(dst_dir)
        dst_root.mkdir(parents=True, exist_ok=True)
        dst_root = dst_root.resolve()
        name = rel.rsplit("/", 1)[-1]
        if not info.is_dir:
            dest = dst_root / name
            self._download_file(rel, dest)
            return dest
        target = dst_root / name if rel else dst_root
        prefix = f"{rel}/" if rel else ""
        plan = []
        for f in self._walk_files(rel):
            if not f.path.startswith(prefix):
                raise InvalidArgumentError(f"The store listed '{f.path}' under '{rel}'; refusing to download it.")
            sub = validate_artifact_path(f.path[len(prefix):], allow_root=False)
            dest = target / sub
            if not _is_within(dest, dst_root):
                raise InvalidArgumentError(f"Downloading '{f.path}' would write outside {dst_root} (a symbolic link?).")
            plan.append((f.path, dest))
        target.mkdir(parents=True, exist_ok=True)
        for src_rel, dest in plan:
            self._download_file(src_rel, dest)
        return target

    def delete_artifacts(self, path: str | None = None, *, missing_ok: bool = False) -> None:
        """Delete the file or tree at ``path``; with no path, everything under the root.

        A missing path raises NotFoundError unless ``missing_ok``; an empty root is never an error.
        """
        rel = validate_artifact_path(path)
        info = self._stat(rel)
        if info is None:
            if rel and not missing_ok:
                raise NotFoundError(f"No artifact at '{rel}' under {self.uri}.")
            return
        self._delete(rel, info)

    # -- helpers -----------------------------------------------------------------------------------

    def _download_file(self, rel: str, dest: Path) -> None:
        with self._open(rel) as src:
            atomic_write(dest, src)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


def _is_within(path: Path, root: Path) -> bool:
    real = os.path.realpath(path)
    return real == str(root) or real.startswith(str(root).rstrip(os.sep) + os.sep)


def _local_files(root: Path) -> list[Path]:
    """Regular files under ``root``, following directory links once each (no cycles), sorted."""
    out: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        out.extend(Path(dirpath, n) for n in filenames if os.path.isfile(os.path.join(dirpath, n)))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())
