"""The audit log: an append-only, hash-chained record of governance changes and model loads.

Each record stores who (``actor``) did what (``action``) to which securable, when (``at``, ms
since the epoch), with what ``outcome``, plus optional JSON ``details`` and a ``request_id``.
Each record also stores ``prev_hash`` (the hash of the record before it; 64 zeros for the
first) and its own ``hash``::

    hash = sha256(prev_hash + canonical_json({at, actor, action, securable_type, securable,
                                              outcome, details, request_id}))

``seq`` (assigned by the database) is not hashed. Only the links and hashes make the chain.

What ``verify`` detects, and what it cannot detect:

- an edited record: its hash no longer matches its content (``first_bad_seq`` is that record);
- a deleted record in the middle, or a deleted first record: the next record's ``prev_hash``
  no longer links to the record before it (``first_bad_seq`` is the record after the hole);
- a deleted *last* record (or a truncated table) leaves a shorter chain that is still valid,
  and so does an attacker who edits a record and recomputes every hash after it. The chain
  alone cannot show either; only a copy of the head kept somewhere else can. ``anchor(conn)``
  returns the head as (seq, hash); store it outside the database (a ticket, a write-once
  bucket, a log shipper) and pass it back to ``verify(conn, anchor=...)``, which then also
  checks that the anchored record is still there with the same hash. A counter kept in the
  same database would not help: whoever can delete a row can also change the counter.

A gap in ``seq`` is not in itself a sign of tampering: on PostgreSQL a rolled-back transaction
consumes sequence numbers. The links decide; a broken link names the gap in its message.

Appends are serialised so that the chain never forks: on PostgreSQL ``append`` takes a
transaction-scoped advisory lock before it reads the head (the caller's transaction must be
READ COMMITTED, PostgreSQL's default, so that the read sees the previous appender's commit);
on SQLite the caller's write transaction (``BEGIN IMMEDIATE``) already holds the one write lock.

``details`` is stored in the database in clear and shown by ``hangar audit list``: callers
must never pass secrets (tokens, passwords, API keys, signed URLs) in it, nor in any other field.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import and_, func, or_, select, text

from hangar.errors import ConflictError, InvalidArgumentError
from hangar.store import schema as t
from hangar.store.transactions import now_ms

__all__ = [
    "GENESIS_HASH",
    "OUTCOMES",
    "AuditAnchor",
    "AuditRecord",
    "AuditVerification",
    "anchor",
    "append",
    "list_records",
    "record",
    "record_hash",
    "verify",
]

GENESIS_HASH = "0" * 64
OUTCOMES = ("SUCCESS", "FAILURE", "DENIED")
_PG_LOCK_KEY = 0x41554454  # "AUDT"; the migration lock uses another key
_VERIFY_BATCH = 2000
_LIMITS = {"actor": 256, "action": 64, "securable_type": 32, "securable": 512, "request_id": 64}


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: int
    actor: str
    action: str
    securable_type: str
    securable: str
    outcome: str
    details: dict | None
    request_id: str | None
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of ``verify``: ``records`` verified good before the first problem; the head is
    the last good record (``None`` when there is none)."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None


class AuditAnchor(NamedTuple):
    """The head of the chain, to be kept outside the database and passed back to ``verify``."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, value: str | tuple | AuditAnchor) -> AuditAnchor:
        """``"SEQ:HASH"`` or a (seq, hash) pair."""
        if isinstance(value, str):
            seq, sep, digest = value.strip().partition(":")
            value = (seq, digest) if sep else (None, None)
        try:
            seq, digest = value
            seq = int(seq)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"An audit anchor is 'SEQ:HASH' (from `hangar audit anchor`), got {value!r}") from None
        if seq < 0 or not isinstance(digest, str) or len(digest) != 64:
            raise InvalidArgumentError(f"An audit anchor is 'SEQ:HASH' with a 64-hex-digit hash, got {seq}:{digest}")
        return cls(seq, digest.lower())



def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(prev_hash: str, *, at: int, actor: str, action: str, securable_type: str, securable: str,
                outcome: str, details: dict | None, request_id: str | None) -> str:
    """sha256 over the previous hash and the record's content (not its seq)."""
    content = _canonical({"at": int(at), "actor": actor, "action": action, "securable_type": securable_type,
                          "securable": securable, "outcome": outcome, "details": details,
                          "request_id": request_id})
    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def _check_fields(fields: dict) -> None:
    for name, limit in _LIMITS.items():
        value = fields[name]
        if value is None and name == "request_id":
            continue
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidArgumentError(f"Audit field {name} must be a non-empty string of at most {limit} characters, "
                                       f"got {value!r}")
    if fields["outcome"] not in OUTCOMES:
        raise InvalidArgumentError(f"Audit outcome must be one of {', '.join(OUTCOMES)}, got {fields['outcome']!r}")
    details = fields["details"]
    if details is not None and not isinstance(details, dict):
        raise InvalidArgumentError(f"Audit details must be a dict, got {type(details).__name__}")


def lock_for_append(conn) -> None:
    """Take the append lock now, at the start of a transaction that will append.

    Writers that lock rows and then append would otherwise deadlock with each other on
    PostgreSQL (one holds a row and waits for this lock, the other holds this lock and waits
    for the row); taking this lock first gives every such transaction the same lock order."""
    _lock_head(conn)


def _lock_head(conn) -> None:
    """Serialise appenders (PostgreSQL: advisory lock until the caller's transaction ends)."""
    if conn.dialect.name != "postgresql":
        return
    isolation = conn.execute(text("SELECT current_setting('transaction_isolation'), pg_advisory_xact_lock(:k)"),
                             {"k": _PG_LOCK_KEY}).scalar()
    if isolation != "read committed":
        raise ConflictError(f"Audit records must be appended in a READ COMMITTED transaction, not {isolation!r}: "
                            "a snapshot taken before the lock would not see the latest record")


def append(conn, *, actor: str, action: str, securable_type: str, securable: str, outcome: str = "SUCCESS",
           details: dict | None = None, request_id: str | None = None, at: int | None = None) -> AuditRecord:
    """Append one record inside the caller's open write transaction, so that it commits or rolls
    back with the change it describes. ``details`` must be JSON-serialisable and hold no secrets."""
    if at is not None and (isinstance(at, bool) or not isinstance(at, int) or at < 0):
        raise InvalidArgumentError(f"Audit time 'at' is milliseconds since the epoch, got {at!r}")
    fields = {"at": now_ms() if at is None else at, "actor": actor, "action": action,
              "securable_type": securable_type, "securable": securable, "outcome": outcome,
              "details": details, "request_id": request_id}
    _check_fields(fields)
    try:
        details_json = None if details is None else _canonical(details)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"Audit details must be JSON (no NaN, no objects): {exc}") from None
    if details is not None:
        fields["details"] = json.loads(details_json)  # what verify will read back
    if not conn.in_transaction():
        raise InvalidArgumentError("audit.append needs a connection inside a write transaction (the caller commits)")
    _lock_head(conn)
    prev = conn.execute(select(t.audit_log.c.hash).order_by(t.audit_log.c.seq.desc()).limit(1)).scalar()
    prev = prev or GENESIS_HASH
    digest = record_hash(prev, **fields)
    row = dict(fields, details=details_json, prev_hash=prev, hash=digest)
    seq = conn.execute(t.audit_log.insert().values(**row)).inserted_primary_key[0]
    return AuditRecord(seq=seq, prev_hash=prev, hash=digest, **fields)


def record(engine, **fields) -> AuditRecord:
    """Append one record in its own write transaction (for events with no enclosing change)."""
    with _write(engine) as conn:
        return append(conn, **fields)


@contextlib.contextmanager
def _write(engine):
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def _record(row) -> AuditRecord:
    return AuditRecord(row.seq, row.at, row.actor, row.action, row.securable_type, row.securable, row.outcome,
                       None if row.details is None else json.loads(row.details), row.request_id, row.prev_hash, row.hash)


def _starts_with(column, prefix: str):
    # LIKE can use an index; substr makes it exact (SQLite's LIKE ignores ASCII case).
    return and_(column.startswith(prefix, autoescape=True), func.substr(column, 1, len(prefix)) == prefix)


def list_records(conn, *, securable: str | None = None, securable_prefix: str | None = None,
                 under: str | None = None, action: str | None = None, actor: str | None = None,
                 since_ms: int | None = None, until_ms: int | None = None, limit: int = 1000,
                 descending: bool = True) -> list[AuditRecord]:
    """Records matching every filter given, newest first unless ``descending=False``.

    ``securable`` matches exactly, ``securable_prefix`` any securable starting with it, and
    ``under`` the securable itself and everything beneath it (``x.*``, ``x/*``, ``x@*``).
    ``since_ms`` is inclusive and ``until_ms`` exclusive."""
    if not isinstance(limit, int) or limit < 1:
        raise InvalidArgumentError(f"limit must be a positive integer, got {limit!r}")
    c = t.audit_log.c
    where = []
    if securable is not None:
        where.append(c.securable == securable)
    if securable_prefix:
        where.append(_starts_with(c.securable, securable_prefix))
    if under:
        where.append(or_(c.securable == under, *(_starts_with(c.securable, under + sep) for sep in "./@")))
    if action is not None:
        where.append(c.action == action)
    if actor is not None:
        where.append(c.actor == actor)
    if since_ms is not None:
        where.append(c.at >= int(since_ms))
    if until_ms is not None:
        where.append(c.at < int(until_ms))
    stmt = (select(t.audit_log).where(*where)
            .order_by(c.seq.desc() if descending else c.seq.asc()).limit(limit))
    return [_record(r) for r in conn.execute(stmt)]


def anchor(conn) -> AuditAnchor:
    """The chain's head as (seq, hash); (0, GENESIS_HASH) for an empty log."""
    row = conn.execute(select(t.audit_log.c.seq, t.audit_log.c.hash).order_by(t.audit_log.c.seq.desc()).limit(1)).first()
    return AuditAnchor(0, GENESIS_HASH) if row is None else AuditAnchor(row.seq, row.hash)


def _rows(conn):
    last = None
    cols = [t.audit_log.c[name] for name in ("seq", "at", "actor", "action", "securable_type", "securable",
                                              "outcome", "details", "request_id", "prev_hash", "hash")]
    while True:
        stmt = select(*cols).order_by(t.audit_log.c.seq).limit(_VERIFY_BATCH)
        if last is not None:
            stmt = stmt.where(t.audit_log.c.seq > last)
        batch = conn.execute(stmt).all()
        yield from batch
        if len(batch) < _VERIFY_BATCH:
            return
        last = batch[-1].seq


def _recompute(row) -> str | None:
    try:
        details = None if row.details is None else json.loads(row.details)
        return record_hash(row.prev_hash, at=row.at, actor=row.actor, action=row.action,
                           securable_type=row.securable_type, securable=row.securable, outcome=row.outcome,
                           details=details, request_id=row.request_id)
    except (TypeError, ValueError):
        return None


def verify(conn, anchor: AuditAnchor | tuple | str | None = None) -> AuditVerification:
    """Walk the log in seq order: recompute every hash and check every link.

    With an ``anchor`` (from ``anchor()``, kept elsewhere) also check that the anchored record
    is still in the chain with the same hash, which catches deleted last records and rewrites."""
    pinned = AuditAnchor.parse(anchor) if anchor is not None else None
    count, prev_seq, prev_hash = 0, None, GENESIS_HASH
    anchor_seen = pinned is None or pinned.seq == 0

    def bad(seq, problem):
        return AuditVerification(False, count, seq, problem, prev_seq, prev_hash if prev_seq is not None else None)

    for row in _rows(conn):
        if row.prev_hash != prev_hash:
            if prev_seq is None:
                problem = (f"record {row.seq} is the first record but does not start the chain: "
                           "earlier records were deleted")
            elif row.seq != prev_seq + 1:
                problem = (f"record {row.seq} does not link to record {prev_seq}: "
                           f"records between seq {prev_seq} and {row.seq} are missing or were altered")
            else:
                problem = f"record {row.seq} does not link to record {prev_seq}: a record was deleted or altered"
            return bad(row.seq, problem)
        digest = _recompute(row)
        if digest != row.hash:
            return bad(row.seq, f"record {row.seq} was edited: its content does not match its hash")
        if pinned is not None and row.seq == pinned.seq:
            if row.hash != pinned.hash:
                return bad(row.seq, f"record {row.seq} does not match the anchor: it was replaced or the chain rewritten")
            anchor_seen = True
        count += 1
        prev_seq, prev_hash = row.seq, row.hash
    if not anchor_seen:
        if prev_seq is not None and prev_seq > pinned.seq:
            problem = f"the anchored record {pinned.seq} is missing: it was deleted"
        else:
            problem = (f"the anchored record {pinned.seq} is missing: the log ends at "
                       f"{prev_seq if prev_seq is not None else 'no record'}, so records at its end were deleted")
        return AuditVerification(False, count, pinned.seq, problem, prev_seq,
                                 prev_hash if prev_seq is not None else None)
    return AuditVerification(True, count, None, None, prev_seq, prev_hash if prev_seq is not None else None)
