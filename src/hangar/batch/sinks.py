"""Batch outputs that commit one chunk at a time, exactly once.

Each sink commits a chunk's rows and the record that the chunk is done in one atomic step, so a
job killed at any instant resumes with every row exactly once:

- Parquet (a folder, the default): one part file per chunk, written under a temporary name and
  renamed into place; the chunk's counts ride in the file's own metadata. A chunk whose file
  exists is done; one that was cut short left only a temporary file. Part files are not fsynced
  (that cost ~10 % of a fast job): after a machine crash a part whose footer never reached the
  disk fails to open on resume and is scored again.
- JSONL (one file): chunks are appended in order; the checkpoint file beside it records the
  byte offset after the last whole chunk, and a resumed job truncates back to it.
- SQL table: a chunk's rows and its progress row go in one transaction.
- Delta: one append commit per chunk, the chunk's id and counts in the commit's metadata.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from hangar.batch.checkpoint import JobRecord, read_json, write_json_atomic
from hangar.batch.scorer import ChunkStats
from hangar.batch.sources import check_table_name, is_sql_url, redact_url
from hangar.errors import BatchJobError, require

FORMATS = ("parquet", "jsonl", "delta", "sql")
JOB_FILE = "_hangar_batch.json"
_STATS_KEY = b"hangar.batch.stats"


class Sink:
    format = ""
    ordered = False  # True when chunks must be written in order

    def __init__(self, location: str):
        self.location = location

    @property
    def lineage_id(self) -> str:
        return os.path.abspath(self.location)

    def load(self) -> JobRecord | None:
        """The record of the job that wrote here before, if any."""
        raise NotImplementedError

    def is_empty(self) -> bool:
        raise NotImplementedError

    def reset(self) -> None:
        """Remove an earlier job's output (``--overwrite``)."""
        raise NotImplementedError

    def begin(self, job: JobRecord) -> dict[int, ChunkStats]:
        """Save ``job``'s record; the chunks already committed, with their counts."""
        raise NotImplementedError

    def write(self, chunk_id: int, table: Any, stats: ChunkStats) -> None:
        raise NotImplementedError

    def save(self, job: JobRecord) -> None:
        """Store ``job``'s record again (it gained its run id, or completed)."""
        raise NotImplementedError

    def finish(self, job: JobRecord) -> None:
        self.save(job)


def _stats_metadata(stats: ChunkStats) -> dict:
    return {_STATS_KEY: json.dumps(stats.to_dict()).encode()}


class ParquetSink(Sink):
    format = "parquet"

    def __init__(self, location: str):
        super().__init__(location)
        self.root = Path(location)
        self.job_file = self.root / JOB_FILE
        if self.root.exists() and not self.root.is_dir():
            raise BatchJobError(f"The output {location} is a file; a Parquet output is a folder of part files "
                                "(or name a .jsonl file for JSON lines)")

    def load(self) -> JobRecord | None:
        data = read_json(self.job_file)
        return JobRecord.from_dict(data) if data else None

    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.iterdir())

    def reset(self) -> None:
        if not self.job_file.exists() and not self.is_empty():
            raise BatchJobError(f"{self.root} holds files that no Hangar batch job wrote; refusing to delete them. "
                                "Choose another output folder")
        shutil.rmtree(self.root, ignore_errors=True)

    def _part(self, chunk_id: int) -> Path:
        return self.root / f"part-{chunk_id:08d}.parquet"

    def begin(self, job: JobRecord) -> dict[int, ChunkStats]:
        self.root.mkdir(parents=True, exist_ok=True)
        for leftover in self.root.glob(".part-*"):
            leftover.unlink(missing_ok=True)  # a chunk cut short by a kill
        write_json_atomic(self.job_file, job.to_dict())
        import pyarrow.parquet as pq

        done: dict[int, ChunkStats] = {}
        for part in sorted(self.root.glob("part-*.parquet")):
            try:
                meta = pq.read_schema(part).metadata or {}
            except (OSError, ValueError):  # cut short by a machine crash before the data reached disk
                part.unlink()
                continue
            if _STATS_KEY in meta:
                done[int(part.stem.split("-")[1])] = ChunkStats.from_dict(json.loads(meta[_STATS_KEY]))
        return done

    def write(self, chunk_id: int, table: Any, stats: ChunkStats) -> None:
        import pyarrow.parquet as pq

        final = self._part(chunk_id)
        tmp = self.root / f".{final.name}.tmp"
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **_stats_metadata(stats)})
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # atomic for a killed process; a crashed machine is caught in begin()

    def save(self, job: JobRecord) -> None:
        write_json_atomic(self.job_file, job.to_dict())

    def finish(self, job: JobRecord) -> None:
        _unify_part_schemas(sorted(self.root.glob("part-*.parquet")))
        self.save(job)


def _unify_part_schemas(parts: list[Path]) -> None:
    """A column that was all NULL in some chunks (every row of the chunk failed, say) is typed
    ``null`` in their files; rewrite those files in the type the other chunks found, so readers
    see one schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(parts) < 2:
        return
    schemas = [pq.read_schema(p) for p in parts]
    try:
        unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return  # genuinely different types: leave the files as written rather than guess
    for part, schema in zip(parts, schemas):
        if schema.remove_metadata().equals(unified):
            continue
        table = pq.read_table(part)
        try:
            fixed = table.cast(unified.with_metadata(table.schema.metadata))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            continue
        tmp = part.with_name(f".{part.name}.tmp")
        pq.write_table(fixed, tmp)
        os.replace(tmp, part)


class JsonlSink(Sink):
    format = "jsonl"
    ordered = True

    def __init__(self, location: str):
        super().__init__(location)
        self.path = Path(location)
        self.checkpoint = self.path.with_name(self.path.name + ".hangar-batch.json")
        self._state: dict = {}

    def load(self) -> JobRecord | None:
        data = read_json(self.checkpoint)
        return JobRecord.from_dict(data["job"]) if data else None

    def is_empty(self) -> bool:
        return not self.path.exists() or self.path.stat().st_size == 0

    def reset(self) -> None:
        if self.path.exists() and not self.checkpoint.exists():
            raise BatchJobError(f"{self.path} was not written by a Hangar batch job; refusing to replace it. "
                                "Choose another output file")
        self.path.unlink(missing_ok=True)
        self.checkpoint.unlink(missing_ok=True)

    def begin(self, job: JobRecord) -> dict[int, ChunkStats]:
        old = read_json(self.checkpoint) or {}
        self._state = {"job": job.to_dict(), "next_chunk": old.get("next_chunk", 0), "offset": old.get("offset", 0),
                       "stats": old.get("stats", ChunkStats().to_dict())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:  # drop a chunk that was cut short after the last checkpoint
            f.truncate(self._state["offset"])
        write_json_atomic(self.checkpoint, self._state)
        done_stats = ChunkStats.from_dict(self._state["stats"])
        # Ordered: every chunk before next_chunk is in; their counts are kept as one total.
        return {i: (done_stats if i == 0 else ChunkStats()) for i in range(self._state["next_chunk"])}

    def write(self, chunk_id: int, table: Any, stats: ChunkStats) -> None:
        if chunk_id != self._state["next_chunk"]:
            raise BatchJobError(f"JSONL output got chunk {chunk_id} while expecting {self._state['next_chunk']}")
        lines = "".join(json.dumps(row, default=_json_default, ensure_ascii=False) + "\n" for row in table.to_pylist())
        data = lines.encode()
        with open(self.path, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        total = ChunkStats.from_dict(self._state["stats"])
        total.add(stats)
        self._state.update(next_chunk=chunk_id + 1, offset=self._state["offset"] + len(data), stats=total.to_dict())
        write_json_atomic(self.checkpoint, self._state)

    def save(self, job: JobRecord) -> None:
        self._state["job"] = job.to_dict()
        write_json_atomic(self.checkpoint, self._state)


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class SqlSink(Sink):
    """Rows into ``table``; ``hangar_batch_jobs`` / ``hangar_batch_chunks`` hold the progress."""

    format = "sql"

    def __init__(self, url: str, table: str):
        super().__init__(url)
        check_table_name(table)
        self.url = url
        self.table_name = table
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self._table = None
        self._job: JobRecord | None = None

    @property
    def lineage_id(self) -> str:
        return f"{redact_url(self.url)}#{self.table_name}"

    def _meta(self):
        from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

        md = MetaData()
        jobs = Table("hangar_batch_jobs", md, Column("output_table", String(255), primary_key=True),
                     Column("record", Text, nullable=False))
        chunks = Table("hangar_batch_chunks", md, Column("job_id", String(64), primary_key=True),
                       Column("chunk_id", Integer, primary_key=True), Column("stats", Text, nullable=False),
                       Column("rows", BigInteger, nullable=False))
        return md, jobs, chunks

    def load(self) -> JobRecord | None:
        from sqlalchemy import inspect, select

        md, jobs, _ = self._meta()
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("hangar_batch_jobs"):
                return None
            record = conn.execute(select(jobs.c.record).where(jobs.c.output_table == self.table_name)).scalar()
        return JobRecord.from_dict(json.loads(record)) if record else None

    def is_empty(self) -> bool:
        from sqlalchemy import inspect

        with self.engine.connect() as conn:
            return not inspect(conn).has_table(self.table_name)

    def reset(self) -> None:
        from sqlalchemy import delete, inspect, text

        md, jobs, chunks = self._meta()
        job = self.load()
        with self.engine.begin() as conn:
            if inspect(conn).has_table(self.table_name):
                if job is None:
                    raise BatchJobError(f"Table {self.table_name} was not written by a Hangar batch job; refusing to "
                                        "drop it. Choose another --table")
                conn.execute(text(f"DROP TABLE {self.table_name}"))
            if job is not None:
                conn.execute(delete(chunks).where(chunks.c.job_id == job.job_id))
                conn.execute(delete(jobs).where(jobs.c.output_table == self.table_name))

    def begin(self, job: JobRecord) -> dict[int, ChunkStats]:
        from sqlalchemy import select

        from hangar.store.upsert import insert_for

        md, jobs, chunks = self._meta()
        self._job = job
        with self.engine.begin() as conn:
            md.create_all(conn)
            stmt = insert_for(conn, jobs).on_conflict_do_update(
                index_elements=["output_table"], set_={"record": json.dumps(job.to_dict())})
            conn.execute(stmt, {"output_table": self.table_name, "record": json.dumps(job.to_dict())})
            rows = conn.execute(select(chunks.c.chunk_id, chunks.c.stats).where(chunks.c.job_id == job.job_id)).all()
        return {r.chunk_id: ChunkStats.from_dict(json.loads(r.stats)) for r in rows}

    def _output_table(self, conn, schema):
        from sqlalchemy import Column, MetaData, Table, inspect

        if self._table is not None:
            return self._table
        md = MetaData()
        if inspect(conn).has_table(self.table_name):
            self._table = Table(self.table_name, md, autoload_with=conn)
        else:
            self._table = Table(self.table_name, md, *[Column(f.name, _sql_type(f.type)) for f in schema])
            self._table.create(conn)
        return self._table

    def write(self, chunk_id: int, table: Any, stats: ChunkStats) -> None:
        from sqlalchemy import JSON, Text

        _, _, chunks = self._meta()
        rows = table.to_pylist()
        with self.engine.begin() as conn:
            out = self._output_table(conn, table.schema)
            encoded = [c.name for c in out.columns if isinstance(c.type, (Text, JSON))]
            for row in rows:
                for name in encoded:
                    value = row.get(name)
                    if value is not None and not isinstance(value, str):
                        row[name] = json.dumps(value, default=_json_default)
            if rows:
                conn.execute(out.insert(), rows)
            conn.execute(chunks.insert(), {"job_id": self._job.job_id, "chunk_id": chunk_id,
                                           "stats": json.dumps(stats.to_dict()), "rows": len(rows)})

    def save(self, job: JobRecord) -> None:
        from sqlalchemy import update

        _, jobs, _ = self._meta()
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.output_table == self.table_name).values(record=json.dumps(job.to_dict())))

    def finish(self, job: JobRecord) -> None:
        self.save(job)
        self.engine.dispose()


def _sql_type(arrow_type):
    import pyarrow as pa
    from sqlalchemy import BigInteger, Boolean, DateTime, Float, LargeBinary, Text

    if pa.types.is_boolean(arrow_type):
        return Boolean()
    if pa.types.is_integer(arrow_type):
        return BigInteger()
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return Float()
    if pa.types.is_timestamp(arrow_type):
        return DateTime()
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return LargeBinary()
    return Text()  # strings, and lists / structs as JSON text


class DeltaSink(Sink):
    format = "delta"

    def __init__(self, location: str):
        super().__init__(location.removeprefix("delta:"))
        self.deltalake = require("deltalake", "delta")
        self.checkpoint = Path(self.location.rstrip("/") + ".hangar-batch.json")
        self._job: JobRecord | None = None

    def load(self) -> JobRecord | None:
        data = read_json(self.checkpoint)
        return JobRecord.from_dict(data) if data else None

    def _table(self):
        try:
            return self.deltalake.DeltaTable(self.location)
        except Exception:  # noqa: BLE001 - no table yet
            return None

    def is_empty(self) -> bool:
        return self._table() is None

    def reset(self) -> None:
        if self._table() is not None and not self.checkpoint.exists():
            raise BatchJobError(f"The Delta table {self.location} was not written by a Hangar batch job; refusing to "
                                "replace it. Choose another output")
        shutil.rmtree(self.location, ignore_errors=True)
        self.checkpoint.unlink(missing_ok=True)

    def begin(self, job: JobRecord) -> dict[int, ChunkStats]:
        self._job = job
        write_json_atomic(self.checkpoint, job.to_dict())
        table = self._table()
        done: dict[int, ChunkStats] = {}
        if table is None:
            return done
        for commit in table.history():
            meta = commit.get("hangar_batch") or (commit.get("userMetadata") or {})
            if isinstance(meta, str):
                try:
                    meta = json.loads(meta)
                except ValueError:
                    continue
            if isinstance(meta, dict) and meta.get("job_id") == job.job_id:
                done[int(meta["chunk_id"])] = ChunkStats.from_dict(meta["stats"])
        return done

    def write(self, chunk_id: int, table: Any, stats: ChunkStats) -> None:
        meta = json.dumps({"job_id": self._job.job_id, "chunk_id": chunk_id, "stats": stats.to_dict()})
        props = self.deltalake.CommitProperties(custom_metadata={"hangar_batch": meta})
        self.deltalake.write_deltalake(self.location, table, mode="append", commit_properties=props)

    def save(self, job: JobRecord) -> None:
        write_json_atomic(self.checkpoint, job.to_dict())


def open_sink(location: str | os.PathLike, *, table: str | None = None, format: str | None = None) -> Sink:
    location = str(location)
    if format is not None and format not in FORMATS:
        raise BatchJobError(f"Unknown output format {format!r}; choose one of {list(FORMATS)}")
    if format == "sql" or (format is None and is_sql_url(location)):
        url, _, fragment = location.partition("#")
        name = table or fragment
        if not name:
            raise BatchJobError("A SQL output needs a table: URL#table_name or --table NAME")
        return SqlSink(url, name)
    if format == "delta" or (format is None and (location.startswith("delta:") or (Path(location) / "_delta_log").is_dir())):
        return DeltaSink(location)
    suffix = Path(location).suffix.lower()
    if format == "jsonl" or (format is None and suffix in (".jsonl", ".ndjson", ".json")):
        return JsonlSink(location)
    if format is None and suffix in (".csv",):
        raise BatchJobError("CSV is an input format only; write Parquet (a folder), JSONL, Delta or a SQL table")
    return ParquetSink(location)
