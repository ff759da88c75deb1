"""A lean keep-alive transport for the client's JSON calls to a Hangar server (plain ``http://``).

A training loop makes thousands of small calls; httpx spends several hundred microseconds of Python
on each (request and response models, the pool, hooks), more than the server needs to commit a
metric. This keeps one ``http.client`` connection per thread, with TCP_NODELAY, reused between
calls: a connection the server closed while idle (keep-alive timeout) is noticed before it is
reused and replaced. A call that fails after its request was sent is not repeated (the server may
have committed it), except for reads. HTTPS and proxied servers keep using httpx.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import urllib.parse

_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_REPEATABLE = ("GET", "HEAD")


def usable_for(url: str) -> bool:
    """Plain HTTP with no proxy configured (those go through httpx, which honours them)."""
    return url.startswith("http://") and not any(os.environ.get(k) for k in _PROXY_VARS)


def _dropped(sock) -> bool:
    """Whether an idle kept-alive socket was closed by the server (it is readable: EOF, or stray bytes)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class KeepAliveTransport:
    def __init__(self, url: str, headers: dict, timeout: float):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.headers = headers
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection and whether it is new (nothing sent on it yet)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and not _dropped(conn.sock):
            return conn, False
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        conn.close()
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, True

    def request(self, method: str, path: str, body: bytes | None = None, query: dict | None = None) -> tuple[int, bytes]:
        """``(status, body)``; raises OSError / http.client.HTTPException when the server cannot be reached."""
        target = self.prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        headers = self.headers if body is None else {**self.headers, "Content-Type": "application/json"}
        for attempt in (0, 1):
            conn, fresh = self._connection()
            try:
                conn.request(method, target, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                if attempt == 0 and not fresh and method in _REPEATABLE:
                    continue  # a stale connection: a read is safe to send again
                raise
            if resp.will_close:
                conn.close()
            return resp.status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
