"""SQLAlchemy engines for the store: SQLite (WAL, busy timeout, immediate write transactions)
and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path

from hangar.errors import InvalidArgumentError


def default_store_uri(home: Path) -> str:
    return f"sqlite:///{Path(home) / 'hangar.db'}"


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:"):
        return None
    path = uri.split(":///", 1)[1] if ":///" in uri else ""
    return Path(path) if path and path != ":memory:" else None


def create_store_engine(uri: str):
    """An engine for a store URI. Every write transaction on SQLite is BEGIN IMMEDIATE, so
    concurrent writers queue on the busy timeout instead of failing on a lock upgrade."""
    from sqlalchemy import create_engine, event

    if uri.startswith("sqlite:"):
        path = sqlite_path(uri)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from hangar.errors import StoreUnavailableError

                raise StoreUnavailableError(
                    f"Cannot create the store's folder {path.parent}: {exc.strerror}. Set HANGAR_HOME or "
                    "HANGAR_TRACKING_URI to a writable place"
                ) from None
        # Every use ends in an explicit commit or rollback, so the pool's extra rollback on
        # return would only cost time.
        engine = create_engine(uri, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_reset_on_return=None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if uri.startswith(("postgresql:", "postgres:")):
        scheme, rest = uri.split(":", 1)
        if "+" not in scheme:
            uri = "postgresql+psycopg:" + rest
        return create_engine(uri, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise InvalidArgumentError(
        f"Unsupported store URI {uri!r}: use sqlite:///path/to/hangar.db or postgresql://user@host/db"
    )
