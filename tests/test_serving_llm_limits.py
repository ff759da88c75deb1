"""Chat / completion / embedding routes are bounded like /invocations: a full server answers
503 with Retry-After, a slow answer 504, and a stream that times out before its first chunk is
closed (its generation stops)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_serving import running

import hangar.pyfunc as hp
from hangar.models.llm_payloads import chat_response
from hangar.serving.app import build_app
from hangar.serving.settings import ServingSettings

pytestmark = pytest.mark.timeout(60)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class SlowChat(hp.PythonModel):
    closed = threading.Event()

    def predict(self, context, model_input, params=None):
        time.sleep(0.6)
        return [chat_response("done") for _ in model_input] if isinstance(model_input, list) else chat_response("done")

    def predict_stream(self, context, model_input, params=None):
        try:
            time.sleep(0.6)
            for i in range(100):
                yield {"delta": f"w{i} "}
                time.sleep(0.01)
        finally:
            SlowChat.closed.set()


@pytest.fixture(scope="module")
def slow_chat(tmp_path_factory):
    path = tmp_path_factory.mktemp("slowchat") / "pkg"
    return hp.save_model(path, SlowChat(), task="llm/v1/chat", input_example=CHAT | {"model": None})


def test_full_server_refuses_with_503_and_retry_after(slow_chat):
    app = build_app(hp.load_model(slow_chat), model_uri="slow", settings=ServingSettings(max_queue=2))
    with running(app) as base:
        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(lambda _: httpx.post(f"{base}/v1/chat/completions", json=CHAT, timeout=10),
                                      range(6)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses.count(200) >= 2 and statuses.count(503) >= 1, statuses
        refused = next(r for r in responses if r.status_code == 503)
        assert refused.headers["retry-after"] == "1" and refused.json()["error_code"] == "SERVER_OVERLOADED"
        assert httpx.post(f"{base}/v1/chat/completions", json=CHAT, timeout=10).status_code == 200, "slots freed"


def test_slow_answer_is_504_and_a_timed_out_stream_is_closed(slow_chat):
    app = build_app(hp.load_model(slow_chat), model_uri="slow", settings=ServingSettings(request_timeout=0.2))
    with running(app) as base:
        r = httpx.post(f"{base}/v1/chat/completions", json=CHAT, timeout=10)
        assert r.status_code == 504 and r.json()["error_code"] == "REQUEST_TIMEOUT"
        SlowChat.closed.clear()
        r = httpx.post(f"{base}/v1/chat/completions", json=CHAT | {"stream": True}, timeout=10)
        assert r.status_code == 504
        assert SlowChat.closed.wait(5), "the abandoned stream was closed once its first chunk came"
