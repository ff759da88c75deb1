"""Artifacts in a local folder (the default store)."""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from hangar.artifacts.base import ArtifactRepository, FileInfo
from hangar.artifacts.streams import TMP_PREFIX, atomic_write, default_file_mode
from hangar.errors import InvalidArgumentError, InvalidURIError, NotFoundError


def local_path_from_uri(uri: str | os.PathLike) -> Path:
    """A plain path or a ``file://`` URI as an absolute Path (``~`` expanded)."""
    text = os.fspath(uri)
    if text.startswith("file:"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise InvalidURIError(f"{text!r} names the remote host {parsed.netloc!r}; file: URIs must be local.")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise InvalidURIError(f"{text!r} is not an absolute file URI; write it as file:///absolute/path.")
        return Path(path)
    if not text:
        raise InvalidURIError("An artifact root path is required.")
    return Path(os.path.abspath(os.path.expanduser(text)))


class LocalArtifactRepository(ArtifactRepository):
    """Artifacts under a local directory, created on first write.

    Every write streams into a temp file in the destination directory and is renamed into place,
    so a reader never sees half a file. Paths are checked to stay under the root after symbolic
    links are resolved.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = local_path_from_uri(root)
        self.uri = self.root.as_uri()

    def _resolve(self, rel: str) -> Path:
        root = os.path.realpath(self.root)
        target = os.path.realpath(os.path.join(root, rel)) if rel else root
        if target != root and not target.startswith(root.rstrip(os.sep) + os.sep):
            raise InvalidArgumentError(
                f"Artifact path '{rel}' resolves to {target}, outside the artifact root {root} (through a symbolic link)."
            )
        return Path(target)

    def _stat(self, rel: str) -> FileInfo | None:
        try:
            st = self._resolve(rel).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(st.st_mode):
            return FileInfo(rel, True, None)
        return FileInfo(rel, False, st.st_size)

    def _children(self, rel: str) -> list[FileInfo]:
        out = []
        with os.scandir(self._resolve(rel)) as entries:
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):
                    continue  # an upload in progress
                child = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir():
                    out.append(FileInfo(child, True, None))
                elif entry.is_file():
                    out.append(FileInfo(child, False, entry.stat().st_size))
        return out

    def _walk_files(self, rel: str) -> Iterator[FileInfo]:
        base = self._resolve(rel)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(TMP_PREFIX):
                    continue
                sub = Path(dirpath, name).relative_to(base).as_posix()
                child = f"{rel}/{sub}" if rel else sub
                yield FileInfo(child, False, os.path.getsize(os.path.join(dirpath, name)))

    def _open(self, rel: str) -> BinaryIO:
        path = self._resolve(rel)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"No artifact at '{rel}' under {self.uri}.") from None
        except IsADirectoryError:
            raise InvalidArgumentError(f"'{rel}' under {self.uri} is a directory, not a file.") from None

    def _prepare(self, rel: str) -> Path:
        dest = self._resolve(rel)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidArgumentError(f"Cannot write '{rel}' under {self.uri}: a file is in the way of its directory.") from None
        return self._resolve(rel)  # again, now that the directories exist

    def _put_file(self, rel: str, local_file: Path) -> None:
        dest = self._prepare(rel)
        with open(local_file, "rb") as src:
            atomic_write(dest, src, mode=stat.S_IMODE(os.fstat(src.fileno()).st_mode))

    def _put_bytes(self, rel: str, data: bytes) -> None:
        atomic_write(self._prepare(rel), io.BytesIO(data), mode=default_file_mode())

    def _delete(self, rel: str, info: FileInfo) -> None:
        path = self._resolve(rel)
        if info.is_dir:
            shutil.rmtree(path)
        else:
            path.unlink()
