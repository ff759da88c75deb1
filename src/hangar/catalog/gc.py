"""``hangar gc``: remove the files of what was deleted, and what the local caches no longer use.

Deleting a run, an experiment, a model version or a registered model only marks its metadata
row; its files stay until ``collect`` runs. ``collect``:

1. expires leases: registrations (model versions) and logged models whose writer stopped
   before finishing are marked FAILED;
2. deletes the stored files of deleted and FAILED model versions, of deleted runs (runs of
   deleted experiments included) and of FAILED logged models and logged models of deleted
   experiments. The metadata rows stay (names and numbers are never reused; lineage and the
   audit log keep pointing at them). A version or logged model whose files are gone gets the
   tag ``hangar.gc.purged_at`` and is not looked at again; a run gets it when its files were
   removed, but is checked again at every gc, since a restored run can log new files (FAILED
   rows too: a writer that outlived its lease may have added files after an earlier gc). A
   location that no longer exists frees 0 bytes and is not an error. A PENDING row whose lease
   still runs is left alone, deleted or not: its writer may still be adding files;
3. removes model cache entries (``HANGAR_HOME/cache/models``) not used for N days;
4. removes environments (``HANGAR_HOME/envs``) not used for N days or never completed (no
   ``.complete`` marker), except those a builder holds the lock of.

Safety: a location is deleted only if it lies strictly under the store's artifact root (after
symbolic links are resolved, for a local root) and neither contains nor lies inside the files
of something live; anything else is skipped and reported. Runs and experiments are checked
again right before their files go, so one restored meanwhile keeps them.

"Used" is read from the file system: the newest access or modification time of an entry's
files (directory access times are ignored, since listing a directory, as gc does, sets them).
Python reads an environment's ``pyvenv.cfg`` at every start, so its access time says when the
environment last ran (on file systems mounted ``noatime`` only modification times count).

Each collection appends one audit record (action ``GC`` on the metastore) with its totals;
``dry_run`` reports what would go and changes nothing (no lease expires, no record is written).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, exists, or_, select, update

from hangar.errors import HangarError, InvalidArgumentError
from hangar.store import schema as t
from hangar.store.upsert import insert_ignore, upsert

__all__ = ["CATEGORIES", "PURGED_TAG", "GcCategory", "GcItem", "GcReport", "collect"]

PURGED_TAG = "hangar.gc.purged_at"
CATEGORIES = ("model_versions", "runs", "logged_models", "model_cache", "environments")
REMOVED, WOULD_REMOVE, SKIPPED, ERROR = "removed", "would remove", "skipped", "error"
_DAY_S = 86400
_GC_PREFIX = ".gc-"


@dataclass
class GcItem:
    id: str
    location: str
    bytes: int
    action: str                  # removed, would remove, skipped, error
    reason: str | None = None


@dataclass
class GcCategory:
    name: str
    removed: int = 0             # items removed (or that would be, in a dry run)
    bytes: int = 0               # bytes freed (or that would be)
    skipped: int = 0             # items left in place on purpose (outside the root, locked, restored)
    errors: int = 0
    items: list[GcItem] = field(default_factory=list)

    def add(self, item: GcItem) -> None:
        self.items.append(item)
        self.bytes += item.bytes
        if item.action in (REMOVED, WOULD_REMOVE):
            self.removed += 1
        elif item.action == SKIPPED:
            self.skipped += 1
        else:
            self.errors += 1


@dataclass
class GcReport:
    dry_run: bool
    freed_bytes: int
    expired_version_leases: int
    expired_logged_model_leases: int
    categories: list[GcCategory]
    cache_days: float
    env_days: float
    seconds: float

    def category(self, name: str) -> GcCategory:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(name)


# -- locations ---------------------------------------------------------------------------
def _split(location: str) -> tuple[str, str] | None:
    """(scheme, normalised path) of an artifact location; None when it cannot be trusted."""
    from hangar.artifacts import local_path_from_uri

    text = str(location or "").strip()
    if not text:
        return None
    if "://" not in text or text.lower().startswith("file:"):
        try:
            return "file", os.path.realpath(local_path_from_uri(text))
        except HangarError:
            return None
    scheme, rest = text.split("://", 1)
    parts = [p for p in rest.split("/") if p]
    if not parts or any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
        return None
    return scheme.lower(), "/".join(parts)


def _parents(path: str, local: bool) -> Iterator[str]:
    while True:
        parent = os.path.dirname(path) if local else path.rpartition("/")[0]
        if not parent or parent == path:
            return
        yield parent
        path = parent


def _strictly_under(child: str, parent: str, sep: str) -> bool:
    return child != parent and child.startswith(parent if parent.endswith(sep) else parent + sep)


class _Guard:
    """Says why a location must not be deleted (None: it may be)."""

    def __init__(self, artifact_root: str, live: Iterable[str]):
        self.root_text = artifact_root
        self.root = _split(artifact_root)
        self.live: set[tuple[str, str]] = set()
        self.live_parents: set[tuple[str, str]] = set()
        for loc in live:
            key = _split(loc)
            if key is None:
                continue
            self.live.add(key)
            self.live_parents.update((key[0], p) for p in _parents(key[1], key[0] == "file"))

    def refuse(self, location: str) -> str | None:
        key = _split(location)
        if key is None:
            return "not a valid artifact location"
        if self.root is None or key[0] != self.root[0]:
            return f"outside the artifact root {self.root_text}"
        local = key[0] == "file"
        if not _strictly_under(key[1], self.root[1], os.sep if local else "/"):
            return f"outside the artifact root {self.root_text}"
        if key in self.live:
            return "the files of something live are stored there"
        if key in self.live_parents:
            return "it contains the files of something live"
        if any((key[0], p) in self.live for p in _parents(key[1], local)):
            return "it lies inside the files of something live"
        return None


# -- sizes and deletion ------------------------------------------------------------------
def _tree_size(path: str) -> int:
    """Bytes in the regular files (and links, not followed) under ``path``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                pass
    return total


def _remote_size(repo, path: str | None = None) -> int:
    total = 0
    for info in repo.list_artifacts(path):
        total += _remote_size(repo, info.path) if info.is_dir else (info.size or 0)
    return total


def _rmtree(path: str) -> None:
    """``shutil.rmtree``, which also removes entries of read-only directories."""
    def retry(func, p, exc):
        if func not in (os.unlink, os.remove, os.rmdir):
            raise exc[1] if isinstance(exc, tuple) else exc
        try:
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
        except FileNotFoundError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


class _Store:
    """The files at one artifact location: does it exist, how big is it, delete it."""

    def __init__(self, location: str):
        from hangar.artifacts import get_artifact_repository

        key = _split(location)
        self.local = key is not None and key[0] == "file"
        self.path = key[1] if self.local else None
        self.repo = get_artifact_repository(location)

    def exists(self) -> bool:
        return os.path.lexists(self.path) if self.local else self.repo.exists()

    def size(self) -> int:
        return _tree_size(self.path) if self.local else _remote_size(self.repo)

    def delete(self) -> None:
        self.repo.delete_artifacts(missing_ok=True)


# -- the collection ----------------------------------------------------------------------
@dataclass
class _Candidate:
    id: str
    location: str
    still_garbage: Callable[[], bool] | None = None
    on_gone: Callable[[bool], None] | None = None   # called with "did it hold files"


class _Collector:
    def __init__(self, client, dry_run: bool):
        self.client = client
        self.engine = client.store.engine
        self.dry_run = dry_run
        self.purged_versions: list[tuple[str, int]] = []
        self.purged_models: list[str] = []
        self.purged_runs: list[str] = []

    def _read(self):
        return self.engine.connect()

    # leases ------------------------------------------------------------------------------
    def expire_leases(self) -> tuple[int, int]:
        now = int(time.time() * 1000)
        lm = t.logged_models.c
        if self.dry_run:
            mv = t.model_versions.c
            with self._read() as conn:
                versions = len(conn.execute(select(mv.version).where(mv.status == "PENDING",
                                                                     mv.lease_expires < now)).all())
                models = len(conn.execute(select(lm.model_id).where(lm.status == "PENDING",
                                                                    lm.lease_expires < now)).all())
            return versions, models
        versions = self.client.registry.expire_leases()
        with self.client.registry._tx() as conn:
            models = conn.execute(update(t.logged_models).where(lm.status == "PENDING", lm.lease_expires < now)
                                  .values(status="FAILED", last_updated_time=now)).rowcount
        return versions, models

    # what is garbage, and what is live ---------------------------------------------------
    def plan(self) -> tuple[list[_Candidate], list[_Candidate], list[_Candidate], list[str]]:
        mv, mvt, r, e, lm, lmt = (t.model_versions.c, t.model_version_tags.c, t.runs.c, t.experiments.c,
                                  t.logged_models.c, t.logged_model_tags.c)
        now = int(time.time() * 1000)
        # a PENDING row whose lease still runs has a writer that may be adding files: never garbage yet
        # (a real gc has expired the others to FAILED; a dry run counts them as FAILED already)
        v_expired = and_(mv.status == "PENDING", mv.lease_expires.is_not(None), mv.lease_expires < now)
        m_expired = and_(lm.status == "PENDING", lm.lease_expires.is_not(None), lm.lease_expires < now)
        v_writing = and_(mv.status == "PENDING", ~v_expired)
        m_writing = and_(lm.status == "PENDING", ~m_expired)
        failed_v = or_(mv.status == "FAILED", v_expired) if self.dry_run else mv.status == "FAILED"
        failed_m = or_(lm.status == "FAILED", m_expired) if self.dry_run else lm.status == "FAILED"
        dead_v = or_(failed_v, and_(mv.deleted_at.is_not(None), ~v_writing))
        dead_run = or_(r.lifecycle_stage == "deleted", e.lifecycle_stage == "deleted")
        dead_m = or_(failed_m, and_(or_(lm.lifecycle_stage == "deleted", e.lifecycle_stage == "deleted"), ~m_writing))
        # purged rows are not looked at again, except FAILED ones: a writer that outlived its lease may
        # still have added files after an earlier gc (runs are always looked at: they can be restored)
        v_done = and_(mv.status != "FAILED", exists().where(mvt.full_name == mv.full_name, mvt.version == mv.version,
                                                              mvt.key == PURGED_TAG))
        m_done = and_(lm.status != "FAILED", exists().where(lmt.model_id == lm.model_id, lmt.key == PURGED_TAG))
        with self._read() as conn:
            versions = conn.execute(select(mv.full_name, mv.version, mv.storage_location)
                                    .where(dead_v, ~v_done).order_by(mv.full_name, mv.version)).all()
            runs = conn.execute(select(r.run_id, r.artifact_uri).join(t.experiments, e.experiment_id == r.experiment_id)
                                .where(dead_run).order_by(r.run_id)).all()
            models = conn.execute(select(lm.model_id, lm.artifact_location, lm.status, lm.lifecycle_stage)
                                  .join(t.experiments, e.experiment_id == lm.experiment_id)
                                  .where(dead_m, ~m_done).order_by(lm.model_id)).all()
            live = [row[0] for row in conn.execute(select(mv.storage_location).where(~dead_v))]
            live += [row[0] for row in conn.execute(
                select(r.artifact_uri).join(t.experiments, e.experiment_id == r.experiment_id).where(~dead_run))]
            live += [row[0] for row in conn.execute(
                select(lm.artifact_location).join(t.experiments, e.experiment_id == lm.experiment_id).where(~dead_m))]

        def version(full, number, location):
            return _Candidate(f"{full}/{number}", location,
                              on_gone=lambda _held: self.purged_versions.append((full, number)))

        def run(run_id, location):
            return _Candidate(run_id, location, still_garbage=lambda: self._run_deleted(run_id),
                              on_gone=lambda held: held and self.purged_runs.append(run_id))

        def model(model_id, location, status, stage):
            check = None if status == "FAILED" or stage == "deleted" else lambda: self._model_dead(model_id)
            return _Candidate(model_id, location, still_garbage=check,
                              on_gone=lambda _held: self.purged_models.append(model_id))

        return ([version(*row) for row in versions], [run(*row) for row in runs], [model(*row) for row in models],
                live)

    def _run_deleted(self, run_id: str) -> bool:
        r, e = t.runs.c, t.experiments.c
        with self._read() as conn:
            row = conn.execute(select(r.lifecycle_stage, e.lifecycle_stage.label("exp_stage"))
                               .join(t.experiments, e.experiment_id == r.experiment_id)
                               .where(r.run_id == run_id)).first()
        return row is not None and "deleted" in (row.lifecycle_stage, row.exp_stage)

    def _model_dead(self, model_id: str) -> bool:
        lm, e = t.logged_models.c, t.experiments.c
        with self._read() as conn:
            row = conn.execute(select(lm.status, lm.lifecycle_stage, e.lifecycle_stage.label("exp_stage"))
                               .join(t.experiments, e.experiment_id == lm.experiment_id)
                               .where(lm.model_id == model_id)).first()
        return row is not None and (row.status == "FAILED" or "deleted" in (row.lifecycle_stage, row.exp_stage))

    # stored files --------------------------------------------------------------------------
    def purge(self, category: GcCategory, candidates: list[_Candidate], guard: _Guard) -> None:
        for c in candidates:
            reason = guard.refuse(c.location)
            if reason is not None:
                category.add(GcItem(c.id, c.location, 0, SKIPPED, reason))
                continue
            try:
                files = _Store(c.location)
                if not files.exists():
                    if not self.dry_run and c.on_gone:
                        c.on_gone(False)
                    continue
                size = files.size()
            except Exception as exc:  # one unreadable location must not stop the collection
                category.add(GcItem(c.id, c.location, 0, ERROR, _describe(exc)))
                continue
            if self.dry_run:
                category.add(GcItem(c.id, c.location, size, WOULD_REMOVE))
                continue
            if c.still_garbage is not None and not c.still_garbage():
                category.add(GcItem(c.id, c.location, 0, SKIPPED, "restored while gc ran"))
                continue
            try:
                files.delete()
            except Exception as exc:
                left = _safe(files.size, size)
                category.add(GcItem(c.id, c.location, max(size - left, 0), ERROR, _describe(exc)))
                continue
            category.add(GcItem(c.id, c.location, size, REMOVED))
            if c.on_gone:
                c.on_gone(True)

    # local caches ------------------------------------------------------------------------
    def model_cache(self, category: GcCategory, cache_dir: Path, days: float) -> None:
        root = Path(cache_dir) / "models"
        cutoff = time.time() - days * _DAY_S
        for entry in _entries(root, hidden=(_GC_PREFIX, ".download-")):
            leftover = entry.name.startswith(_GC_PREFIX)  # a gc that stopped part-way
            if not leftover and _last_used(entry) >= cutoff:
                continue
            size = _tree_size(str(entry))
            if self.dry_run:
                category.add(GcItem(entry.name, str(entry), size, WOULD_REMOVE))
                continue
            try:
                # out of the way first: a loader sees the whole entry or none, never half of one
                doomed = entry if leftover else entry.rename(root / f"{_GC_PREFIX}{uuid.uuid4().hex[:8]}-{entry.name}")
                _rmtree(str(doomed))
            except FileNotFoundError:
                continue
            except OSError as exc:
                category.add(GcItem(entry.name, str(entry), 0, ERROR, _describe(exc)))
                continue
            category.add(GcItem(entry.name, str(entry), size, REMOVED))

    def environments(self, category: GcCategory, envs_dir: Path, days: float) -> None:
        from hangar.models.env_manager import MARKER, PythonEnv

        cutoff = time.time() - days * _DAY_S

        def why(env: PythonEnv) -> str | None:
            if not env.complete:
                return "never completed"
            if _env_last_used(env.path) < cutoff:
                return f"not used for {days:g} days"
            return None

        for entry in _entries(Path(envs_dir)):
            env = PythonEnv(entry)
            if why(env) is None:
                continue
            with _try_lock(entry.with_name(f"{entry.name}.lock"), create=not self.dry_run) as locked:
                if not locked:
                    category.add(GcItem(env.key, str(entry), 0, SKIPPED, "a builder holds its lock"))
                    continue
                reason = why(env)  # again, under the lock: a builder may have finished it meanwhile
                if reason is None or not entry.is_dir():
                    continue
                size = _tree_size(str(entry))
                if self.dry_run:
                    category.add(GcItem(env.key, str(entry), size, WOULD_REMOVE, reason))
                    continue
                try:
                    (entry / MARKER).unlink(missing_ok=True)  # incomplete first: nobody starts using it now
                    _rmtree(str(entry))
                except OSError as exc:
                    left = _tree_size(str(entry))
                    category.add(GcItem(env.key, str(entry), max(size - left, 0), ERROR, _describe(exc)))
                    continue
                category.add(GcItem(env.key, str(entry), size, REMOVED, reason))

    # bookkeeping -------------------------------------------------------------------------
    def record(self, report: GcReport) -> None:
        """Mark what was purged and append one audit record, in one transaction."""
        from hangar.catalog import audit

        now = int(time.time() * 1000)
        registry = self.client.registry
        with registry._tx() as conn:
            insert_ignore(conn, t.model_version_tags, [
                {"full_name": full, "version": number, "key": PURGED_TAG, "value": str(now)}
                for full, number in self.purged_versions], ["full_name", "version", "key"])
            insert_ignore(conn, t.logged_model_tags, [
                {"model_id": mid, "key": PURGED_TAG, "value": str(now)} for mid in self.purged_models],
                ["model_id", "key"])
            upsert(conn, t.tags, [{"run_id": rid, "key": PURGED_TAG, "value": str(now)} for rid in self.purged_runs],
                   ["run_id", "key"], ["value"])
            audit.append(conn, actor=registry.actor, action="GC", securable_type="metastore", securable="metastore",
                         outcome="FAILURE" if any(c.errors for c in report.categories) else "SUCCESS",
                         details=_totals(report))


def _totals(report: GcReport) -> dict:
    return {"freed_bytes": report.freed_bytes, "cache_days": report.cache_days, "env_days": report.env_days,
            "expired_version_leases": report.expired_version_leases,
            "expired_logged_model_leases": report.expired_logged_model_leases,
            "categories": {c.name: {"removed": c.removed, "bytes": c.bytes, "skipped": c.skipped, "errors": c.errors}
                           for c in report.categories}}


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message}"[:500]


def _safe(fn, default):
    try:
        return fn()
    except Exception:
        return default


def _entries(root: Path, hidden: tuple[str, ...] = ()) -> list[Path]:
    """Directories in ``root`` (not links); of the hidden ones, those starting with ``hidden``."""
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()
                      and (not p.name.startswith(".") or p.name.startswith(hidden)))
    except FileNotFoundError:
        return []


def _times(path: str) -> float:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0.0
    return max(st.st_atime, st.st_mtime)


def _last_used(entry: Path) -> float:
    """The newest file access or modification under ``entry``, or a directory's modification."""
    newest = 0.0
    for dirpath, _dirnames, filenames in os.walk(entry, followlinks=False):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, os.lstat(dirpath).st_mtime)
        for name in filenames:
            newest = max(newest, _times(os.path.join(dirpath, name)))
    return newest


def _env_last_used(path: Path) -> float:
    from hangar.models.env_manager import INFO_FILE, MARKER

    newest = _safe(lambda: os.lstat(path).st_mtime, 0.0)
    for name in ("pyvenv.cfg", MARKER, INFO_FILE):
        newest = max(newest, _times(str(path / name)))
    return newest


@contextlib.contextmanager
def _try_lock(lock_path: Path, create: bool) -> Iterator[bool]:
    """Hold ``lock_path`` exclusively if nobody else does (the builders' lock); yields whether held."""
    if not create and not lock_path.exists():
        yield True  # nobody can hold a lock file that does not exist
        return
    with open(lock_path, "a+b") as f:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            f.seek(0)
            try:
                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
            return
        import fcntl

        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def collect(client, *, older_than_days_cache: float = 30, older_than_days_envs: float = 30,
            dry_run: bool = False) -> GcReport:
    """Collect garbage for ``client`` (a ``hangar.catalog.client.Client``); see the module."""
    for what, days in (("older_than_days_cache", older_than_days_cache),
                       ("older_than_days_envs", older_than_days_envs)):
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise InvalidArgumentError(f"{what} must be a number of days >= 0, got {days!r}")
    started = time.monotonic()
    collector = _Collector(client, dry_run)
    expired_versions, expired_models = collector.expire_leases()
    versions, runs, models, live = collector.plan()
    guard = _Guard(client.store.artifact_root, live)
    categories = {name: GcCategory(name) for name in CATEGORIES}
    collector.purge(categories["model_versions"], versions, guard)
    collector.purge(categories["runs"], runs, guard)
    collector.purge(categories["logged_models"], models, guard)
    collector.model_cache(categories["model_cache"], client.settings.cache_dir, older_than_days_cache)
    collector.environments(categories["environments"], client.settings.envs_dir, older_than_days_envs)
    report = GcReport(dry_run=dry_run, freed_bytes=sum(c.bytes for c in categories.values()),
                      expired_version_leases=expired_versions, expired_logged_model_leases=expired_models,
                      categories=list(categories.values()), cache_days=older_than_days_cache,
                      env_days=older_than_days_envs, seconds=0.0)
    if not dry_run:
        collector.record(report)
    report.seconds = round(time.monotonic() - started, 3)
    return report
