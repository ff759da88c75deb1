"""The client's hand-written HTTP/1.1 transport against a scripted server: framing (Content-Length,
chunked, to the end of the connection, 1xx), keep-alive and reconnects, and writes never resent."""

from __future__ import annotations

import http.client
import socket
import threading

import pytest

from hangar.remote_http import KeepAliveTransport


class Close:
    def __init__(self, data):
        self.data = data


class Scripted:
    """A loopback server answering each request with the next scripted reply (bytes, or a list of pieces
    sent one by one; a ``Close(...)`` reply closes the connection after it); ``None`` closes the connection
    instead of answering. Records what it received."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api/v1"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read_request(self, conn, buf: bytes) -> tuple[bytes | None, bytes]:
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += conn.recv(65536)
        return head + b"\r\n\r\n" + rest[:length], rest[length:]

    def _serve(self):
        while self.replies:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            buf = b""
            with conn:
                while self.replies:
                    request, buf = self._read_request(conn, buf)
                    if request is None:
                        break
                    self.requests.append(request)
                    reply = self.replies.pop(0)
                    if reply is None:
                        break
                    data = reply.data if isinstance(reply, Close) else reply
                    for piece in data if isinstance(data, list) else [data]:
                        conn.sendall(piece)
                    if isinstance(reply, Close):
                        break

    def close(self):
        self.sock.close()


@pytest.fixture
def scripted():
    servers = []

    def make(*replies):
        server = Scripted(replies)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


def _ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


def test_content_length_bodies_in_pieces_on_one_kept_alive_connection(scripted):
    reply = _ok(b'{"a": 1}')
    server = scripted([reply[:10], reply[10:40], reply[40:]], _ok(b"{}"), _ok(b"[]"))
    t = KeepAliveTransport(server.url, {"Accept": "application/json", "Authorization": "Bearer x"}, 5)
    assert t.request("POST", "/runs/r/metrics", b'{"key": "m"}') == (200, b'{"a": 1}')
    assert t.request("GET", "/runs/r", query={"q": "a b"}) == (200, b"{}")
    assert t.request("DELETE", "/runs/r") == (200, b"[]")
    assert server.connections == 1
    first, second, third = server.requests
    assert first.startswith(b"POST /api/v1/runs/r/metrics HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in first and b"\r\nAuthorization: Bearer x\r\n" in first
    assert b"\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n" in first and first.endswith(b'{"key": "m"}')
    assert second.startswith(b"GET /api/v1/runs/r?q=a+b HTTP/1.1\r\n") and b"Content-Length" not in second
    assert third.startswith(b"DELETE /api/v1/runs/r HTTP/1.1\r\n")
    t.close()


def test_chunked_interim_and_to_the_end_bodies(scripted):
    chunked = (b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\n{\"a\"\r\n5\r\n: 12}\r\n0\r\nX-Trailer: t\r\n\r\n")
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b"{}")
    server = scripted([chunked[:30], chunked[30:]], interim, Close(b"HTTP/1.0 404 Not Found\r\n\r\n{\"x\": 1}"), _ok(b"{}"))
    t = KeepAliveTransport(server.url, {}, 5)
    assert t.request("POST", "/a", b"{}") == (201, b'{"a": 12}')
    assert t.request("POST", "/b", b"{}") == (200, b"{}")
    status, body = t.request("GET", "/c")  # no length: the body runs to the end of the connection
    assert (status, body) == (404, b'{"x": 1}')
    assert t.request("GET", "/d") == (200, b"{}")  # on a new connection
    assert server.connections == 2


def test_connection_close_and_no_body_statuses(scripted):
    server = scripted(b"HTTP/1.1 204 No Content\r\n\r\n", _ok(b"{}", b"Connection: close\r\n"), _ok(b"{}"))
    t = KeepAliveTransport(server.url, {}, 5)
    assert t.request("DELETE", "/a") == (204, b"")
    assert t.request("GET", "/b") == (200, b"{}")
    assert t.request("GET", "/c") == (200, b"{}")
    assert server.connections == 2


def test_a_connection_closed_while_idle_is_replaced_before_a_write(scripted):
    server = scripted(Close(_ok(b"{}")), _ok(b"{}"))
    t = KeepAliveTransport(server.url, {}, 5)
    assert t.request("POST", "/a", b"{}") == (200, b"{}")
    server.thread.join(0.2)  # (the server has closed its end by now)
    assert t.request("POST", "/b", b"{}") == (200, b"{}")
    assert server.connections == 2 and len(server.requests) == 2


def test_a_write_whose_answer_never_came_is_not_sent_again(scripted):
    server = scripted(_ok(b"{}"), None, _ok(b"{}"))
    t = KeepAliveTransport(server.url, {}, 5)
    assert t.request("POST", "/a", b"{}") == (200, b"{}")
    # the server reads the next request and closes without answering: a write is not sent again
    with pytest.raises(http.client.RemoteDisconnected):
        t.request("POST", "/b", b"{}")
    assert t.request("POST", "/c", b"{}") == (200, b"{}")  # a fresh connection
    assert [r.split(b" ")[1] for r in server.requests] == [b"/api/v1/a", b"/api/v1/b", b"/api/v1/c"]


def test_a_read_on_a_dropped_connection_is_sent_again(scripted):
    server = scripted(_ok(b"{}"), None, _ok(b"{}"))
    t = KeepAliveTransport(server.url, {}, 5)
    assert t.request("GET", "/a") == (200, b"{}")
    assert t.request("GET", "/b") == (200, b"{}")  # the first try got no answer; a read is safe to repeat
    assert [r.split(b" ")[1] for r in server.requests] == [b"/api/v1/a", b"/api/v1/b", b"/api/v1/b"]


@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_malformed_answers_raise_http_errors(scripted, reply):
    server = scripted(reply)
    t = KeepAliveTransport(server.url, {}, 5)
    with pytest.raises(http.client.HTTPException):
        t.request("GET", "/a")


def test_targets_and_headers_with_control_characters_are_refused(scripted):
    server = scripted(_ok(b"{}"))
    with pytest.raises(ValueError, match="line break"):
        KeepAliveTransport(server.url, {"Authorization": "Bearer x\r\nX-Evil: 1"}, 5)
    t = KeepAliveTransport(server.url, {}, 5)
    with pytest.raises(http.client.InvalidURL):
        t.request("GET", "/a b\r\nX: y")
    assert server.requests == []


def test_per_request_headers_are_sent_once_and_never_repeat_a_fixed_one(scripted):
    server = scripted(_ok(b"{}"))
    t = KeepAliveTransport(server.url, {"Authorization": "Bearer mine"}, 5)
    with pytest.raises(ValueError, match="repeat"):  # a forwarded token must never ride beside this client's own
        t.request("GET", "/x", headers={"authorization": "Bearer theirs"})
    with pytest.raises(ValueError, match="line break"):
        t.request("GET", "/x", headers={"X-Request-Id": "a\r\nX-Evil: 1"})
    assert t.request("GET", "/x", headers={"X-Request-Id": "r-1"}) == (200, b"{}")
    assert server.requests[0].count(b"\r\nX-Request-Id: r-1\r\n") == 1 and server.requests[0].count(b"Bearer") == 1
    t.close()
