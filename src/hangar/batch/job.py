"""``hangar.batch.run``: a table of inputs → a stored table of predictions.

The job reads the source as Arrow chunks of a fixed size, skips the chunks an earlier attempt
already committed, scores the rest on the chosen engine and commits each chunk to the sink.
It is recorded as a run (params, metrics) with lineage edges input → job, version → job,
job → output.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hangar.batch.checkpoint import JobRecord, request_digest
from hangar.batch.progress import progress_bar
from hangar.batch.scorer import ChunkStats, ScoringSpec
from hangar.batch.sinks import open_sink
from hangar.batch.sources import open_source, rechunk
from hangar.errors import BatchJobError

log = logging.getLogger("hangar.batch")
ENGINES = ("local", "ray", "spark")
DEFAULT_EXPERIMENT = "batch-jobs"
_MAX_CHUNK = 65_536
_LLM_CHUNK = 64


@dataclass
class BatchResult:
    output: str
    model_version: str
    rows: int
    failed: int
    duration_s: float
    resumed_chunks: int
    chunks: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    run_id: str | None = None
    first_error: str | None = None

    @property
    def ok(self) -> int:
        return self.rows - self.failed

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.duration_s if self.duration_s > 0 else 0.0


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class PinnedModel:
    pinned_uri: str
    label: str
    version_id: str | None  # catalog.schema.model/N for lineage
    path: Path


def pin_model(model_uri: str) -> PinnedModel:
    """The exact version a job scores with: an alias is resolved once, at the job's first start."""
    from hangar.models.resolver import resolve_model_uri
    from hangar.uri import is_remote_uri, parse_model_uri

    uri = str(model_uri)
    if is_remote_uri(uri):
        parsed = parse_model_uri(uri)
        if parsed.scheme == "models" and parsed.name and (parsed.alias or parsed.version):
            from hangar.catalog.fluent import registry

            reg = registry()
            mv = (reg.get_version_by_alias(parsed.name, parsed.alias) if parsed.alias
                  else reg.get_model_version(parsed.name, parsed.version))
            pinned = f"models:/{mv.full_name}/{mv.version}"
            return PinnedModel(pinned, f"{mv.full_name}/{mv.version}", f"{mv.full_name}/{mv.version}",
                          resolve_model_uri(pinned))
        return PinnedModel(uri, uri, None, resolve_model_uri(uri))
    path = resolve_model_uri(uri).resolve()
    return PinnedModel(str(path), str(path), None, path)


def _chunk_rows(requested: int | None, total: int | None, workers: int, llm: bool) -> int:
    if requested is not None:
        if requested < 1:
            raise BatchJobError(f"--chunk-rows must be at least 1, got {requested}")
        return requested
    if llm:
        return _LLM_CHUNK
    if total:  # several chunks per worker, so workers finish together
        return max(256, min(_MAX_CHUNK, math.ceil(total / (workers * 4))))
    return 16_384


def run(model_uri: str | os.PathLike, input: str | os.PathLike, output: str | os.PathLike, *,
        columns: list[str] | None = None, keep_columns: list[str] | None = None,
        output_column: str = "prediction", params: dict | None = None, workers: int | None = None,
        engine: str = "local", chunk_rows: int | None = None, fail_fast: bool = False, concurrency: int | None = None,
        overwrite: bool = False, query: str | None = None, table: str | None = None,
        input_format: str | None = None, output_format: str | None = None,
        progress: bool | None = None, record: bool = True, experiment: str = DEFAULT_EXPERIMENT) -> BatchResult:
    """Score every row of ``input`` with ``model_uri`` and store the predictions at ``output``.

    Started again with the same arguments after a crash, it resumes: every input row ends up in
    the output exactly once. ``progress`` None shows a bar only on a terminal.
    """
    if engine not in ENGINES:
        raise BatchJobError(f"Unknown engine {engine!r}; choose one of {list(ENGINES)}")
    if workers is not None and workers < 1:
        raise BatchJobError(f"--workers must be at least 1, got {workers}")
    if concurrency is not None and concurrency < 1:
        raise BatchJobError(f"--concurrency must be at least 1, got {concurrency}")
    if params is not None and not isinstance(params, dict):
        raise BatchJobError(f"params must be a JSON object, got {type(params).__name__}")
    if not output_column or not isinstance(output_column, str):
        raise BatchJobError("--output-column must be a non-empty name")
    workers = workers or default_workers()
    started = time.perf_counter()
    _refuse_in_a_worker_bootstrap(workers, engine)
    pool = None
    if engine == "local" and workers > 1:  # workers start now, while the job is set up
        from hangar.batch.local import ProcessEngine

        pool = ProcessEngine(workers)
    try:
        return _run(model_uri, input, output, pool=pool, started=started, columns=columns, keep_columns=keep_columns,
                    output_column=output_column, params=params, workers=workers, engine=engine, chunk_rows=chunk_rows,
                    fail_fast=fail_fast, concurrency=concurrency, overwrite=overwrite, query=query, table=table,
                    input_format=input_format, output_format=output_format, progress=progress, record=record,
                    experiment=experiment)
    finally:
        if pool is not None:
            pool.close()


def _refuse_in_a_worker_bootstrap(workers: int, engine: str) -> None:
    """A script without a main guard re-runs itself in every spawned worker; say so plainly."""
    import multiprocessing

    if engine == "local" and workers > 1 and multiprocessing.parent_process() is not None \
            and getattr(multiprocessing.current_process(), "_inheriting", False):
        raise BatchJobError("hangar.batch.run with workers > 1 was called while a worker process imported the main "
                            "script: put the call under `if __name__ == '__main__':`")


def _run(model_uri, input, output, *, pool, started, columns, keep_columns, output_column, params, workers, engine,
         chunk_rows, fail_fast, concurrency, overwrite, query, table, input_format, output_format, progress, record,
         experiment) -> BatchResult:
    source = open_source(input, query=query, format=input_format)
    sink = open_sink(output, table=table, format=output_format)

    request = {"source": source.fingerprint(), "model_uri": str(model_uri), "columns": columns,
               "keep_columns": keep_columns, "output_column": output_column, "params": params,
               "requested_chunk_rows": chunk_rows, "sink": sink.format}
    digest = request_digest(request)
    job = sink.load()
    if job is not None and (overwrite or job.request != digest):
        if not overwrite:
            raise BatchJobError(f"{output} holds the output of another batch job (a different input, model or "
                                "options). Pass --overwrite to replace it, or choose another output")
        sink.reset()
        job = None
    elif job is None and not sink.is_empty():
        if not overwrite:
            raise BatchJobError(f"{output} already exists and is not a batch job's output; pass --overwrite "
                                "to replace it, or choose another output")
        sink.reset()

    model = pin_model(job.pinned_uri if job is not None else model_uri)
    import hangar.pyfunc

    loaded = hangar.pyfunc.load_model(model.path) if (engine == "local" and workers == 1) else None
    manifest_task = loaded.task if loaded is not None else _task_of(model.path)
    if job is None:
        job = JobRecord(request=digest, model_uri=str(model_uri), pinned_uri=model.pinned_uri,
                        model_version=model.label,
                        chunk_rows=_chunk_rows(chunk_rows, source.total_rows, workers, manifest_task is not None))
    done = sink.begin(job)
    recorder = None
    if record and job.run_id is None:  # opening the store overlaps the first chunks' scoring
        from concurrent.futures import ThreadPoolExecutor

        recorder = ThreadPoolExecutor(1, thread_name_prefix="hangar-batch-record")
        import contextvars  # the recording thread sees this context's tracking URI

        run_future = recorder.submit(contextvars.copy_context().run, _start_run, job, source, sink, engine, workers,
                                     experiment)

    def note_run_id() -> None:
        if recorder is not None and job.run_id is None and run_future.done():
            job.run_id = run_future.result()
            sink.save(job)  # a resumed job goes on in the same run

    spec = ScoringSpec(columns=columns, keep_columns=keep_columns, output_column=output_column, params=params,
                       model_version=model.label, fail_fast=fail_fast, concurrency=concurrency)
    runner = pool.bind(model.path, spec) if pool is not None else _engine(engine, loaded, model.path, spec, workers)
    totals = ChunkStats()
    for stats in done.values():
        totals.add(stats)
    chunks_seen = 0
    try:
        with progress_bar(source.total_rows, enabled=progress, description=f"scoring with {model.label}") as bar:
            if totals.rows:
                bar.advance(totals.rows)

            def todo() -> Iterator[tuple[int, Any]]:
                nonlocal chunks_seen
                for chunk_id, chunk in enumerate(rechunk(source.batches(), job.chunk_rows)):
                    chunks_seen = chunk_id + 1
                    if chunk_id not in done:
                        yield chunk_id, chunk

            pending: dict[int, tuple[Any, ChunkStats]] = {}
            next_ordered = len(done)
            for chunk_id, out, stats in runner.map(todo()):
                if sink.ordered:
                    pending[chunk_id] = (out, stats)
                    while next_ordered in pending:
                        o, s = pending.pop(next_ordered)
                        sink.write(next_ordered, o, s)
                        next_ordered += 1
                else:
                    sink.write(chunk_id, out, stats)
                note_run_id()
                totals.add(stats)
                bar.advance(stats.rows, failed=totals.failed)
    except BaseException as exc:
        if recorder is not None:
            recorder.shutdown(wait=True)
            if job.run_id is None and run_future.exception() is None:
                job.run_id = run_future.result()
        if record and job.run_id:
            _end_run(job.run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    finally:
        runner.close()
    if recorder is not None:
        recorder.shutdown(wait=True)
        note_run_id()
    duration = time.perf_counter() - started
    result = BatchResult(output=str(output), model_version=model.label, rows=totals.rows, failed=totals.failed,
                         duration_s=duration, resumed_chunks=len(done), chunks=max(chunks_seen, len(done)),
                         prompt_tokens=totals.prompt_tokens, completion_tokens=totals.completion_tokens,
                         run_id=job.run_id, first_error=totals.first_error)
    job.complete = True
    job.summary = {"rows": result.rows, "failed": result.failed, "prompt_tokens": result.prompt_tokens,
                   "completion_tokens": result.completion_tokens}
    sink.finish(job)
    if record and job.run_id:
        _finish_run(job.run_id, result, model, source, sink)
    return result


def _task_of(path: Path) -> str | None:
    from hangar.models.package import open_package

    return open_package(path, verify=False).task


def _engine(name: str, loaded, path: Path, spec: ScoringSpec, workers: int):
    if name == "ray":
        from hangar.batch.engines.ray import RayEngine

        return RayEngine(path, spec, workers)
    if name == "spark":
        from hangar.batch.engines.spark import SparkEngine

        return SparkEngine(path, spec, workers)
    from hangar.batch.local import InlineEngine

    return InlineEngine(loaded, spec)


# -- recording ----------------------------------------------------------------------------------
def _start_run(job: JobRecord, source, sink, engine: str, workers: int, experiment: str) -> str:
    from hangar.tracking import fluent

    client = fluent.client()
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name=f"batch-{job.job_id[:8]}",
                            tags={"hangar.batch.job_id": job.job_id, "hangar.batch.output": sink.lineage_id})
    client.log_batch(run.info.run_id, params={
        "model_uri": job.model_uri, "model_version": job.model_version, "input": source.lineage_id,
        "input_format": source.format, "output": sink.lineage_id, "output_format": sink.format,
        "engine": engine, "workers": workers, "chunk_rows": job.chunk_rows})
    return run.info.run_id


def _end_run(run_id: str, status: str) -> None:
    try:
        from hangar.tracking import fluent

        fluent.client().set_terminated(run_id, status=status)
    except Exception as exc:  # noqa: BLE001 - never hide the job's own error behind a bookkeeping one
        log.warning("Could not mark run %s as %s: %s", run_id, status, exc)


def _finish_run(run_id: str, result: BatchResult, model: PinnedModel, source, sink) -> None:
    from hangar.catalog import lineage
    from hangar.store.transactions import write_transaction
    from hangar.tracking import fluent
    from hangar.tracking.entities import Metric

    client = fluent.client()
    now = int(time.time() * 1000)
    values = {"rows": result.rows, "ok_rows": result.ok, "failed_rows": result.failed,
              "duration_s": result.duration_s, "rows_per_s": result.rows_per_s,
              "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
              "resumed_chunks": result.resumed_chunks}
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])
    edges = [("table", source.lineage_id, "batch_job", run_id), ("batch_job", run_id, "table", sink.lineage_id)]
    if model.version_id is not None:
        edges.append(("model_version", model.version_id, "batch_job", run_id))
    engine = getattr(client.store, "engine", None)
    if engine is None:  # a Hangar server's store: one POST /lineage/edges per edge
        from hangar.catalog.store import open_registry

        registry = open_registry(client.store)
        for edge in edges:
            registry.add_lineage_edge(*edge)
    else:
        with write_transaction(engine) as conn:
            for edge in edges:
                lineage.add_edge(conn, *edge)
    client.set_terminated(run_id, status="FINISHED")
