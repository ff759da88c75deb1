"""Artifact paths: one validator that every repository method runs before touching storage.

An artifact path is relative to a repository's root and uses ``/`` between components. Anything
that could name a place outside the root is refused with InvalidArgumentError before any I/O:
absolute paths, drive letters, ``..`` components, backslashes, NUL bytes, and any of those hidden
behind URL-encoding (``%2e%2e/x``, ``%2F``, ``%5C``).
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote

from hangar.errors import InvalidArgumentError

_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_DECODE_ROUNDS = 3


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL byte"
    if "\\" in text:
        return "contains a backslash (use '/' between components)"
    if text.startswith("/") or _DRIVE.match(text):
        return "is absolute (artifact paths are relative to the repository root)"
    if ".." in text.split("/"):
        return "contains a '..' component"
    return None


_MAX_NAME_BYTES = 255    # a file name on Linux file systems
_MAX_PATH_BYTES = 1024   # an object key on S3 and most object stores


def validate_artifact_path(path: str | os.PathLike | None, *, allow_root: bool = True) -> str:
    """Return ``path`` as a normalized relative POSIX path ('' for the root), or raise.

    Raises InvalidArgumentError for a path that could escape the root, or for the root itself
    (None, '' or '.') when ``allow_root`` is false.
    """
    if path is None:
        text = ""
    elif isinstance(path, str | os.PathLike):
        text = os.fspath(path)
        if not isinstance(text, str):
            raise InvalidArgumentError(f"Artifact path {path!r} must be text, not bytes.")
    else:
        raise InvalidArgumentError(f"Artifact path must be a string, got {type(path).__name__}.")

    decoded = text
    for _ in range(_MAX_DECODE_ROUNDS + 1):
        reason = _problem(decoded)
        if reason:
            hidden = " once URL-decoded" if decoded != text else ""
            raise InvalidArgumentError(
                f"Artifact path {text!r}{hidden} {reason}; it could name a location outside the artifact root."
            )
        nxt = unquote(decoded)
        if nxt == decoded:
            break
        decoded = nxt
    else:
        raise InvalidArgumentError(f"Artifact path {text!r} is URL-encoded too many times over; refusing it.")

    parts = [p for p in text.split("/") if p not in ("", ".")]
    normalized = "/".join(parts)
    longest = max((len(p.encode("utf-8", "surrogatepass")) for p in parts), default=0)
    if longest > _MAX_NAME_BYTES or len(normalized.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES:
        raise InvalidArgumentError(f"Artifact path {text[:80]!r}... is too long: at most {_MAX_NAME_BYTES} bytes a name "
                                   f"and {_MAX_PATH_BYTES} bytes in all (what file systems and object stores take).")
    if not normalized and not allow_root:
        raise InvalidArgumentError("An artifact path naming a file is required here (got the repository root).")
    return normalized


def join_artifact_path(*parts: str) -> str:
    """Join already-validated relative paths, skipping empty ones."""
    return "/".join(p for p in parts if p)
