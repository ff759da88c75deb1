"""Artifacts behind a Hangar server (``/api/v1/artifacts/...``): streamed uploads and downloads,
downloads resumed with HTTP Range when a connection drops part-way, deletes of a file or a folder."""

from __future__ import annotations

import io
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hangar.artifacts.base import ArtifactRepository, FileInfo
from hangar.artifacts.paths import validate_artifact_path
from hangar.artifacts.streams import COPY_CHUNK, TMP_PREFIX, default_file_mode
from hangar.errors import StoreUnavailableError
from hangar.remote import ServerClient, error_from

RESUME_TRIES = 5


class _ResponseReader(io.RawIOBase):
    """A streamed response body as a file object (closing it releases the connection)."""

    def __init__(self, stream_cm, response):
        self._cm, self._chunks, self._buf = stream_cm, response.iter_bytes(COPY_CHUNK), b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n], self._buf = self._buf[:n], self._buf[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._cm.__exit__(None, None, None)
        super().close()


def _file_chunks(path: Path):
    with open(path, "rb") as f:
        while chunk := f.read(COPY_CHUNK):
            yield chunk


class HttpArtifactRepository(ArtifactRepository):
    """The artifacts of one run, logged model or model version, reached through the server.

    ``base`` is the route prefix (``/artifacts/runs/<id>``); ``prefix`` roots the repository at a
    folder inside it (``runs:/<id>/<folder>``)."""

    def __init__(self, server: ServerClient, base: str, prefix: str = ""):
        self.server, self.base, self.prefix = server, base.rstrip("/"), prefix.strip("/")
        self.uri = f"{server.url}/api/v1{self.base}" + (f"/{self.prefix}" if self.prefix else "")

    def _full(self, rel: str) -> str:
        return "/".join(p for p in (self.prefix, rel) if p)

    def _file_url(self, rel: str) -> str:
        return f"{self.base}/files/{urllib.parse.quote(self._full(rel), safe='/')}"

    def _strip(self, path: str) -> str:
        return path[len(self.prefix) + 1:] if self.prefix else path

    def _list(self, rel: str, recursive: bool = False) -> dict:
        return self.server.request("GET", f"{self.base}/list",
                                   query={"path": self._full(rel), "recursive": "true" if recursive else None})

    @staticmethod
    def _info(d: dict, path: str) -> FileInfo:
        return FileInfo(path, d["is_dir"], d.get("size"))

    def _stat(self, rel: str) -> FileInfo | None:
        found = self._list(rel)["stat"]
        return None if found is None else self._info(found, rel)

    def _children(self, rel: str) -> list[FileInfo]:
        return [self._info(f, self._strip(f["path"])) for f in self._list(rel)["files"]]

    def _walk_files(self, rel: str) -> Iterator[FileInfo]:
        return iter([self._info(f, self._strip(f["path"])) for f in self._list(rel, True)["files"]])

    def _send(self, method: str, url: str, **kwargs):
        try:
            resp = self.server.http.request(method, url, **kwargs)
        except Exception as exc:
            raise self.server.unreachable(exc) from None
        if resp.status_code >= 400:
            raise error_from(resp.status_code, resp.content)
        return resp

    def _open(self, rel: str) -> BinaryIO:
        cm = self.server.http.stream("GET", self._file_url(rel))
        try:
            resp = cm.__enter__()
        except Exception as exc:
            raise self.server.unreachable(exc) from None
        if resp.status_code >= 400:
            raw = resp.read()
            cm.__exit__(None, None, None)
            raise error_from(resp.status_code, raw)
        return io.BufferedReader(_ResponseReader(cm, resp), COPY_CHUNK)

    def _put_file(self, rel: str, local_file: Path) -> None:
        size = local_file.stat().st_size
        self._send("PUT", self._file_url(rel), content=_file_chunks(local_file),
                   headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})

    def _put_bytes(self, rel: str, data: bytes) -> None:
        self._send("PUT", self._file_url(rel), content=data, headers={"Content-Type": "application/octet-stream"})

    def _remove(self, rel: str, missing_ok: bool) -> None:
        """One DELETE of the file or folder ``rel`` (the server never deletes the root of a route)."""
        self.server.request("DELETE", self._file_url(rel), query={"missing_ok": "true" if missing_ok else None})

    def _delete(self, rel: str, info: FileInfo) -> None:
        if self._full(rel):
            self._remove(rel, missing_ok=True)
        else:  # the whole root: its entries one by one
            for child in self._children(rel):
                self._remove(child.path, missing_ok=True)

    def delete_artifacts(self, path: str | None = None, *, missing_ok: bool = False) -> None:
        """As for every repository, in one request: the server answers 404 (NotFoundError) for a
        missing path unless ``missing_ok``; an empty or missing root is never an error."""
        rel = validate_artifact_path(path)
        if not self._full(rel):
            super().delete_artifacts(rel, missing_ok=missing_ok)
        else:
            self._remove(rel, missing_ok=missing_ok or not rel)

    def _download_file(self, rel: str, dest: Path) -> None:
        """Stream into a temp file beside ``dest``; on a dropped connection, ask for the rest (Range)."""
        import httpx

        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=TMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                have, total, tries = 0, None, 0
                while total is None or have < total:
                    headers = {"Range": f"bytes={have}-"} if have else {}
                    try:
                        with self.server.http.stream("GET", self._file_url(rel), headers=headers) as resp:
                            if resp.status_code >= 400:
                                raise error_from(resp.status_code, resp.read())
                            if have and resp.status_code != 206:
                                out.seek(0)
                                out.truncate()
                                have = 0
                            length = int(resp.headers.get("content-length", "0"))
                            total = have + length
                            for chunk in resp.iter_bytes(COPY_CHUNK):
                                out.write(chunk)
                                have += len(chunk)
                        problem = None if have >= total else "the response ended early"
                    except httpx.TransportError as exc:
                        problem = str(exc)
                    if problem is not None:
                        tries += 1
                        if tries > RESUME_TRIES:
                            raise StoreUnavailableError(f"Downloading {rel} from {self.uri} kept failing: {problem}")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
