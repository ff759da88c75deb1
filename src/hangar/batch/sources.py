"""Batch inputs as a stream of Arrow record batches, in a stable order.

A stable order is what makes a job resumable: chunk *k* is rows ``[k·n, (k+1)·n)`` of the same
stream every time the job starts. Files are read in sorted order; a SQL query needs its own
``ORDER BY`` for that (without one the database may return rows in any order).

Sources: Parquet (a file, a folder or a glob), CSV, JSONL, a Delta table, a SQL query against a
SQLAlchemy URL. ``fingerprint()`` says what was read, so a resumed job can tell that its input
changed under it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hangar.errors import BatchJobError, require

FORMATS = ("parquet", "csv", "jsonl", "delta", "sql")
_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl"}
_SQL_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "sqlite", "mssql", "oracle")
_BLOCK_BYTES = 8 << 20


def is_sql_url(text: str) -> bool:
    scheme = text.split("://", 1)[0].split("+", 1)[0].lower() if "://" in text else ""
    return scheme in _SQL_SCHEMES


def redact_url(url: str) -> str:
    """A SQLAlchemy URL with its password hidden (for logs, lineage and run params)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: nothing to hide
        return url


class Source:
    format = ""

    def __init__(self, location: str):
        self.location = location

    @property
    def total_rows(self) -> int | None:
        return None

    def batches(self) -> Iterator[Any]:
        raise NotImplementedError

    def fingerprint(self) -> dict:
        raise NotImplementedError

    @property
    def lineage_id(self) -> str:
        return self.location


class FileSource(Source):
    def __init__(self, location: str, files: list[Path], fmt: str):
        super().__init__(location)
        self.files = files
        self.format = fmt
        self._rows: int | None = None

    @property
    def total_rows(self) -> int | None:
        if self.format != "parquet":
            return None
        if self._rows is None:
            import pyarrow.parquet as pq

            self._rows = sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)
        return self._rows

    def fingerprint(self) -> dict:
        files = []
        for f in self.files:
            st = f.stat()
            files.append([str(f), st.st_size, st.st_mtime_ns])
        return {"format": self.format, "files": files}

    @property
    def lineage_id(self) -> str:
        return os.path.abspath(self.location)

    def batches(self) -> Iterator[Any]:
        reader = {"parquet": _parquet_batches, "csv": _csv_batches, "jsonl": _jsonl_batches}[self.format]
        schema = None
        for path in self.files:
            try:
                for batch in reader(path, schema):
                    schema = schema or batch.schema
                    yield batch
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise BatchJobError(f"Cannot read {path} as {self.format}: {exc}") from None


def _parquet_batches(path: Path, schema) -> Iterator[Any]:
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=65536)


def _csv_batches(path: Path, schema) -> Iterator[Any]:
    import pyarrow.csv as pcsv

    convert = pcsv.ConvertOptions(column_types=schema) if schema is not None else None
    with pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=_BLOCK_BYTES), convert_options=convert) as reader:
        yield from reader


def _jsonl_batches(path: Path, schema) -> Iterator[Any]:
    import pyarrow.json as pjson

    parse = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer") if schema is not None else None
    with pjson.open_json(path, read_options=pjson.ReadOptions(block_size=_BLOCK_BYTES), parse_options=parse) as reader:
        yield from reader


class DeltaSource(Source):
    format = "delta"

    def __init__(self, location: str, version: int | None = None):
        super().__init__(location)
        deltalake = require("deltalake", "delta")
        try:
            self.table = deltalake.DeltaTable(location, version=version)
        except Exception as exc:  # noqa: BLE001 - deltalake raises its own tree
            raise BatchJobError(f"Cannot open the Delta table at {location}: {exc}") from None

    @property
    def total_rows(self) -> int | None:
        return None

    def fingerprint(self) -> dict:
        return {"format": "delta", "location": self.location, "version": self.table.version()}

    @property
    def lineage_id(self) -> str:
        return self.location if "://" in self.location else os.path.abspath(self.location)

    def batches(self) -> Iterator[Any]:
        dataset = self.table.to_pyarrow_dataset()
        files = sorted(dataset.files) if hasattr(dataset, "files") else None
        if files is not None:
            import pyarrow.dataset as pads

            dataset = pads.dataset(files, schema=dataset.schema, format="parquet", filesystem=dataset.filesystem)
        yield from dataset.to_batches(batch_size=65536)


class SqlSource(Source):
    format = "sql"

    def __init__(self, url: str, query: str, fetch_rows: int = 10_000):
        super().__init__(url)
        if not query or not query.strip():
            raise BatchJobError("A SQL input needs a query (--query 'SELECT ... ORDER BY ...') or a table "
                                "(URL#table_name)")
        self.query = query
        self.fetch_rows = fetch_rows

    def fingerprint(self) -> dict:
        return {"format": "sql", "url": redact_url(self.location), "query": self.query}

    @property
    def lineage_id(self) -> str:
        return redact_url(self.location)

    def batches(self) -> Iterator[Any]:
        import pyarrow as pa
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(self.location)
        schema = None
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True, yield_per=self.fetch_rows).execute(text(self.query))
                keys = list(result.keys())
                for rows in result.partitions(self.fetch_rows):
                    columns = list(zip(*rows)) if rows else [[] for _ in keys]
                    arrays = [pa.array(list(col)) for col in columns]
                    batch = pa.RecordBatch.from_arrays(arrays, names=keys)
                    if schema is None:
                        schema = batch.schema
                    else:
                        batch = _cast_like(batch, schema)
                        schema = _widen(schema, batch.schema)
                    yield batch
        except SQLAlchemyError as exc:
            raise BatchJobError(f"The SQL input failed ({redact_url(self.location)}): {exc.__class__.__name__}: "
                                f"{str(exc).splitlines()[0]}") from None
        finally:
            engine.dispose()


def _cast_like(batch, schema):
    """A later batch in the first batch's types where those are known (a column that was all
    NULL in the first batch takes the type of the first batch that has values)."""
    arrays = []
    for name, array in zip(batch.schema.names, batch.columns):
        want = schema.field(name).type if name in schema.names else array.type
        if str(want) != "null" and array.type != want:
            array = array.cast(want)
        arrays.append(array)
    return type(batch).from_arrays(arrays, names=batch.schema.names)


def _widen(schema, seen):
    import pyarrow as pa

    fields = [seen.field(f.name) if str(f.type) == "null" and f.name in seen.names else f for f in schema]
    return pa.schema(fields)


def _expand(location: str) -> list[Path]:
    if any(ch in location for ch in "*?["):
        return sorted(Path(p) for p in glob.glob(location, recursive=True) if Path(p).is_file())
    path = Path(location)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
    if path.is_file():
        return [path]
    return []


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def open_source(location: str | os.PathLike, *, query: str | None = None, format: str | None = None) -> Source:
    """The source at ``location``; ``format`` overrides what the name suggests."""
    location = str(location)
    if format is not None and format not in FORMATS:
        raise BatchJobError(f"Unknown input format {format!r}; choose one of {list(FORMATS)}")
    if format == "sql" or (format is None and is_sql_url(location)):
        url, _, table = location.partition("#")
        if table and query:
            raise BatchJobError("Give either a table (URL#table) or --query, not both")
        if table:
            check_table_name(table)
            query = f"SELECT * FROM {table}"
        return SqlSource(url, query or "")
    if format == "delta" or (format is None and (location.startswith("delta:") or (Path(location) / "_delta_log").is_dir())):
        return DeltaSource(location.removeprefix("delta:"))
    files = _expand(location)
    if not files:
        raise BatchJobError(f"No input files at {location!r}; give a Parquet, CSV or JSONL file, a folder or a glob")
    if format is None:
        kinds = {_EXTENSIONS.get(f.suffix.lower()) for f in files}
        kinds.discard(None)
        if len(kinds) != 1:
            found = sorted({f.suffix or f.name for f in files})[:5]
            raise BatchJobError(f"Cannot tell the format of {location!r} (files: {found}); "
                                f"name it with --input-format {'|'.join(FORMATS)}")
        format = kinds.pop()
        files = [f for f in files if _EXTENSIONS.get(f.suffix.lower()) == format]
    return FileSource(location, files, format)


def check_table_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", name):
        raise BatchJobError(f"{name!r} is not a plain table name (letters, digits, _ and one optional schema prefix)")


def rechunk(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """Tables of exactly ``rows`` rows (the last may be shorter) from batches of any size."""
    import pyarrow as pa

    pending: list = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            count = rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)
