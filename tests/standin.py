"""The scripted stand-in for beanstalkd, for the tests where a real server cannot misbehave on
cue: a connection dropped mid-reply, a reply that never comes, replies nobody asked for,
bytes that never end. The client suite and the reliability suite both use it.

A :class:`StandIn` listens on 127.0.0.1 and plays one script per accepted connection, in
order, on a thread. A script is a function of a :class:`Peer` (the stand-in's end of the
connection): it reads what the client sent, checks it with ``assert``, answers, and returns
what the test wants to look at afterwards, which lands in :attr:`StandIn.results`.
:func:`replies` writes the common script (answer each command with a canned reply). Every
socket wait is bounded by :data:`LIMIT` (a failing test's bound, never a synchronisation
delay); a test waits on the stand-in with :meth:`StandIn.join` in plain code, or with
:meth:`StandIn.finished` and :func:`wait_event` in ``async`` code, which keep the event loop
running.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

import trio

LIMIT = 20.0
"""Seconds any single wait of a stand-in may last."""

FLOOD_CHUNKS = 16384
"""Most chunks :meth:`Peer.flood` sends (with 16 KiB chunks, 256 MiB)."""

T = TypeVar("T")


class Peer:
    """The stand-in's end of one connection, with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(LIMIT)
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def line(self) -> bytes:
        """The next command line, without its ``\\r\\n``."""
        while (end := self.buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise EOFError("the client closed before sending a line")
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def exact(self, size: int) -> bytes:
        """The next ``size`` bytes."""
        while len(self.buf) < size:
            if not self._fill():
                raise EOFError("the client closed mid-body")
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def command(self) -> bytes:
        """Read one command, a put's body included; return its line."""
        line = self.line()
        if line.startswith(b"put "):
            self.exact(int(line.rsplit(b" ", 1)[1]) + 2)
        return line

    def put(self) -> bytes:
        """Read a whole ``put`` command (line and body); return its body."""
        words = self.line().split(b" ")
        assert words[0] == b"put", words
        body = self.exact(int(words[-1]) + 2)
        assert body.endswith(b"\r\n")
        return body[:-2]

    def send(self, data: bytes) -> None:
        """Send ``data`` as it is: whole replies, part of one, or several in one write."""
        self.sock.sendall(data)

    def wait_closed(self) -> bytes:
        """Read until the client closes its end cleanly; return what it sent meanwhile.
        Raises ``TimeoutError`` if it kept the connection open for :data:`LIMIT`, and
        ``ConnectionResetError`` if it reset it (a client closing with replies unread)."""
        while self._fill():
            pass
        return bytes(self.buf)

    def closes(self) -> bool:
        """True once the client closes the connection, a reset included (a hostile server
        leaves it replies it must not read); False if it keeps it open."""
        try:
            self.wait_closed()
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def flood(self, chunk: bytes) -> bool:
        """Send ``chunk`` over and over until the client closes; True if it did."""
        try:
            for _ in range(FLOOD_CHUNKS):
                self.sock.sendall(chunk)
        except TimeoutError:
            return False  # the client stopped reading but kept the connection open
        except OSError:
            return True
        return False


Script = Callable[[Peer], object]
"""Plays one connection; what it returns is kept in :attr:`StandIn.results`."""


def replies(*answers: bytes) -> Script:
    """A script that reads one command per answer and sends that answer (each a whole
    reply, ``\\r\\n`` included), then waits for the client to close. Its result is the
    command lines it read, in order."""

    def script(peer: Peer) -> list[bytes]:
        lines: list[bytes] = []
        for answer in answers:
            lines.append(peer.command())
            peer.send(answer)
        peer.wait_closed()
        return lines

    return script


def answers_using(peer: Peer) -> None:
    """A connection script: answer one ``list-tube-used`` with ``USING default``, then wait
    for the client to close (a later connection that shows the client reconnected)."""
    assert replies(b"USING default\r\n")(peer) == [b"list-tube-used"]


async def _off_the_loop(kind: str, wait: Callable[[], T]) -> T:
    """Run the blocking ``wait`` on a worker thread, so that the event loop of ``kind``'s
    test (trio for trio clients, asyncio for the others) goes on running meanwhile: the
    client may need it to close the socket the stand-in waits on."""
    result: T
    if kind == "trio":
        result = await trio.to_thread.run_sync(wait)
    else:
        result = await asyncio.to_thread(wait)
    return result


async def wait_event(kind: str, event: threading.Event) -> None:
    """In an ``async`` test, wait until a stand-in's script sets ``event``."""
    assert await _off_the_loop(kind, lambda: event.wait(LIMIT)), "the stand-in never got there"


class StandIn:
    """A scripted stand-in for beanstalkd on 127.0.0.1, on a thread.

    It accepts one connection per script, in order, and runs the script on it. An error in a
    script is raised again when the ``with`` block ends (or by :meth:`join`), or noted on the
    block's own error. ``listener`` stays usable afterwards: ``run_beanstalkd(listener=...)``
    can take over the same port.
    """

    def __init__(self, *scripts: Script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(LIMIT)
        host, port = self.listener.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.scripts = scripts
        self.results: list[object] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for script in self.scripts:
                sock, _ = self.listener.accept()
                with sock:
                    self.results.append(script(Peer(sock)))
        except BaseException as error:  # reported by join()
            self.errors.append(error)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def join(self) -> None:
        """Wait until every script has run (each wait is bounded by :data:`LIMIT`)."""
        self.thread.join(LIMIT * 2)
        assert not self.thread.is_alive(), "the stand-in never finished"
        if self.errors:
            raise self.errors[0]

    async def finished(self, kind: str) -> None:
        """:meth:`join` from an ``async`` test, without blocking its event loop."""
        await _off_the_loop(kind, self.join)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.join()
            elif self.errors:
                exc.add_note(f"the stand-in's script failed too: {self.errors[0]!r}")
        finally:
            self.listener.close()
