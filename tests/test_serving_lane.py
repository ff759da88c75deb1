"""The serving protocol's lane (``hangar.serving.protocol``): plain ``POST /invocations`` requests are
answered without an ASGI task, everything else by uvicorn's path, with the same answers, in order,
through disconnects and a graceful shutdown, and recorded in an endpoint's inference table."""

from __future__ import annotations

import json
import socket
import threading
import time

import pyarrow.parquet as pq
import pytest
from test_serving import running

import hangar.pyfunc as hp
from hangar.models import infer_signature
from hangar.serving.app import ServingApp, build_app
from hangar.serving.settings import ServingSettings

pytestmark = pytest.mark.timeout(120)


class SlowOnRequest(hp.PythonModel):
    """Lengths of the strings; a string that starts with "sleep" makes the call take 0.6 s."""

    def predict(self, context, model_input, params=None):
        texts = list(model_input["text"])
        if any(t.startswith("sleep") for t in texts):
            time.sleep(0.6)
        return [len(t) for t in texts]


@pytest.fixture(scope="module")
def slow_pkg(tmp_path_factory):
    sig = infer_signature({"text": ["abc"]})
    return hp.save_model(tmp_path_factory.mktemp("lane") / "slow", SlowOnRequest(), signature=sig)


def _app(pkg, **settings):
    return build_app(hp.load_model(pkg), model_uri=str(pkg), settings=ServingSettings(**settings))


def _post(text: str, extra: bytes = b"", version: bytes = b"1.1") -> bytes:
    body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[text]]}}).encode()
    return (b"POST /invocations HTTP/" + version + b"\r\nHost: x\r\nContent-Type: application/json\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _read(sock, count: int) -> list[bytes]:
    """``count`` whole responses (each with a Content-Length; interim 100s skipped) from ``sock``."""
    data, out = b"", []
    sock.settimeout(10)
    while len(out) < count:
        head_end = data.find(b"\r\n\r\n")
        if head_end >= 0:
            head = data[:head_end].lower()
            if head.startswith(b"http/1.1 100 "):  # an interim answer to Expect: 100-continue
                data = data[head_end + 4:]
                continue
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(data) >= head_end + 4 + length:
                out.append(data[:head_end + 4 + length])
                data = data[head_end + 4 + length:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return out


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)))


def _counting_asgi(monkeypatch) -> list:
    seen = []
    original = ServingApp.respond

    async def respond(self, scope, receive):
        seen.append(scope["path"])
        return await original(self, scope, receive)

    monkeypatch.setattr(ServingApp, "respond", respond)
    return seen


def test_plain_requests_take_the_lane_and_the_rest_uvicorns_path_with_the_same_answers(slow_pkg, monkeypatch):
    asgi = _counting_asgi(monkeypatch)
    with running(_app(slow_pkg)) as url, _connect(url) as sock:
        sock.sendall(_post("hello"))
        (plain,) = _read(sock, 1)
        assert plain.startswith(b"HTTP/1.1 200 ") and plain.endswith(b'\r\n\r\n{"predictions":[5]}')
        assert b"content-type: application/json\r\n" in plain and b"date: " in plain and asgi == []
        body = b'{"dataframe_split": {"columns": ["text"], "data": [["hello"]]}}'
        chunked = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
        sock.sendall(chunked)
        sock.sendall(_post("hello", b"Expect: 100-continue\r\n"))
        answers = _read(sock, 2)
        assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [b'{"predictions":[5]}'] * 2
        assert asgi == ["/invocations", "/invocations"]
        for _ in range(3):  # one after another on the same connection: the lane again
            sock.sendall(_post("hi"))
            assert _read(sock, 1)[0].endswith(b'{"predictions":[2]}')
        assert len(asgi) == 2
        sock.sendall(_post("hi") * 3)  # pipelined: the first on the lane, those behind it on uvicorn's path
        assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in _read(sock, 3)] == [b'{"predictions":[2]}'] * 3
        assert len(asgi) == 4


def test_lane_errors_are_json_errors_and_too_big_a_body_is_refused(slow_pkg):
    with running(_app(slow_pkg, max_body_bytes=1000)) as url, _connect(url) as sock:
        bad = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n{oops"
        sock.sendall(bad + _post("x", b"", b"1.1").replace(b"application/json", b"text/plain"))
        malformed, media = _read(sock, 2)
        assert malformed.startswith(b"HTTP/1.1 400 ") and b'"error_code":"MALFORMED_REQUEST"' in malformed
        assert media.startswith(b"HTTP/1.1 415 ") and b"UNSUPPORTED_MEDIA_TYPE" in media
        sock.sendall(_post("x" * 2000))
        (big,) = _read(sock, 1)
        assert big.startswith(b"HTTP/1.1 413 ") and b"PAYLOAD_TOO_LARGE" in big


def test_pipelined_answers_keep_their_order_behind_a_slow_one(slow_pkg):
    with running(_app(slow_pkg)) as url, _connect(url) as sock:
        sock.sendall(_post("sleep") + HEALTH + _post("abc"))
        slow, health, fast = _read(sock, 3)
        assert slow.endswith(b'{"predictions":[5]}') and b'"status"' in health and fast.endswith(b'{"predictions":[3]}')


def test_http_10_and_connection_close_are_answered_then_closed(slow_pkg):
    with running(_app(slow_pkg)) as url:
        for request in (_post("ab", version=b"1.0"), _post("ab", b"Connection: close\r\n")):
            with _connect(url) as sock:
                sock.sendall(request)
                (answer,) = _read(sock, 1)
                assert answer.endswith(b'{"predictions":[2]}') and b"connection: close\r\n" in answer
                assert sock.recv(100) == b"", "the server closed the connection"


def _in_flight(url: str) -> float:
    import httpx

    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("hangar_serving_requests_in_flight"):
            return float(line.split()[-1])
    raise AssertionError("no in-flight gauge")


def test_a_client_that_leaves_before_its_answer_leaves_the_server_healthy(slow_pkg):
    with running(_app(slow_pkg)) as url:
        sock = _connect(url)
        sock.sendall(_post("sleep"))
        time.sleep(0.1)
        sock.close()
        with _connect(url) as other:
            other.sendall(_post("abcd"))
            assert _read(other, 1)[0].endswith(b'{"predictions":[4]}')
        deadline = time.monotonic() + 5
        while _in_flight(url) != 1:  # (the scrape itself is in flight)
            assert time.monotonic() < deadline, "the left request was never finished"
            time.sleep(0.05)


def test_a_graceful_shutdown_answers_a_lane_request_in_flight(slow_pkg):
    servers: list = []
    with running(_app(slow_pkg), servers) as url, _connect(url) as sock:
        sock.sendall(_post("sleep-then-stop"))
        time.sleep(0.1)
        servers[0].should_exit = True
        (answer,) = _read(sock, 1)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"predictions":[15]}')
        assert b"connection: close\r\n" in answer, "a connection being shut down is not kept alive"


def test_endpoint_lane_answers_carry_the_version_and_reach_the_inference_table(slow_pkg, tmp_path):
    from hangar.serving.endpoint_runtime import EndpointRuntime, single_model_config

    config = single_model_config(str(slow_pkg), ServingSettings(), str(tmp_path / "table"))
    app = EndpointRuntime("serve", config, record_lineage=False).build()
    try:
        with running(app) as url:
            with _connect(url) as sock:
                sock.sendall(_post("abc", b"X-Request-Id: lane-1\r\n") + _post("{bad", b"X-Request-Id: lane-2\r\n"))
                ok, _ = _read(sock, 2)
                assert b"x-request-id: lane-1\r\n" in ok and b"x-hangar-served-by: " in ok
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nX-Request-Id: lane-3\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 3\r\n\r\n{x}")
                (bad,) = _read(sock, 1)
                assert bad.startswith(b"HTTP/1.1 400 ") and b"x-request-id: lane-3\r\n" in bad
                sock.sendall(_post("abc", b"X-Request-Id: " + b"x" * 300 + b"\r\n") + _post("abc", "X-Request-Id: é\r\n"
                                                                                              .encode()))
                made = [a.split(b"x-request-id: ")[1].split(b"\r\n")[0].decode() for a in _read(sock, 2)]
                assert all(0 < len(m) <= 64 and m.isascii() and "x" * 65 not in m for m in made), \
                    "an id that is not plain (too long, not ASCII) is not echoed or stored: a new one is made"
            gone = _connect(url)
            gone.sendall(_post("sleep", b"X-Request-Id: lane-4\r\n"))
            time.sleep(0.1)
            gone.close()
            time.sleep(0.8)  # the model finishes; its answer finds the client gone
    finally:
        app.close()
    rows = {r["request_id"]: r for r in pq.read_table(tmp_path / "table").to_pylist()}
    assert rows["lane-1"]["status_code"] == 200 and rows["lane-1"]["response"] == '{"predictions":[3]}'
    assert rows["lane-1"]["route"] == "/invocations" and rows["lane-1"]["model_version"]
    assert rows["lane-2"]["status_code"] == 200 and rows["lane-2"]["request"].startswith('{"dataframe_split"')
    assert rows["lane-3"]["status_code"] == 400 and rows["lane-3"]["error_code"] == "MALFORMED_REQUEST"
    assert rows["lane-4"]["status_code"] == 499 and rows["lane-4"]["cancelled"] is True
    assert all(m in rows for m in made)


def test_many_connections_at_once_all_get_their_own_answers(slow_pkg):
    with running(_app(slow_pkg)) as url:
        results: dict[int, bytes] = {}

        def client(i: int) -> None:
            with _connect(url) as sock:
                for _ in range(20):
                    sock.sendall(_post("x" * i))
                    results[i] = _read(sock, 1)[0].rsplit(b"\r\n\r\n", 1)[1]
                    assert results[i] == b'{"predictions":[%d]}' % i

        threads = [threading.Thread(target=client, args=(i,)) for i in range(1, 17)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == {i: b'{"predictions":[%d]}' % i for i in range(1, 17)}


def test_a_lone_connection_to_a_quick_model_is_answered_at_once_and_two_share_the_queue(slow_pkg, monkeypatch):
    from hangar.serving.batching import Batcher

    submitted = []
    original = Batcher.submit

    def submit(self, inv, started, waiter=None):
        submitted.append(inv.rows)
        return original(self, inv, started, waiter)

    monkeypatch.setattr(Batcher, "submit", submit)
    with running(_app(slow_pkg)) as url, _connect(url) as sock:
        for _ in range(300):  # the model proves quick (a moving average over ≈ 64 calls)
            sock.sendall(_post("abc"))
            _read(sock, 1)
        submitted.clear()
        for _ in range(20):
            sock.sendall(_post("abcd"))
            assert _read(sock, 1)[0].endswith(b'{"predictions":[4]}')
        assert submitted == [], "one connection: answered in the request's own turn, not queued"
        with _connect(url) as other:
            time.sleep(0.05)  # (the server has accepted it)
            sock.sendall(_post("ab"))
            assert _read(sock, 1)[0].endswith(b'{"predictions":[2]}')
            assert submitted == [1], "two connections: queued, so requests that come together share a batch"
            other.sendall(_post("sleep"))
            assert _read(other, 1)[0].endswith(b'{"predictions":[5]}')


def test_a_worker_local_rate_limit_is_counted_on_the_lane(slow_pkg, tmp_path, monkeypatch):
    from hangar.serving.endpoint_app import EndpointApp
    from hangar.serving.endpoint_config import parse_endpoint_config
    from hangar.serving.endpoint_runtime import EndpointRuntime

    asgi = []
    original = EndpointApp._serve

    async def counting(self, scope, *args, **kwargs):
        asgi.append(scope["path"])
        return await original(self, scope, *args, **kwargs)

    monkeypatch.setattr(EndpointApp, "_serve", counting)
    config = parse_endpoint_config({"served_entities": [{"model": str(slow_pkg)}], "limits": {"rate_per_minute": 3},
                                    "inference_table": {"parquet": str(tmp_path / "table")}})
    app = EndpointRuntime("limited", config, record_lineage=False).build()
    try:
        with running(app) as url, _connect(url) as sock:
            answers = []
            for i in range(5):
                sock.sendall(_post("abc", b"X-Request-Id: rl-%d\r\n" % i))
                answers.append(_read(sock, 1)[0])
    finally:
        app.close()
    assert [a[9:12] for a in answers] == [b"200"] * 3 + [b"429"] * 2 and asgi == []
    assert b"retry-after: " in answers[3] and b'"error_code": "RATE_LIMITED"' in answers[3]
    rows = {r["request_id"]: r for r in pq.read_table(tmp_path / "table").to_pylist()}
    assert [rows[f"rl-{i}"]["status_code"] for i in range(5)] == [200, 200, 200, 429, 429]
    assert rows["rl-4"]["error_code"] == "RATE_LIMITED"


def test_token_counts_that_are_not_integers_are_left_out_of_the_table_row():
    from hangar.serving.endpoint_app import _usage

    assert _usage(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}}', "application/json") == (3, 4)
    assert _usage(b'{"usage": {"prompt_tokens": "3", "completion_tokens": 1e30}}', "application/json") == (None, None)
    assert _usage(b'{"usage": {"prompt_tokens": true, "completion_tokens": 99999999999999999999}}',
                  "application/json") == (None, None)
    sse = b'data: {"x": 1}\n\ndata: {"usage": {"prompt_tokens": 2, "completion_tokens": [1]}}\n\ndata: [DONE]\n\n'
    assert _usage(sse, "text/event-stream") == (2, None)


def test_a_caller_with_a_fresh_allowed_decision_takes_the_lane_and_the_rest_are_checked_first(slow_pkg, tmp_path,
                                                                                            monkeypatch):
    from hangar.serving.auth import ServingAuthorizer
    from hangar.serving.endpoint_app import EndpointApp
    from hangar.serving.endpoint_config import parse_endpoint_config
    from hangar.serving.endpoint_runtime import EndpointRuntime

    asgi, decided = [], []
    original = EndpointApp.__call__

    async def counting(self, scope, receive, send):
        if scope["type"] == "http":
            asgi.append(dict(scope["headers"]).get(b"authorization"))
        return await original(self, scope, receive, send)

    def decide(token, request_id):
        decided.append(token)
        return {"good": ("alice", True), "denied": ("bob", False)}.get(token, (None, False))

    monkeypatch.setattr(EndpointApp, "__call__", counting)
    config = parse_endpoint_config({"served_entities": [{"model": str(slow_pkg)}], "limits": {"rate_per_minute": 4},
                                    "inference_table": {"parquet": str(tmp_path / "table")}})
    app = EndpointRuntime("guarded", config, record_lineage=False).build()
    app.authorizer = ServingAuthorizer(None, "endpoint", "guarded", "QUERY", decider=decide)
    statuses = {}
    try:
        with running(app) as url, _connect(url) as sock:
            for i, token in enumerate([b"good", b"good", b"good", b"denied", b"denied", b"nope", b"good", b"good"]):
                sock.sendall(_post("abc", b"Authorization: Bearer " + token + b"\r\nX-Request-Id: a-%d\r\n" % i))
                statuses[i] = int(_read(sock, 1)[0][9:12])
            sock.sendall(_post("abc"))  # no token
            statuses["none"] = int(_read(sock, 1)[0][9:12])
    finally:
        app.close()
    assert statuses == {0: 200, 1: 200, 2: 200, 3: 403, 4: 403, 5: 401, 6: 200, 7: 429, "none": 401}
    assert decided == ["good", "denied", "denied", "nope"], "an allowed decision is cached; a refusal is not"
    assert asgi == [b"Bearer good", b"Bearer denied", b"Bearer denied", b"Bearer nope", None], \
        "after its first request the allowed caller takes the lane"
    rows = {r["request_id"]: r for r in pq.read_table(tmp_path / "table").to_pylist()}
    assert rows["a-1"]["caller"] == "alice" and rows["a-7"]["status_code"] == 429 and rows["a-7"]["caller"] == "alice"


def test_an_authorization_check_that_cannot_be_made_is_a_503_and_the_next_one_succeeds(slow_pkg, caplog):
    from hangar.serving.auth import ServingAuthorizer
    from hangar.serving.endpoint_config import parse_endpoint_config
    from hangar.serving.endpoint_runtime import EndpointRuntime

    down = [True]

    def decide(token, request_id):
        if down[0]:
            raise ConnectionError("connection refused [parameters: ('digest-of-the-token',)]\nmore detail")
        return "alice", True

    config = parse_endpoint_config({"served_entities": [{"model": str(slow_pkg)}]})
    app = EndpointRuntime("guarded", config, record_lineage=False).build()
    app.authorizer = ServingAuthorizer(None, "endpoint", "guarded", "QUERY", decider=decide)
    try:
        with caplog.at_level("ERROR", logger="hangar.serving"), running(app) as url, _connect(url) as sock:
            sock.sendall(_post("abc", b"Authorization: Bearer sekrit\r\n"))
            refused = _read(sock, 1)[0]
            down[0] = False  # the store is back
            sock.sendall(_post("abc", b"Authorization: Bearer sekrit\r\n"))
            served = _read(sock, 1)[0]
    finally:
        app.close()
    assert refused.startswith(b"HTTP/1.1 503") and b'"error_code":"STORE_UNAVAILABLE"' in refused.replace(b" ", b"")
    assert served.startswith(b"HTTP/1.1 200")
    assert "Checking a caller's authorization failed: ConnectionError: connection refused" in caplog.text
    assert "sekrit" not in caplog.text and "more detail" not in caplog.text
