"""The server's settings: read once (CLI flags, then the environment), frozen, passed explicitly."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from hangar.errors import InvalidArgumentError

CONFIG_ENV = "HANGAR_SERVER_CONFIG"  # how the parent hands the config to spawned workers
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_UPLOAD_BYTES = 20 * 1024**3


@dataclass(frozen=True)
class ServerConfig:
    store_uri: str
    artifact_root: str
    home: str
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    auth: bool = True
    log_level: str = "info"
    max_body_bytes: int = MAX_BODY_BYTES  # JSON requests
    max_upload_bytes: int = MAX_UPLOAD_BYTES  # one artifact file
    auth_failure_limit: int = 20  # bad tokens per client address ...
    auth_failure_window: float = 60.0  # ... within this many seconds, then 429

    @classmethod
    def from_settings(cls, settings, **overrides) -> ServerConfig:
        values = {"store_uri": settings.store_uri, "artifact_root": settings.artifacts_uri, "home": str(settings.home)}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerConfig:
        raw = os.environ.get(CONFIG_ENV)
        if not raw:
            raise InvalidArgumentError(f"Set {CONFIG_ENV} (hangar server does) to start a server worker")
        return cls(**json.loads(raw))

    @property
    def home_path(self) -> Path:
        return Path(self.home)
