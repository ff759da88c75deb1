"""Artifacts in any fsspec filesystem: ``s3://``, ``gs://``, ``az://``, ``memory://``, ...

fsspec and the protocol's implementation (s3fs for S3) are imported on first use. Credentials
and endpoints come from the implementation's usual sources (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``~/.aws``) or from ``storage_options``, e.g.
``{"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}``.

Uploads stream to the final key in blocks (S3 makes each object appear whole, at once); a failed
upload is discarded rather than committed. Reads stream in blocks as well.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from hangar.artifacts.base import ArtifactRepository, FileInfo
from hangar.artifacts.streams import COPY_CHUNK, READ_BLOCK, part_size
from hangar.errors import InvalidArgumentError, InvalidURIError, MissingDependencyError, NotFoundError, require

# Object stores have no real directories: writing a key needs no mkdir (and s3fs's would create buckets).
_FLAT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}
_GLOB_CHARS = re.compile(r"[*?\[]")


_EXTRAS = {"s3": "s3", "s3a": "s3"}  # protocol -> the Hangar extra that installs its implementation


class FsspecArtifactRepository(ArtifactRepository):
    """Artifacts under ``uri`` in the fsspec filesystem its scheme names."""

    def __init__(self, uri: str, storage_options: dict[str, Any] | None = None):
        if "://" not in uri:
            raise InvalidURIError(f"{uri!r} is not a URI with a scheme such as s3://bucket/path.")
        scheme, rest = uri.split("://", 1)
        self.protocol = scheme.lower()
        self.uri = f"{scheme}://{rest.rstrip('/')}"
        if not rest.strip("/"):
            raise InvalidURIError(f"{uri!r} names no bucket or directory; write it as {self.protocol}://bucket/path.")
        options = dict(storage_options or {})
        # Other processes write to the same store: never answer a listing from a stale cache.
        options.setdefault("use_listings_cache", False)
        fsspec = require("fsspec", _EXTRAS.get(self.protocol, "s3"))
        try:
            self.fs, root = fsspec.core.url_to_fs(self.uri, **options)
        except ImportError as exc:
            extra = _EXTRAS.get(self.protocol)
            how = f"pip install 'hangar[{extra}]'" if extra else "install the fsspec implementation that the message names"
            raise MissingDependencyError(
                f"Artifacts at {self.uri} need the fsspec implementation for '{self.protocol}://' ({exc}). "
                f"Install it with: {how}"
            ) from None
        except ValueError as exc:
            raise InvalidURIError(f"Cannot open artifact store {self.uri!r}: {exc}") from None
        self.root = root.rstrip("/")
        if not self.root.strip("/"):
            raise InvalidURIError(f"{uri!r} names no bucket or directory; write it as {self.protocol}://bucket/path.")

    def _full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _rel(self, name: str) -> str | None:
        name = name.rstrip("/")
        prefix = self.root + "/"
        return name[len(prefix):] if name.startswith(prefix) else None

    def _info(self, info: dict) -> FileInfo | None:
        rel = self._rel(info["name"])
        if not rel:
            return None
        if info.get("type") == "directory":
            return FileInfo(rel, True, None)
        return FileInfo(rel, False, info.get("size"))

    def _stat(self, rel: str) -> FileInfo | None:
        try:
            info = self.fs.info(self._full(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        is_dir = info.get("type") == "directory"
        return FileInfo(rel, is_dir, None if is_dir else info.get("size"))

    def _children(self, rel: str) -> list[FileInfo]:
        out = {}
        for entry in self.fs.ls(self._full(rel), detail=True):
            info = self._info(entry)
            if info is not None and info.path != rel:
                out[info.path] = info
        return list(out.values())

    def _walk_files(self, rel: str) -> Iterator[FileInfo]:
        found = self.fs.find(self._full(rel), withdirs=False, detail=True)
        for name in sorted(found):
            info = self._info(found[name])
            if info is not None and not info.is_dir:
                yield info

    def _open(self, rel: str) -> BinaryIO:
        full = self._full(rel)
        try:
            info = self.fs.info(full)
            if info.get("type") == "directory":
                raise InvalidArgumentError(f"'{rel}' under {self.uri} is a directory, not a file.")
            return self.fs.open(full, "rb", block_size=READ_BLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(f"No artifact at '{rel}' under {self.uri}.") from None

    def _writer(self, rel: str, size: int | None):
        full = self._full(rel)
        if self.protocol not in _FLAT_PROTOCOLS:
            self.fs.makedirs(self.fs._parent(full), exist_ok=True)
        try:
            return self.fs.open(full, "wb", block_size=part_size(size))
        except FileNotFoundError as exc:
            raise NotFoundError(f"Cannot write '{rel}' under {self.uri}: {exc} (does the bucket exist?)") from None

    def _stream_to(self, rel: str, src: BinaryIO, size: int | None) -> None:
        out = self._writer(rel, size)
        try:
            shutil.copyfileobj(src, out, COPY_CHUNK)
        except BaseException:
            # Closing would commit what was written so far; throw the partial upload away instead.
            discard = getattr(out, "discard", None)
            if discard is not None:
                discard()
            try:
                out.closed = True
            except AttributeError:
                pass
            raise
        try:
            out.close()
        except FileNotFoundError as exc:
            raise NotFoundError(f"Cannot write '{rel}' under {self.uri}: {exc} (does the bucket exist?)") from None

    def _put_file(self, rel: str, local_file: Path) -> None:
        with open(local_file, "rb") as src:
            self._stream_to(rel, src, os.fstat(src.fileno()).st_size)

    def _put_bytes(self, rel: str, data: bytes) -> None:
        self._stream_to(rel, io.BytesIO(data), len(data))

    def _delete(self, rel: str, info: FileInfo) -> None:
        if not info.is_dir:
            self.fs.rm_file(self._full(rel))
            return
        files = [self._full(f.path) for f in self._walk_files(rel)]
        if files and not any(_GLOB_CHARS.search(f) for f in files):
            self.fs.rm(files)  # one bulk request per 1000 keys on S3
        else:
            for f in files:  # rm() would expand glob characters in a name
                self.fs.rm_file(f)
        if self.protocol not in _FLAT_PROTOCOLS:  # real directories remain: remove them, deepest first
            full = self._full(rel)
            found = self.fs.find(full, withdirs=True, detail=True)
            dirs = [name for name, entry in found.items() if entry.get("type") == "directory"]
            for name in sorted({*dirs, full}, key=len, reverse=True):
                self.fs.rmdir(name)
