"""The embedded server's listener on its rarer paths: sockets that do not take a reply at
once or fail while writing, accepts that fail, internal errors that drop one connection
(never the server), Unix socket files, closing twice, and a burst of connections.

The listener runs in this test's own event loop. Where the system would only misbehave
under load, the server's sockets are wrapped (``Scripted``) so that a ``send`` or ``recv``
raises or takes part of the data exactly when the test says; everything else is real
loopback I/O. Nothing waits on time: every step waits for bytes or a hang-up.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from serverkit import LIMIT

from jackstalk._engine.hub import Hub
from jackstalk.transports.server import EmbeddedServer, bind, process_info, start_server

Script = list[BaseException | int]


class Scripted:
    """A server-side connection whose next ``send``/``recv`` calls follow a script: an
    exception is raised, an int sends at most that many bytes; then the real socket acts."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends: Script = []
        self.recvs: list[BaseException] = []
        self.send_calls = 0

    @property
    def family(self) -> int:
        return self.sock.family

    def fileno(self) -> int:
        return self.sock.fileno()

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def setsockopt(self, *args: Any) -> None:
        self.sock.setsockopt(*args)

    def close(self) -> None:
        self.sock.close()

    def recv(self, size: int) -> bytes:
        if self.recvs:
            raise self.recvs.pop(0)
        return self.sock.recv(size)

    def send(self, data: bytes) -> int:
        self.send_calls += 1
        if self.sends:
            step = self.sends.pop(0)
            if isinstance(step, BaseException):
                raise step
            return self.sock.send(data[:step])
        return self.sock.send(data)


class Listener:
    """A real listening socket whose accepted connections are :class:`Scripted`, and whose
    next ``accept`` calls may raise first."""

    def __init__(self) -> None:
        (self.sock,) = bind("127.0.0.1", 0)
        self.accept_errors: list[OSError] = []
        self.accepted: list[Scripted] = []
        self.next_sends: Script = []
        self.next_recvs: list[BaseException] = []

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def accept(self) -> tuple[Scripted, Any]:
        if self.accept_errors:
            raise self.accept_errors.pop(0)
        sock, address = self.sock.accept()
        scripted = Scripted(sock)
        scripted.sends, self.next_sends = self.next_sends, []
        scripted.recvs, self.next_recvs = self.next_recvs, []
        self.accepted.append(scripted)
        return scripted, address


def _serve(listener: Listener) -> EmbeddedServer:
    loop = asyncio.get_running_loop()
    hub = Hub(loop.time(), process=process_info())
    return EmbeddedServer(hub, loop, [cast("socket.socket", listener)])


def _run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(LIMIT):
            await main()

    asyncio.run(bounded())


class Peer:
    """A client connection driven from the test's loop."""

    def __init__(self, address: tuple[str, int] | str) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.connect(address)  # the system queues it: no need to wait for the loop
        self.sock.setblocking(False)
        self.buf = b""
        self.body = b""

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _fill(self) -> bool:
        chunk = await asyncio.get_running_loop().sock_recv(self.sock, 1 << 16)
        self.buf += chunk
        return bool(chunk)

    async def line(self) -> bytes:
        """The next reply line; the body of an ``OK`` or ``RESERVED`` goes to ``body``."""
        while b"\r\n" not in self.buf:
            assert await self._fill(), f"closed; got {self.buf!r}"
        line, _, self.buf = self.buf.partition(b"\r\n")
        self.body = b""
        if line.startswith((b"OK ", b"RESERVED ")):
            size = int(line.rsplit(b" ", 1)[1]) + 2
            while len(self.buf) < size:
                assert await self._fill()
            self.body, self.buf = self.buf[: size - 2], self.buf[size:]
        return line

    async def stats(self) -> dict[str, str]:
        await self.send(b"stats\r\n")
        line = await self.line()
        assert line.startswith(b"OK "), line
        pairs = (row.partition(": ") for row in self.body.decode().splitlines()[1:])
        return {key: value for key, _, value in pairs}

    async def closed(self) -> bytes:
        """Everything until the server hangs up (a reset, when it closed with our bytes
        unread, counts as one)."""
        try:
            while await self._fill():
                pass
        except ConnectionResetError:
            pass
        return self.buf

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------ binding


def test_bind_replaces_a_stale_unix_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, with nothing listening behind it
    assert os.path.exists(path)
    (sock,) = bind(unix_path=path)
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)  # would be refused by the stale file
        client.close()
    finally:
        sock.close()


def test_bind_leaves_a_file_that_is_no_socket_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("keep me")
    with pytest.raises(OSError, match="in use"):
        bind(unix_path=str(path))
    assert path.read_text() == "keep me"


# ------------------------------------------------------------------ accepting


def test_a_failed_accept_is_logged_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        listener = Listener()
        listener.accept_errors.append(OSError(errno.EMFILE, "Too many open files"))
        server = _serve(listener)
        peer = Peer(server.address)
        try:
            # The loop sees the listener ready again: the connection queued meanwhile is
            # accepted on the next turn and served.
            assert (await peer.stats())["current-connections"] == "1"
        finally:
            peer.close()
            server.close()
        assert listener.accept_errors == []

    with caplog.at_level(logging.WARNING, "jackstalk.server"):
        _run(main)
    assert any("accept failed" in r.getMessage() for r in caplog.records)


def test_more_connections_than_one_turn_accepts_are_all_served() -> None:
    async def main() -> None:
        server = await start_server("127.0.0.1", 0)
        assert isinstance(server.address, tuple)
        peers = [Peer(server.address) for _ in range(100)]  # all queued before a turn
        try:
            for peer in peers:
                await peer.send(b"use t\r\n")
            assert [await peer.line() for peer in peers] == [b"USING t"] * 100
            assert (await peers[0].stats())["current-connections"] == "100"
        finally:
            for peer in peers:
                peer.close()
            server.close()

    _run(main)


# ------------------------------------------------------------------ writing


def test_replies_the_socket_does_not_take_at_once_are_written_later() -> None:
    # The first send would block, the next takes 5 bytes, the next would block again: the
    # replies still arrive whole and in order, and the commands after them run.
    async def main() -> None:
        listener = Listener()
        listener.next_sends = [BlockingIOError(), 5, BlockingIOError()]
        server = _serve(listener)
        peer = Peer(server.address)
        try:
            await peer.send(b"use a\r\n" * 40 + b"use b\r\n")
            assert [await peer.line() for _ in range(41)] == [b"USING a"] * 40 + [b"USING b"]
            assert listener.accepted[0].sends == []
            await peer.send(b"put 0 0 10 1\r\nx\r\n")
            assert await peer.line() == b"INSERTED 1"
        finally:
            peer.close()
            server.close()

    _run(main)


def test_quit_after_a_delayed_reply_closes_once_it_is_written() -> None:
    async def main() -> None:
        listener = Listener()
        listener.next_sends = [BlockingIOError()]
        server = _serve(listener)
        peer = Peer(server.address)
        try:
            await peer.send(b"use a\r\nquit\r\nuse b\r\n")
            assert await peer.closed() == b"USING a\r\n"
            assert server.clients == {}
        finally:
            peer.close()
            server.close()

    _run(main)


@pytest.mark.parametrize("delayed", [False, True], ids=["first-write", "later-write"])
def test_a_write_that_fails_drops_the_connection_and_hands_its_job_back(delayed: bool) -> None:
    async def main() -> None:
        listener = Listener()
        server = _serve(listener)
        other = Peer(server.address)
        peer = Peer(server.address)
        try:
            await other.send(b"put 0 0 10 1\r\nx\r\n")
            assert await other.line() == b"INSERTED 1"
            await peer.send(b"reserve\r\n")
            assert (await peer.line()).startswith(b"RESERVED 1 ")
            scripted = listener.accepted[1]
            reset = ConnectionResetError(errno.ECONNRESET, "reset")
            scripted.sends = [BlockingIOError(), reset] if delayed else [reset]
            await peer.send(b"stats-job 1\r\n")
            assert await peer.closed() == b""
            stats = await other.stats()
            assert (stats["current-connections"], stats["current-jobs-ready"]) == ("1", "1")
        finally:
            peer.close()
            other.close()
            server.close()

    _run(main)


# ------------------------------------------------------------------ internal errors


@pytest.mark.parametrize("where", ["read", "write", "woken"])
def test_an_internal_error_drops_that_connection_not_the_server(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        listener = Listener()
        server = _serve(listener)
        other = Peer(server.address)
        peer = Peer(server.address)
        try:
            assert (await other.stats())["current-connections"] == "2"
            scripted = listener.accepted[1]
            if where == "read":
                scripted.recvs = [RuntimeError("bug")]
                await peer.send(b"stats\r\n")
            elif where == "write":
                scripted.sends = [BlockingIOError(), RuntimeError("bug")]
                await peer.send(b"stats\r\n")
            else:  # the turn a put on another connection gives a waiting reserve
                await peer.send(b"reserve\r\n")
                assert (await other.stats())["current-waiting"] == "1"
                scripted.sends = [RuntimeError("bug")]
                await other.send(b"put 0 0 10 1\r\nx\r\n")
                assert await other.line() == b"INSERTED 1"
            assert await peer.closed() == b""
            stats = await other.stats()
            assert stats["current-connections"] == "1"
            if where == "woken":
                assert stats["current-jobs-ready"] == "1"  # the reserve's job went back
        finally:
            peer.close()
            other.close()
            server.close()

    with caplog.at_level(logging.ERROR, "jackstalk.server"):
        _run(main)
    errors = [r for r in caplog.records if "after an internal error" in r.getMessage()]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)


# ------------------------------------------------------------------ life cycle


def test_a_turn_due_when_the_server_closes_does_nothing() -> None:
    async def main() -> None:
        server = await start_server("127.0.0.1", 0)
        assert isinstance(server.address, tuple)
        peer = Peer(server.address)
        try:
            await peer.send(b"use a\r\n")
            assert await peer.line() == b"USING a"
            (client,) = server.clients.values()
            await peer.send(b"use b\r\n")
            server._schedule(client)
            server._schedule(client)  # once is enough: still one turn due
            turns = server.turns
            server.close()
            assert await peer.closed() == b""  # the due turn ran nothing
            assert server.turns == turns
            server._drop(client)  # dropped already: nothing more happens
            assert server.clients == {}
        finally:
            peer.close()

    _run(main)


def test_close_twice_and_a_unix_socket_file_removed_meanwhile(tmp_path: Path) -> None:
    async def main() -> None:
        path = tmp_path / "s.sock"
        server = await start_server(unix_path=str(path))
        assert server.address == str(path)
        forever = asyncio.ensure_future(server.serve_forever())
        peer = Peer(str(path))
        try:
            assert await await_line(peer, b"use a\r\n") == b"USING a"
            path.unlink()
            server.close()
            server.close()
            await forever  # returns once closed
            await server.wait_closed()
            assert await peer.closed() == b""
            assert not path.exists()
        finally:
            peer.close()

    _run(main)


async def await_line(peer: Peer, data: bytes) -> bytes:
    await peer.send(data)
    return await peer.line()
