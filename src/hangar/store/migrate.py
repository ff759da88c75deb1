"""Bring a store's schema to this Hangar's version, safely, on open.

The version is read with one query; Alembic is imported only when an upgrade is needed. An
upgrade holds a lock (a file lock next to a SQLite file, an advisory lock on PostgreSQL) so
that several processes opening an old store at once upgrade it exactly once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hangar.errors import UnsupportedFormatError

REVISIONS = ("0001", "0002", "0003", "0004", "0005")
HEAD = REVISIONS[-1]
_PG_LOCK_KEY = 0x48414E47  # "HANG"


def current_revision(engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _alembic_config(connection=None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _migration_lock(engine):
    from sqlalchemy import text

    from hangar.store.engine import sqlite_path

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    path = sqlite_path(str(engine.url))
    if path is None:
        yield
        return
    import fcntl

    with open(f"{path}.migrate.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(engine, revision: str = "head") -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def ensure_schema(engine) -> None:
    """Create or upgrade the schema; refuse a store written by a newer Hangar."""
    rev = current_revision(engine)
    if rev == HEAD:
        return
    if rev is not None and rev not in REVISIONS:
        raise UnsupportedFormatError(
            f"The store at {engine.url.render_as_string(hide_password=True)} has schema revision {rev!r}, "
            "which this Hangar does not know (it was upgraded by a newer Hangar). Upgrade Hangar to use it."
        )
    with _migration_lock(engine):
        if current_revision(engine) != HEAD:
            upgrade(engine)
