"""INSERT ... ON CONFLICT for the dialects the store runs on (SQLite, PostgreSQL)."""

from __future__ import annotations


def insert_for(conn, table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def upsert_statement(conn, table, keys: list[str], update: list[str], where=None):
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update (only where ``where`` holds).

    Building a statement costs more than running it on SQLite, so hot paths build it once
    and keep it (see ``SqlTrackingStore._statements``)."""
    stmt = insert_for(conn, table)
    set_ = {c: stmt.excluded[c] for c in update}
    return stmt.on_conflict_do_update(index_elements=keys, set_=set_,
                                      where=where(table, stmt.excluded) if where is not None else None)


def upsert(conn, table, rows: list[dict], keys: list[str], update: list[str], where=None) -> None:
    """Insert rows; on a key conflict update ``update`` columns (only where ``where`` holds)."""
    if rows:
        conn.execute(upsert_statement(conn, table, keys, update, where), rows)


def insert_ignore(conn, table, rows: list[dict], keys: list[str]) -> None:
    if not rows:
        return
    stmt = insert_for(conn, table).on_conflict_do_nothing(index_elements=keys)
    conn.execute(stmt, rows)
