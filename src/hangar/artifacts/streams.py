"""Chunked copies and atomic local writes: nothing is ever read whole into memory."""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from hangar.errors import InvalidArgumentError

COPY_CHUNK = 1 << 20  # bytes moved per read/write
READ_BLOCK = 4 << 20  # read-ahead block for remote files
MIN_PART = 5 << 20  # smallest multipart block for remote writes (S3 needs >= 5 MiB per part)
MAX_PARTS = 9000  # S3 allows 10,000 parts; keep a margin
TMP_PREFIX = ".hangar-tmp-"


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    return 0o666 & ~_umask()


def part_size(total: int | None) -> int:
    """Block size for a remote upload of ``total`` bytes: bounded memory, and few enough parts."""
    if not total:
        return MIN_PART
    return max(MIN_PART, -(-total // MAX_PARTS))


def atomic_write(dest: Path, src: BinaryIO, mode: int | None = None) -> None:
    """Stream ``src`` into a temp file beside ``dest``, then rename it over ``dest``.

    A reader sees either the old file or the whole new one, never a partial write.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_dir():
        raise InvalidArgumentError(f"Cannot write the file {dest}: a directory already exists there.")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, default_file_mode() if mode is None else mode)
        os.replace(tmp, dest)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
