"""Model URIs: a local path, ``models:/cat.sch.name/3``, ``models:/cat.sch.name@alias``,
``models:/<logged-model-id>`` and ``runs:/<run-id>/<artifact path>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hangar.errors import InvalidURIError

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "default"
_NAME_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_LOGGED_MODEL_ID = re.compile(r"^m-[0-9a-f]{32}$")


def full_model_name(name: str) -> str:
    """``assistant`` → ``main.default.assistant``; validates each of the three parts."""
    parts = name.split(".")
    if len(parts) == 1:
        parts = [DEFAULT_CATALOG, DEFAULT_SCHEMA, parts[0]]
    if len(parts) != 3:
        raise InvalidURIError(
            f"Model name {name!r} must be 'catalog.schema.model' or a bare 'model' (which lives in "
            f"{DEFAULT_CATALOG}.{DEFAULT_SCHEMA})"
        )
    for part in parts:
        if not _NAME_PART.match(part):
            raise InvalidURIError(
                f"Model name {name!r}: part {part!r} must start with a letter or underscore and use only "
                "letters, digits, '_' and '-' (at most 128 characters)"
            )
    return ".".join(parts)


@dataclass(frozen=True)
class ModelURI:
    """A parsed ``models:/`` or ``runs:/`` URI."""

    scheme: str  # "models" or "runs"
    name: str | None = None  # full three-level name
    version: int | None = None
    alias: str | None = None
    logged_model_id: str | None = None
    run_id: str | None = None
    artifact_path: str | None = None

    def __str__(self) -> str:
        if self.scheme == "runs":
            return f"runs:/{self.run_id}/{self.artifact_path}"
        if self.logged_model_id:
            return f"models:/{self.logged_model_id}"
        if self.alias:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"


def is_remote_uri(uri: str) -> bool:
    return isinstance(uri, str) and (uri.startswith("models:/") or uri.startswith("runs:/"))


def parse_model_uri(uri: str) -> ModelURI:
    if uri.startswith("runs:/"):
        rest = uri[len("runs:/"):].strip("/")
        run_id, _, path = rest.partition("/")
        if not run_id or not path:
            raise InvalidURIError(f"{uri!r}: a runs URI is runs:/<run-id>/<artifact path>")
        if ".." in Path(path).parts or path.startswith("/"):
            raise InvalidURIError(f"{uri!r}: the artifact path may not leave the run's artifacts")
        return ModelURI("runs", run_id=run_id, artifact_path=path)
    if not uri.startswith("models:/"):
        raise InvalidURIError(f"{uri!r} is not a models:/ or runs:/ URI")
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not _ALIAS.match(alias):
            raise InvalidURIError(f"{uri!r}: alias {alias!r} is not a valid alias name")
        return ModelURI("models", name=full_model_name(name), alias=alias)
    if "/" in rest:
        name, _, version = rest.rpartition("/")
        if not version.isdecimal() or int(version) < 1:
            raise InvalidURIError(f"{uri!r}: the version must be a positive integer, got {version!r}")
        return ModelURI("models", name=full_model_name(name), version=int(version))
    if _LOGGED_MODEL_ID.match(rest):
        return ModelURI("models", logged_model_id=rest)
    raise InvalidURIError(
        f"{uri!r}: use models:/<name>/<version>, models:/<name>@<alias> or models:/<logged-model-id>"
    )
