"""Quick model calls run on the event loop at low load (batching.Batcher's inline path); slow or
sometimes-slow models stay in the model thread. No timing assertions: the models here are either
trivially quick or sleep far past the limit."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from test_serving import running

import hangar.pyfunc as hp
from hangar.models import infer_signature
from hangar.serving.app import build_app
from hangar.serving.batching import INLINE_SLOW_RATE, Batcher
from hangar.serving.rowwise import Invocation
from hangar.serving.settings import ServingSettings

pytestmark = pytest.mark.timeout(120)


def _inv(n=1):
    return Invocation({"text": ["x"] * n}, None, "columns", ("columns", ("text",), False), n)


class _Scorer:
    """Records the thread of every call; sleeps ``delay`` seconds while ``slow`` is set."""

    def __init__(self, delay=0.0):
        self.delay = delay
        self.threads: list[str] = []

    def __call__(self, invs):
        self.threads.append(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        return [b"ok" for _ in invs]


async def _one_by_one(batcher: Batcher, n: int) -> list:
    answers = []
    for _ in range(n):
        started = batcher.arrive()
        answers.append(await batcher.submit(_inv(), started))
    return answers


def test_quick_calls_move_to_the_event_loop_once_the_model_proved_quick():
    scorer = _Scorer()
    batcher = Batcher(scorer, inline_max_s=0.05)

    async def main():
        answers = await _one_by_one(batcher, 400)
        return answers, threading.current_thread().name

    answers, loop_thread = asyncio.run(main())
    batcher.close()
    assert answers == [b"ok"] * 400
    assert scorer.threads[0].startswith("hangar-model")  # not proven quick yet
    assert scorer.threads[-1] == loop_thread
    inline = scorer.threads.index(loop_thread)
    assert all(t == loop_thread for t in scorer.threads[inline:])  # sequential load stays inline


def test_a_slow_model_never_runs_on_the_event_loop():
    scorer = _Scorer(delay=0.004)
    batcher = Batcher(scorer, inline_max_s=0.001)
    asyncio.run(_one_by_one(batcher, 30))
    batcher.close()
    assert all(t.startswith("hangar-model") for t in scorer.threads)


def test_inline_off_keeps_every_call_in_the_model_thread():
    scorer = _Scorer()
    batcher = Batcher(scorer, inline_max_s=0)
    asyncio.run(_one_by_one(batcher, 300))
    batcher.close()
    assert all(t.startswith("hangar-model") for t in scorer.threads)


def test_a_model_that_turns_slow_goes_back_to_the_thread_and_stays_there_while_it_is_often_slow():
    scorer = _Scorer()
    batcher = Batcher(scorer, inline_max_s=0.003)

    async def main():
        await _one_by_one(batcher, 400)
        loop_thread = threading.current_thread().name
        assert scorer.threads[-1] == loop_thread
        scorer.delay = 0.02  # slow from now on: at most one call blocks the loop
        scorer.threads.clear()
        await _one_by_one(batcher, 12)
        assert scorer.threads[0] == loop_thread and all(t != loop_thread for t in scorer.threads[1:])
        # Slow one call in four: the moving share of slow calls stays far above the limit.
        scorer.threads.clear()
        for i in range(60):
            scorer.delay = 0.02 if i % 4 == 0 else 0.0
            await _one_by_one(batcher, 1)
        assert batcher._slow_rate > INLINE_SLOW_RATE
        return loop_thread

    loop_thread = asyncio.run(main())
    batcher.close()
    assert loop_thread not in scorer.threads


def test_concurrent_requests_still_share_batches():
    sizes = []

    def score(invs):
        sizes.append(len(invs))
        time.sleep(0.01)
        return [b"ok" for _ in invs]

    batcher = Batcher(score, inline_max_s=1.0)  # a generous limit: only the load keeps calls off the loop

    async def main():
        await _one_by_one(batcher, 50)

        async def one():
            started = batcher.arrive()
            await asyncio.sleep(0)
            return await batcher.submit(_inv(), started)

        return await asyncio.gather(*(one() for _ in range(32)))

    answers = asyncio.run(main())
    batcher.close()
    assert answers == [b"ok"] * 32
    assert max(sizes[50:]) > 1


class AsyncInside(hp.PythonModel):
    """A model whose predict runs its own event loop (an async client used synchronously)."""

    def __init__(self):
        self.threads = []

    def predict(self, context, model_input, params=None):
        async def length(text):
            await asyncio.sleep(0)
            return len(text)

        self.threads.append(threading.current_thread().name)
        return [asyncio.run(length(t)) for t in model_input["text"]]


def test_a_model_that_runs_its_own_event_loop_works_inline(tmp_path):
    pkg = hp.save_model(tmp_path / "m", AsyncInside(), signature=infer_signature({"text": ["abc"]}))
    model = hp.load_model(pkg)
    app = build_app(model, model_uri=str(pkg), settings=ServingSettings(inline_max_ms=50))
    threads = model.unwrap_python_model().threads
    with running(app) as url, httpx.Client(base_url=url) as client:
        bodies = []
        while len(bodies) < 3000 and (not threads or threads[-1].startswith("hangar-model")):  # until one runs inline
            bodies.append(client.post("/invocations", json={"inputs": {"text": ["a" * (len(bodies) % 7)]}}))
    assert threads[0].startswith("hangar-model") and not threads[-1].startswith("hangar-model")
    assert {r.status_code for r in bodies} == {200}
    assert [r.json()["predictions"] for r in bodies] == [[i % 7] for i in range(len(bodies))]


def test_requests_that_arrive_together_share_a_batch_even_when_the_model_is_quick():
    sizes = []

    def score(invs):
        sizes.append(len(invs))
        return [b"ok" for _ in invs]

    batcher = Batcher(score, inline_max_s=1.0)

    async def main():
        await _one_by_one(batcher, 400)  # proven quick: a lone request now runs inline
        sizes.clear()
        futures = []
        for _ in range(8):  # eight requests read in one loop turn, as from eight sockets at once
            started = batcher.arrive()
            futures.append(batcher.submit(_inv(), started))
        return await asyncio.gather(*futures)

    answers = asyncio.run(main())
    batcher.close()
    assert answers == [b"ok"] * 8
    assert sizes == [8]


class _RowScorer:
    """Records (thread, rows) of every call; sleeps ``per_row`` seconds for each row after the first."""

    def __init__(self, per_row=0.0):
        self.per_row = per_row
        self.calls: list[tuple[str, int]] = []

    def __call__(self, invs):
        rows = sum(inv.rows for inv in invs)
        self.calls.append((threading.current_thread().name, rows))
        if self.per_row:
            time.sleep(self.per_row * (rows - 1))
        return [b"ok" for _ in invs]


async def _together(batcher: Batcher, n: int) -> list:
    """``n`` one-row requests read in one loop turn, as from ``n`` sockets at once."""
    futures = []
    for _ in range(n):
        started = batcher.arrive()
        futures.append(batcher.submit(_inv(), started))
    return await asyncio.gather(*futures)


def test_a_quick_models_batches_run_on_the_event_loop_once_a_batch_of_their_size_proved_quick():
    scorer = _RowScorer()
    batcher = Batcher(scorer, inline_max_s=0.05)

    async def main():
        await _one_by_one(batcher, 400)  # proven quick on one row
        scorer.calls.clear()
        for _ in range(3):
            assert await _together(batcher, 8) == [b"ok"] * 8
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    batcher.close()
    assert [rows for _, rows in scorer.calls] == [8, 8, 8]
    first, *rest = [thread for thread, _ in scorer.calls]
    assert first.startswith("hangar-model")  # 8 rows: more than twice the largest call known quick
    assert rest == [loop_thread, loop_thread]  # the thread's call proved a batch of 8 quick


def test_a_batch_too_big_to_be_quick_never_runs_on_the_event_loop():
    scorer = _RowScorer(per_row=0.004)  # one row: no wait; eight rows: 28 ms, past the 20 ms limit
    batcher = Batcher(scorer, inline_max_s=0.02)

    async def main():
        await _one_by_one(batcher, 400)
        assert scorer.calls[-1][0] == threading.current_thread().name  # single rows run inline
        scorer.calls.clear()
        for _ in range(4):
            assert await _together(batcher, 8) == [b"ok"] * 8

    asyncio.run(main())
    batcher.close()
    assert [rows for _, rows in scorer.calls] == [8] * 4
    assert all(thread.startswith("hangar-model") for thread, _ in scorer.calls)
