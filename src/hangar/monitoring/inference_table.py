"""The inference table: every request and response an endpoint served, written off the hot path.

Requests put a record on a bounded in-memory queue (``record`` never blocks and never raises); a
writer thread drains it in batches to Parquet files (one file per ``flush_seconds``, a row group
per ``flush_rows``, named so that several workers can write the same folder; the Arrow
conversion runs in a child process, see ``parquet_writer``) or to a SQL table. ``close`` drains
what is queued and flushes, so a graceful shutdown loses nothing. When the queue is full (the writer cannot keep
up) a record is dropped and counted in ``dropped`` rather than letting memory grow without
bound; ``/metrics`` exports the count.

Records carry no headers, so no credentials; the request and response bodies are what callers
sent and got.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("hangar.monitoring")

COLUMNS = ("request_id", "endpoint", "caller", "served_entity", "model_version", "timestamp_ms", "latency_ms", "status_code",
           "error_code", "cancelled", "prompt_tokens", "completion_tokens", "route", "request", "response")
_POLL_S = 0.01  # small batches: see parquet_writer
_STAGE_ROWS = 256  # ... but not tiny ones: each has a fixed cost (a wake-up, 15 Arrow arrays)
_STAGE_WAIT_S = 0.05  # the longest a row waits to be staged while fewer than _STAGE_ROWS arrive


def _schema():
    import pyarrow as pa

    return pa.schema([("request_id", pa.string()), ("endpoint", pa.string()), ("caller", pa.string()),
                      ("served_entity", pa.string()),
                      ("model_version", pa.string()), ("timestamp_ms", pa.int64()), ("latency_ms", pa.float64()),
                      ("status_code", pa.int32()), ("error_code", pa.string()), ("cancelled", pa.bool_()),
                      ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()), ("route", pa.string()),
                      ("request", pa.string()), ("response", pa.string())])


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return json.dumps(value, default=str)


_BODIES = ("request", "response")


def _body_array(values):
    """Bodies as a string column: bytes are checked as UTF-8 by Arrow in one pass (2x cheaper than
    decoding each in Python); anything else, or invalid UTF-8, goes through ``_text``."""
    import pyarrow as pa

    try:
        return pa.array(values, type=pa.binary()).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([_text(v) for v in values], type=pa.string())


def _columns(rows: list[tuple]) -> list[list]:
    """Rows (tuples in ``COLUMNS`` order) as columns, bodies decoded to text (done here, in the
    writer thread, not on the request path)."""
    columns = [list(c) for c in zip(*rows)] if rows else [[] for _ in COLUMNS]
    for name in ("request", "response"):
        i = COLUMNS.index(name)
        columns[i] = [_text(v) for v in columns[i]]
    return columns


class ParquetTarget:
    """Rows become Arrow record batches as they arrive (``stage``); ``write_group`` appends them to
    the open file as one row group; ``flush`` closes the file and publishes it (an atomic rename
    from a hidden name, which readers skip), so each file holds every row group written since the
    last flush, however busy the endpoint. A serving process runs this in a child process
    (``parquet_writer``)."""

    def __init__(self, folder: str, prefix: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prefix = prefix or f"part-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0
        self._batches: list = []
        self.ungrouped = 0  # rows staged, not yet in a row group
        self._writer = None
        self._tmp: Path | None = None
        self._in_file = 0  # rows in the open file's row groups

    @property
    def staged(self) -> int:
        """Rows not yet published."""
        return self.ungrouped + self._in_file

    def stage(self, rows: list[tuple]) -> None:
        import pyarrow as pa

        schema = _schema()
        arrays = [(_body_array(col) if field.name in _BODIES else pa.array(col, type=field.type))
                  for col, field in zip(zip(*rows), schema)]
        self._batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
        self.ungrouped += len(rows)

    def write_group(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._batches:
            return
        if self._writer is None:
            self._seq += 1
            self._tmp = self.folder / f".{self._prefix}-{self._seq:06d}.parquet.tmp"
            self._writer = pq.ParquetWriter(self._tmp, _schema())
        batches, self._batches = self._batches, []
        self._writer.write_table(pa.Table.from_batches(batches))
        self._in_file += self.ungrouped
        self.ungrouped = 0

    def flush(self) -> int:
        """Publish every row staged so far; returns how many."""
        self.write_group()
        if self._writer is None:
            return 0
        writer, tmp, written = self._writer, self._tmp, self._in_file
        self._writer, self._tmp, self._in_file = None, None, 0
        writer.close()
        os.replace(tmp, tmp.with_name(tmp.name[1:].removesuffix(".tmp")))
        return written

    def discard(self) -> None:
        """Drop what is staged and the unpublished file (after a failure: those rows are counted as lost)."""
        writer, tmp = self._writer, self._tmp
        self._batches, self.ungrouped, self._in_file, self._writer, self._tmp = [], 0, 0, None, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - a broken file is removed either way
                log.debug("Closing a failed inference-table file failed", exc_info=True)
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        pass


def _storable(value, width: int | None):
    """Text any SQL database takes: cut to the column's width (a caller's long path as the route), NUL
    characters (which PostgreSQL refuses in text; a body may hold them) replaced."""
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value[:width] if width and len(value) > width else value


class SqlTarget:
    def __init__(self, url_and_table: str):
        from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, Text, create_engine

        from hangar.batch.sources import check_table_name

        url, _, name = url_and_table.partition("#")
        check_table_name(name)
        self.engine = create_engine(url)
        md = MetaData()
        self.table = Table(
            name, md, Column("request_id", String(64)), Column("endpoint", String(128)), Column("caller", String(256)),
            Column("served_entity", String(128)), Column("model_version", String(512)),
            Column("timestamp_ms", BigInteger), Column("latency_ms", Float), Column("status_code", Integer),
            Column("error_code", String(64)), Column("cancelled", Boolean), Column("prompt_tokens", BigInteger),
            Column("completion_tokens", BigInteger), Column("route", String(64)), Column("request", Text),
            Column("response", Text))
        md.create_all(self.engine)

    def write(self, rows: list[tuple]) -> None:
        columns = _columns(rows)
        for i, column in enumerate(self.table.columns):
            if column.type.python_type is str:  # one value a database refuses would fail the whole insert:
                columns[i] = [_storable(v, column.type.length) for v in columns[i]]
        records = [dict(zip(COLUMNS, values)) for values in zip(*columns)]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), records)

    def close(self) -> None:
        self.engine.dispose()


class _WriteAtFlush:
    """Stages rows for a target that only has ``write(rows)`` (a SQL table: one insert per flush)."""

    def __init__(self, target):
        self.target = target
        self._rows: list[tuple] = []
        self.staged = 0

    def stage(self, rows: list[tuple]) -> None:
        self._rows.extend(rows)
        self.staged = len(self._rows)

    def flush(self) -> int:
        rows, self._rows, self.staged = self._rows, [], 0
        if rows:
            self.target.write(rows)
        return len(rows)

    def close(self) -> None:
        self.target.close()


class InferenceTable:
    """``record`` appends a tuple to a bounded deque (no lock, no conversion). A writer thread
    wakes every ``_POLL_S`` and stages what arrived, a few hundred rows at a time (so that a
    request never waits long behind their conversion, and the fixed cost of a batch is shared).
    Every ``flush_seconds`` (and on close) what is staged becomes visible: one Parquet file, or
    one SQL insert. In between, each ``flush_rows`` staged rows become a row group of the open
    Parquet file (a SQL table gets its insert at once), so a busy endpoint makes bigger files,
    not more of them."""

    def __init__(self, target, *, queue_size: int = 10_000, flush_rows: int = 1_000, flush_seconds: float = 2.0):
        self.target = target if hasattr(target, "stage") else _WriteAtFlush(target)
        self.queue_size = queue_size
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._rows: collections.deque = collections.deque()
        self.dropped = 0
        self.written = 0
        self.failed_writes = 0
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="hangar-inference-table", daemon=True)
        self._thread.start()

    def record(self, *, request_id=None, endpoint=None, caller=None, served_entity=None, model_version=None,
               timestamp_ms=None, latency_ms=None, status_code=None, error_code=None, cancelled=False,
               prompt_tokens=None, completion_tokens=None, route=None, request=None, response=None) -> None:
        """One request (``request`` / ``response``: bytes, text or JSON-able values). Never blocks."""
        if self._closed:
            return
        if len(self._rows) >= self.queue_size:
            self.dropped += 1
            return
        self._rows.append((request_id, endpoint, caller, served_entity, model_version,
                           int(time.time() * 1000) if timestamp_ms is None else timestamp_ms, latency_ms, status_code,
                           error_code, bool(cancelled), prompt_tokens, completion_tokens, route, request, response))

    def _take(self) -> list[tuple]:
        rows, popleft = [], self._rows.popleft
        for _ in range(len(self._rows)):
            rows.append(popleft())
        return rows

    def _drain(self) -> None:
        """Every ``_POLL_S``: stage what arrived once it is ``_STAGE_ROWS`` rows or has waited
        ``_STAGE_WAIT_S`` (small conversions, but not tiny ones); publish what is staged once
        ``flush_seconds`` have passed or the table is closing; in between, write a row group (a
        Parquet target) or publish (a SQL table) once ``flush_rows`` are staged."""
        deadline = time.monotonic() + self.flush_seconds
        target = self.target
        grouped = hasattr(target, "write_group")  # Parquet: a row group per flush_rows, a file per flush_seconds
        waiting_since = None  # when rows began to wait to be staged
        while True:
            stopping = self._stop.wait(_POLL_S)
            now = time.monotonic()
            if self._rows:
                if waiting_since is None:
                    waiting_since = now
                if (len(self._rows) >= _STAGE_ROWS or now - waiting_since >= _STAGE_WAIT_S or stopping
                        or now >= deadline):
                    waiting_since = None
                    rows = self._take()
                    self._guard(target.stage, rows, len(rows))
            if target.staged and (stopping or now >= deadline or (not grouped and target.staged >= self.flush_rows)):
                self.written += self._guard(target.flush, None, target.staged) or 0
                deadline = now + self.flush_seconds
            elif grouped and target.ungrouped >= self.flush_rows:
                self._guard(target.write_group, None, target.staged)
            elif now >= deadline:
                deadline = now + self.flush_seconds
            if stopping:
                return

    def _guard(self, step, arg, rows: int):
        """Run a staging or writing step; on failure count its rows as lost (as many as the target says
        it lost, else ``rows``), never raise."""
        try:
            return step() if arg is None else step(arg)
        except Exception as exc:  # noqa: BLE001 - the table must never take the endpoint down
            lost = getattr(exc, "lost_rows", rows)
            self.failed_writes += lost
            log.error("Writing %d inference-table rows failed; they are lost: %s", lost, exc,
                      exc_info=not hasattr(exc, "lost_rows"))
            return getattr(exc, "written", None)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, write everything queued, and wait for the writer."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        self.target.close()


def open_inference_table(config) -> InferenceTable:
    """A serving endpoint's table: Parquet files are written by a child process (see ``parquet_writer``)."""
    if config.parquet:
        from hangar.monitoring.parquet_writer import ParquetProcessTarget

        target = ParquetProcessTarget(config.parquet)
    else:
        target = SqlTarget(config.sql)
    return InferenceTable(target, queue_size=config.queue_size, flush_rows=config.flush_rows,
                          flush_seconds=config.flush_seconds)
