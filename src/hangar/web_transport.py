"""One write per HTTP response under uvicorn's httptools protocol.

uvicorn writes the status line and headers as soon as the app sends ``http.response.start`` and
the body on ``http.response.body``: two ``send`` system calls and, with TCP_NODELAY, two segments,
so the client wakes up for a head it cannot use yet and waits again for the body. For small JSON
answers (a tracking call, a one-row prediction) that second round costs a good part of the call.

``CoalescingHttpToolsProtocol`` hands uvicorn a transport that holds back a write which is a
response head (it starts with the ``HTTP/1.x`` status line and ends with the blank line) until the
next write, which it joins, or until the event loop's next turn, whichever comes first: nothing is
reordered and nothing waits for more than the current callback. Closing, aborting and every other
transport call behave as before (held bytes are written before a close, dropped on abort). Used by
``hangar server`` and ``hangar serve``.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_MAX_HELD = 16 * 1024


class CoalescingTransport:
    """A transport wrapper that joins a response head with the write that follows it."""

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + bytes(data))
        elif (len(data) <= _MAX_HELD and data[:7] == b"HTTP/1." and data[-4:] == b"\r\n\r\n"
              and not self._transport.is_closing()):
            self._held = bytes(data)
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)

    def writelines(self, lines) -> None:
        self.flush()
        self._transport.writelines(lines)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def __getattr__(self, name):  # everything else: the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
