"""Adaptive batching: concurrent row-wise ``/invocations`` requests share one ``predict`` call.

Requests wait in one bounded queue (``max_queue`` requests queued or running; one more is refused
with 503). While a batch runs in the model thread the next one forms in the queue, so under load
batches grow by themselves. When the model is free, the queued requests are dispatched after one
turn of the event loop (so requests that have already arrived join them), unless more are
expected soon, and then they wait for those, never longer than ``max_wait``:

* requests still being read (their handler has started, their body is not complete);
* the callers just answered: a finished batch of N requests means N clients that, under
  closed-loop load, send their next request within a moment. Without this wait the clients
  split into two cohorts that alternate on the model, each half a batch. Each new arrival
  counts one of them back, so at concurrency 1 (one answered, one back) no request ever waits.

A batch holds requests with equal keys (kind, columns, params; see ``rowwise``) up to
``max_batch_size`` rows.

If a merged batch fails, each of its requests runs again alone, so a bad request gets its own
error (a 400 stays a 400) and its batch-mates their answers. Each request has a deadline
(``timeout``); one that passes it is answered 504 whether it is queued or running (a running
batch cannot be stopped: it finishes and its answer is dropped).

With batching off (``max_batch_size`` 1) the same queue runs requests one by one on
``concurrency`` threads, keeping the back-pressure and the deadlines.

Quick calls run inline. The hop to a model thread and back (two thread switches, a wake-up of the
event loop) costs more than a quick model's whole call, and more still where the thread competes
for a CPU with other workers. So when the dispatch (one loop turn after a request is queued, so
requests that came in together still share a batch) finds nothing running or arriving, the
model's last calls shorter than ``inline_max`` (1 ms by default), hardly any of its recent calls
longer (under 2 % in a moving average over ≈ 64 calls), and a batch of at most twice the rows of
the largest call known to be quick (``_quick_rows``: a batch's cost grows with its rows, so an
inline batch may outgrow the bound at most twofold before it is known), the call runs on the event
loop itself. A slow call sends the next ones to the thread again and halves the rows known to be
quick; a model that is slow more than now and then never runs inline (a moving average, not "the
last call", so a call stretched by the machine's own noise costs nothing lasting). Inline calls
see no running event loop (as in a model thread), so a model that calls ``asyncio.run`` works
either way.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor

try:
    import resource

    _RUSAGE_THREAD = getattr(resource, "RUSAGE_THREAD", None)  # Linux
except ImportError:  # pragma: no cover - Windows
    _RUSAGE_THREAD = None

from hangar.errors import HangarError, ModelExecutionError, RequestTimeoutError, ServerOverloadedError
from hangar.serving import rowwise, scoring
from hangar.serving.rowwise import Invocation

log = logging.getLogger("hangar.serving")

INLINE_QUICK_IN_A_ROW = 2  # the last calls that must have been quick
INLINE_SLOW_RATE = 0.02  # the most the moving share of slow calls may be
_SLOW_ALPHA = 1 / 64  # the moving average's weight for each call (≈ the last 64 calls)


def _as_error(exc: BaseException) -> HangarError:
    if isinstance(exc, HangarError):
        return exc
    err = ModelExecutionError(f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err


def score_one(model, inv: Invocation, aligned: bool) -> bytes | HangarError:
    """One request alone. ``aligned``: it was batchable, so its output must have one entry per row."""
    try:
        output = scoring.to_jsonable(model.predict(rowwise.merge([inv]), params=inv.params))
        if aligned and inv.kind is not None:
            rowwise.scatter(output, [inv.rows])
        return scoring.predictions_body(output)
    except Exception as exc:
        return _as_error(exc)


def score_batch(model, batch: list[Invocation], aligned: bool = True) -> list[bytes | HangarError]:
    """Answers (response bodies or errors), one per request, for requests with equal keys."""
    if len(batch) == 1 or not aligned:
        return [score_one(model, inv, aligned) for inv in batch]
    try:
        output = model.predict(rowwise.merge(batch), params=batch[0].params)
    except Exception:  # one request may be the culprit: each runs alone and keeps its own error
        return [score_one(model, inv, aligned) for inv in batch]
    try:
        parts = rowwise.scatter(scoring.to_jsonable(output), [inv.rows for inv in batch])
        return [scoring.predictions_body(part) for part in parts]
    except Exception as exc:
        err = _as_error(exc)
        log.error("A batch of %d requests failed: %s", len(batch), err.message, exc_info=err.__cause__)
        return [ModelExecutionError(err.message) for _ in batch]


def _clock() -> tuple:
    """Wall time, this thread's CPU time and its voluntary context switches, now."""
    return time.perf_counter(), time.thread_time(), _voluntary_switches()


def _slow(start: tuple, limit: float) -> bool:
    """Whether a call begun at ``start`` held its thread longer than ``limit``: it ran that long,
    or waited (I/O, a lock, sleep) that long. Time lost to other processes taking the CPU (a busy
    machine) does not count: the call itself did not block anything for it."""
    wall, cpu, switches = start
    if time.perf_counter() - wall < limit:
        return False
    if time.thread_time() - cpu >= limit:
        return True
    return _RUSAGE_THREAD is None or _voluntary_switches() != switches


def _voluntary_switches() -> int:
    """Times this thread gave up the CPU to wait (Linux; elsewhere every long call counts as slow)."""
    return 0 if _RUSAGE_THREAD is None else resource.getrusage(_RUSAGE_THREAD).ru_nvcsw


class _Item:
    __slots__ = ("inv", "future", "deadline", "queued")

    def __init__(self, inv: Invocation, future: asyncio.Future, deadline: float):
        self.inv, self.future, self.deadline, self.queued = inv, future, deadline, True


class Batcher:
    """The queue in front of one model; ``score(list[Invocation])`` runs in its model thread(s)."""

    def __init__(self, score, *, max_batch_size: int = 64, max_wait_s: float = 0.002, max_queue: int = 512,
                 timeout_s: float = 30.0, concurrency: int = 1, on_batch=None, inline_max_s: float = 0.001):
        self._score = score
        self.inline_max_s = inline_max_s  # 0: every call goes to a model thread
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._on_batch = on_batch  # called in the event loop with (requests, rows) of each batch
        self._queue: collections.deque[_Item] = collections.deque()
        self._deadlines: collections.deque[_Item] = collections.deque()  # in arrival order, so deadlines ascend
        self._held = 0  # requests queued or running
        self._running = 0  # batches in the model thread(s)
        self._arriving = 0  # requests whose bodies are still being read
        self._expected = 0  # callers answered by the last batch that have not sent a request since
        self._free_since = 0.0  # when the last batch finished
        self._dispatch_handle: asyncio.Handle | None = None
        self._waiting = False  # the dispatch handle is a max_wait timer, not the next loop turn
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._quick = 0  # model calls in a row shorter than inline_max
        self._slow_rate = 1.0  # moving share of calls longer than inline_max; starts "all slow"
        self._quick_rows = 1  # the rows of the largest call known to be quick (a slow batch halves it)

    @property
    def depth(self) -> int:
        return self._held

    # -- the request side -----------------------------------------------------------------------

    def arrive(self) -> float:
        """A request has started (it will ``submit`` or ``depart``); returns the time it started."""
        self._arriving += 1
        if self._expected:
            self._expected -= 1
        return (self._loop or self._bind()).time()

    def depart(self) -> None:
        """A request that arrived will not be submitted (it failed before, or was refused)."""
        self._arriving -= 1
        if self._waiting and self._arriving == 0 and self._expected == 0:
            self._dispatch_now()

    def submit(self, inv: Invocation, started: float, waiter=None) -> asyncio.Future:
        """A future for the response body; ``started`` is what ``arrive`` returned. Raises
        ServerOverloadedError (the caller then calls ``depart``) when the queue is full.

        ``waiter``: instead of a new future, an object with a future's ``done``, ``set_result``
        and ``set_exception``, told the answer directly in the loop thread (no task awaits it)."""
        loop = self._loop or self._bind()
        if self._held >= self.max_queue:
            raise ServerOverloadedError(
                f"The server is at capacity ({self.max_queue} requests queued or running); retry later"
            )
        self._arriving -= 1
        item = _Item(inv, waiter or loop.create_future(), started + self.timeout_s)
        self._queue.append(item)
        self._held += 1
        self._deadlines.append(item)
        if self._sweep_handle is None:
            self._sweep_handle = loop.call_at(item.deadline, self._sweep)
        if self._running < self.concurrency:
            if self._dispatch_handle is None:
                self._dispatch_handle = loop.call_soon(self._dispatch)
            elif self._waiting and ((self._arriving == 0 and self._expected == 0) or
                                    len(self._queue) >= self.max_batch_size):
                self._dispatch_now()
        return item.future

    def _inline_now(self) -> bool:
        """Nothing is running, arriving or expected, and the model has been quick (the batch's rows
        are checked once it is taken: ``_fits_inline``)."""
        return (not self._running and not self._arriving and not self._expected
                and self._quick >= INLINE_QUICK_IN_A_ROW and self._slow_rate < INLINE_SLOW_RATE)

    def _fits_inline(self, rows: int) -> bool:
        return rows <= 2 * self._quick_rows

    def run_now(self, inv: Invocation):
        """The answer (a body or a HangarError) to ``inv`` computed right now, in the caller's thread,
        when nothing could share its batch or must go first: nothing queued, running, arriving or
        expected, the model quick (as for an inline call) and the caller sure that no other request
        is coming in the same turn (its connection is the only one). Else None: ``submit`` it. The
        caller has arrived (``arrive``); once it has sent an answer it calls ``ran_now``."""
        if (self._queue or self._running or self._arriving > 1 or self._expected or self._quick < INLINE_QUICK_IN_A_ROW
                or self._slow_rate >= INLINE_SLOW_RATE or not self._fits_inline(inv.rows)):
            return None
        answers = self._score_here([inv])
        if isinstance(answers, Exception):
            log.error("Scoring a request failed", exc_info=answers)
            return ModelExecutionError(f"{type(answers).__name__}: {answers}")
        return answers[0]

    def ran_now(self, inv: Invocation) -> None:
        """The request ``run_now`` answered has had its answer sent: it departs, and its batch of
        one is counted (after the send, so that the client is not kept waiting for the metrics)."""
        self.depart()
        if self._on_batch is not None:
            self._on_batch(1, inv.rows)

    def _score_here(self, invs: list[Invocation]):
        """Score on the event loop's thread, timed, with no running loop visible to the model (as in a
        model thread, so a model that calls ``asyncio.run`` works either way); the scorer's own
        failure is returned, not raised."""
        running = asyncio._get_running_loop()
        asyncio._set_running_loop(None)
        try:
            start = _clock()
            try:
                answers = self._score(invs)
            except Exception as exc:
                answers = exc
            self._timed(start, invs)
        finally:
            asyncio._set_running_loop(running)
        return answers

    def _run_inline(self, batch: list[_Item]) -> None:
        answers = self._score_here([item.inv for item in batch])  # the scorer breaking: _finished fails the batch
        done = self._loop.create_future()
        if isinstance(answers, Exception):
            done.set_exception(answers)
        else:
            done.set_result(answers)
        self._running += 1
        self._finished(batch, done)

    def _timed(self, start: tuple, invs: list[Invocation]) -> None:
        """Count one model call on ``invs``, begun at ``start`` (``_clock()``), as quick or slow (from
        either thread: a lost update only nudges a moving average)."""
        rows = sum(inv.rows for inv in invs)
        if not _slow(start, self.inline_max_s):
            self._quick += 1
            self._slow_rate -= self._slow_rate * _SLOW_ALPHA
            if rows > self._quick_rows:
                self._quick_rows = rows
        else:
            self._quick = 0
            self._slow_rate += (1.0 - self._slow_rate) * _SLOW_ALPHA
            if rows > 1:  # (a slow single row says nothing of how many rows are too many)
                self._quick_rows = max(1, min(self._quick_rows, rows // 2))

    def _score_timed(self, invs: list[Invocation]):
        start = _clock()
        try:
            return self._score(invs)
        finally:
            self._timed(start, invs)

    def close(self) -> None:
        """Let the model thread(s) finish what they run, then end (a replaced model's queue)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)

    def _bind(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="hangar-model")
        return self._loop

    # -- the model side -------------------------------------------------------------------------

    def _dispatch_now(self) -> None:
        if self._dispatch_handle is not None:
            self._dispatch_handle.cancel()
            self._dispatch_handle = None
        self._dispatch()

    def _dispatch(self) -> None:
        self._dispatch_handle = None
        self._waiting = False
        loop = self._loop
        while self._running < self.concurrency and self._queue:
            if (self._arriving or self._expected) and self.max_wait_s > 0 and len(self._queue) < self.max_batch_size:
                # At most max_wait from when the model became free or the first request came, if later.
                now = loop.time()
                until = max(self._queue[0].deadline - self.timeout_s, self._free_since) + self.max_wait_s
                if now < until and (self._arriving or now < self._free_since + self.max_wait_s):
                    self._dispatch_handle = loop.call_at(until, self._dispatch)
                    self._waiting = True
                    return
            inline = self._inline_now()
            self._expected = 0
            batch = self._take()
            if not batch:
                return
            if inline and self._fits_inline(sum(item.inv.rows for item in batch)):
                self._run_inline(batch)
                continue
            self._running += 1
            future = loop.run_in_executor(self._executor, self._score_timed, [item.inv for item in batch])
            future.add_done_callback(lambda f, batch=batch: self._finished(batch, f))

    def _take(self) -> list[_Item]:
        queue = self._queue
        while queue and queue[0].future.done():  # timed out or cancelled while queued
            self._drop(queue.popleft())
        if not queue:
            return []
        first = queue.popleft()
        first.queued = False
        batch, rows, limit = [first], first.inv.rows, self.max_batch_size
        key = first.inv.key
        if key is None or limit == 1:
            return batch
        skipped = []
        while queue and rows < limit and len(skipped) < limit:
            item = queue.popleft()
            if item.future.done():
                self._drop(item)
            elif item.inv.key == key and rows + item.inv.rows <= limit:
                item.queued = False
                batch.append(item)
                rows += item.inv.rows
            else:
                skipped.append(item)
        queue.extendleft(reversed(skipped))
        return batch

    def _drop(self, item: _Item) -> None:
        item.queued = False
        item.inv = None
        self._held -= 1

    def _finished(self, batch: list[_Item], future: asyncio.Future) -> None:
        self._running -= 1
        if self.max_batch_size > 1:
            self._expected = len(batch)
            self._free_since = self._loop.time()
        if self._queue:  # the next batch formed while this one ran: start it before answering
            self._dispatch_now()
        try:
            answers = future.result()
        except BaseException as exc:  # the scorer itself broke: fail the whole batch
            log.error("Scoring a batch failed", exc_info=exc)
            answers = [ModelExecutionError(f"{type(exc).__name__}: {exc}") for _ in batch]
        rows = sum(item.inv.rows for item in batch)
        for item, answer in zip(batch, answers):
            self._held -= 1
            item.inv = None
            if item.future.done():
                continue
            if isinstance(answer, BaseException):
                item.future.set_exception(answer)
            else:
                item.future.set_result(answer)
        if self._on_batch is not None:  # counted once the answers are on their way
            self._on_batch(len(batch), rows)
        deadlines = self._deadlines
        while deadlines and deadlines[0].inv is None:
            deadlines.popleft()

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = self._loop.time()
        deadlines = self._deadlines
        while deadlines and (deadlines[0].inv is None or deadlines[0].deadline <= now):
            item = deadlines.popleft()
            if item.inv is None or item.future.done():
                continue
            item.future.set_exception(RequestTimeoutError(
                f"The request was not answered within the server's timeout of {self.timeout_s:g} s"
            ))
            if item.queued:
                self._queue.remove(item)
                self._drop(item)
        if deadlines:
            self._sweep_handle = self._loop.call_at(deadlines[0].deadline, self._sweep)
