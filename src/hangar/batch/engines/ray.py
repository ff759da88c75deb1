"""``--engine ray``: score chunks on a pool of Ray actors that each load the model once.

Why ``ray.util.ActorPool``-style actors and not one Ray Data ``map_batches`` pipeline: the chunks
come from ``job.py``'s iterator on the driver (it skips the chunks an earlier attempt committed,
so resume stays exactly-once and every engine writes through the same sink). Ray Data cannot
stream from a driver-side iterator into one long-lived pipeline: a dataset built per window
(``ray.data.from_arrow(window).map_batches(Scorer, concurrency=workers)``) starts a fresh actor
pool, and so loads the model again, for every window; a generator-fed source has its small
blocks coalesced by Ray Data until a task ends, which stalls a bounded feed. So this engine
keeps ``workers`` actors for the whole job, each holding one ``ChunkScorer`` over a model loaded
once in its constructor, and the driver keeps at most two chunks queued per actor (one being
scored, one already shipped): ``2 × workers`` chunks in flight, memory flat, actors never idle.

Ray is started in local mode with ``num_cpus=workers`` unless it is already initialised (then
the running session is used) or ``RAY_ADDRESS`` names a cluster; only a session this engine
started is shut down by ``close()``. Errors the core raises in an actor (a missing column, a
row failure under ``--fail-fast``) reach the caller as the same exception as with the local
engine, not wrapped in a Ray traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hangar.batch.scorer import ChunkScorer, ChunkStats, ScoringSpec
from hangar.errors import HangarError, require

_PER_ACTOR = 2  # chunks queued on each actor: one scoring, one waiting


class _Scorer:
    """The actor body: the model is loaded once, in the constructor. A load failure is raised by
    ``score``, so the driver sees the error itself rather than Ray's "actor died" report."""

    def __init__(self, package_path: str, spec: ScoringSpec):
        import hangar.pyfunc

        self.scorer: ChunkScorer | None = None
        self.failure: Exception | None = None
        try:
            self.scorer = ChunkScorer(hangar.pyfunc.load_model(package_path), spec)
        except Exception as exc:  # noqa: BLE001 - raised again with the first chunk
            self.failure = exc

    def score(self, chunk_id: int, table) -> tuple[int, Any, ChunkStats]:
        if self.scorer is None:
            raise self.failure
        out, stats = self.scorer.score(table)
        return chunk_id, out, stats


class RayEngine:
    name = "ray"

    def __init__(self, package_path: str | Path, spec: ScoringSpec, workers: int):
        ray = require("ray", "ray")
        self.ray = ray
        self.workers = workers
        self.started = False
        if not ray.is_initialized():
            if os.environ.get("RAY_ADDRESS"):
                ray.init(address=os.environ["RAY_ADDRESS"], ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
            self.started = True
        actor = ray.remote(num_cpus=1)(_Scorer)
        self.actors = [actor.remote(str(package_path), spec) for _ in range(workers)]

    def map(self, chunks: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, Any, ChunkStats]]:
        ray = self.ray
        load = {i: 0 for i in range(len(self.actors))}  # chunks queued per actor
        pending: dict[Any, int] = {}  # result ref -> actor index
        source = iter(chunks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < _PER_ACTOR * len(self.actors):
                    try:
                        chunk_id, table = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    index = min(load, key=load.get)
                    pending[self.actors[index].score.remote(chunk_id, table)] = index
                    load[index] += 1
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    load[pending.pop(ref)] -= 1
                    yield self._result(ref)
        finally:
            if pending:  # stopped early (an error): end the actors and collect what they leave
                self._kill_actors()
                for ref in pending:
                    try:
                        ray.get(ref, timeout=30)
                    except Exception:  # noqa: BLE001 - already failing; Ray would log each one
                        pass

    def _result(self, ref) -> tuple[int, Any, ChunkStats]:
        from ray.exceptions import RayTaskError

        try:
            return self.ray.get(ref)
        except RayTaskError as exc:  # the core's own error, as the local engine raises it
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HangarError):
                raise cause from None
            raise

    def _kill_actors(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def close(self) -> None:
        self._kill_actors()
        if self.started and self.ray.is_initialized():
            self.ray.shutdown()
