"""Settings read once from the environment into a frozen object, then passed explicitly."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path


@functools.lru_cache(maxsize=1)
def local_user() -> str:
    """The operating-system user: the actor of local, unauthenticated store writes."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def _default_home() -> Path:
    return Path(os.environ.get("HANGAR_HOME") or Path.home() / ".hangar").expanduser()


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    tracking_uri: str | None = None
    artifact_root: str | None = None
    token: str | None = None

    @classmethod
    def from_env(cls, environ: dict | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("HANGAR_HOME") or Path.home() / ".hangar").expanduser()
        return cls(home=home, tracking_uri=env.get("HANGAR_TRACKING_URI"),
                   artifact_root=env.get("HANGAR_ARTIFACT_ROOT"), token=env.get("HANGAR_TOKEN"))

    @property
    def store_uri(self) -> str:
        """``HANGAR_TRACKING_URI``, or the embedded SQLite file under ``HANGAR_HOME``."""
        return self.tracking_uri or f"sqlite:///{self.home / 'hangar.db'}"

    @property
    def artifacts_uri(self) -> str:
        """``HANGAR_ARTIFACT_ROOT`` (a folder or any fsspec URI), or ``HANGAR_HOME/artifacts``."""
        return self.artifact_root or str(self.home / "artifacts")

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"
