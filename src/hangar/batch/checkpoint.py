"""The identity and progress record of a batch job, kept next to its output.

A job is identified by what it was asked to do (``request``: the input's fingerprint, the model
URI as given, the columns, params and chunk size); starting the same command again finds the
record and resumes, with the model version pinned at the first start, so an alias that moved in
between does not mix two versions in one output.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path


def request_digest(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class JobRecord:
    request: str                       # request_digest of what the job was asked to do
    model_uri: str                     # as the user gave it
    pinned_uri: str                    # the exact version every chunk is scored with
    model_version: str                 # what the version column says
    chunk_rows: int
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str | None = None
    started_at: float = field(default_factory=time.time)
    complete: bool = False
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> JobRecord:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
