"""Artifact upload, download and deletion through the server: streamed both ways, downloads
resumable with HTTP Range (206 / 416), uploads bounded by ``max_upload_bytes`` (413), every path
checked against traversal before any storage is touched.

Three kinds of artifact roots, each governed by what owns it: a run's artifacts (its experiment:
READ / EDIT), a logged model's files (its experiment; written or deleted only while PENDING) and a
model version's files (EXECUTE to read a READY version; CREATE_MODEL_VERSION to write or delete
those of a PENDING one).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import anyio
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, StreamingResponse

from hangar.artifacts.paths import validate_artifact_path
from hangar.catalog.entities import PENDING, READY
from hangar.errors import ConflictError, InvalidArgumentError, ModelPackageError, NotFoundError, PayloadTooLargeError
from hangar.server.wire import plain

CHUNK = 1 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# -- which repository a request names ---------------------------------------------------------
# What a request does there: reading a version needs it READY; writing or deleting files, PENDING.
READING, WRITING, DELETING = "read", "write", "delete"


def _run_repo(ctx, mode: str):
    return ctx.tracking.run_artifacts(ctx.path_params["run_id"])


def _logged_model_repo(ctx, mode: str):
    from hangar.artifacts import get_artifact_repository

    lm = ctx.tracking.get_logged_model(ctx.path_params["model_id"])
    if mode != READING and lm.status != PENDING:
        raise ConflictError(f"Logged model {lm.model_id} is {lm.status}; its files can no longer change "
                            f"(they can be written or deleted only while it is {PENDING})")
    return get_artifact_repository(lm.artifact_location)


def _version_repo(ctx, mode: str):
    from hangar.artifacts import get_artifact_repository
    from hangar.catalog import names

    mv = ctx.registry.get_model_version(names.model_name(ctx.path_params["name"])[0], ctx.path_params["version"])
    if mode != READING and mv.status != PENDING:
        hint = (f"; to remove its files, delete the version instead (hangar versions delete {mv.full_name} "
                f"{mv.version})") if mode == DELETING else ""
        raise ConflictError(f"Version {mv.version} of {mv.full_name} is {mv.status}: a version's files are immutable "
                            f"once it is finalized{hint}")
    if mode == READING and mv.status != READY:
        raise ModelPackageError(f"Version {mv.version} of {mv.full_name} is {mv.status} and cannot be downloaded")
    return get_artifact_repository(mv.storage_location)


REPOS = {"run": _run_repo, "logged_model": _logged_model_repo, "version": _version_repo}


def _rel(ctx, name: str = "path", allow_root: bool = False) -> str:
    raw = ctx.path_params.get(name) if name in ctx.path_params else ctx.query.get(name)
    return validate_artifact_path(raw or "", allow_root=allow_root)


# -- listing ---------------------------------------------------------------------------------
def lister(kind: str):
    def list_artifacts(ctx):
        """``{stat, files}``: the entry at ``?path=`` and its children (every file below with ``?recursive=true``)."""
        rel = _rel(ctx, allow_root=True)
        repo = REPOS[kind](ctx, READING)
        info = repo.stat(rel)
        if info is None or not info.is_dir:
            files = []
        elif ctx.query.get("recursive") == "true":
            files = repo.walk_files(rel)
        else:
            files = repo.list_artifacts(rel)
        return {"stat": info, "files": files}

    list_artifacts.__name__ = f"list_{kind}_artifacts"
    return list_artifacts


# -- download ------------------------------------------------------------------------------------
def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for one satisfiable byte range; None for no (or a multi-) range.
    Raises ValueError for a range that cannot be satisfied (416)."""
    if not header or "," in header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        raise ValueError(header)
    first, last = m.group(1), m.group(2)
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


def downloader(kind: str):
    async def download(ctx, request):
        rel = _rel(ctx)
        repo = await anyio.to_thread.run_sync(REPOS[kind], ctx, READING)
        info = await anyio.to_thread.run_sync(repo.stat, rel)
        if info is None or info.is_dir:
            raise NotFoundError(f"No artifact file at '{rel}'")
        size = info.size or 0
        try:
            span = parse_range(request.headers.get("range"), size)
        except ValueError:
            return JSONResponse({"error_code": "RANGE_NOT_SATISFIABLE", "message": f"The file has {size} bytes"},
                                status_code=416, headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
        start, end = span if span else (0, size - 1)
        length = max(0, end - start + 1)
        f = await anyio.to_thread.run_sync(repo.open_read, rel)
        try:
            if start:
                await anyio.to_thread.run_sync(f.seek, start)
        except BaseException:
            f.close()
            raise

        async def body():
            try:
                remaining = length
                while remaining > 0:
                    chunk = await anyio.to_thread.run_sync(f.read, min(CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            finally:
                f.close()

        headers = {"Content-Length": str(length), "Accept-Ranges": "bytes"}
        if span:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return StreamingResponse(body(), status_code=206 if span else 200, headers=headers,
                                 media_type="application/octet-stream")

    download.__name__ = f"download_{kind}_artifact"
    return download


# -- upload --------------------------------------------------------------------------------------
def uploader(kind: str):
    async def upload(ctx, request):
        limit = ctx.services.config.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdecimal() and int(declared) > limit:
            raise PayloadTooLargeError(f"The upload is {int(declared)} bytes; this server takes at most {limit} per file")
        rel = _rel(ctx)
        repo = await anyio.to_thread.run_sync(REPOS[kind], ctx, WRITING)
        folder = Path(ctx.services.config.home) / "server" / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=folder)
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > limit:
                            raise PayloadTooLargeError(f"The upload is over this server's limit of {limit} bytes per file")
                        out.write(chunk)
                except ClientDisconnect:
                    return JSONResponse({}, status_code=499)  # nobody is listening; nothing was stored
            if declared is not None and declared.isdecimal() and size != int(declared):
                raise InvalidArgumentError(f"The upload ended after {size} of {declared} bytes")
            await anyio.to_thread.run_sync(repo.put_file, rel, tmp)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        return JSONResponse(plain({"path": rel, "size": size}))

    upload.__name__ = f"upload_{kind}_artifact"
    return upload


# -- deletion ------------------------------------------------------------------------------------
def deleter(kind: str):
    def delete(ctx):
        """Delete the file, or the folder with everything in it, at the path: ``{"deleted": path}``.

        A path that names nothing is a 404, or ``{"deleted": null}`` with ``?missing_ok=true``. The
        root cannot be named (a client deletes its entries one by one)."""
        rel = _rel(ctx)
        repo = REPOS[kind](ctx, DELETING)
        if repo.stat(rel) is None:
            if ctx.query.get("missing_ok") == "true":
                return {"deleted": None}
            raise NotFoundError(f"No artifact at '{rel}'")
        repo.delete_artifacts(rel, missing_ok=True)  # (removed meanwhile by another request: as asked)
        return {"deleted": rel}

    delete.__name__ = f"delete_{kind}_artifact"
    return delete
