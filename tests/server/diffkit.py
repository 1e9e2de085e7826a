"""Drive a real beanstalkd and the embedded server with the same bytes, reply by reply.

The embedded side is the sans-IO :class:`~jackstalk._engine.hub.Hub`, run in-process on the real
clock. It goes first: what it answers on each connection tells the harness how many replies
to read from the real server's socket (a reserve that waits answers nothing), so nothing
here waits on time to synchronise; a read only has a time limit in case the two disagree.

A step sends bytes on one connection, half-closes it (``None``), or hangs it up
(:class:`HangUp`: send, read what is owed, close the socket). After a hang-up both servers
write one reply at a time and close the connection at the first write that fails; how many
go through is the system's doing: none on a Unix socket, and on TCP those written before
the client's system answers the first with a reset (one, unless the machine is busy).
So the harness polls ``stats`` on the real server until it has closed the connection, then
finds how many written replies bring the embedded side to the same state, by replaying its
recorded calls on fresh hubs (:class:`RecordedHub`), and carries on from there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from jackstalk._engine.engine import Engine
from jackstalk._engine.hub import Hub

READ_LIMIT = 5.0  # seconds to wait for a reply the embedded server says is owed

# ``stats`` fields that belong to the process, not to the protocol state.
PROCESS_FIELDS = frozenset(
    {b"pid", b"uptime", b"rusage-utime", b"rusage-stime", b"id", b"hostname", b"os", b"platform"}
)
BODY_WORDS = (b"OK", b"RESERVED", b"FOUND")


class Mismatch(AssertionError):
    """The two servers answered differently."""


@dataclass(frozen=True)
class HangUp:
    """A step that sends ``data``, reads the replies owed, then closes the socket."""

    data: bytes = b""


Step = tuple[int, "bytes | HangUp | None"]
"""A connection (by index) and what to do on it: send bytes, half-close, or hang up."""


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


def _hang_up(hub: RecordedHub, conn: int, now: float, written: int) -> None:
    """Play a hang-up as the listener does: one reply per write once the end of stream is
    seen, the connection closed at the first write that fails (after ``written``)."""
    hub.receive_data(conn, b"", now)
    while True:
        if hub.run(conn, now, 1):
            if not written:
                break  # this write fails
            written -= 1
        if hub.closing(conn) or not hub.more(conn):
            break
    hub.disconnect(conn, now)


def _run(hub: RecordedHub, conn: int, data: bytes, now: float) -> bytes:
    hub.receive_data(conn, data, now)
    return hub.run(conn, now, 2**30)


def _field(reply: bytes, key: bytes) -> bytes:
    """The value after ``key`` in a ``stats`` reply (to its end of line)."""
    start = reply.index(key) + len(key)
    return reply[start : reply.index(b"\n", start)]


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


class RecordedHub:
    """A hub whose every call that changes it is recorded, so that it can be rebuilt."""

    def __init__(self, now: float, max_job_size: int) -> None:
        self._made = (now, max_job_size)
        self._hub = Hub(now, max_job_size=max_job_size)
        self._calls: list[Callable[[Hub], object]] = []

    def _do(self, call: Callable[[Hub], object]) -> object:
        self._calls.append(call)
        return call(self._hub)

    def replay(self) -> RecordedHub:
        """A new hub that has been through the same calls."""
        copy = RecordedHub(*self._made)
        for call in self._calls:
            copy._do(call)
        return copy

    @property
    def engine(self) -> Engine:
        return self._hub.engine

    def connect(self) -> int:
        conn = self._do(Hub.connect)
        assert isinstance(conn, int)
        return conn

    def receive_data(self, conn: int, data: bytes, now: float) -> None:
        self._do(partial(Hub.receive_data, conn=conn, data=data, now=now))

    def run(self, conn: int, now: float, limit: int) -> bytes:
        out = self._do(partial(Hub.run, conn=conn, now=now, limit=limit))
        assert isinstance(out, bytes)
        return out

    def take_woken(self) -> list[int]:
        woken = self._do(Hub.take_woken)
        assert isinstance(woken, list)
        return woken

    def disconnect(self, conn: int, now: float) -> None:
        self._do(partial(Hub.disconnect, conn=conn, now=now))

    def waiting(self, conn: int) -> bool:
        return self._hub.waiting(conn)

    def closing(self, conn: int) -> bool:
        return self._hub.closing(conn)

    def idle(self, conn: int) -> bool:
        return self._hub.idle(conn)

    def more(self, conn: int) -> bool:
        return self._hub.more(conn)


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
        self.hub = RecordedHub(self.now(), max_job_size)
        self.slots: dict[int, Slot] = {}
        self.log: list[str] = []
        self.written_after_hang_up: list[int] = []  # per hang-up, as the real server did

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

    def _embedded(self, conn: int | None, data: bytes | None) -> dict[int, list[bytes]]:
        """Feed the embedded side; return the replies owed on every connection.

        ``conn`` None: only pick up what other connections are owed (after a hang-up).
        """
        hub = self.hub
        out: dict[int, bytes] = {}
        if conn is not None:
            if data is None:
                hub.receive_data(conn, b"", self.now())
            elif data:
                hub.receive_data(conn, data, self.now())
            out[conn] = hub.run(conn, self.now(), limit=2**30)
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

    def step(self, index: int, data: bytes | HangUp | None) -> None:
        """Send ``data`` on connection ``index`` (None: close our end) and compare."""
        if isinstance(data, HangUp):
            self.hang_up(index, data.data)
            return
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
        self._compare(expected)
        if data and not (expected.get(slot.conn) and self.hub.idle(slot.conn)):
            self._barrier(len(data))
        for slot_index, other in list(self.slots.items()):
            if other.open and self.hub.closing(other.conn):
                other.real.expect_eof()
                other.open = False
                self.hub.disconnect(other.conn, self.now())
                self.log.append(f"  conn {slot_index} closed")

    def hang_up(self, index: int, data: bytes) -> None:
        """Send ``data`` on connection ``index``, read what is owed, close it, and compare.

        ``data`` may end with a reserve that waits and more commands after it: the case
        where beanstalkd answers ``TIMED_OUT`` and then runs as many of them as it can
        write replies to (see the module docstring).
        """
        slot = self.slot(index)
        barrier = self.slot(-1)
        if self.hub.waiting(slot.conn) and data:
            data = b""  # as in step(): nothing is sent to a connection whose reserve waits
        self.log.append(f"conn {index}: {data!r} then <hang up>")
        if data:
            expected = self._embedded(slot.conn, data)
            slot.real.send(data)
            self._compare(expected)
        conn = slot.conn
        now = self.now()
        slot.real.close()
        slot.open = False
        # The real server has played the hang-up to its end once it has accepted as many
        # connections as the embedded side (the total) and closed this one (the current).
        state = self.hub.engine.stats()
        gone = 0 if self.hub.closing(conn) else 1  # (a quit closed it already)
        want = (
            _field(state, b"\ntotal-connections: "),
            b"%d" % (int(_field(state, b"\ncurrent-connections: ")) - gone),
        )
        polls = 0
        while True:
            barrier.real.send(b"stats\r\n")
            final = barrier.real.read_reply()
            polls += 1
            if final is None:
                raise Mismatch("\n".join(self.log) + "\n  the real server closed the barrier")
            got = (
                _field(final, b"\ntotal-connections: "),
                _field(final, b"\ncurrent-connections: "),
            )
            if got == want:
                break
            if polls > 1000:
                self.log.append(f"  connections (total, current): want {want} real {got}")
                raise Mismatch("\n".join(self.log) + "\n  the real server never closed it")
        reply = b""
        for written in range(32):
            hub = self.hub.replay()
            _hang_up(hub, conn, now, written)
            for _ in range(polls):
                reply = _run(hub, barrier.conn, b"stats\r\n", self.now())
            if normalise(reply) == normalise(final):
                break
        else:
            self.log.append(f"  settled: embedded {reply!r} real {final!r}")
            raise Mismatch("\n".join(self.log))
        self.hub = hub
        self.written_after_hang_up.append(written)
        self.log.append(f"  closed after {written} more replies written")
        self._compare(self._embedded(None, None))

    def _compare(self, expected: dict[int, list[bytes]]) -> None:
        """Read the replies the embedded side produced from the real server, and compare."""
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
