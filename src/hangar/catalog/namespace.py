"""Catalogs, schemas and registered models (with tags and comments)."""

from __future__ import annotations

from sqlalchemy import delete, func, select, update

from hangar.catalog import names
from hangar.catalog.entities import Catalog, RegisteredModel, Schema
from hangar.errors import AlreadyExistsError, ConflictError, InvalidArgumentError, NotFoundError
from hangar.store import schema as t
from hangar.store.transactions import now_ms
from hangar.store.upsert import insert_ignore, upsert
from hangar.tracking import validation as v


class NamespaceMixin:
    def _ensure_main_default(self) -> None:
        with self._read() as conn:
            if conn.execute(select(t.schemas.c.name).where(t.schemas.c.catalog_name == names.DEFAULT_CATALOG,
                                                           t.schemas.c.name == names.DEFAULT_SCHEMA)).first():
                return
        ts = now_ms()
        with self._tx() as conn:
            insert_ignore(conn, t.catalogs, [{"name": names.DEFAULT_CATALOG, "comment": "The default catalog",
                                              "owner": "system", "created_at": ts, "updated_at": ts}], ["name"])
            insert_ignore(conn, t.schemas, [{"catalog_name": names.DEFAULT_CATALOG, "name": names.DEFAULT_SCHEMA,
                                             "comment": "The default schema", "owner": "system",
                                             "created_at": ts, "updated_at": ts}], ["catalog_name", "name"])

    # -- catalogs ----------------------------------------------------------------------
    def create_catalog(self, name: str, comment: str | None = None) -> Catalog:
        names.catalog_name(name)
        ts = now_ms()
        with self._tx() as conn:
            if conn.execute(select(t.catalogs.c.name).where(t.catalogs.c.name == name)).first():
                raise AlreadyExistsError(f"Catalog {name!r} already exists")
            conn.execute(t.catalogs.insert().values(name=name, comment=comment, owner=self.actor,
                                                    created_at=ts, updated_at=ts))
            self._audit(conn, "CREATE_CATALOG", "catalog", name)
        return self.get_catalog(name)

    def get_catalog(self, name: str) -> Catalog:
        with self._read() as conn:
            row = conn.execute(select(t.catalogs).where(t.catalogs.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"No catalog {name!r} (create it with create_catalog / hangar catalogs create)")
        return Catalog(row.name, row.comment, row.owner, row.created_at, row.updated_at)

    def list_catalogs(self) -> list[Catalog]:
        with self._read() as conn:
            rows = conn.execute(select(t.catalogs).order_by(t.catalogs.c.name)).all()
        return [Catalog(r.name, r.comment, r.owner, r.created_at, r.updated_at) for r in rows]

    def delete_catalog(self, name: str) -> None:
        with self._tx() as conn:
            if not conn.execute(select(t.catalogs.c.name).where(t.catalogs.c.name == name)).first():
                raise NotFoundError(f"No catalog {name!r}")
            if conn.execute(select(t.schemas.c.name).where(t.schemas.c.catalog_name == name).limit(1)).first():
                raise ConflictError(f"Catalog {name!r} still has schemas; delete them first")
            conn.execute(delete(t.catalogs).where(t.catalogs.c.name == name))
            self._audit(conn, "DELETE_CATALOG", "catalog", name)
            self._drop_grants(conn, "catalog", name)

    # -- schemas -----------------------------------------------------------------------
    def create_schema(self, full_name: str, comment: str | None = None) -> Schema:
        cat, sch = names.schema_name(full_name)
        ts = now_ms()
        with self._tx() as conn:
            if not conn.execute(select(t.catalogs.c.name).where(t.catalogs.c.name == cat)).first():
                raise NotFoundError(f"No catalog {cat!r}; create it first (create_catalog({cat!r}))")
            if conn.execute(select(t.schemas.c.name).where(t.schemas.c.catalog_name == cat,
                                                           t.schemas.c.name == sch)).first():
                raise AlreadyExistsError(f"Schema {full_name!r} already exists")
            conn.execute(t.schemas.insert().values(catalog_name=cat, name=sch, comment=comment, owner=self.actor,
                                                   created_at=ts, updated_at=ts))
            self._audit(conn, "CREATE_SCHEMA", "schema", full_name)
        return self.get_schema(full_name)

    def get_schema(self, full_name: str) -> Schema:
        cat, sch = names.schema_name(full_name)
        with self._read() as conn:
            row = conn.execute(select(t.schemas).where(t.schemas.c.catalog_name == cat, t.schemas.c.name == sch)).first()
        if row is None:
            raise NotFoundError(f"No schema {full_name!r} (create it with create_schema / hangar schemas create)")
        return Schema(row.catalog_name, row.name, row.comment, row.owner, row.created_at, row.updated_at)

    def list_schemas(self, catalog: str) -> list[Schema]:
        self.get_catalog(catalog)
        with self._read() as conn:
            rows = conn.execute(select(t.schemas).where(t.schemas.c.catalog_name == catalog).order_by(t.schemas.c.name))
            return [Schema(r.catalog_name, r.name, r.comment, r.owner, r.created_at, r.updated_at) for r in rows]

    def delete_schema(self, full_name: str) -> None:
        cat, sch = names.schema_name(full_name)
        with self._tx() as conn:
            if not conn.execute(select(t.schemas.c.name).where(t.schemas.c.catalog_name == cat,
                                                               t.schemas.c.name == sch)).first():
                raise NotFoundError(f"No schema {full_name!r}")
            if conn.execute(select(t.registered_models.c.full_name).where(
                    t.registered_models.c.catalog_name == cat, t.registered_models.c.schema_name == sch,
                    t.registered_models.c.deleted_at.is_(None)).limit(1)).first():
                raise ConflictError(f"Schema {full_name!r} still has models; delete them first")
            conn.execute(delete(t.schemas).where(t.schemas.c.catalog_name == cat, t.schemas.c.name == sch))
            self._audit(conn, "DELETE_SCHEMA", "schema", full_name)
            self._drop_grants(conn, "schema", f"{cat}.{sch}")

    # -- registered models -------------------------------------------------------------
    def _create_model_in(self, conn, full: str, cat: str, sch: str, name: str, comment: str | None) -> bool:
        """Create the model row unless a concurrent transaction just did; True if this one did."""
        from hangar.store.upsert import insert_for

        if not conn.execute(select(t.schemas.c.name).where(t.schemas.c.catalog_name == cat,
                                                           t.schemas.c.name == sch)).first():
            raise NotFoundError(
                f"No schema {cat}.{sch} for model {full!r}; create it first (create_schema('{cat}.{sch}'))"
            )
        ts = now_ms()
        created = conn.execute(insert_for(conn, t.registered_models).values(
            full_name=full, catalog_name=cat, schema_name=sch, name=name, comment=comment, owner=self.actor,
            last_version=0, created_at=ts, updated_at=ts, deleted_at=None)
            .on_conflict_do_nothing(index_elements=["full_name"])).rowcount
        if created:
            self._audit(conn, "CREATE_MODEL", "registered_model", full)
        return bool(created)

    def create_registered_model(self, name: str, comment: str | None = None, tags: dict | None = None) -> RegisteredModel:
        full, cat, sch, short = names.model_name(name)
        with self._tx() as conn:
            row = conn.execute(select(t.registered_models.c.deleted_at).where(
                t.registered_models.c.full_name == full)).first()
            if row is not None or not self._create_model_in(conn, full, cat, sch, short, comment):
                raise AlreadyExistsError(
                    f"Model {full!r} already exists" + (" (deleted; its name is kept)" if row and row.deleted_at else "")
                )
            for k, val in (tags or {}).items():
                conn.execute(t.registered_model_tags.insert().values(full_name=full, key=v.key("tag", k),
                                                                     value=v.tag_value(k, val)))
        return self.get_registered_model(full)

    def _model_row(self, conn, full: str):
        row = conn.execute(select(t.registered_models).where(t.registered_models.c.full_name == full)).first()
        if row is None or row.deleted_at is not None:
            raise NotFoundError(f"No registered model {full!r}")
        return row

    def get_registered_model(self, name: str) -> RegisteredModel:
        full = names.model_name(name)[0]
        with self._read() as conn:
            row = self._model_row(conn, full)
            return self._model_entity(conn, row)

    def _model_entity(self, conn, row) -> RegisteredModel:
        tags = dict(conn.execute(select(t.registered_model_tags.c.key, t.registered_model_tags.c.value).where(
            t.registered_model_tags.c.full_name == row.full_name)).all())
        aliases = dict(conn.execute(select(t.aliases.c.alias, t.aliases.c.version).where(
            t.aliases.c.full_name == row.full_name)).all())
        return RegisteredModel(row.full_name, row.comment, row.owner, row.last_version, row.created_at,
                               row.updated_at, tags, aliases)

    def search_registered_models(self, catalog: str | None = None, schema: str | None = None,
                                 name_like: str | None = None, tags: dict | None = None,
                                 alias: str | None = None, max_results: int = 1000,
                                 filter_string: str | None = None) -> list[RegisteredModel]:
        """Models by catalog / schema, name pattern (SQL LIKE, ``%`` wildcard), tags, alias, and
        a filter string (``name LIKE 'main.%' and tags.team = 'cx'``)."""
        q = select(t.registered_models).where(t.registered_models.c.deleted_at.is_(None))
        if filter_string:
            from hangar.catalog.search import REGISTERED_MODEL_SEARCH
            from hangar.tracking.search import build_search

            matching = build_search(REGISTERED_MODEL_SEARCH, [], filter_string, None, 50000, 0).subquery()
            q = q.where(t.registered_models.c.full_name.in_(select(matching.c.full_name)))
        if catalog:
            q = q.where(t.registered_models.c.catalog_name == catalog)
        if schema:
            q = q.where(t.registered_models.c.schema_name == schema)
        if name_like:
            q = q.where(t.registered_models.c.full_name.like(name_like))
        for k, val in (tags or {}).items():
            q = q.where(select(t.registered_model_tags.c.key).where(
                t.registered_model_tags.c.full_name == t.registered_models.c.full_name,
                t.registered_model_tags.c.key == k, t.registered_model_tags.c.value == str(val)).exists())
        if alias:
            q = q.where(select(t.aliases.c.alias).where(t.aliases.c.full_name == t.registered_models.c.full_name,
                                                        t.aliases.c.alias == alias).exists())
        q = q.order_by(t.registered_models.c.full_name).limit(max_results)
        with self._read() as conn:
            return [self._model_entity(conn, r) for r in conn.execute(q).all()]

    def update_registered_model(self, name: str, comment: str) -> RegisteredModel:
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._model_row(conn, full)
            conn.execute(update(t.registered_models).where(t.registered_models.c.full_name == full)
                         .values(comment=comment, updated_at=now_ms()))
            self._audit(conn, "UPDATE_MODEL", "registered_model", full, comment=comment)
        return self.get_registered_model(full)

    def set_registered_model_tag(self, name: str, key: str, value) -> None:
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._model_row(conn, full)
            upsert(conn, t.registered_model_tags, [{"full_name": full, "key": v.key("tag", key),
                                                    "value": v.tag_value(key, value)}], ["full_name", "key"], ["value"])
            self._audit(conn, "SET_MODEL_TAG", "registered_model", full, key=key, value=str(value))

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._model_row(conn, full)
            if not conn.execute(delete(t.registered_model_tags).where(
                    t.registered_model_tags.c.full_name == full, t.registered_model_tags.c.key == key)).rowcount:
                raise NotFoundError(f"Model {full!r} has no tag {key!r}")
            self._audit(conn, "DELETE_MODEL_TAG", "registered_model", full, key=key)

    def delete_registered_model(self, name: str, force: bool = False) -> None:
        """Delete a model and all its versions (their files go at the next ``hangar gc``).

        Refused while an alias points at one of its versions, unless ``force``.
        """
        full = names.model_name(name)[0]
        ts = now_ms()
        with self._tx() as conn:
            self._model_row(conn, full)
            aliases = conn.execute(select(t.aliases.c.alias).where(t.aliases.c.full_name == full)).scalars().all()
            if aliases and not force:
                raise ConflictError(
                    f"Model {full!r} has aliases {sorted(aliases)}; move or delete them first, or pass force=True"
                )
            for alias in aliases:
                self._remove_alias(conn, full, alias)
            conn.execute(update(t.model_versions).where(t.model_versions.c.full_name == full,
                                                        t.model_versions.c.deleted_at.is_(None)).values(deleted_at=ts))
            conn.execute(update(t.registered_models).where(t.registered_models.c.full_name == full)
                         .values(deleted_at=ts, updated_at=ts))
            self._audit(conn, "DELETE_MODEL", "registered_model", full, forced=bool(force and aliases))
            self._drop_grants(conn, "registered_model", full)

    def _drop_grants(self, conn, securable_type: str, securable: str) -> None:
        from hangar.governance.grants import drop_for_deleted_in

        drop_for_deleted_in(conn, securable_type, securable, actor=self.actor, request_id=self.request_id)

    def count_versions(self, name: str) -> int:
        full = names.model_name(name)[0]
        with self._read() as conn:
            return conn.execute(select(func.count()).select_from(t.model_versions).where(
                t.model_versions.c.full_name == full)).scalar()

    @staticmethod
    def _check_comment(comment) -> str | None:
        if comment is not None and not isinstance(comment, str):
            raise InvalidArgumentError("A comment must be a string")
        return comment
