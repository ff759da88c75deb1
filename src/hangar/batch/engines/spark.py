"""``--engine spark`` and ``hangar.batch.spark_udf``: batch scoring on PySpark.

The engine runs ``mapInArrow`` over windows of ``workers`` chunks, two windows at a time. Each chunk travels as one
row holding the chunk as an Arrow IPC stream, and comes back the same way, because
``mapInArrow`` must declare its output schema before the model has run, while ``ChunkScorer``
picks the prediction column's Arrow type per chunk (a list, a struct, or JSON text when the
values do not share a type) and Spark cannot carry every Arrow type unchanged (unsigned and large
types, for instance). With the chunk opaque to Spark, each task scores exactly one chunk in one
``ChunkScorer.score`` call, so the rows, types, per-chunk counts and error column are those of
the local engine, and the sink (resume, output formats) is shared. A window's results come
back as Arrow (``DataFrame.toArrow`` on Spark ≥ 4, rows otherwise); at most two windows
(``2 × workers`` chunks) are in flight, so memory stays flat whatever the input size.

Models load once per Python worker: ``_model`` caches them in a module global keyed by the
package path, and Spark reuses its Python workers between tasks. A local session
(``local[workers]``) is started unless one is active; only a session this engine started is
stopped by ``close()``. The core's own errors (a missing column, a row failure under
``--fail-fast``) travel back pickled as data and are raised again on the driver as themselves.

``spark_udf`` is for users who already have a Spark job. It is an iterator-of-Series pandas UDF
(the model loads once per task, and stays cached per worker) that runs ``ChunkScorer`` on each
Arrow batch, so failures are per row as in batch jobs. With ``result_type=None`` it returns
``struct<prediction: string, error: string>`` (non-string predictions as JSON text) so that no
error is lost; with a ``result_type`` it returns the prediction alone, typed, and rows the model
failed on are null (their error messages are in batch jobs' ``error`` column).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hangar.batch.scorer import ChunkScorer, ChunkStats, ScoringSpec
from hangar.errors import BatchJobError, require

_MODELS: dict[str, Any] = {}  # package path -> loaded model, one per Python worker
_SCHEMA = "chunk_id long, data binary, stats string, failure binary"


def _model(path: str):
    model = _MODELS.get(path)
    if model is None:
        import hangar.pyfunc

        model = _MODELS[path] = hangar.pyfunc.load_model(path)
    return model


def _to_ipc(table) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes):
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _pickled_failure(exc: Exception) -> bytes:
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - an exception that does not pickle still reaches the driver
        return pickle.dumps(BatchJobError(f"{type(exc).__name__}: {exc}"))


def _scoring_function(path: str, spec: ScoringSpec):
    """The ``mapInArrow`` function: rows of (chunk id, IPC chunk) in, rows of scored chunks out."""

    def score(batches):
        import pyarrow as pa

        for batch in batches:
            ids, payloads = batch.column(0).to_pylist(), batch.column(1).to_pylist()
            for chunk_id, payload in zip(ids, payloads):
                try:
                    out, stats = ChunkScorer(_model(path), spec).score(_from_ipc(payload))
                    row = [[chunk_id], [_to_ipc(out)], [json.dumps(stats.to_dict())], [None]]
                except Exception as exc:  # noqa: BLE001 - raised again on the driver
                    row = [[chunk_id], [None], [None], [_pickled_failure(exc)]]
                yield pa.RecordBatch.from_arrays([pa.array(row[0], pa.int64()), pa.array(row[1], pa.binary()),
                                                  pa.array(row[2], pa.string()), pa.array(row[3], pa.binary())],
                                                 names=["chunk_id", "data", "stats", "failure"])

    return score


def local_session(workers: int):
    """The active SparkSession, or a new ``local[workers]`` one; and whether it was started here."""
    pyspark_sql = require("pyspark.sql", "spark")
    active = pyspark_sql.SparkSession.getActiveSession()
    if active is not None:
        return active, False
    # PySpark starts its Python workers with $PYSPARK_PYTHON (default: `python3` on PATH, which may
    # not be this environment and so lack hangar); a user's own setting wins
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (pyspark_sql.SparkSession.builder.master(f"local[{workers}]").appName("hangar-batch")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    return builder.getOrCreate(), True


class SparkEngine:
    name = "spark"

    def __init__(self, package_path: str | Path, spec: ScoringSpec, workers: int):
        self.spark, self.started = local_session(workers)
        self.workers = workers
        self.function = _scoring_function(str(package_path), spec)

    def map(self, chunks: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any, ChunkStats]]:
        """Windows of ``workers`` chunks, two Spark jobs at a time (so ``2 × workers`` chunks in
        flight): while one window's last chunk is scored, the next window's tasks take the free slots."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        source = iter(chunks)
        pending: set = set()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="hangar-spark") as pool:
            try:
                while True:
                    while len(pending) < 2:
                        window = [(chunk_id, _to_ipc(table)) for chunk_id, table in _take(source, self.workers)]
                        if not window:
                            break
                        pending.add(pool.submit(self._score, window))
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield from future.result()
            finally:
                for future in pending:  # stopped early: let the running job end before the session does
                    future.cancel()
                wait(pending)

    def _score(self, window: list[tuple[int, bytes]]) -> list[tuple[int, Any, ChunkStats]]:
        schema = "chunk_id long, data binary"
        if hasattr(self.spark, "_jsc"):  # a classic session: one partition, so one task, per chunk
            df = self.spark.createDataFrame(self.spark.sparkContext.parallelize(window, len(window)), schema)
        else:  # Spark Connect
            df = self.spark.createDataFrame(window, schema).repartition(len(window))
        scored = df.mapInArrow(self.function, _SCHEMA)
        if hasattr(scored, "toArrow"):
            rows = scored.toArrow().to_pylist()
        else:  # Spark 3.5
            rows = [row.asDict() for row in scored.collect()]
        for row in rows:
            if row["failure"] is not None:
                raise pickle.loads(row["failure"])
        return [(row["chunk_id"], _from_ipc(row["data"]), ChunkStats.from_dict(json.loads(row["stats"]))) for row in rows]

    def close(self) -> None:
        if self.started:
            self.spark.stop()


def _take(source: Iterator, n: int) -> list:
    window = []
    for item in source:
        window.append(item)
        if len(window) >= n:
            break
    return window


# -- spark_udf: for users' own Spark jobs ------------------------------------------------------------
def spark_udf(spark, model_uri: str, *, columns: list[str] | None = None, params: dict | None = None,
              result_type: str | None = None):
    """A pandas UDF scoring rows with ``model_uri``: ``df.withColumn("out", udf("text"))``.

    The URI is resolved (and an alias pinned to its version) here, on the driver. ``columns``
    names the UDF's arguments as the model sees them (default: the signature's input names when
    their count matches, else ``_0``, ``_1``, ...). See the module docstring for ``result_type``.
    ``spark`` is the session the UDF runs in (MLflow's signature); executors load the package from
    its local path, so on a multi-node cluster ``HANGAR_HOME`` must be on storage they share.
    """
    functions = require("pyspark.sql.functions", "spark")
    from hangar.batch.job import pin_model

    pinned = pin_model(model_uri)
    path, label = str(pinned.path), pinned.label
    spec = ScoringSpec(keep_columns=[], output_column="prediction", params=params, model_version=label)
    names = list(columns) if columns else None
    as_struct = result_type is None

    def predict(batches):
        import pandas as pd
        import pyarrow as pa

        model = _model(path)
        scorer = ChunkScorer(model, spec)
        for batch in batches:
            series = list(batch) if isinstance(batch, tuple) else [batch]
            table = pa.table({name: pa.array(s, from_pandas=True) for name, s in zip(_names(model, names, len(series)), series)})
            out, _ = scorer.score(table)
            predictions = out.column("prediction").to_pylist()
            if as_struct:
                yield pd.DataFrame({"prediction": [_text(v) for v in predictions],
                                    "error": out.column("error").to_pylist()})
            else:
                yield pd.Series(predictions)

    import pandas as pd

    # iterator-of-Series style (the model loads once per task); one argument or a tuple of several
    predict.__annotations__ = {"batches": Iterator[pd.Series], "return": Iterator[pd.DataFrame if as_struct else pd.Series]}
    return functions.pandas_udf(predict, "prediction string, error string" if as_struct else result_type)


def _names(model, names: list[str] | None, count: int) -> list[str]:
    if names is not None:
        if len(names) != count:
            raise BatchJobError(f"spark_udf was given columns={names} but called with {count} argument(s)")
        return names
    signature = getattr(model, "signature", None)
    inputs = signature.inputs.names if signature is not None and signature.inputs is not None else []
    if len(inputs) == count and all(isinstance(n, str) for n in inputs):
        return inputs
    return [f"_{i}" for i in range(count)]


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str)

