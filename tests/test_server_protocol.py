"""The server's HTTP protocol: a response's head and body leave in one write, nothing is reordered or lost."""

from __future__ import annotations

import socket

import pytest
from server_fixtures import start_hub

from hangar.server.protocol import CoalescingTransport


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
