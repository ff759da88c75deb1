"""A consistent copy of a live SQLite store, taken with SQLite's online backup API.

Other processes may go on writing while the backup runs (the store is in WAL mode, so a reader
never blocks them). The backup reads one snapshot: a read transaction is opened on the source,
every table is counted in it, and the backup copies the pages of that same snapshot in one step
(a stepwise backup would restart each time a writer commits, and might never finish). The copy
is written to a temporary file beside the destination, checked (``PRAGMA integrity_check`` and
the row count of every table against the snapshot's), and only then renamed into place, so a
failed backup leaves no file that looks like a good one.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from hangar.errors import AlreadyExistsError, HangarError, InvalidArgumentError, NotFoundError


class StoreBackupError(HangarError):
    """The backup could not be written, or the copy did not check out (nothing was kept)."""

    error_code = "STORE_BACKUP_FAILED"
    http_status = 500


@dataclass
class BackupReport:
    source: str
    path: str
    bytes: int
    schema_revision: str | None
    tables: dict[str, int]     # rows per table, equal in the snapshot and in the copy
    rows: int
    integrity: str             # what PRAGMA integrity_check answered on the copy ("ok")
    seconds: float


def _source_path(source_uri: str) -> Path:
    from hangar.store.engine import sqlite_path

    if not source_uri.startswith("sqlite:"):
        raise InvalidArgumentError(
            f"`hangar store backup` backs up a SQLite store, and {_redact(source_uri)} is not one. For PostgreSQL use "
            "its own tools (e.g. `pg_dump -Fc -f hangar.dump DBNAME`), or copy the store into a SQLite file with "
            "`hangar store copy --from URI --to sqlite:///backup.db`"
        )
    path = sqlite_path(source_uri)
    if path is None:
        raise InvalidArgumentError(f"{source_uri!r} is not a SQLite file that can be backed up")
    path = path.expanduser()
    if not path.is_file():
        raise NotFoundError(f"The store {path} does not exist")
    return path


def _redact(uri: str) -> str:
    from hangar.store.copy import redact

    return redact(uri)


def _dest_path(dest) -> Path:
    from hangar.store.engine import sqlite_path

    text = str(dest)
    path = sqlite_path(text) if text.startswith("sqlite:") else Path(text)
    if path is None:
        raise InvalidArgumentError(f"The backup destination must be a file path, not {text!r}")
    return path.expanduser()


def _tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _counts(conn) -> dict[str, int]:
    return {name: conn.execute(f'SELECT COUNT(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
            for name in _tables(conn)}


def _revision(conn) -> str | None:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row else None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sqlite(source_uri: str, dest_path, *, overwrite: bool = False) -> BackupReport:
    """Back up the SQLite store at ``source_uri`` to the file ``dest_path`` (a path or a
    ``sqlite:///`` URI) while other processes keep using the store; return what was checked."""
    started = time.monotonic()
    src_path = _source_path(source_uri)
    dest = _dest_path(dest_path)
    if dest.exists() and dest.resolve() == src_path.resolve():
        raise InvalidArgumentError(f"The backup destination {dest} is the store itself")
    if dest.exists() and not overwrite:
        raise AlreadyExistsError(f"{dest} already exists; choose another file, or overwrite it with --force")
    if dest.is_dir():
        raise InvalidArgumentError(f"{dest} is a directory; name the backup file, e.g. {dest / 'hangar-backup.db'}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        # mode=rw: never create a store that is not there; no journal_mode change on the source
        src = sqlite3.connect(f"{src_path.resolve().as_uri()}?mode=rw", uri=True, timeout=60, isolation_level=None)
        try:
            src.execute("PRAGMA busy_timeout=60000")
            src.execute("BEGIN")  # the snapshot: the counts below and the backup read the same state
            expected = _counts(src)
            revision = _revision(src)
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)  # one step (pages=-1), inside the snapshot's read transaction
                src.execute("COMMIT")
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                integrity = "; ".join(r[0] for r in dst.execute("PRAGMA integrity_check"))
                got = _counts(dst)
            finally:
                dst.close()
        finally:
            src.close()
        if integrity != "ok":
            raise StoreBackupError(f"The backup of {src_path} failed its integrity check ({integrity}); nothing was kept")
        if got != expected:
            diff = sorted(n for n in set(got) | set(expected) if got.get(n) != expected.get(n))
            raise StoreBackupError(f"The backup of {src_path} has other row counts than the store in {', '.join(diff)}; "
                                   "nothing was kept")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        for suffix in ("-wal", "-shm", "-journal"):  # an overwritten file's sidecars would be replayed onto the copy
            dest.with_name(dest.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except sqlite3.Error as exc:
        raise StoreBackupError(f"Backing up {src_path} to {dest} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return BackupReport(source=str(src_path), path=str(dest), bytes=dest.stat().st_size, schema_revision=revision,
                        tables=expected, rows=sum(expected.values()), integrity=integrity,
                        seconds=round(time.monotonic() - started, 3))
