"""What every Hangar HTTP app shares (the model server and the Hangar server): reading a body
under a size limit, and Starlette's own HTTP errors in Hangar's error tree."""

from __future__ import annotations

from hangar.errors import EndpointNotFoundError, HangarError, PayloadTooLargeError


class ClientDisconnected(Exception):
    """The client went away before its request body was read."""


async def receive_limited_body(receive, declared: bytes | str | None, limit: int) -> bytes:
    """The body of a raw ASGI request (no Starlette ``Request``), refused with 413 as soon as it is known to be
    too big; ``declared`` is the Content-Length header, if any."""
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if not chunks and not message.get("more_body"):
            if len(chunk) > limit:
                raise PayloadTooLargeError(f"The request body is over the limit of {limit} bytes")
            return chunk
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The request body is over the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def read_limited_body(request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known (Content-Length) or seen to be too big."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def from_http_exception(request, exc) -> HangarError:
    """A Starlette ``HTTPException`` (unknown route, wrong method, ...) as a HangarError."""
    if exc.status_code == 404:
        return EndpointNotFoundError(f"No route {request.method} {request.url.path}")
    err = HangarError(str(exc.detail))
    err.error_code = "METHOD_NOT_ALLOWED" if exc.status_code == 405 else "BAD_REQUEST"
    err.http_status = exc.status_code
    return err


_REQUEST_ID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


def plain_request_id(value: bytes | None) -> str | None:
    """``value`` as text when it is a plain request id (1 to 64 letters, digits, ``. _ : -``), else None:
    safe to echo in a header, log and store (a SQL inference table keeps 64 characters)."""
    if value and len(value) <= 64 and _REQUEST_ID_CHARS.issuperset(value):
        return value.decode()
    return None


def request_id_from(raw_headers) -> str:
    """The caller's ``X-Request-Id`` when it is a plain token (at most 64 letters, digits, ``. _ : -``), so that
    a serving process or proxy can follow one request into the server's audit log; else a new random id."""
    import secrets

    for name, value in raw_headers:
        if name.lower() == b"x-request-id":
            plain = plain_request_id(value)
            if plain is not None:
                return plain
            break
    return secrets.token_hex(16)  # (as random as uuid4().hex, and cheaper)
