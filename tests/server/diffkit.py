"""Drive a real beanstalkd and the embedded server with the same bytes, reply by reply.

The embedded side is the sans-IO :class:`~jackstalk._engine.hub.Hub`, run in-process on the real
clock. It goes first: what it answers on each connection tells the harness how many replies
to read from the real server's socket (a reserve that waits answers nothing), so nothing
here waits on time to synchronise; a read only has a time limit in case the two disagree.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from jackstalk._engine.hub import Hub

READ_LIMIT = 5.0  # seconds to wait for a reply the embedded server says is owed

# ``stats`` fields that belong to the process, not to the protocol state.
PROCESS_FIELDS = frozenset(
    {b"pid", b"uptime", b"rusage-utime", b"rusage-stime", b"id", b"hostname", b"os", b"platform"}
)
BODY_WORDS = (b"OK", b"RESERVED", b"FOUND")


class Mismatch(AssertionError):
    """The two servers answered differently."""


def split_replies(data: bytes) -> list[bytes]:
    """Cut a stream of whole replies into replies (a body goes with its line)."""
    replies: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n", pos) + 2
        line = data[pos:end]
        word, _, rest = line[:-2].partition(b" ")
        if word in BODY_WORDS:
            end += int(rest.rsplit(b" ", 1)[-1]) + 2
        replies.append(data[pos:end])
        pos = end
    return replies


def normalise(reply: bytes) -> bytes:
    """Blank the process-specific fields of a ``stats`` reply (and so its length)."""
    if not reply.startswith(b"OK ") or b"\n---\ncurrent-jobs-urgent: " not in reply[:40]:
        return reply
    body = reply.partition(b"\r\n")[2]
    lines = []
    for line in body[:-2].split(b"\n"):
        key, sep, _ = line.partition(b": ")
        lines.append(key + sep + b"*" if sep and key in PROCESS_FIELDS else line)
    return b"OK *\r\n" + b"\n".join(lines) + b"\r\n"


class RealConnection:
    """One socket to the real server, read one whole reply at a time."""

    def __init__(self, address: tuple[str, int] | str) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(READ_LIMIT)
        self.sock.connect(address)
        if family == socket.AF_INET:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.reset = False  # the server reset the connection (quit with unread bytes)

    def send(self, data: bytes) -> None:
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            self.reset = True
            return False
        except TimeoutError as exc:
            raise Mismatch(f"no reply from the real server; got so far {self.buf!r}") from exc
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_reply(self) -> bytes | None:
        """The next whole reply, or None if the connection ended first."""
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                word, _, rest = self.buf[:end].partition(b" ")
                size = end + 2
                if word in BODY_WORDS:
                    try:
                        size += int(rest.rsplit(b" ", 1)[-1]) + 2
                    except ValueError as exc:
                        raise Mismatch(f"unexpected reply line {self.buf[:end]!r}") from exc
                if len(self.buf) >= size:
                    reply, self.buf = self.buf[:size], self.buf[size:]
                    return reply
            if not self._fill():
                return None

    def expect_eof(self) -> None:
        while self._fill():
            pass
        if self.buf and not self.reset:
            raise Mismatch(f"real server sent more before closing: {self.buf!r}")

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


@dataclass
class Slot:
    """One client connection, open on both servers."""

    real: RealConnection
    conn: int
    open: bool = True
    transcript: list[tuple[bytes, list[bytes]]] = field(default_factory=list)


class Differential:
    """The same connections on both servers; each step sends bytes on one of them."""

    def __init__(self, address: tuple[str, int] | str, *, max_job_size: int) -> None:
        self.address = address
        self.epoch = time.monotonic()
        self.last = 0.0
        self.hub = Hub(self.now(), max_job_size=max_job_size)
        self.slots: dict[int, Slot] = {}
        self.log: list[str] = []

    def now(self) -> float:
        # Real time, strictly increasing, near zero so that float sums stay exact enough.
        value = max(time.monotonic() - self.epoch, self.last + 1e-6)
        self.last = value
        return value

    def slot(self, index: int) -> Slot:
        slot = self.slots.get(index)
        if slot is None or not slot.open:
            if slot is not None:
                slot.real.close()
            slot = Slot(RealConnection(self.address), self.hub.connect())
            self.slots[index] = slot
        return slot

    def _embedded(self, conn: int, data: bytes | None) -> dict[int, list[bytes]]:
        """Feed the embedded side; return the replies owed on every connection."""
        hub = self.hub
        if data is None:
            hub.receive_data(conn, b"", self.now())
        elif data:
            hub.receive_data(conn, data, self.now())
        out: dict[int, bytes] = {conn: hub.run(conn, self.now(), limit=2**30)}
        todo = hub.take_woken()
        while todo:
            other = todo.pop(0)
            out[other] = out.get(other, b"") + hub.run(other, self.now(), limit=2**30)
            todo += [w for w in hub.take_woken() if w not in todo]
        return {c: split_replies(data) for c, data in out.items() if data}

    def _unfinished(self, reply: bytes) -> bool:
        if not reply.startswith(b"FOUND "):
            return False
        job_id = int(reply.split(b" ", 2)[1])
        return self.hub.engine.job_state(job_id) == "invalid"

    def _by_conn(self, conn: int) -> Slot:
        for slot in self.slots.values():
            if slot.conn == conn and slot.open:
                return slot
        raise AssertionError(f"no open slot for connection {conn}")

    def step(self, index: int, data: bytes | None) -> None:
        """Send ``data`` on connection ``index`` (None: close our end) and compare."""
        slot = self.slot(index)
        if data and self.hub.waiting(slot.conn):
            # Nothing is sent to a connection whose reserve waits: when the wait ended,
            # its queued commands would run in turn with those of the connection that
            # ended it, in beanstalkd's epoll order, which the embedded server does not
            # copy (it runs one connection's queue, then the next).
            self.log.append(f"conn {index}: (waiting; skipped {data!r})")
            return
        self.log.append(f"conn {index}: {'<close>' if data is None else data!r}")
        expected = self._embedded(slot.conn, data)
        if data is None:
            slot.real.shutdown()
        else:
            slot.real.send(data)
        for conn, replies in expected.items():
            other = self._by_conn(conn)
            for reply in replies:
                got = other.real.read_reply()
                if got is None and other.real.reset and self.hub.closing(conn):
                    break  # beanstalkd reset the socket after quit: replies can be lost
                self.log.append(f"  conn {conn}: embedded {reply!r} real {got!r}")
                if got is not None and self._unfinished(reply):
                    # A peek at a job whose body is still arriving: beanstalkd sends its
                    # buffer as it is (what came so far, then whatever memory held).
                    got, reply = got.partition(b"\r\n")[0], reply.partition(b"\r\n")[0]
                if got is None or normalise(got) != normalise(reply):
                    raise Mismatch("\n".join(self.log))
        if data and not (expected.get(slot.conn) and self.hub.idle(slot.conn)):
            self._barrier(len(data))
        for slot_index, other in list(self.slots.items()):
            if other.open and self.hub.closing(other.conn):
                other.real.expect_eof()
                other.open = False
                self.hub.disconnect(other.conn, self.now())
                self.log.append(f"  conn {slot_index} closed")

    def _barrier(self, size: int) -> None:
        """Make sure the real server has read everything sent so far.

        It serves ready sockets in turn, one read (at most 224 bytes) or one reply per
        turn, so a round trip on another connection gives the last one at least one turn;
        enough of them let it read all of what was sent. The embedded side gets the same
        commands, so the statistics still agree.
        """
        barrier = self.slot(-1)
        for _ in range(size // 224 + 2):
            reply = self._embedded(barrier.conn, b"list-tube-used\r\n")
            barrier.real.send(b"list-tube-used\r\n")
            for conn, replies in reply.items():
                other = self._by_conn(conn)
                for expected in replies:
                    got = other.real.read_reply()
                    if got != expected:
                        self.log.append(f"  barrier: embedded {expected!r} real {got!r}")
                        raise Mismatch("\n".join(self.log))

    def finish(self) -> None:
        """Compare the global state through a fresh connection, then close everything."""
        probe = len(self.slots) + 100
        self.step(probe, b"stats\r\nlist-tubes\r\n")
        tubes = self.hub.engine.tubes()
        self.step(probe, b"".join(b"stats-tube %b\r\n" % name.encode() for name in tubes))

    def close(self) -> None:
        for slot in self.slots.values():
            slot.real.close()
