"""The wire parameters every client sends, and the raw socket I/O the references build on.

Holds the priority, delay, ttr and body sizes shared by all clients, the pipelined windows
of raw-pipelined, the reply framing of the raw references (``RawReader``), the untimed
pre-fill (``fill``) and the server's counters a run is checked against (``server_stats``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import jackstalk

Address = tuple[str, int]

# The same wire parameters for every client.
PRI = 1024
DELAY = 0
TTR = 60
SMALL = 100
LARGE = 16 * 1024
READ = 65536
PIPELINE_COMMANDS = 512
"""Commands per pipelined window of the raw-pipelined reference."""
PIPELINE_BYTES = 256 * 1024
"""Body bytes per pipelined window of the raw-pipelined reference."""


def _body(size: int) -> bytes:
    return b"x" * size


def _put_line(body: bytes) -> bytes:
    return b"put %d %d %d %d\r\n%b\r\n" % (PRI, DELAY, TTR, len(body), body)


# =============================================================================== raw I/O


def _raw_connect(address: Address) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RawReader:
    """Reply framing for the raw references: the reply line, then a body by its length.
    Nothing beyond the line is parsed."""

    __slots__ = ("buf", "recv")

    def __init__(self, sock: socket.socket, *, quickack: bool = False) -> None:
        self.recv: Callable[[int], bytes] = sock.recv
        if quickack and hasattr(socket, "TCP_QUICKACK"):
            self.recv = _quickack_recv(sock)
        self.buf = b""

    def _more(self) -> None:
        chunk = self.recv(READ)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        end = self.buf.find(b"\r\n")
        while end < 0:
            self._more()
            end = self.buf.find(b"\r\n")
        buf = self.buf
        self.buf = buf[end + 2 :]
        return buf[:end]

    def body(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            self._more()
        buf = self.buf
        self.buf = buf[size + 2 :]
        return buf[:size]

    def expect(self, word: bytes) -> bytes:
        line = self.line()
        if not line.startswith(word):
            raise RuntimeError(f"expected {word!r}, got {line[:40]!r}")
        return line


def _quickack_recv(sock: socket.socket) -> Callable[[int], bytes]:
    """``recv`` that re-arms TCP_QUICKACK (Linux) after every read.

    beanstalkd does not set TCP_NODELAY, so when one write from us makes it send two
    replies (``DELETED``, then ``RESERVED``), Nagle holds the second back until we
    acknowledge the first, and our delayed ACK waits ~40 ms: a client that sends more than
    one command per write must acknowledge at once, or it runs at ~25 cycles/s.
    """
    recv, setsockopt = sock.recv, sock.setsockopt
    level, option = socket.IPPROTO_TCP, socket.TCP_QUICKACK

    def read(size: int) -> bytes:
        data = recv(size)
        setsockopt(level, option, 1)
        return data

    return read


def _windows(total: int, body: bytes) -> Iterator[int]:
    """Sizes of the raw-pipelined windows: bounded by commands and by bytes."""
    per = max(1, min(PIPELINE_COMMANDS, PIPELINE_BYTES // max(len(body), 1)))
    done = 0
    while done < total:
        size = min(per, total - done)
        yield size
        done += size


def fill(address: Address, body: bytes, count: int) -> None:
    """Put ``count`` jobs, pipelined (the untimed pre-fill, the same for every client)."""
    with _raw_connect(address) as sock:
        _raw_pipelined_puts(sock, body, count)


def _raw_pipelined_puts(sock: socket.socket, body: bytes, count: int) -> None:
    line = _put_line(body)
    recv = _quickack_recv(sock) if hasattr(socket, "TCP_QUICKACK") else sock.recv
    due = 0  # replies not yet read
    pending = b""
    for size in _windows(count, body):
        sock.sendall(line * size)
        # Keep one window in flight: read what the one before it answered.
        due += size
        while due > size:
            pending += recv(READ)
            if not pending:
                raise ConnectionError("server closed the connection")
            lines = pending.count(b"\n")
            due -= lines
            pending = pending[pending.rfind(b"\n") + 1 :]
    while due > 0:
        chunk = recv(READ)
        if not chunk:
            raise ConnectionError("server closed the connection")
        pending += chunk
        due -= pending.count(b"\n")
        pending = pending[pending.rfind(b"\n") + 1 :]


def server_stats(address: Address) -> dict[str, Any]:
    """The server's counters, read after a run to check the work was really done."""
    with _raw_connect(address) as sock:
        sock.sendall(b"stats\r\n")
        reader = RawReader(sock)
        size = int(reader.expect(b"OK ").split()[1])
        return jackstalk.parse_stats(reader.body(size))
