"""The registry over a Hangar server: the same methods as ``SqlRegistry``, through the REST API.

Registering uploads the package's files into a PENDING version and has the server finalize it
(the server computes the checksums); loading downloads a READY version into the same
content-addressed cache as the local registry, verifying every file against the checksums the
server recorded before the copy enters the cache.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from hangar.catalog import names
from hangar.catalog.entities import AliasMove, Catalog, ModelVersion, RegisteredModel, Schema
from hangar.catalog.versions import DEFAULT_LEASE_SECONDS, VersionsMixin, check_against_record, content_key
from hangar.errors import AlreadyExistsError, NotFoundError
from hangar.remote import ServerClient


def _make(cls, d: dict):
    names_ = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names_})


def version(d: dict) -> ModelVersion:
    return _make(ModelVersion, {**d, "aliases": tuple(d.get("aliases") or ())})


class RestRegistry:
    """Catalogs, schemas, registered models, versions, aliases, lineage and audit, through a server."""

    remote = True

    def __init__(self, tracking_store, cache_dir=None):
        self.tracking = tracking_store
        self.server: ServerClient = tracking_store.server
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.actor = None  # the server acts as the token's principal

    def _call(self, method: str, path: str, body: dict | None = None, query: dict | None = None):
        return self.server.request(method, path, body, query)

    @staticmethod
    def _m(name: str) -> str:
        return ServerClient.quote(names.model_name(name)[0])

    def _tracking_client(self):
        from hangar.tracking.client import Client

        return Client(store=self.tracking)

    # -- catalogs and schemas --------------------------------------------------------------
    def create_catalog(self, name: str, comment: str | None = None) -> Catalog:
        return _make(Catalog, self._call("POST", "/catalogs", {"name": name, "comment": comment}))

    def get_catalog(self, name: str) -> Catalog:
        return _make(Catalog, self._call("GET", f"/catalogs/{ServerClient.quote(name)}"))

    def list_catalogs(self) -> list[Catalog]:
        return [_make(Catalog, c) for c in self._call("GET", "/catalogs")["catalogs"]]

    def delete_catalog(self, name: str) -> None:
        self._call("DELETE", f"/catalogs/{ServerClient.quote(name)}")

    def create_schema(self, full_name: str, comment: str | None = None) -> Schema:
        return _make(Schema, self._call("POST", "/schemas", {"name": full_name, "comment": comment}))

    def get_schema(self, full_name: str) -> Schema:
        return _make(Schema, self._call("GET", f"/schemas/{ServerClient.quote(full_name)}"))

    def list_schemas(self, catalog: str) -> list[Schema]:
        return [_make(Schema, s) for s in self._call("GET", f"/catalogs/{ServerClient.quote(catalog)}/schemas")["schemas"]]

    def delete_schema(self, full_name: str) -> None:
        self._call("DELETE", f"/schemas/{ServerClient.quote(full_name)}")

    # -- registered models -----------------------------------------------------------------
    def create_registered_model(self, name: str, comment: str | None = None, tags: dict | None = None) -> RegisteredModel:
        return _make(RegisteredModel, self._call("POST", "/models", {"name": name, "comment": comment, "tags": tags}))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _make(RegisteredModel, self._call("GET", f"/models/{self._m(name)}"))

    def search_registered_models(self, catalog: str | None = None, schema: str | None = None,
                                 name_like: str | None = None, tags: dict | None = None, alias: str | None = None,
                                 max_results: int = 1000, filter_string: str | None = None) -> list[RegisteredModel]:
        out = self._call("GET", "/models", query={"catalog": catalog, "schema": schema, "name_like": name_like,
                                                  "tags": json.dumps(tags) if tags else None, "alias": alias,
                                                  "max_results": max_results, "filter": filter_string})
        return [_make(RegisteredModel, m) for m in out["registered_models"]]

    def update_registered_model(self, name: str, comment: str) -> RegisteredModel:
        return _make(RegisteredModel, self._call("PATCH", f"/models/{self._m(name)}", {"comment": comment}))

    def set_registered_model_tag(self, name: str, key: str, value) -> None:
        self._call("PUT", f"/models/{self._m(name)}/tags/{ServerClient.quote(key)}", {"value": value})

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._call("DELETE", f"/models/{self._m(name)}/tags/{ServerClient.quote(key)}")

    def delete_registered_model(self, name: str, force: bool = False) -> None:
        self._call("DELETE", f"/models/{self._m(name)}", query={"force": "true" if force else None})

    # -- versions ----------------------------------------------------------------------------
    def _files(self, full: str, number: int):
        from hangar.artifacts.http_repo import HttpArtifactRepository

        return HttpArtifactRepository(self.server, f"/artifacts/models/{ServerClient.quote(full)}/versions/{number}")

    def register_model(self, model_uri: str | os.PathLike, name: str, *, comment: str | None = None,
                       tags: dict | None = None, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> ModelVersion:
        """Upload the package into a new PENDING version, then have the server check and finalize it."""
        from hangar.models.package import open_package

        full = names.model_name(name)[0]
        package, source, lm_id, run_id = VersionsMixin._source_of(self, model_uri)
        open_package(package, verify=True)
        body = {"source": source, "logged_model_id": lm_id, "run_id": run_id, "comment": comment, "tags": tags,
                "lease_seconds": lease_seconds}
        path = f"/models/{ServerClient.quote(full)}/versions"
        try:
            mv = version(self._call("POST", path, body))
        except NotFoundError:  # a new model: create it (CREATE_MODEL on its schema), then its first version
            try:
                self.create_registered_model(full)
            except AlreadyExistsError:
                pass
            mv = version(self._call("POST", path, body))
        try:
            self._files(full, mv.version).log_artifacts(package, None)
        except BaseException as exc:
            try:
                self._call("POST", f"{path}/{mv.version}/finalize",
                           {"status": "FAILED", "message": f"uploading the files failed: {type(exc).__name__}: {exc}"})
            except Exception:  # the original error matters more than the bookkeeping
                pass
            raise
        return version(self._call("POST", f"{path}/{mv.version}/finalize", {"status": "READY"}))

    def get_model_version(self, name: str, version_) -> ModelVersion:
        return version(self._call("GET", f"/models/{self._m(name)}/versions/{ServerClient.quote(version_)}"))

    def search_model_versions(self, name: str, status: str | None = None, tags: dict | None = None,
                              include_deleted: bool = False, filter_string: str | None = None) -> list[ModelVersion]:
        out = self._call("GET", f"/models/{self._m(name)}/versions", query={
            "status": status, "tags": json.dumps(tags) if tags else None,
            "include_deleted": "true" if include_deleted else None, "filter": filter_string})
        return [version(v) for v in out["model_versions"]]

    def update_model_version(self, name: str, version_, comment: str) -> ModelVersion:
        return version(self._call("PATCH", f"/models/{self._m(name)}/versions/{ServerClient.quote(version_)}",
                                  {"comment": comment}))

    def set_model_version_tag(self, name: str, version_, key: str, value) -> None:
        self._call("PUT", f"/models/{self._m(name)}/versions/{ServerClient.quote(version_)}/tags/"
                          f"{ServerClient.quote(key)}", {"value": value})

    def delete_model_version(self, name: str, version_, force: bool = False) -> None:
        self._call("DELETE", f"/models/{self._m(name)}/versions/{ServerClient.quote(version_)}",
                   query={"force": "true" if force else None})

    # -- aliases -------------------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version_) -> AliasMove:
        return _make(AliasMove, self._call("PUT", f"/models/{self._m(name)}/aliases/{ServerClient.quote(alias)}",
                                           {"version": version_}))

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/models/{self._m(name)}/aliases/{ServerClient.quote(alias)}")

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return version(self._call("GET", f"/models/{self._m(name)}/aliases/{ServerClient.quote(alias)}"))

    def get_alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        out = self._call("GET", f"/models/{self._m(name)}/alias-history", query={"alias": alias})
        return [_make(AliasMove, m) for m in out["moves"]]

    # -- loading -------------------------------------------------------------------------------
    def resolve(self, uri: str) -> Path:
        """The local package of ``models:/name/N`` or ``@alias``: downloaded once, verified, cached."""
        from hangar.tracking.resolver import TrackingResolver, local_package
        from hangar.uri import parse_model_uri

        parsed = parse_model_uri(uri)
        if parsed.scheme != "models" or parsed.name is None:
            return TrackingResolver(self._tracking_client()).resolve(uri)
        query = {"alias": parsed.alias} if parsed.alias else {"version": parsed.version}
        mv = version(self._call("GET", f"/models/{self._m(parsed.name)}/load", query=query))
        repo = self._files(mv.full_name, mv.version)
        path = local_package(repo.uri, self.cache_dir or Path.home() / ".hangar" / "cache",
                             key=content_key(mv.checksums or {}), repository=repo, checksums=mv.checksums)
        return check_against_record(path, mv)

    # -- lineage and audit -----------------------------------------------------------------------
    def get_lineage(self, entity: str, direction: str = "upstream", max_depth: int = 10, entity_id: str | None = None):
        from hangar.catalog.lineage import Edge, LineageGraph, Node

        g = self._call("GET", "/lineage", query={"entity": entity, "entity_id": entity_id, "direction": direction,
                                                 "max_depth": max_depth})
        return LineageGraph(Node(**g["root"]), g["direction"], [Node(**n) for n in g["nodes"]],
                            [Edge(**e) for e in g["edges"]])

    def add_lineage_edge(self, src_type: str, src_id: str, dst_type: str, dst_id: str) -> bool:
        """Record a stored lineage edge through the server (idempotent); True when it was new."""
        body = {"src_type": src_type, "src_id": src_id, "dst_type": dst_type, "dst_id": dst_id}
        return bool(self._call("POST", "/lineage/edges", body)["created"])

    def list_audit(self, **filters):
        from hangar.catalog.audit import AuditRecord

        if "descending" in filters:
            filters["descending"] = "true" if filters["descending"] else "false"
        return [AuditRecord(**r) for r in self._call("GET", "/audit", query=filters)["records"]]

    def verify_audit(self, anchor=None):
        from hangar.catalog.audit import AuditVerification

        return AuditVerification(**self._call("GET", "/audit/verify",
                                              query={"anchor": str(anchor) if anchor is not None else None}))

    # -- grants --------------------------------------------------------------------------------
    def _grants_path(self, securable_type: str, securable: str) -> str:
        return f"/grants/{ServerClient.quote(securable_type)}/{ServerClient.quote(securable)}"

    def grant(self, securable_type: str, securable: str, principal: str, privilege: str):
        from hangar.governance.grants import Grant

        return _make(Grant, self._call("POST", self._grants_path(securable_type, securable),
                                       {"principal": principal, "privilege": str(privilege).upper()}))

    def revoke(self, securable_type: str, securable: str, principal: str, privilege: str) -> None:
        self._call("DELETE", self._grants_path(securable_type, securable),
                   query={"principal": principal, "privilege": str(privilege).upper()})

    def list_grants(self, securable_type: str | None = None, securable: str | None = None):
        """Grants made directly on a securable (needs MANAGE on it); with neither argument, the caller's own."""
        from hangar.catalog.store import _required
        from hangar.governance.grants import Grant

        if securable_type is None and securable is None:
            found = self._call("GET", "/auth/grants")["grants"]
        else:
            found = self._call("GET", self._grants_path(_required(securable_type, "securable_type"),
                                                        _required(securable, "securable")))["grants"]
        return [_make(Grant, g) for g in found]
