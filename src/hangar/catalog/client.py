"""``hangar.Client``: tracking plus the governed registry, over one store."""

from __future__ import annotations

import os

from hangar.catalog.store import open_registry
from hangar.tracking.client import Client as TrackingClient


class Client(TrackingClient):
    """Everything ``hangar.tracking.client.Client`` does, plus catalogs, schemas, registered
    models, versions, aliases, lineage and the audit log."""

    def __init__(self, tracking_uri: str | None = None, artifact_root: str | None = None, settings=None,
                 store=None, actor: str | None = None):
        super().__init__(tracking_uri, artifact_root, settings, store)
        self.registry = open_registry(self.store, actor=actor, cache_dir=self.settings.cache_dir)

    # namespace
    def create_catalog(self, name: str, comment: str | None = None):
        return self.registry.create_catalog(name, comment)

    def get_catalog(self, name: str):
        return self.registry.get_catalog(name)

    def list_catalogs(self):
        return self.registry.list_catalogs()

    def delete_catalog(self, name: str) -> None:
        self.registry.delete_catalog(name)

    def create_schema(self, full_name: str, comment: str | None = None):
        return self.registry.create_schema(full_name, comment)

    def get_schema(self, full_name: str):
        return self.registry.get_schema(full_name)

    def list_schemas(self, catalog: str):
        return self.registry.list_schemas(catalog)

    def delete_schema(self, full_name: str) -> None:
        self.registry.delete_schema(full_name)

    # registered models
    def create_registered_model(self, name: str, comment: str | None = None, tags: dict | None = None):
        return self.registry.create_registered_model(name, comment, tags)

    def get_registered_model(self, name: str):
        return self.registry.get_registered_model(name)

    def search_registered_models(self, catalog: str | None = None, schema: str | None = None,
                                 name_like: str | None = None, tags: dict | None = None, alias: str | None = None,
                                 max_results: int = 1000, filter_string: str | None = None):
        return self.registry.search_registered_models(catalog, schema, name_like, tags, alias, max_results,
                                                      filter_string)

    def update_registered_model(self, name: str, comment: str):
        return self.registry.update_registered_model(name, comment)

    def set_registered_model_tag(self, name: str, key: str, value) -> None:
        self.registry.set_registered_model_tag(name, key, value)

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self.registry.delete_registered_model_tag(name, key)

    def delete_registered_model(self, name: str, force: bool = False) -> None:
        self.registry.delete_registered_model(name, force)

    # versions
    def register_model(self, model_uri: str | os.PathLike, name: str, *, comment: str | None = None,
                       tags: dict | None = None):
        return self.registry.register_model(model_uri, name, comment=comment, tags=tags)

    def get_model_version(self, name: str, version):
        return self.registry.get_model_version(name, version)

    def search_model_versions(self, name: str, status: str | None = None, tags: dict | None = None,
                              include_deleted: bool = False, filter_string: str | None = None):
        return self.registry.search_model_versions(name, status, tags, include_deleted, filter_string)

    def update_model_version(self, name: str, version, comment: str):
        return self.registry.update_model_version(name, version, comment)

    def set_model_version_tag(self, name: str, version, key: str, value) -> None:
        self.registry.set_model_version_tag(name, version, key, value)

    def delete_model_version(self, name: str, version, force: bool = False) -> None:
        self.registry.delete_model_version(name, version, force)

    # aliases
    def set_alias(self, name: str, alias: str, version):
        return self.registry.set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.registry.delete_alias(name, alias)

    def get_version_by_alias(self, name: str, alias: str):
        return self.registry.get_version_by_alias(name, alias)

    def get_alias_history(self, name: str, alias: str | None = None):
        return self.registry.get_alias_history(name, alias)

    # lineage and audit
    def get_lineage(self, entity: str, direction: str = "upstream", max_depth: int = 10, entity_id: str | None = None):
        """The lineage graph around ``entity``: a URI (``models:/name/3``, ``models:/name@champion``,
        ``runs:/<id>``, ``models:/<logged-model-id>``), ``type:id``, or a type with ``entity_id``."""
        return self.registry.get_lineage(entity, direction, max_depth, entity_id)

    def list_audit(self, **filters):
        return self.registry.list_audit(**filters)

    def verify_audit(self, anchor=None):
        return self.registry.verify_audit(anchor)

    # grants: one permission model for every securable (see hangar.governance.privileges)
    def grant(self, securable_type: str, securable: str, principal: str, privilege: str):
        """Grant ``privilege`` on a securable (``"registered_model", "main.default.m"``, ``"endpoint", "bot"``,
        ``"experiment", "7"``, ...) to a principal; audited. Through a server this needs MANAGE on it."""
        return self.registry.grant(securable_type, securable, principal, privilege)

    def revoke(self, securable_type: str, securable: str, principal: str, privilege: str) -> None:
        self.registry.revoke(securable_type, securable, principal, privilege)

    def list_grants(self, securable_type: str | None = None, securable: str | None = None):
        """Grants made directly on a securable; with no arguments, the caller's own grants."""
        return self.registry.list_grants(securable_type, securable)
