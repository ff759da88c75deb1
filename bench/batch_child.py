"""The child side of bench_batch.py: one measurement per process, run as
``python batch_child.py SPEC`` by either venv (Hangar's or MLflow's). Stdlib-only at import;
each case imports what it measures and prints one JSON line."""

from __future__ import annotations

import json
import sys
import time


def _preimport(lib: str) -> float:
    t0 = time.perf_counter()
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if lib == "hangar":
        import hangar.batch  # noqa: F401
        import hangar.pyfunc  # noqa: F401
    else:
        import mlflow.pyfunc  # noqa: F401
    return time.perf_counter() - t0


def _output_table(batch, predictions, version: str):
    """The columns every writer here produces: input + prediction + model_version + error."""
    import pyarrow as pa

    n = batch.num_rows
    arrays = [*batch.columns, pa.array(predictions), pa.array([version] * n, pa.string()), pa.nulls(n, pa.string())]
    return pa.Table.from_arrays(arrays, names=[*batch.schema.names, "prediction", "model_version", "error"])


def child_save(spec: dict) -> dict:
    import pandas as pd
    import trivial_models

    example = pd.DataFrame({"text": ["abc"]})
    if spec["lib"] == "hangar":
        import hangar.pyfunc as pf
    else:
        import mlflow.pyfunc as pf
    pf.save_model(spec["path"], python_model=getattr(trivial_models, spec["cls"])(), input_example=example)
    return {"saved": spec["path"]}


def _profiler(spec: dict):
    if not spec.get("profile"):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def _dump(profiler, spec: dict) -> None:
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])


def child_hangar_run(spec: dict) -> dict:
    import_s = _preimport("hangar")
    import hangar.batch

    kwargs = {"workers": spec.get("workers"), "chunk_rows": spec.get("chunk_rows"), "record": spec.get("record", True),
              "progress": False}
    profiler = _profiler(spec)
    t0, c0 = time.perf_counter(), time.process_time()
    result = hangar.batch.run(spec["model"], spec["input"], spec["output"], **kwargs)
    timed, cpu = time.perf_counter() - t0, time.process_time() - c0
    _dump(profiler, spec)
    return {"timed_s": timed, "cpu_s": cpu, "import_s": import_s, "rows": result.rows, "failed": result.failed,
            "chunks": result.chunks, "duration_s": result.duration_s, "run_id": result.run_id,
            "first_error": result.first_error}


def child_limit(spec: dict) -> dict:
    """The hand-written loop: the model's own predict on each record batch, one ParquetWriter."""
    lib = spec["lib"]
    import_s = _preimport(lib)
    import pyarrow.parquet as pq

    if lib == "hangar":
        import hangar.pyfunc as pf
    else:
        import mlflow.pyfunc as pf
    profiler = _profiler(spec)
    t0, c0 = time.perf_counter(), time.process_time()
    model = pf.load_model(spec["model"])
    load_s = time.perf_counter() - t0
    version = spec.get("version") or str(spec["model"])
    rows = 0
    writer = None
    try:
        for batch in pq.ParquetFile(spec["input"]).iter_batches(batch_size=spec["chunk_rows"]):
            predictions = model.predict(batch.to_pandas())
            if hasattr(predictions, "tolist"):
                predictions = predictions.tolist()
            out = _output_table(batch, predictions, version)
            if writer is None:
                writer = pq.ParquetWriter(spec["output"], out.schema)
            writer.write_table(out)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    timed, cpu = time.perf_counter() - t0, time.process_time() - c0
    _dump(profiler, spec)
    return {"timed_s": timed, "cpu_s": cpu, "load_s": load_s, "import_s": import_s, "rows": rows}


def child_spark_udf(spec: dict) -> dict:
    """MLflow's spark_udf on local Spark, as its docs show it: read Parquet, add a column, write Parquet."""
    t0 = time.perf_counter()
    import mlflow.pyfunc
    from pyspark.sql import SparkSession

    t_import = time.perf_counter()
    spark = (SparkSession.builder.master(spec.get("master", "local[2]")).appName("bench-batch")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    t_spark = time.perf_counter()
    udf = mlflow.pyfunc.spark_udf(spark, spec["model"], result_type="long", env_manager="local")
    t_udf = time.perf_counter()
    df = spark.read.parquet(spec["input"])
    partitions = df.rdd.getNumPartitions()
    df.withColumn("prediction", udf("text")).write.mode("overwrite").parquet(spec["output"])
    t_job = time.perf_counter()
    spark.stop()
    t_end = time.perf_counter()
    return {"timed_s": t_end - t0, "import_s": t_import - t0, "spark_start_s": t_spark - t_import,
            "udf_s": t_udf - t_spark, "job_s": t_job - t_udf, "stop_s": t_end - t_job, "partitions": partitions}


def _spin_chunk(seeds: list[int]) -> int:
    import trivial_models

    return sum(trivial_models.spin(s) for s in seeds)


def child_spin_ceiling(spec: dict) -> dict:
    """The machine's own ceiling for the scaling case: the same per-row work split over N plain
    spawned processes (``multiprocessing.Pool``, no Hangar, no pandas, no Parquet)."""
    import multiprocessing

    rows, procs, chunk = spec["rows"], spec["procs"], spec["chunk_rows"]
    chunks = [list(range(i, min(rows, i + chunk))) for i in range(0, rows, chunk)]
    t0 = time.perf_counter()
    if procs == 1:
        total = sum(_spin_chunk(c) for c in chunks)
    else:
        with multiprocessing.get_context("spawn").Pool(procs) as pool:
            total = sum(pool.map(_spin_chunk, chunks, chunksize=1))
    return {"timed_s": time.perf_counter() - t0, "checksum": total}


CHILDREN = {"spin_ceiling": child_spin_ceiling, "save": child_save, "hangar_run": child_hangar_run, "limit": child_limit,
            "spark_udf": child_spark_udf}


def child_main(spec_text: str) -> int:
    spec = json.loads(spec_text)
    out = CHILDREN[spec["case"]](spec)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1]))
