"""Registry entities: catalogs, schemas, registered models, versions and alias moves."""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING, READY, FAILED = "PENDING", "READY", "FAILED"


@dataclass(frozen=True)
class Catalog:
    name: str
    comment: str | None
    owner: str
    created_at: int
    updated_at: int


@dataclass(frozen=True)
class Schema:
    catalog_name: str
    name: str
    comment: str | None
    owner: str
    created_at: int
    updated_at: int

    @property
    def full_name(self) -> str:
        return f"{self.catalog_name}.{self.name}"


@dataclass(frozen=True)
class RegisteredModel:
    full_name: str
    comment: str | None
    owner: str
    last_version: int
    created_at: int
    updated_at: int
    tags: dict = field(default_factory=dict)
    aliases: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    full_name: str
    version: int
    source: str
    logged_model_id: str | None
    run_id: str | None
    storage_location: str
    status: str
    status_message: str | None
    checksums: dict | None
    signature: dict | None
    comment: str | None
    created_by: str
    created_at: int
    updated_at: int
    deleted: bool = False
    tags: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def model_uri(self) -> str:
        return f"models:/{self.full_name}/{self.version}"


@dataclass(frozen=True)
class AliasMove:
    full_name: str
    alias: str
    version: int | None
    previous_version: int | None
    actor: str
    at: int
