"""Resolve ``models:/<logged-model-id>`` and ``runs:/<run-id>/<name>`` to a local package.

Plugged into ``hangar.pyfunc.load_model`` through the ``hangar.uri_resolvers`` entry points,
so the package layer never imports tracking. Remote artifact locations are downloaded once
into a cache under ``HANGAR_HOME/cache/models`` (atomically); loading verifies checksums.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from hangar.errors import ModelPackageError, NotFoundError
from hangar.tracking.sql_logged_models import READY
from hangar.uri import parse_model_uri


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file://")


def local_package(location: str, cache_dir: Path, key: str | None = None, repository=None,
                  checksums: dict | None = None) -> Path:
    """A local directory holding the package stored at ``location``; remote packages are cached
    under ``key`` (a content address) or a digest of the location. ``repository`` (a server's)
    replaces the one ``location`` names; ``checksums`` are verified before a download enters the
    cache."""
    if repository is None and _is_local(location):
        from hangar.artifacts import local_path_from_uri

        path = local_path_from_uri(location)
        if not path.is_dir():
            raise NotFoundError(f"The model's files are missing at {location}")
        return path
    from hangar.artifacts import get_artifact_repository

    repository = repository or get_artifact_repository(location)
    target = cache_dir / "models" / (key or hashlib.sha256(location.encode()).hexdigest()[:32])
    if (target / "MLmodel").is_file():
        os.utime(target)  # last used: what `hangar gc` ages cache entries by
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    try:
        repository.download_artifacts("", tmp)
        if checksums:
            from hangar.models.checksums import verify_checksums

            verify_checksums(tmp, checksums)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


class TrackingResolver:
    def __init__(self, client=None):
        self._client = client

    def resolve(self, uri: str) -> Path:
        from hangar.tracking import fluent

        c = self._client or fluent.client()
        parsed = parse_model_uri(uri)
        if parsed.scheme == "models":
            if parsed.logged_model_id is None:
                raise NotFoundError(
                    f"Cannot resolve {uri!r} here: registered models are resolved by the registry "
                    "(hangar.catalog.resolver.RegistryResolver)"
                )
            lm = c.get_logged_model(parsed.logged_model_id)
        else:
            lm = c.store.find_logged_model(parsed.run_id, parsed.artifact_path)
            if lm is None:
                if getattr(c.store, "remote", False):
                    repo = c.store.run_artifacts(parsed.run_id)
                    sub = type(repo)(repo.server, repo.base, parsed.artifact_path)
                    return local_package(sub.uri, c.settings.cache_dir, repository=sub)
                run = c.get_run(parsed.run_id)
                return local_package(f"{run.info.artifact_uri}/{parsed.artifact_path}", c.settings.cache_dir)
        if lm.status != READY:
            raise ModelPackageError(
                f"Logged model {lm.model_id} is {lm.status}: its files were never completed, so it cannot be loaded"
            )
        if getattr(c.store, "remote", False):
            repo = c.store.logged_model_artifacts(lm.model_id)
            return local_package(repo.uri, c.settings.cache_dir, repository=repo)
        return local_package(lm.artifact_location, c.settings.cache_dir)
