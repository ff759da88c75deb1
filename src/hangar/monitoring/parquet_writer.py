"""The inference table's Parquet files, written by a child process so that pyarrow never runs
beside a serving event loop.

Measured here: each ``pyarrow.array(list)`` call in a writer thread made the event-loop thread
wait 5–17 ms for the GIL, several times a second, whatever the switch interval or allocator, and
under load the thread fell so far behind that most rows were dropped. Pure-C calls that hold the
GIL briefly (``marshal.dumps``, a pipe write) cost the loop nothing measurable. So the serving
process only marshals each batch of rows and writes it down a pipe; the child converts them to
Arrow, appends a row group to its open Parquet file when told to, and publishes the file at each
flush (``inference_table.ParquetTarget``), answering each flush with the number of rows it
published, so ``written`` and ``failed`` stay exact. The batches are small (the writer thread
hands over a few hundred rows at a time, or what has waited 50 ms): where the child shares a CPU
with the event loop, as in a one-core benchmark, its work then comes in slices of about a
millisecond instead of stalls of many.

The child ignores SIGINT and SIGTERM (a process-group signal must not kill it before the server
drains) and exits at the end of its input, writing what it still holds: a server killed outright
loses only what it had not yet handed over. If the child dies, the rows it held are counted as
lost and the next batch starts a new one.

Frames on the child's stdin: 4-byte big-endian length, then ``marshal`` of ``("rows", [tuple, ...])``,
``("group",)`` or ``("flush",)``. One line on its stdout per flush: ``ok WRITTEN`` or
``error WRITTEN LOST message`` (a failed row group is reported there too).
"""

from __future__ import annotations

import logging
import marshal
import os
import struct
import subprocess
import sys
import uuid
from pathlib import Path

log = logging.getLogger("hangar.monitoring")
_HEADER = struct.Struct(">I")


class RowsLost(Exception):
    """A step of the writer lost ``lost_rows`` rows (they were counted as failed, never silently)."""

    def __init__(self, message: str, lost_rows: int, written: int = 0):
        super().__init__(message)
        self.lost_rows, self.written = lost_rows, written


def _marshal(rows: list[tuple]) -> bytes:
    try:
        return marshal.dumps(("rows", rows))
    except ValueError:  # a body that is neither bytes nor text (a JSON-able value): as text, here
        from hangar.monitoring.inference_table import _text

        return marshal.dumps(("rows", [(*row[:-2], _text(row[-2]), _text(row[-1])) for row in rows]))


class ParquetProcessTarget:
    """``stage`` / ``flush`` / ``close`` as ``InferenceTable`` drives a target, over a child process."""

    def __init__(self, folder: str):
        Path(folder).mkdir(parents=True, exist_ok=True)  # a bad folder fails here, when the endpoint starts
        self.folder = str(Path(folder).resolve())
        self.staged = 0  # rows handed to the child since its last flush (not yet published)
        self.ungrouped = 0  # ... of which not yet in a row group
        self._lost = 0  # rows a child that died held, not yet reported
        self._proc: subprocess.Popen | None = None

    def _child(self) -> subprocess.Popen:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            return proc
        if proc is not None:
            log.error("The inference table's Parquet writer exited (code %s); starting another", proc.returncode)
            self._lost, self.staged, self.ungrouped = self._lost + self.staged, 0, 0  # reported at the flush
            self._stop(proc)
        import hangar

        src = os.path.dirname(os.path.dirname(os.path.abspath(hangar.__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
        prefix = f"part-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # new names for each child: none overwrites another's
        self._proc = subprocess.Popen([sys.executable, "-m", "hangar.monitoring.parquet_writer", self.folder, prefix],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        return self._proc

    def _send(self, payload: bytes, rows: int) -> None:
        proc = self._child()
        try:
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
        except OSError as exc:
            lost, self.staged, self.ungrouped, self._lost = self._lost + self.staged + rows, 0, 0, 0
            self._stop(proc)
            self._proc = None
            raise RowsLost(f"the Parquet writer process is gone ({exc})", lost) from None

    def stage(self, rows: list[tuple]) -> None:
        self._send(_marshal(rows), len(rows))
        self.staged += len(rows)
        self.ungrouped += len(rows)

    def write_group(self) -> None:
        if self.ungrouped:
            self._send(marshal.dumps(("group",)), 0)
            self.ungrouped = 0

    def flush(self) -> int:
        written, problem = 0, "the Parquet writer process died holding them"
        if self.staged:
            self._send(marshal.dumps(("flush",)), 0)
            line = self._proc.stdout.readline().decode("utf-8", "replace").strip()
            held, self.staged, self.ungrouped = self.staged, 0, 0
            kind, _, rest = line.partition(" ")
            if kind == "ok":
                written = int(rest)
            elif kind == "error":
                done, failed, problem = rest.split(" ", 2)
                written, self._lost = int(done), self._lost + int(failed)
            else:
                self._stop(self._proc)
                self._proc, self._lost = None, self._lost + held
        lost, self._lost = self._lost, 0
        if lost:
            raise RowsLost(f"the Parquet writer: {problem}", lost, written)
        return written

    def _stop(self, proc: subprocess.Popen, timeout: float = 30.0) -> None:
        try:
            proc.stdin.close()
        except OSError:  # (a dead child's pipe may refuse the last buffered bytes)
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()

    def close(self) -> None:
        if self._proc is not None:
            self._stop(self._proc)
            self._proc = None


def _read_frame(stream) -> bytes | None:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(head)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def main(argv: list[str] | None = None) -> int:
    import signal

    from hangar.monitoring.inference_table import ParquetTarget

    folder, prefix = argv if argv is not None else sys.argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    target = ParquetTarget(folder, prefix=prefix)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    failed, error = 0, ""
    while True:
        payload = _read_frame(inp)
        if payload is None:
            break
        message = marshal.loads(payload)
        if message[0] == "rows":
            try:
                target.stage(message[1])
            except Exception as exc:  # noqa: BLE001 - reported at the next flush, the child goes on
                failed, error = failed + len(message[1]), f"{type(exc).__name__}: {exc}"
        elif message[0] == "group":
            try:
                target.write_group()
            except Exception as exc:  # noqa: BLE001 - the open file is dropped, its rows reported at the flush
                failed, error = failed + target.staged, f"{type(exc).__name__}: {exc}"
                target.discard()
        elif message[0] == "flush":
            try:
                written = target.flush()
            except Exception as exc:  # noqa: BLE001 - reported to the server, which counts the rows as lost
                failed, error = failed + target.staged, f"{type(exc).__name__}: {exc}"
                target.discard()
                written = 0
            if failed:
                out.write(f"error {written} {failed} {error}\n".encode())
                failed, error = 0, ""
            else:
                out.write(f"ok {written}\n".encode())
            out.flush()
    if target.staged:  # the server went away without a last flush: keep what it handed over
        target.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
