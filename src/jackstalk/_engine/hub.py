"""The embedded server without I/O: one command parser per connection around one engine.

A transport owns the sockets and the clock; the hub turns the bytes each client sends into
the bytes to send back::

    conn = hub.connect()
    hub.receive_data(conn, data, now)         # b"" when the client closed its end
    out = hub.run(conn, now, commands=32)     # replies to write (may be b"")
    hub.more(conn)                            # stopped at the bound: call run again
    hub.closing(conn)                         # after quit or end of stream: close it
    for other in hub.take_woken(): ...        # connections that have replies to pick up
    hub.tick(now); hub.next_deadline()        # time-driven replies, and when to tick next

Like beanstalkd, a connection runs no command while its reserve waits, and a transport
should stop calling :meth:`run` for a connection while its earlier replies are unsent.
beanstalkd writes each reply before it runs the next command, so once the client has
closed its end (when a write can fail), a transport should take one reply per call
(``limit=1``) and stop at the first write that fails.
"""

from __future__ import annotations

from dataclasses import replace

from jackstalk._engine.engine import Engine, ProcessInfo
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol.server_connection import Rejected, ServerConnection

__all__ = ["Hub"]

_NEED_DATA = e.NEED_DATA


class _Peer:
    __slots__ = ("closing", "out", "parser", "put_begun", "starved")

    def __init__(self, max_job_size: int) -> None:
        self.parser = ServerConnection(max_job_size=max_job_size)
        self.out = bytearray()
        self.closing = False
        self.put_begun = False
        self.starved = True  # the last run stopped for want of bytes


class Hub:
    """Connections, their parsers and the engine, fed with bytes and the time."""

    def __init__(
        self,
        now: float = 0.0,
        *,
        max_job_size: int = 65535,
        process: ProcessInfo | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.max_job_size = max_job_size
        self.engine = Engine(
            now, max_job_size=max_job_size, process=process, instance_id=instance_id
        )
        self._peers: dict[int, _Peer] = {}
        self._woken: dict[int, None] = {}  # insertion-ordered set

    def connect(self) -> int:
        """A new client connection; returns its id."""
        conn = self.engine.connect()
        self._peers[conn] = _Peer(self.max_job_size)
        return conn

    def receive_data(self, conn: int, data: bytes, now: float) -> None:
        """Bytes from the client; ``b""`` when it closed (or half-closed) its end.

        A reserve that waits when the client closes its end is answered ``TIMED_OUT`` at
        once, as beanstalkd does.
        """
        peer = self._peers.get(conn)
        if peer is None or peer.closing:
            return
        peer.parser.receive_data(data)
        peer.starved = False
        if not data:
            reply = self.engine.cancel(conn, now)
            if reply is not None:
                peer.out += reply.encode()
                self._woken[conn] = None
            self._collect(now)

    def run(self, conn: int, now: float, limit: int = 65536, *, commands: int = -1) -> bytes:
        """Run the client's pending commands; return the bytes to send it.

        Stops when the parser needs more bytes, a reserve waits, the connection is to be
        closed, about ``limit`` bytes of replies are ready, or ``commands`` lines have
        run (no bound when negative); :meth:`more` then says whether to call again.
        """
        peer = self._peers.get(conn)
        if peer is None:
            return b""
        out = peer.out
        engine = self.engine
        parser = peer.parser
        while commands and not peer.closing and len(out) < limit and not engine.waiting(conn):
            item = parser.next_event()
            if item is _NEED_DATA:
                peer.starved = True
                self._begin_put(conn, peer, now)
                break
            if isinstance(item, e.Closed):
                self._begin_put(conn, peer, now)  # its line came before the end of stream
                peer.closing = True
                engine.disconnect(conn, now)
                break
            commands -= 1
            if peer.put_begun:
                peer.put_begun = False
                if isinstance(item, Rejected) and item.counted:
                    item = replace(item, counted=False)  # counted already
            reply = engine.handle(conn, item, now)
            if reply is None:
                if not parser.eof:
                    break
                reply = engine.cancel(conn, now)
                if reply is None:  # pragma: no cover - cancel answers every waiting reserve
                    break
            if isinstance(reply, e.Closed):
                peer.closing = True
                break
            out += reply.encode()
        self._collect(now)
        self._woken.pop(conn, None)
        data = bytes(out)
        out.clear()
        return data

    def _begin_put(self, conn: int, peer: _Peer, now: float) -> None:
        """beanstalkd counts a put (and makes its job) as soon as its line parses, though
        the reply waits for the body: do that once the parser stops inside a body."""
        if peer.put_begun:
            return
        parser = peer.parser
        header = parser.pending_put
        if header is not None:
            peer.put_begun = True
            self.engine.begin_put(conn, *header, now)
        elif parser.skipping:
            peer.put_begun = True
            self.engine.count(conn, c.Put)

    def closing(self, conn: int) -> bool:
        """True once the connection is to be closed (after ``quit`` or end of stream),
        as soon as what :meth:`run` returned is written. Unknown connections count too."""
        peer = self._peers.get(conn)
        return peer is None or peer.closing

    def waiting(self, conn: int) -> bool:
        """True while the connection's reserve waits for a job."""
        return self.engine.waiting(conn)

    def more(self, conn: int) -> bool:
        """True when the last :meth:`run` stopped at its bound, with commands maybe left."""
        peer = self._peers.get(conn)
        return (
            peer is not None
            and not peer.starved
            and not peer.closing
            and not self.engine.waiting(conn)
        )

    def buffered(self, conn: int) -> int:
        """Bytes received from the client and not run yet, to bound reading ahead.

        The body of a put whose line has run does not count (a transport must let it all
        in, up to the largest job size, or the put would never complete).
        """
        peer = self._peers.get(conn)
        if peer is None:
            return 0
        parser = peer.parser
        header = parser.pending_put
        if header is None:
            return parser.buffered
        return max(parser.buffered - header[3] - 2, 0)

    def idle(self, conn: int) -> bool:
        """True when the connection has no unparsed bytes and no half-received put."""
        peer = self._peers.get(conn)
        return peer is None or peer.parser.idle

    def pending(self, conn: int) -> bool:
        """True when :meth:`run` would return bytes without any new input."""
        peer = self._peers.get(conn)
        return peer is not None and bool(peer.out)

    def take_woken(self) -> list[int]:
        """Connections that got replies from another connection's command or from time."""
        woken = list(self._woken)
        self._woken.clear()
        return woken

    def tick(self, now: float) -> list[int]:
        """Let time pass; return the connections that now have replies (see :meth:`run`)."""
        self._collect(now)
        return self.take_woken()

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work, or ``None``."""
        return self.engine.next_deadline()

    def disconnect(self, conn: int, now: float) -> None:
        """The connection is gone (closed, reset or failed)."""
        if self._peers.pop(conn, None) is not None:
            self.engine.disconnect(conn, now)
            self._collect(now)
        self._woken.pop(conn, None)

    def _collect(self, now: float) -> None:
        for other, reply in self.engine.tick(now):
            peer = self._peers.get(other)
            if peer is not None:
                peer.out += reply.encode()
                self._woken[other] = None
