"""Serving options: batching, back-pressure and limits, in one frozen object.

``hangar serve`` builds it from its options; with ``--workers N`` each worker process rebuilds it
from the environment variables that ``to_env`` writes (read once, in ``create_app``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from hangar.errors import InvalidArgumentError

_ENV = {
    "batching": "HANGAR_SERVE_BATCHING",
    "max_batch_size": "HANGAR_SERVE_MAX_BATCH_SIZE",
    "max_wait_ms": "HANGAR_SERVE_MAX_WAIT_MS",
    "max_queue": "HANGAR_SERVE_MAX_QUEUE",
    "request_timeout": "HANGAR_SERVE_REQUEST_TIMEOUT",
    "max_body_bytes": "HANGAR_SERVE_MAX_BODY_BYTES",
    "model_threads": "HANGAR_SERVE_MODEL_THREADS",
    "inline_max_ms": "HANGAR_SERVE_INLINE_MAX_MS",
}


@dataclasses.dataclass(frozen=True)
class ServingSettings:
    batching: bool = True  # for row-wise models; LLM payload models are never batched
    max_batch_size: int = 64  # rows per predict call
    max_wait_ms: float = 2.0  # longest a batch waits for requests still being read
    max_queue: int = 512  # requests queued or running; beyond it: 503
    request_timeout: float = 30.0  # seconds from arrival to answer; beyond it: 504
    max_body_bytes: int = 16 * 1024 * 1024
    model_threads: int = 0  # predict calls at once; 0: 1 for batched models, 40 otherwise
    inline_max_ms: float = 1.0  # a model whose calls are all quicker runs on the event loop at low load; 0: never

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise InvalidArgumentError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise InvalidArgumentError(f"max_wait_ms must be 0 or more, got {self.max_wait_ms}")
        if self.max_queue < 1:
            raise InvalidArgumentError(f"max_queue must be at least 1, got {self.max_queue}")
        if self.request_timeout <= 0:
            raise InvalidArgumentError(f"request_timeout must be positive, got {self.request_timeout}")
        if self.model_threads < 0:
            raise InvalidArgumentError(f"model_threads must be 0 (automatic) or more, got {self.model_threads}")
        if self.inline_max_ms < 0:
            raise InvalidArgumentError(f"inline_max_ms must be 0 (never inline) or more, got {self.inline_max_ms}")
        if self.max_body_bytes < 1:
            raise InvalidArgumentError(f"max_body_bytes must be positive, got {self.max_body_bytes}")

    def to_env(self) -> dict[str, str]:
        return {var: str(int(v) if isinstance(v, bool) else v) for name, var in _ENV.items()
                for v in [getattr(self, name)]}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            text = environ.get(_ENV[field.name])
            if text is None:
                continue
            try:
                if field.type == "bool":
                    values[field.name] = text.strip().lower() not in ("0", "false", "no", "off", "")
                else:
                    values[field.name] = (int if field.type == "int" else float)(text)
            except ValueError:
                raise InvalidArgumentError(f"{_ENV[field.name]}={text!r} is not a valid {field.type}") from None
        return cls(**values)
