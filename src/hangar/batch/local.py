"""The local engine: score chunks in this process, or in N worker processes that each load the
model once. At most ``2 × workers`` chunks are in flight, so memory stays flat however long the
input is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hangar.batch.scorer import ChunkScorer, ChunkStats, ScoringSpec
from hangar.errors import BatchJobError

_worker_scorer: ChunkScorer | None = None


class InlineEngine:
    """One worker: no processes, no copies; the chunk goes straight to the model."""

    name = "local"

    def __init__(self, model, spec: ScoringSpec):
        self.scorer = ChunkScorer(model, spec)

    def map(self, chunks: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any, ChunkStats]]:
        for chunk_id, table in chunks:
            out, stats = self.scorer.score(table)
            yield chunk_id, out, stats

    def close(self) -> None:
        pass


def _warm_worker() -> None:
    """Runs once in each new worker: the heavy imports, while the parent still sets the job up."""
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401

    import hangar.pyfunc  # noqa: F401


def _score_in_worker(package_path: str, spec: ScoringSpec, chunk_id: int, table) -> tuple[int, Any, ChunkStats]:
    global _worker_scorer
    if _worker_scorer is None:  # the model loads once per worker, with its first chunk
        import hangar.pyfunc

        _worker_scorer = ChunkScorer(hangar.pyfunc.load_model(package_path), spec)
    out, stats = _worker_scorer.score(table)
    return chunk_id, out, stats


class ProcessEngine:
    """``workers`` processes, spawned (so no lock or thread is inherited half-way) as soon as the
    job starts, so that their start-up overlaps the parent's; :meth:`bind` names the model."""

    name = "local"

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.package_path: str | None = None
        self.spec: ScoringSpec | None = None
        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_warm_worker)
        for _ in range(workers):  # start them all now
            self.pool.submit(int)

    def bind(self, package_path, spec: ScoringSpec) -> ProcessEngine:
        self.package_path, self.spec = str(package_path), spec
        return self

    def map(self, chunks: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any, ChunkStats]]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            yield from self._map(chunks)
        except BrokenProcessPool:
            raise BatchJobError("A worker process died while scoring (killed, or out of memory; from a script, "
                                "call hangar.batch.run under `if __name__ == '__main__':`); the chunks already "
                                "written are kept: start the same command again to resume") from None

    def _map(self, chunks):
        from concurrent.futures import FIRST_COMPLETED, wait

        pending: set = set()
        limit = 2 * self.workers
        source = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                try:
                    chunk_id, table = next(source)
                except StopIteration:
                    exhausted = True
                    break
                pending.add(self.pool.submit(_score_in_worker, self.package_path, self.spec, chunk_id, table))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
