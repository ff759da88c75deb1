"""Model versions (registration with a lease, immutability, deletion) and aliases."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sqlalchemy import delete, select, update

from hangar.catalog import names
from hangar.catalog.entities import FAILED, PENDING, READY, AliasMove, ModelVersion
from hangar.errors import ConflictError, InvalidArgumentError, ModelPackageError, NotFoundError
from hangar.store import schema as t
from hangar.store.transactions import now_ms
from hangar.store.upsert import upsert
from hangar.tracking import validation as v

DEFAULT_LEASE_SECONDS = 900



class VersionsMixin:
    # -- registration ------------------------------------------------------------------
    def _source_of(self, uri: str) -> tuple[Path, str, str | None, str | None]:
        """(local package dir, source text, logged model id, run id) for a model URI or path."""
        from hangar.models.resolver import resolve_model_uri
        from hangar.tracking.resolver import TrackingResolver
        from hangar.uri import is_remote_uri, parse_model_uri

        if not is_remote_uri(str(uri)):
            path = resolve_model_uri(uri)
            return path, str(Path(path).absolute()), None, None
        parsed = parse_model_uri(str(uri))
        if parsed.scheme == "models" and parsed.logged_model_id is None:
            raise InvalidArgumentError(
                f"{uri!r} is already a registered model; register a logged model (models:/<id>), a run's "
                "model (runs:/<run-id>/<name>) or a local package path"
            )
        path = TrackingResolver(self._tracking_client()).resolve(str(uri))
        if parsed.scheme == "models":
            lm = self.tracking.get_logged_model(parsed.logged_model_id)
            return path, str(uri), lm.model_id, lm.source_run_id
        lm = self.tracking.find_logged_model(parsed.run_id, parsed.artifact_path)
        return path, str(uri), (lm.model_id if lm else None), parsed.run_id

    def _tracking_client(self):
        from hangar.tracking.client import Client

        return Client(store=self.tracking)

    def register_model(self, model_uri: str | os.PathLike, name: str, *, comment: str | None = None,
                       tags: dict | None = None, lease_seconds: int = DEFAULT_LEASE_SECONDS) -> ModelVersion:
        """A new immutable version of ``name`` (created in its schema if new) from a package.

        The version is PENDING while its files are copied to the registry's storage and READY
        only when they are complete. A registration whose process dies stays PENDING until its
        lease expires; the next registration (or ``hangar gc``) marks it FAILED.
        """
        from hangar.artifacts import get_artifact_repository
        from hangar.models.package import open_package

        package, source, lm_id, run_id = self._source_of(model_uri)
        manifest = open_package(package, verify=True)
        mv = self.begin_version(name, source, lm_id, run_id, comment=comment, tags=tags, lease_seconds=lease_seconds)
        try:
            get_artifact_repository(mv.storage_location).log_artifacts(package, None)
        except BaseException as exc:
            self._fail_version(mv.full_name, mv.version, f"copying the files failed: {type(exc).__name__}: {exc}")
            raise
        return self._complete_version(mv.full_name, mv.version, manifest, manifest.checksums or {})

    def begin_version(self, name: str, source: str, logged_model_id: str | None = None, run_id: str | None = None, *,
                      comment: str | None = None, tags: dict | None = None,
                      lease_seconds: int = DEFAULT_LEASE_SECONDS, create_model: bool = True) -> ModelVersion:
        """The PENDING version (with its storage location) that files are then copied into."""
        full, cat, sch, short = names.model_name(name)
        self._check_comment(comment)
        tag_rows = [(v.key("tag", k), v.tag_value(k, val)) for k, val in (tags or {}).items()]
        ts = now_ms()
        with self._tx() as conn:
            self._expire_version_leases(conn, ts)
            row = conn.execute(select(t.registered_models.c.deleted_at).where(
                t.registered_models.c.full_name == full)).first()
            if row is None and not create_model:
                raise NotFoundError(f"No registered model {full!r}; create it first")
            if row is None:
                self._create_model_in(conn, full, cat, sch, short, None)
            elif row.deleted_at is not None:
                raise ConflictError(f"Model {full!r} was deleted; its name cannot take new versions")
            version = conn.execute(update(t.registered_models).where(t.registered_models.c.full_name == full)
                                   .values(last_version=t.registered_models.c.last_version + 1, updated_at=ts)
                                   .returning(t.registered_models.c.last_version)).scalar_one()
            location = f"{self.artifact_root}/registry/{cat}/{sch}/{short}/{version}"
            conn.execute(t.model_versions.insert().values(
                full_name=full, version=version, source=source, logged_model_id=logged_model_id, run_id=run_id,
                storage_location=location, status=PENDING, status_message=None, checksums=None,
                signature=None, comment=comment, created_by=self.actor, created_at=ts, updated_at=ts,
                lease_expires=ts + lease_seconds * 1000, deleted_at=None))
            for k, val in tag_rows:
                conn.execute(t.model_version_tags.insert().values(full_name=full, version=version, key=k, value=val))
            self._audit(conn, "CREATE_MODEL_VERSION", "registered_model", full, version=version, source=source,
                        status=PENDING)
            return self._version_entity(conn, self._version_row(conn, full, version))

    def finalize_uploaded_version(self, name: str, version) -> ModelVersion:
        """READY a PENDING version whose files were uploaded: the checksums are computed here, from
        the stored files, and must match the package's manifest; otherwise the version FAILS."""
        import shutil
        import tempfile

        from hangar.artifacts import get_artifact_repository
        from hangar.models.checksums import compute_checksums
        from hangar.models.package import open_package
        from hangar.tracking.resolver import _is_local

        full = names.model_name(name)[0]
        mv = self.get_model_version(full, version)
        if mv.status != PENDING:
            raise ConflictError(f"Version {mv.version} of {full} is {mv.status}; only a PENDING version is finalized")
        tmp = None
        try:
            if _is_local(mv.storage_location):
                from hangar.artifacts import local_path_from_uri

                folder = local_path_from_uri(mv.storage_location)
            else:
                tmp = folder = Path(tempfile.mkdtemp(prefix="hangar-finalize-"))
                get_artifact_repository(mv.storage_location).download_artifacts("", folder)
            try:
                manifest = open_package(folder, verify=True)
            except (ModelPackageError, NotFoundError, InvalidArgumentError) as exc:
                self._fail_version(full, mv.version, f"the uploaded package is not valid: {exc}")
                raise ModelPackageError(f"Version {mv.version} of {full} FAILED: the uploaded package is not valid: "
                                        f"{exc}") from None
            from hangar.models.manifest import MANIFEST_NAME

            checksums = compute_checksums(folder, exclude={MANIFEST_NAME})
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return self._complete_version(full, mv.version, manifest, checksums)

    def fail_version(self, name: str, version, message: str) -> ModelVersion:
        full = names.model_name(name)[0]
        number = self.get_model_version(full, version).version  # (a malformed or unknown version: 400 / 404)
        self._fail_version(full, number, str(message)[:2000])
        return self.get_model_version(full, number)

    def _complete_version(self, full: str, version: int, manifest, checksums: dict) -> ModelVersion:
        sig = manifest.signature.to_dict() if manifest.signature else None
        with self._tx() as conn:
            done = conn.execute(update(t.model_versions).where(
                t.model_versions.c.full_name == full, t.model_versions.c.version == version,
                t.model_versions.c.status == PENDING).values(
                status=READY, checksums=json.dumps(checksums), updated_at=now_ms(),
                signature=json.dumps(sig) if sig else None, lease_expires=None)).rowcount
            if not done:
                raise ModelPackageError(
                    f"Version {version} of {full} took longer than its lease and was marked FAILED; register again"
                )
            self._audit(conn, "FINALIZE_MODEL_VERSION", "registered_model", full, version=version, status=READY)
        return self.get_model_version(full, version)

    def _fail_version(self, full: str, version: int, message: str) -> None:
        with self._tx() as conn:
            conn.execute(update(t.model_versions).where(
                t.model_versions.c.full_name == full, t.model_versions.c.version == version,
                t.model_versions.c.status == PENDING).values(status=FAILED, status_message=message[:2000],
                                                             updated_at=now_ms(), lease_expires=None))
            self._audit(conn, "FINALIZE_MODEL_VERSION", "registered_model", full, "FAILURE", version=version,
                        status=FAILED)

    def _expire_version_leases(self, conn, ts: int) -> int:
        expired = conn.execute(select(t.model_versions.c.full_name, t.model_versions.c.version).where(
            t.model_versions.c.status == PENDING, t.model_versions.c.lease_expires < ts)).all()
        for full, version in expired:
            conn.execute(update(t.model_versions).where(
                t.model_versions.c.full_name == full, t.model_versions.c.version == version).values(
                status=FAILED, status_message="the registering process stopped before the files were complete",
                updated_at=ts, lease_expires=None))
            self._audit(conn, "EXPIRE_MODEL_VERSION", "registered_model", full, "FAILURE", version=version)
        return len(expired)

    def expire_leases(self) -> int:
        """Mark registrations whose lease ran out FAILED; returns how many (``hangar gc`` calls it)."""
        with self._tx() as conn:
            return self._expire_version_leases(conn, now_ms())

    # -- reading -----------------------------------------------------------------------
    def _version_entity(self, conn, r) -> ModelVersion:
        tags = dict(conn.execute(select(t.model_version_tags.c.key, t.model_version_tags.c.value).where(
            t.model_version_tags.c.full_name == r.full_name, t.model_version_tags.c.version == r.version)).all())
        aliases = tuple(sorted(conn.execute(select(t.aliases.c.alias).where(
            t.aliases.c.full_name == r.full_name, t.aliases.c.version == r.version)).scalars()))
        return ModelVersion(r.full_name, r.version, r.source, r.logged_model_id, r.run_id, r.storage_location,
                            r.status, r.status_message, json.loads(r.checksums) if r.checksums else None,
                            json.loads(r.signature) if r.signature else None, r.comment, r.created_by,
                            r.created_at, r.updated_at, r.deleted_at is not None, tags, aliases)

    def _version_row(self, conn, full: str, version, include_deleted: bool = False):
        if isinstance(version, bool) or not isinstance(version, int) and not str(version).isdecimal():
            raise InvalidArgumentError(f"A version is a positive integer, got {version!r}")
        if not 0 <= int(version) < 2**31:  # no such version can exist (and a database would refuse the comparison)
            raise NotFoundError(f"No version {version} of model {full!r}")
        row = conn.execute(select(t.model_versions).where(t.model_versions.c.full_name == full,
                                                          t.model_versions.c.version == int(version))).first()
        if row is None or (row.deleted_at is not None and not include_deleted):
            raise NotFoundError(f"No version {version} of model {full!r}")
        return row

    def get_model_version(self, name: str, version) -> ModelVersion:
        full = names.model_name(name)[0]
        with self._read() as conn:
            self._model_row(conn, full)
            return self._version_entity(conn, self._version_row(conn, full, version))

    def search_model_versions(self, name: str, status: str | None = None, tags: dict | None = None,
                              include_deleted: bool = False, filter_string: str | None = None) -> list[ModelVersion]:
        """Versions of a model, newest first; ``filter_string`` as for runs (``status = 'READY'
        and run_id = '...'``, ``version > 3``)."""
        full = names.model_name(name)[0]
        q = select(t.model_versions).where(t.model_versions.c.full_name == full)
        if filter_string:
            from hangar.catalog.search import MODEL_VERSION_SEARCH
            from hangar.tracking.search import build_search

            matching = build_search(MODEL_VERSION_SEARCH, [t.model_versions.c.full_name == full], filter_string,
                                    None, 50000, 0).subquery()
            q = q.where(t.model_versions.c.version.in_(select(matching.c.version)))
        if not include_deleted:
            q = q.where(t.model_versions.c.deleted_at.is_(None))
        if status:
            q = q.where(t.model_versions.c.status == status)
        for k, val in (tags or {}).items():
            q = q.where(select(t.model_version_tags.c.key).where(
                t.model_version_tags.c.full_name == t.model_versions.c.full_name,
                t.model_version_tags.c.version == t.model_versions.c.version,
                t.model_version_tags.c.key == k, t.model_version_tags.c.value == str(val)).exists())
        with self._read() as conn:
            self._model_row(conn, full)
            return [self._version_entity(conn, r) for r in conn.execute(q.order_by(t.model_versions.c.version.desc()))]

    def set_model_version_tag(self, name: str, version, key: str, value) -> None:
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._version_row(conn, full, version)
            upsert(conn, t.model_version_tags, [{"full_name": full, "version": int(version), "key": v.key("tag", key),
                                                 "value": v.tag_value(key, value)}], ["full_name", "version", "key"],
                   ["value"])
            self._audit(conn, "SET_VERSION_TAG", "registered_model", full, version=int(version), key=key,
                        value=str(value))

    def update_model_version(self, name: str, version, comment: str) -> ModelVersion:
        """Only the comment of a version can change: its files and source are immutable."""
        full = names.model_name(name)[0]
        self._check_comment(comment)
        with self._tx() as conn:
            self._version_row(conn, full, version)
            conn.execute(update(t.model_versions).where(t.model_versions.c.full_name == full,
                                                        t.model_versions.c.version == int(version))
                         .values(comment=comment, updated_at=now_ms()))
            self._audit(conn, "UPDATE_VERSION", "registered_model", full, version=int(version))
        return self.get_model_version(full, version)

    def delete_model_version(self, name: str, version, force: bool = False) -> None:
        """Delete a version (its number is never reused; files go at the next ``hangar gc``).

        Refused while an alias points at it, unless ``force`` (which removes those aliases).
        """
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._version_row(conn, full, version)
            aliases = conn.execute(select(t.aliases.c.alias).where(
                t.aliases.c.full_name == full, t.aliases.c.version == int(version))).scalars().all()
            if aliases and not force:
                raise ConflictError(
                    f"Version {version} of {full!r} is {', '.join('@' + a for a in sorted(aliases))}; move the "
                    "alias first, or pass force=True"
                )
            for alias in aliases:
                self._remove_alias(conn, full, alias)
            conn.execute(update(t.model_versions).where(t.model_versions.c.full_name == full,
                                                        t.model_versions.c.version == int(version))
                         .values(deleted_at=now_ms()))
            self._audit(conn, "DELETE_MODEL_VERSION", "registered_model", full, version=int(version),
                        forced=bool(force and aliases))

    # -- aliases -----------------------------------------------------------------------
    def set_alias(self, name: str, alias: str, version) -> AliasMove:
        """Point ``alias`` at a READY version, atomically; the move is kept in the alias history."""
        full = names.model_name(name)[0]
        names.alias_name(alias)
        ts = now_ms()
        with self._tx() as conn:
            self._model_row(conn, full)
            row = self._version_row(conn, full, version)
            if row.status != READY:
                raise ConflictError(f"Version {version} of {full!r} is {row.status}; only a READY version takes an alias")
            previous = conn.execute(select(t.aliases.c.version).where(
                t.aliases.c.full_name == full, t.aliases.c.alias == alias)).scalar()
            upsert(conn, t.aliases, [{"full_name": full, "alias": alias, "version": int(version),
                                      "updated_by": self.actor, "updated_at": ts}], ["full_name", "alias"],
                   ["version", "updated_by", "updated_at"])
            conn.execute(t.alias_history.insert().values(full_name=full, alias=alias, version=int(version),
                                                         previous_version=previous, actor=self.actor, at=ts))
            self._audit(conn, "SET_ALIAS", "registered_model", full, alias=alias, version=int(version),
                        previous_version=previous)
            _notify_alias_moved(conn, full, alias)
        return AliasMove(full, alias, int(version), previous, self.actor, ts)

    def _remove_alias(self, conn, full: str, alias: str) -> None:
        previous = conn.execute(select(t.aliases.c.version).where(
            t.aliases.c.full_name == full, t.aliases.c.alias == alias)).scalar()
        if previous is None:
            raise NotFoundError(f"Model {full!r} has no alias {alias!r}")
        conn.execute(delete(t.aliases).where(t.aliases.c.full_name == full, t.aliases.c.alias == alias))
        conn.execute(t.alias_history.insert().values(full_name=full, alias=alias, version=None,
                                                     previous_version=previous, actor=self.actor, at=now_ms()))
        self._audit(conn, "DELETE_ALIAS", "registered_model", full, alias=alias, previous_version=previous)
        _notify_alias_moved(conn, full, alias)

    def delete_alias(self, name: str, alias: str) -> None:
        full = names.model_name(name)[0]
        with self._tx() as conn:
            self._model_row(conn, full)
            self._remove_alias(conn, full, alias)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        full = names.model_name(name)[0]
        with self._read() as conn:
            self._model_row(conn, full)
            version = conn.execute(select(t.aliases.c.version).where(
                t.aliases.c.full_name == full, t.aliases.c.alias == alias)).scalar()
            if version is None:
                raise NotFoundError(f"Model {full!r} has no alias {alias!r}")
            return self._version_entity(conn, self._version_row(conn, full, version))

    def get_alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        full = names.model_name(name)[0]
        q = select(t.alias_history).where(t.alias_history.c.full_name == full)
        if alias is not None:
            q = q.where(t.alias_history.c.alias == alias)
        with self._read() as conn:
            rows = conn.execute(q.order_by(t.alias_history.c.id)).all()
        return [AliasMove(r.full_name, r.alias, r.version, r.previous_version, r.actor, r.at) for r in rows]

    # -- loading -----------------------------------------------------------------------
    def resolve(self, uri: str) -> Path:
        """The local package of ``models:/name/N`` or ``models:/name@alias`` (READY versions only).

        Remote storage is downloaded into a content-addressed cache keyed by the version's
        checksums; loading verifies every file. Each load is audited.
        """
        from hangar.tracking.resolver import local_package

        mv = self.version_to_load(uri)
        path = local_package(mv.storage_location, self.cache_dir, key=content_key(mv.checksums or {}),
                             checksums=mv.checksums)
        return check_against_record(path, mv)

    def version_to_load(self, uri: str) -> ModelVersion:
        """The READY version that ``uri`` names, recording the load (EXECUTE) in the audit log."""
        from hangar.catalog import audit
        from hangar.uri import parse_model_uri

        parsed = parse_model_uri(uri)
        if parsed.scheme != "models" or parsed.name is None:
            raise InvalidArgumentError(f"{uri!r} does not name a registered model version (models:/name/N or @alias)")
        mv = (self.get_version_by_alias(parsed.name, parsed.alias) if parsed.alias
              else self.get_model_version(parsed.name, parsed.version))
        if mv.status != READY:
            raise ModelPackageError(f"Version {mv.version} of {mv.full_name} is {mv.status} and cannot be loaded"
                                    + (f": {mv.status_message}" if mv.status_message else ""))
        audit.record(self.engine, actor=self.actor, action="LOAD_MODEL", securable_type="registered_model",
                     securable=mv.full_name, details={"version": mv.version, "alias": parsed.alias},
                     request_id=self.request_id)
        return mv


ALIAS_CHANNEL = "hangar_alias_moved"


def _notify_alias_moved(conn, full: str, alias: str) -> None:
    """On PostgreSQL, wake endpoints that follow this alias (delivered when the move commits)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": ALIAS_CHANNEL, "payload": f"{full}@{alias}"})


def check_against_record(path: Path, mv: ModelVersion) -> Path:
    """Refuse a package whose manifest lists other checksums than the registry recorded when the version became
    READY (a file and its manifest entry both changed in storage). Loading then verifies every file against the
    manifest, and so against the record. The manifest's own other fields are not covered."""
    if mv.checksums is None:
        return path
    from hangar.errors import CorruptPackageError
    from hangar.models.manifest import Manifest

    listed = Manifest.read(path).checksums or {}
    if listed != mv.checksums:
        changed = sorted(k for k in set(listed) | set(mv.checksums) if listed.get(k) != mv.checksums.get(k))
        raise CorruptPackageError(
            f"Version {mv.version} of {mv.full_name} at {path} does not match the checksums recorded at registration "
            f"({', '.join(changed[:10])}); its files were changed after registration. Do not load it; register again")
    return path


def content_key(checksums: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()[:32]
