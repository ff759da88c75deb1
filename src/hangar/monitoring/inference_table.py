"""The inference table: every request and response an endpoint served, written off the hot path.

Requests put a record on a bounded in-memory queue (``record`` never blocks and never raises); a
writer thread drains it in batches to Parquet files (one file per flush, named so that several
workers can write the same folder) or to a SQL table. ``close`` drains what is queued and
flushes, so a graceful shutdown loses nothing. When the queue is full (the writer cannot keep
up) a record is dropped and counted in ``dropped`` rather than letting memory grow without
bound; ``/metrics`` exports the count.

Records carry no headers, so no credentials; the request and response bodies are what callers
sent and got.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("hangar.monitoring")

COLUMNS = ("request_id", "endpoint", "caller", "served_entity", "model_version", "timestamp_ms", "latency_ms", "status_code",
           "error_code", "cancelled", "prompt_tokens", "completion_tokens", "route", "request", "response")
_STOP = object()


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


class ParquetTarget:
    def __init__(self, folder: str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._prefix = f"part-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._seq = 0

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(rows, schema=_schema())
        self._seq += 1
        final = self.folder / f"{self._prefix}-{self._seq:06d}.parquet"
        tmp = self.folder / f".{final.name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, final)

    def close(self) -> None:
        pass


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

    def write(self, rows: list[dict]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def close(self) -> None:
        self.engine.dispose()


class InferenceTable:
    def __init__(self, target, *, queue_size: int = 10_000, flush_rows: int = 1_000, flush_seconds: float = 2.0):
        self.target = target
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.dropped = 0
        self.written = 0
        self.failed_writes = 0
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="hangar-inference-table", daemon=True)
        self._thread.start()

    def record(self, **fields: Any) -> None:
        if self._closed:
            return
        row = {name: fields.get(name) for name in COLUMNS}
        row["request"] = _text(row["request"])
        row["response"] = _text(row["response"])
        if row["timestamp_ms"] is None:
            row["timestamp_ms"] = int(time.time() * 1000)
        row["cancelled"] = bool(row["cancelled"])
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1

    def _drain(self) -> None:
        pending: list[dict] = []
        deadline = time.monotonic() + self.flush_seconds
        while True:
            timeout = max(0.0, deadline - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            stop = item is _STOP
            if item is not None and not stop:
                pending.append(item)
            if pending and (stop or len(pending) >= self.flush_rows or time.monotonic() >= deadline):
                self._flush(pending)
                pending = []
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + self.flush_seconds
            if stop:
                return

    def _flush(self, rows: list[dict]) -> None:
        try:
            self.target.write(rows)
            self.written += len(rows)
        except Exception:  # noqa: BLE001 - the table must never take the endpoint down
            self.failed_writes += len(rows)
            log.exception("Writing %d inference-table rows failed; they are lost", len(rows))

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking records, write everything queued, and wait for the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self.target.close()


def open_inference_table(config) -> InferenceTable:
    target = ParquetTarget(config.parquet) if config.parquet else SqlTarget(config.sql)
    return InferenceTable(target, queue_size=config.queue_size, flush_rows=config.flush_rows,
                          flush_seconds=config.flush_seconds)
