"""A lean keep-alive transport for the client's JSON calls to a Hangar server (plain ``http://``).

A training loop makes thousands of small calls; httpx spends several hundred microseconds of Python
on each (request and response models, the pool, hooks), and ``http.client`` still spends most of a
call's client time parsing response headers through the ``email`` package. This speaks the small
part of HTTP/1.1 these calls need on one socket per thread (TCP_NODELAY), reused between calls:
the request goes out in one ``sendall``; the response's status line and headers are split by hand
and its body read by ``Content-Length`` (or chunked, or to the end of the connection). Interim 1xx
responses are skipped; ``Connection: close`` and HTTP/1.0 answers close the socket after reading.

A connection the server closed while idle (keep-alive timeout) is noticed before it is reused and
replaced. A call that fails after its request may have been sent is not repeated (the server may
have committed it), except for reads. HTTPS and proxied servers keep using httpx. Errors are those
of ``http.client`` (``OSError``, ``http.client.HTTPException``), so callers handle both alike.
"""

from __future__ import annotations

import http.client
import os
import re
import select
import socket
import threading
import urllib.parse

_PROXY_VARS = ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")
_REPEATABLE = ("GET", "HEAD")
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")  # as http.client refuses: no controls or spaces in the target
_MAX_HEAD = 64 * 1024
_RECV = 65536


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


class _Response:
    __slots__ = ("status", "body", "close")

    def __init__(self, status: int, body: bytes, close: bool):
        self.status, self.body, self.close = status, body, close


class _Reader:
    """Reads one response at a time from a socket (no pipelining: nothing may follow a response)."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _more(self) -> bytes:
        chunk = self.sock.recv(_RECV)
        if not chunk:
            raise http.client.RemoteDisconnected("Remote end closed connection without response")
        return chunk

    def _head(self) -> bytes:
        return self._until(b"\r\n\r\n", "response header")

    def _exactly(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            buf += self._more()
        self.buf = buf[n:]
        return buf[:n]

    def _line(self) -> bytes:
        return self._until(b"\r\n", "chunk size")

    def _until(self, delimiter: bytes, what: str) -> bytes:
        """The buffered bytes before ``delimiter`` (consumed with it), reading more as needed."""
        buf = self.buf
        while True:
            end = buf.find(delimiter)
            if end >= 0:
                self.buf = buf[end + len(delimiter):]
                return buf[:end]
            if len(buf) > _MAX_HEAD:
                raise http.client.LineTooLong(what)
            buf += self._more()

    def _chunked(self) -> bytes:
        parts = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(parts)) from None
            if size < 0:
                raise http.client.IncompleteRead(b"".join(parts))
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size))
            if self._exactly(2) != b"\r\n":
                raise http.client.IncompleteRead(b"".join(parts))

    def _to_end(self) -> bytes:
        parts = [self.buf]
        self.buf = b""
        while True:
            chunk = self.sock.recv(_RECV)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def response(self, method: str) -> _Response:
        while True:
            lines = self._head().split(b"\r\n")
            parts = lines[0].split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3:
                raise http.client.BadStatusLine(repr(lines[0][:100]))
            try:
                status = int(parts[1])
            except ValueError:
                raise http.client.BadStatusLine(repr(lines[0][:100])) from None
            length = chunked = None
            close = parts[0] == b"HTTP/1.0"
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise http.client.BadStatusLine(f"malformed header line {line[:100]!r}")
                name = name.strip().lower()
                if name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise http.client.BadStatusLine("bad Content-Length") from None
                    if length < 0:
                        raise http.client.BadStatusLine("bad Content-Length")
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    token = value.strip().lower()
                    close = b"close" in token or (close and b"keep-alive" not in token)
            if 100 <= status < 200 and status != 101:
                continue  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            if method == "HEAD" or status in (204, 304):
                body = b""
            elif chunked:
                body = self._chunked()
            elif length is not None:
                body = self._exactly(length)
            else:
                body, close = self._to_end(), True
            if self.buf:  # bytes after a response we did not ask for: do not trust this connection
                close = True
            return _Response(status, body, close)


def _check_headers(headers: dict) -> None:
    for name, value in headers.items():
        if _BAD_TARGET.search(name) or "\r" in str(value) or "\n" in str(value):
            raise ValueError(f"Invalid value for the header {name!r}: it contains a line break or control character")


class KeepAliveTransport:
    def __init__(self, url: str, headers: dict, timeout: float):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        host = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {"Host": host if self.port == 80 else f"{host}:{self.port}", **headers}
        _check_headers(fixed)
        self._fixed_names = {name.lower() for name in fixed}
        self._fixed = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._local = threading.local()
        self._all: list = []
        self._lock = threading.Lock()

    def _connection(self) -> tuple[_Reader, bool]:
        """This thread's connection and whether it is new (nothing sent on it yet)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            if not _dropped(conn.sock):
                return conn, False
            self._discard(conn)
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        conn = _Reader(sock)
        self._local.conn = conn
        with self._lock:
            self._all.append(sock)
        return conn, True

    def _discard(self, conn: _Reader) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn.sock in self._all:
                self._all.remove(conn.sock)
        conn.sock.close()

    def request(self, method: str, path: str, body: bytes | None = None, query: dict | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        """``(status, body)``; raises OSError / http.client.HTTPException when the server cannot be reached.
        ``headers`` are sent with this request only, after the fixed ones."""
        target = self.prefix + path
        if query:
            target += "?" + urllib.parse.urlencode(query)
        if _BAD_TARGET.search(target) or _BAD_TARGET.search(method):
            raise http.client.InvalidURL(f"URL can't contain control characters or spaces: {target!r}")
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        if headers:
            _check_headers(headers)
            if self._fixed_names.intersection(name.lower() for name in headers):
                raise ValueError(f"Headers {sorted(headers)} would repeat this connection's fixed headers")
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if body is None:
            message = (head + ("Content-Length: 0\r\n\r\n" if method in ("POST", "PUT", "PATCH") else "\r\n")).encode()
        else:
            message = (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        for attempt in (0, 1):
            conn, fresh = self._connection()
            try:
                conn.sock.sendall(message)
                resp = conn.response(method)
            except (OSError, http.client.HTTPException):
                self._discard(conn)
                if attempt == 0 and not fresh and method in _REPEATABLE:
                    continue  # a stale connection: a read is safe to send again
                raise
            if resp.close:
                self._discard(conn)
            return resp.status, resp.body
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            socks, self._all = self._all, []
        for sock in socks:
            sock.close()
