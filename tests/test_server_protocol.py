"""The server's HTTP protocol: a response's head and body leave in one write, nothing is reordered or lost."""

from __future__ import annotations

import socket

import pytest
from server_fixtures import start_hub

from hangar.web_transport import CoalescingTransport


class FakeTransport:
    def __init__(self):
        self.writes, self.closed, self.aborted = [], False, False

    def write(self, data):
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


class FakeLoop:
    def __init__(self):
        self.soon = []

    def call_soon(self, fn):
        self.soon.append(fn)

    def turn(self):
        soon, self.soon = self.soon, []
        for fn in soon:
            fn()


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_a_head_joins_the_body_that_follows_it():
    t, loop = FakeTransport(), FakeLoop()
    c = CoalescingTransport(t, loop)
    c.write(HEAD)
    assert t.writes == [] and c.get_write_buffer_size() == len(HEAD)
    c.write(b"{}")
    assert t.writes == [HEAD + b"{}"]
    loop.turn()  # the scheduled flush finds nothing held
    assert t.writes == [HEAD + b"{}"]
    assert c.get_extra_info("peername") == ("127.0.0.1", 1)


def test_a_lone_head_leaves_on_the_next_turn_or_before_a_close_and_is_dropped_on_abort():
    t, loop = FakeTransport(), FakeLoop()
    c = CoalescingTransport(t, loop)
    c.write(HEAD)
    loop.turn()
    assert t.writes == [HEAD]
    c.write(HEAD)
    c.close()
    assert t.writes == [HEAD, HEAD] and t.closed
    t2 = FakeTransport()
    c2 = CoalescingTransport(t2, FakeLoop())
    c2.write(HEAD)
    c2.abort()
    assert t2.writes == [] and t2.aborted


def test_other_writes_pass_straight_through():
    t, loop = FakeTransport(), FakeLoop()
    c = CoalescingTransport(t, loop)
    c.write(b"5\r\nhello\r\n")
    c.write(b"HTTP/1.1 200 OK\r\n" + b"x" * 20000 + b"\r\n\r\n")  # too big to hold
    assert len(t.writes) == 2 and loop.soon == []


@pytest.fixture
def hub(tmp_path):
    server, hub = start_hub(f"sqlite:///{tmp_path / 'p.db'}", tmp_path)
    with server:
        yield hub


def _responses(sock, count: int) -> list[bytes]:
    data = b""
    sock.settimeout(10)
    while data.count(b"HTTP/1.1 ") < count or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return [b"HTTP/1.1 " + part for part in data.split(b"HTTP/1.1 ")[1:]]


def test_pipelined_requests_are_answered_in_order_on_one_connection(hub):
    host, port = hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        ask = (b"GET /api/v1/models/nope HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + hub.admin_token.encode()
               + b"\r\n\r\n")
        write = (b"POST /api/v1/runs/nope/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\n\r\n{}")
        sock.sendall(ask + write + ask)
        first, second, third = _responses(sock, 3)
    assert first.startswith(b"HTTP/1.1 404 ") and third.startswith(b"HTTP/1.1 404 ")
    assert second.startswith(b"HTTP/1.1 401 ") and b"www-authenticate: Bearer" in second


def _run(hub) -> str:
    import httpx

    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {hub.admin_token}"}) as a:
        exp = a.post("/experiments", json={"name": "e"}).json()["experiment_id"]
        return a.post("/runs", json={"experiment_id": exp}).json()["info"]["run_id"]


def _raw(hub, data: bytes, count: int = 1) -> list[bytes]:
    host, port = hub.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(data)
        return _responses(sock, count)


def test_plain_hot_writes_take_the_lane_and_the_rest_the_asgi_path(hub, monkeypatch):
    from hangar.server.fast import FastPath

    run_id = _run(hub)
    asgi = []
    original = FastPath.__call__

    async def counting(self, scope, *args):
        asgi.append(scope["path"])
        return await original(self, scope, *args)

    monkeypatch.setattr(FastPath, "__call__", counting)
    auth = b"Authorization: Bearer " + hub.admin_token.encode() + b"\r\n"
    body = b'{"key": "m", "value": 1.5}'
    plain = (b"POST /api/v1/runs/" + run_id.encode() + b"/metrics HTTP/1.1\r\nHost: x\r\n" + auth
             + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    (ok,) = _raw(hub, plain)
    assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"\r\n\r\n{}") and b"x-request-id: " in ok
    assert b"content-type: application/json" in ok and b"connection: close" not in ok and asgi == []
    chunked = (b"POST /api/v1/runs/" + run_id.encode() + b"/metrics HTTP/1.1\r\nHost: x\r\n" + auth
               + b"Transfer-Encoding: chunked\r\n\r\n" + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    forwarded = plain.replace(b"Host: x\r\n", b"Host: x\r\nX-Forwarded-For: 10.0.0.1\r\n")
    for request in (chunked, forwarded):
        (ok,) = _raw(hub, request)
        assert ok.startswith(b"HTTP/1.1 200 ") and ok.endswith(b"{}")
    assert len(asgi) == 2
    closing = plain.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    (ok,) = _raw(hub, closing + plain)  # answered once, then closed: the second request is not read
    assert ok.startswith(b"HTTP/1.1 200 ") and b"connection: close" in ok and ok.count(b"HTTP/1.1") == 1
    many = _raw(hub, plain * 3, 3)
    assert [r[:13] for r in many] == [b"HTTP/1.1 200 "] * 3
    import httpx

    with httpx.Client(base_url=hub.url + "/api/v1", headers={"Authorization": f"Bearer {hub.admin_token}"}) as a:
        assert [m["value"] for m in a.get(f"/runs/{run_id}/metrics/m").json()["metrics"]] == [1.5] * 7


def test_lane_errors_are_the_same_json_errors(hub):
    run_id = _run(hub)
    auth = b"Authorization: Bearer " + hub.admin_token.encode() + b"\r\n"

    def post(body: bytes, extra: bytes = auth) -> bytes:
        return _raw(hub, b"POST /api/v1/runs/" + run_id.encode() + b"/metrics HTTP/1.1\r\nHost: x\r\n" + extra
                    + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)[0]

    assert post(b"{not json").startswith(b"HTTP/1.1 400 ") and b'"error_code":"MALFORMED_REQUEST"' in post(b"[1]")
    unauth = post(b'{"key": "m", "value": 1}', b"")
    assert unauth.startswith(b"HTTP/1.1 401 ") and b"www-authenticate: Bearer" in unauth
    big = b"{" + b" " * (17 * 1024 * 1024) + b"}"
    assert post(big).startswith(b"HTTP/1.1 413 ")  # over the limit: uvicorn's path, the same 413


def test_malformed_http_gets_a_json_400_and_the_connection_closes(hub):
    (bad,) = _raw(hub, b"NOT HTTP AT ALL\r\n\r\n")
    assert bad.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in bad
    assert bad.endswith(b'{"error_code": "MALFORMED_REQUEST", "message": "Invalid HTTP request received."}')
