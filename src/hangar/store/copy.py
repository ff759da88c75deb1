"""Copy a whole store to another database (SQLite → PostgreSQL, or any pair), then prove it.

The copy is generic over the tables of ``hangar.store.schema``: every table, parents before
children, rows streamed from one consistent snapshot of the source in batches and written in
one transaction on the target, so a failure leaves the target as it was (empty). Before that
transaction commits, a verification pass reads every table back from the target and compares
its row count and content digest with the source's; a mismatch rolls the copy back.

A content digest is order-independent (the two databases need not return rows in the same
order, nor collate text alike): each row's values are normalised (floats by ``repr``, ``None``
kept apart from ``''``), hashed with SHA-256, and the hashes are added modulo 2**256 (a multiset
hash: constant memory however large the table). Artifact references (``artifact_location``,
``artifact_uri``, ``storage_location``) are copied as they are, or with a prefix rewritten by
``artifact_root_map`` for someone who moves the files too (to S3, say); the files themselves
are never touched.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hangar.errors import ConflictError, HangarError, InvalidArgumentError, NotFoundError

BATCH_ROWS = 5000
ARTIFACT_COLUMNS = frozenset({"artifact_location", "artifact_uri", "storage_location"})
_IGNORED_TABLES = frozenset({"alembic_version"})
_MOD = 1 << 256

# progress(phase, table, rows_done, rows_total); phase is "copy" or "verify"
Progress = Callable[[str, str, int, int], None]


class StoreCopyError(HangarError):
    """A copy failed part-way; the target was rolled back."""

    error_code = "STORE_COPY_FAILED"
    http_status = 500


class StoreVerificationError(HangarError):
    """The target's rows differ from the source's. ``report`` says which tables."""

    error_code = "STORE_VERIFICATION_FAILED"
    http_status = 500

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report


@dataclass
class TableReport:
    table: str
    rows: int                      # rows in the source (what the target must hold)
    target_rows: int
    digest: str                    # of the source rows, after any artifact URI rewrite
    target_digest: str
    verified: bool


@dataclass
class VerifyReport:
    source: str
    target: str
    tables: list[TableReport]
    artifact_root_map: dict[str, str] = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return all(t.verified for t in self.tables)

    @property
    def mismatched(self) -> list[str]:
        return [t.table for t in self.tables if not t.verified]


@dataclass
class CopyReport:
    source: str
    target: str
    schema_revision: str           # the revision both stores are at after the copy
    source_revision: str           # the source's revision before the copy
    source_upgraded: bool          # True when the source was upgraded in place first
    tables: list[TableReport]
    rows: int
    artifact_root_map: dict[str, str]
    artifact_uris_rewritten: int
    skipped_tables: list[str]      # tables in the source that are not Hangar's (not copied)
    seconds: float
    verified: bool


# -- URIs and engines ------------------------------------------------------------------
def redact(uri: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: show it as given
        return uri


def _same_store(a: str, b: str) -> bool:
    from hangar.store.engine import sqlite_path

    pa, pb = sqlite_path(a), sqlite_path(b)
    if pa is not None and pb is not None:
        return pa.expanduser().resolve() == pb.expanduser().resolve()
    return redact(a) == redact(b)


def _open(uri: str, role: str, must_exist: bool):
    from hangar.store.engine import create_store_engine, sqlite_path

    path = sqlite_path(uri)
    if uri.startswith("sqlite:") and path is None:
        raise InvalidArgumentError(f"The {role} store must be a SQLite file, not {uri!r}")
    if must_exist and path is not None and not path.expanduser().is_file():
        raise NotFoundError(f"The {role} store {path} does not exist")
    engine = create_store_engine(uri)
    try:
        with engine.connect():
            pass
    except Exception as exc:
        engine.dispose()
        raise StoreCopyError(f"Cannot open the {role} store {redact(uri)}: {_reason(exc)}") from None
    return engine


def _reason(exc: BaseException) -> str:
    """The first line of a driver's message (no SQL, no parameters)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _tables():
    from hangar.store.schema import metadata

    return list(metadata.sorted_tables)


def _table_names(conn) -> set[str]:
    from sqlalchemy import inspect

    return {n for n in inspect(conn).get_table_names() if n not in _IGNORED_TABLES and not n.startswith("sqlite_")}


def _nonempty_tables(conn, names) -> list[str]:
    from sqlalchemy import literal, select, table

    return sorted(n for n in names if conn.execute(select(literal(1)).select_from(table(n)).limit(1)).first())


def _prefix_pairs(artifact_root_map: dict[str, str] | None) -> list[tuple[str, str]]:
    pairs = []
    for old, new in (artifact_root_map or {}).items():
        o, n = str(old).rstrip("/"), str(new).rstrip("/")
        if not o or not n:
            raise InvalidArgumentError(f"An artifact root mapping needs an old and a new prefix, got {old!r} -> {new!r}")
        pairs.append((o, n))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)  # the most specific prefix wins


def rewrite_uri(value: str, pairs: list[tuple[str, str]]) -> str:
    """``value`` with its prefix replaced by the first matching (old, new) pair; a prefix matches
    whole path segments only, so ``/data/art`` does not rewrite ``/data/artifacts/...``."""
    for old, new in pairs:
        if value == old or value.startswith(old + "/"):
            return new + value[len(old):]
    return value


# -- the content digest ----------------------------------------------------------------
def _safe(convert):
    def norm(v):
        if v is None:
            return None
        try:
            return convert(v)
        except (TypeError, ValueError, ArithmeticError):
            return repr(v)
    return norm


def _datetime(v):
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.isoformat() if isinstance(v, dt.date | dt.time) else str(v)


def _decimal(v):
    return format(decimal.Decimal(v).normalize(), "f") if not isinstance(v, float) else repr(v)


def _normaliser(column):
    """How one column's values are compared across databases: by the column's declared type,
    so SQLite's loose typing (an int in a REAL column, '1' in an INTEGER one) cannot fake a
    difference, and a real difference (0.1 vs 0.1000001, None vs '') cannot hide."""
    from sqlalchemy import Boolean, DateTime, Float, Integer, LargeBinary, Numeric, String

    ty = column.type
    if isinstance(ty, Float):
        return _safe(lambda v: repr(float(v)))
    if isinstance(ty, Boolean):
        return _safe(bool)
    if isinstance(ty, Integer):
        return _safe(int)
    if isinstance(ty, Numeric):
        return _safe(_decimal)
    if isinstance(ty, DateTime):
        return _safe(_datetime)
    if isinstance(ty, LargeBinary):
        return _safe(lambda v: bytes(v).hex())
    if isinstance(ty, String):
        return _safe(str)
    return _safe(repr)


class _Digest:
    """An order-independent digest of a table's rows: the sum, modulo 2**256, of each row's SHA-256."""

    __slots__ = ("rows", "_fns", "_sum")

    def __init__(self, table):
        self._fns = [_normaliser(c) for c in table.columns]
        self.rows = 0
        self._sum = 0

    def add(self, rows) -> None:
        fns, total = self._fns, self._sum
        for r in rows:
            key = repr(tuple([f(v) for f, v in zip(fns, r)])).encode("utf-8", "surrogatepass")
            total += int.from_bytes(hashlib.sha256(key).digest(), "big")
        self._sum = total % _MOD
        self.rows += len(rows)

    def hexdigest(self) -> str:
        return hashlib.sha256(f"{self.rows}:{self._sum:064x}".encode()).hexdigest()


# -- reading and writing ---------------------------------------------------------------
@contextlib.contextmanager
def _snapshot(engine):
    """A read transaction that sees one consistent state of the store however long it lasts
    (SQLite: one WAL snapshot; PostgreSQL: REPEATABLE READ), while others keep writing."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


@contextlib.contextmanager
def _write(engine):
    """One write transaction (BEGIN IMMEDIATE on SQLite, foreign keys checked at commit)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            yield conn


def _scan(conn, table, batch_rows: int):
    """The table's rows in batches, streamed (a server-side cursor on PostgreSQL)."""
    from sqlalchemy import select

    result = conn.execute(select(*table.columns).execution_options(yield_per=batch_rows))
    yield from result.partitions()


def _count(conn, table) -> int:
    from sqlalchemy import func, select

    return conn.execute(select(func.count()).select_from(table)).scalar()


def _rewritten(table, rows, pairs) -> tuple[list, int]:
    """Rows with their artifact URIs rewritten (as lists), and how many values changed."""
    cols = [i for i, c in enumerate(table.columns) if c.name in ARTIFACT_COLUMNS] if pairs else []
    if not cols:
        return rows, 0
    out, n = [], 0
    for r in rows:
        r = list(r)
        for i in cols:
            if isinstance(r[i], str):
                new = rewrite_uri(r[i], pairs)
                if new != r[i]:
                    r[i], n = new, n + 1
        out.append(r)
    return out, n


def _digest_table(conn, table, total: int, progress: Progress | None, phase: str, batch_rows: int,
                  pairs=()) -> _Digest:
    digest = _Digest(table)
    if progress:
        progress(phase, table.name, 0, total)
    for part in _scan(conn, table, batch_rows):
        rows, _ = _rewritten(table, part, pairs)
        digest.add(rows)
        if progress:
            progress(phase, table.name, digest.rows, total)
    return digest


@contextlib.contextmanager
def _writer(tconn, table):
    """A function that writes batches of rows into ``table``: PostgreSQL's COPY where the driver
    has it (psycopg 3; about twice as fast as INSERT), else an executemany INSERT. Either way it
    runs in the target's one transaction, and the verification pass reads back what it wrote."""
    names = [c.name for c in table.columns]
    if tconn.dialect.name == "postgresql" and tconn.dialect.driver == "psycopg":
        q = tconn.dialect.identifier_preparer
        sql = f"COPY {q.format_table(table)} ({', '.join(q.quote(n) for n in names)}) FROM STDIN"
        with tconn.connection.dbapi_connection.cursor() as cur, cur.copy(sql) as copy:
            def write(rows):
                for r in rows:
                    copy.write_row(r)
            yield write
        return
    insert = table.insert()
    yield lambda rows: tconn.execute(insert, [dict(zip(names, r)) for r in rows])


def _copy_table(sconn, tconn, table, total: int, pairs, progress: Progress | None, batch_rows: int):
    digest, rewritten = _Digest(table), 0
    if progress:
        progress("copy", table.name, 0, total)
    if total == 0:
        return digest, rewritten
    with _writer(tconn, table) as write:
        for part in _scan(sconn, table, batch_rows):
            rows, n = _rewritten(table, part, pairs)
            write(rows)
            digest.add(rows)
            rewritten += n
            if progress:
                progress("copy", table.name, digest.rows, total)
    return digest, rewritten


def _fix_sequences(conn, tables) -> None:
    """After explicit ids were inserted, move each PostgreSQL sequence past the largest id so
    the next insert does not collide (SQLite's INTEGER PRIMARY KEY needs nothing)."""
    from sqlalchemy import text

    if conn.dialect.name != "postgresql":
        return
    quote = conn.dialect.identifier_preparer
    for table in tables:
        col = table.autoincrement_column
        if col is None:
            continue
        name = quote.format_table(table)
        conn.execute(text(f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                          f"(SELECT GREATEST(COALESCE(MAX({quote.quote(col.name)}), 0) + 1, 1) FROM {name}), false)"),
                     {"t": name, "c": col.name})


def _refuse_nonempty(conn, uri: str) -> None:
    full = _nonempty_tables(conn, _table_names(conn))
    if full:
        shown = ", ".join(full[:6]) + (f" and {len(full) - 6} more" if len(full) > 6 else "")
        raise ConflictError(
            f"The target store {redact(uri)} is not empty (rows in {shown}); a copy goes only into an empty "
            "database, so nothing was changed. Create a new one (e.g. `createdb hangar`) and copy into it. "
            "A store that Hangar has opened once holds the default experiment, so it counts as not empty."
        )


# -- the public API --------------------------------------------------------------------
def copy_store(source_uri: str, target_uri: str, *, artifact_root_map: dict[str, str] | None = None,
               progress: Progress | None = None, batch_rows: int = BATCH_ROWS) -> CopyReport:
    """Copy every row of the store at ``source_uri`` into the empty store at ``target_uri`` and
    verify the copy. The source is first brought to this Hangar's schema (upgraded in place if it
    is older; ``CopyReport.source_upgraded`` says so). Raises ConflictError for a non-empty target,
    StoreCopyError if a write fails and StoreVerificationError on a mismatch; in every failure
    the target's transaction is rolled back, so it holds no rows."""
    from sqlalchemy.exc import DBAPIError

    from hangar.store.migrate import HEAD, current_revision, ensure_schema

    pairs = _prefix_pairs(artifact_root_map)
    if _same_store(source_uri, target_uri):
        raise InvalidArgumentError(f"The source and target are the same store ({redact(source_uri)})")
    started = time.monotonic()
    src = _open(source_uri, "source", must_exist=True)
    tgt = None
    try:
        before = current_revision(src)
        if before is None:
            raise InvalidArgumentError(f"{redact(source_uri)} is not a Hangar store (it has no schema revision)")
        ensure_schema(src)
        tgt = _open(target_uri, "target", must_exist=False)
        with tgt.connect() as conn:
            _refuse_nonempty(conn, target_uri)  # before touching its schema
        ensure_schema(tgt)
        tables = _tables()
        with _snapshot(src) as sconn, _write(tgt) as tconn:
            present = _table_names(sconn)
            missing = [t.name for t in tables if t.name not in present]
            if missing:
                raise StoreCopyError(f"The source store lacks the tables {', '.join(missing)} at revision {HEAD}")
            _refuse_nonempty(tconn, target_uri)  # again, inside the transaction that writes
            totals = {t.name: _count(sconn, t) for t in tables}
            digests, rewritten = {}, 0
            for table in tables:
                try:
                    digests[table.name], n = _copy_table(sconn, tconn, table, totals[table.name], pairs, progress,
                                                         batch_rows)
                except (DBAPIError, tconn.dialect.loaded_dbapi.Error) as exc:
                    raise StoreCopyError(f"Copying table {table.name} failed, so the target was rolled back and "
                                         f"holds no rows: {_reason(exc)}") from exc
                rewritten += n
            _fix_sequences(tconn, tables)
            reports = []
            for table in tables:
                d = digests[table.name]
                back = _digest_table(tconn, table, d.rows, progress, "verify", batch_rows)
                reports.append(TableReport(table.name, d.rows, back.rows, d.hexdigest(), back.hexdigest(),
                                           d.rows == back.rows and d.hexdigest() == back.hexdigest()))
            report = CopyReport(
                source=redact(source_uri), target=redact(target_uri), schema_revision=HEAD,
                source_revision=before, source_upgraded=before != HEAD, tables=reports,
                rows=sum(r.rows for r in reports), artifact_root_map=dict(artifact_root_map or {}),
                artifact_uris_rewritten=rewritten, skipped_tables=sorted(present - {t.name for t in tables}),
                seconds=0.0, verified=all(r.verified for r in reports))
            if not report.verified:
                bad = ", ".join(r.table for r in reports if not r.verified)
                raise StoreVerificationError(
                    f"Verification failed for {bad}: the target's rows differ from the source's, so the copy "
                    "was rolled back and the target holds no rows", report)
        report.seconds = round(time.monotonic() - started, 3)
        return report
    finally:
        src.dispose()
        if tgt is not None:
            tgt.dispose()


def verify_store(source_uri: str, target_uri: str, *, artifact_root_map: dict[str, str] | None = None,
                 progress: Progress | None = None, batch_rows: int = BATCH_ROWS) -> VerifyReport:
    """Compare two stores table by table (row count and content digest), changing neither. With
    ``artifact_root_map``, the source's artifact URIs are compared as rewritten."""
    pairs = _prefix_pairs(artifact_root_map)
    src = _open(source_uri, "source", must_exist=True)
    tgt = None
    try:
        tgt = _open(target_uri, "target", must_exist=True)
        reports = []
        with _snapshot(src) as sconn, _snapshot(tgt) as tconn:
            in_src, in_tgt = _table_names(sconn), _table_names(tconn)
            for table in _tables():
                if table.name not in in_src and table.name not in in_tgt:
                    continue
                s = (_digest_table(sconn, table, _count(sconn, table), progress, "source", batch_rows, pairs)
                     if table.name in in_src else _Digest(table))
                d = (_digest_table(tconn, table, _count(tconn, table), progress, "target", batch_rows)
                     if table.name in in_tgt else _Digest(table))
                reports.append(TableReport(table.name, s.rows, d.rows, s.hexdigest(), d.hexdigest(),
                                           s.rows == d.rows and s.hexdigest() == d.hexdigest()))
        return VerifyReport(redact(source_uri), redact(target_uri), reports, dict(artifact_root_map or {}))
    finally:
        src.dispose()
        if tgt is not None:
            tgt.dispose()
