"""The SQLite fast path: statements compiled once to SQL text and run on the DBAPI connection.

SQLAlchemy's per-statement and per-transaction bookkeeping costs several times what SQLite
needs to run the few statements of a ``log_metric``. The hottest writes compile their
SQLAlchemy statements once (so the SQL is still defined in one place) and execute the text
directly inside a ``BEGIN IMMEDIATE`` transaction on a pooled connection.
"""

from __future__ import annotations

import contextlib


class CompiledStatement:
    """A SQLAlchemy statement compiled for one dialect, executable with a dict of values."""

    def __init__(self, stmt, dialect, column_keys: list[str] | None = None):
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        self.names = list(compiled.positiontup or ())
        self.literals = {k: v for k, v in compiled.params.items() if v is not None}  # values fixed in the statement

    def args(self, values: dict) -> tuple:
        literals = self.literals
        return tuple(values[n] if n in values else literals[n] for n in self.names)

    def execute(self, cursor, values: dict):
        return cursor.execute(self.sql, self.args(values))

    def executemany(self, cursor, rows: list[dict]) -> None:
        cursor.executemany(self.sql, [self.args(r) for r in rows])


@contextlib.contextmanager
def sqlite_write(engine):
    """A cursor inside BEGIN IMMEDIATE on a pooled connection; COMMIT on success, else ROLLBACK."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
    finally:
        raw.close()
