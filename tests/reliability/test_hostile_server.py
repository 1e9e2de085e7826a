"""Hostile servers: a stand-in that sends random bytes, huge declared lengths, endless lines,
replies to commands never sent, or valid replies in the wrong order.

On all three clients: the call raises ``jackstalk.ProtocolError`` within a bounded time
(each call is bounded; a hang would raise ``TimeoutError`` instead) and bounded memory
(traced with tracemalloc while the stand-in floods the connection), the client closes the
connection, and its next call works on a real beanstalkd that takes over the port.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import pytest
import trio
from faultkit import LIMIT, Driver

import jackstalk
from jackstalk.testing import run_beanstalkd

MEMORY_LIMIT = 1 << 20
"""Peak bytes a client may allocate while a server floods it (1 MiB)."""

CALL_LIMIT = 5.0
FLOOD_CHUNK = 16384
FLOOD_CHUNKS = 16384
"""A flood sends at most 256 MiB: it goes on until the client hangs up, within bounds."""


class Peer:
    """The stand-in's end of one connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(LIMIT)
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise EOFError("the client closed before sending a line")
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def command(self) -> bytes:
        """Read one command (a put with its body); return its line."""
        line = self.line()
        if line.startswith(b"put "):
            size = int(line.rsplit(b" ", 1)[1]) + 2
            while len(self.buf) < size:
                if not self._fill():
                    raise EOFError("the client closed mid-body")
            del self.buf[:size]
        return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_closed(self) -> bool:
        """Read until the client closes; True if it did (within :data:`LIMIT`)."""
        try:
            while self._fill():
                pass
        except TimeoutError:
            return False
        except OSError:
            pass  # reset by the client: closed too
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


Script = Callable[[Peer], bool]
"""Plays one connection; returns whether the client closed it."""


class StandIn:
    """A hostile stand-in for beanstalkd on 127.0.0.1: one script per connection, in order,
    on a thread. Its listener stays open, so a real beanstalkd can take over the port."""

    def __init__(self, *scripts: Script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(LIMIT)
        host, port = self.listener.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.scripts = scripts
        self.closed: list[bool] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for script in self.scripts:
                sock, _ = self.listener.accept()
                with sock:
                    self.closed.append(script(Peer(sock)))
        except BaseException as error:  # reported by join()
            self.errors.append(error)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def join(self) -> None:
        self.thread.join(LIMIT * 2)
        assert not self.thread.is_alive(), "the stand-in never finished"
        if self.errors:
            raise self.errors[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.join()
        finally:
            self.listener.close()


@dataclass(frozen=True)
class Case:
    """A hostile answer: ``before`` is sent on accept; then ``commands`` commands are read
    and ``reply`` sent; then ``flood`` is sent until the client hangs up."""

    call: str
    args: tuple[Any, ...] = ()
    reply: bytes = b""
    flood: bytes = b""
    before: bytes = b""
    commands: int = 1
    options: dict[str, Any] = field(default_factory=dict)

    def script(self, peer: Peer) -> bool:
        if self.before:
            peer.send(self.before)
        for _ in range(self.commands):
            peer.command()
        if self.reply:
            peer.send(self.reply)
        if self.flood:
            return peer.flood(self.flood)
        return peer.wait_closed()


def _random_case(seed: int) -> Case:
    rng = random.Random(seed)
    junk = rng.randbytes(rng.randrange(300, 3000))  # over a line's 224 bytes either way
    call, args = [("put", ("x",)), ("reserve", ()), ("stats", ()), ("peek", (1,))][seed % 4]
    return Case(call, args, reply=junk)


# Flooding with these never ends a line (no "\r\n" anywhere).
DIGITS = b"9" * FLOOD_CHUNK
CARRIAGE_RETURNS = b"\r" * FLOOD_CHUNK
NEWLINES = b"INSERTED 1\n" * (FLOOD_CHUNK // 11)
NO_CRLF = bytes(byte for byte in random.Random(1).randbytes(FLOOD_CHUNK) if byte not in b"\r\n")

CASES: dict[str, Case] = {
    **{f"random-bytes-{seed}": _random_case(seed) for seed in range(8)},
    # Huge declared lengths (beanstalkd's own ceiling is 1 GiB); the body keeps coming.
    "reserved-99999999999": Case("reserve", reply=b"RESERVED 1 99999999999\r\n", flood=DIGITS),
    "reserved-1GiB-plus-1": Case("reserve", reply=b"RESERVED 1 1073741825\r\n", flood=DIGITS),
    "found-huge": Case("peek", (1,), reply=b"FOUND 1 99999999999\r\n", flood=DIGITS),
    "ok-huge": Case("stats", reply=b"OK 99999999999\r\n", flood=DIGITS),
    "ok-twenty-one-digits": Case("stats", reply=b"OK " + b"9" * 21 + b"\r\n", flood=DIGITS),
    # Endless lines: no CRLF, for ever.
    "endless-inserted": Case("put", ("x",), reply=b"INSERTED ", flood=DIGITS),
    "endless-carriage-returns": Case("stats", reply=b"OK 5\r", flood=CARRIAGE_RETURNS),
    "endless-bare-newlines": Case("put", ("x",), flood=NEWLINES),
    "endless-junk": Case("reserve", flood=NO_CRLF),
    "body-without-crlf": Case("reserve", reply=b"RESERVED 1 5\r\nhello", flood=DIGITS),
    # Replies to commands never sent.
    "deleted-for-put": Case("put", ("x",), reply=b"DELETED\r\n"),
    "inserted-for-stats": Case("stats", reply=b"INSERTED 5\r\n"),
    "using-for-reserve": Case("reserve", reply=b"USING default\r\n"),
    "reserved-for-put": Case("put", ("x",), reply=b"RESERVED 1 2\r\nhi\r\n"),
    "found-for-delete": Case("delete", (1,), reply=b"FOUND 1 2\r\nhi\r\n"),
    "ok-for-kick": Case("kick", (1,), reply=b"OK 4\r\n---\n\r\n"),
    "unsolicited-before-any-command": Case("stats", before=b"INSERTED 1\r\n"),
    # Valid replies in the wrong order: the restore pipeline (use, watch, watch, ignore).
    "restore-replies-swapped": Case(
        "stats",
        reply=b"WATCHING 2\r\nUSING produce\r\nWATCHING 3\r\nWATCHING 2\r\n",
        commands=4,
        options={"use": "produce", "watch": ["work", "more"]},
    ),
    "use-answered-with-another-tube": Case(
        "stats", reply=b"USING other\r\n", options={"use": "produce"}
    ),
    "watch-count-off": Case(
        "stats", reply=b"WATCHING 7\r\nWATCHING 2\r\n", commands=2, options={"watch": ["work"]}
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_server(transport: str, name: str) -> None:
    case = CASES[name]
    with StandIn(case.script) as standin:
        driver = Driver(transport, standin.address, limit=CALL_LIMIT, **case.options)
        try:
            tracemalloc.start()
            try:
                with pytest.raises(jackstalk.ProtocolError):
                    await driver.call(case.call, *case.args)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
            # Wait for the stand-in without blocking the event loop: asyncio closes an
            # aborted transport's socket on the loop's next turn.
            if transport == "asyncio":
                await asyncio.to_thread(standin.join)
            elif transport == "trio":
                await trio.to_thread.run_sync(standin.join)
            else:
                standin.join()
            assert standin.closed == [True], "the client kept the connection open"
            # The connection is gone for good; the next call opens a new one, here to a
            # real beanstalkd on the same port.
            with run_beanstalkd(listener=standin.listener):
                assert await driver.using() == case.options.get("use", "default")
        finally:
            await driver.aclose()


async def test_an_extra_reply_is_never_taken_for_the_next_one(transport: str) -> None:
    """One write with two replies to one put: the put gets the first; the second is a
    reply to nothing, and the next call raises instead of taking it as its own."""

    def doubles(peer: Peer) -> bool:
        peer.command()
        peer.send(b"INSERTED 1\r\nINSERTED 2\r\n")
        return peer.wait_closed()

    with StandIn(doubles) as standin:
        driver = Driver(transport, standin.address, limit=CALL_LIMIT)
        try:
            assert await driver.put("once") == 1
            with pytest.raises(jackstalk.ProtocolError, match="unsolicited"):
                await driver.put("twice")
            standin.join()
            assert standin.closed == [True]
        finally:
            await driver.aclose()


async def test_an_extra_reply_after_a_batch(transport: str) -> None:
    def one_too_many(peer: Peer) -> bool:
        for _ in range(3):
            peer.command()
        peer.send(b"INSERTED 1\r\nINSERTED 2\r\nINSERTED 3\r\nDELETED\r\n")
        return peer.wait_closed()

    with StandIn(one_too_many) as standin:
        driver = Driver(transport, standin.address, limit=CALL_LIMIT)
        try:
            assert await driver.put_many(["a", "b", "c"]) == [1, 2, 3]
            with pytest.raises(jackstalk.ProtocolError, match="unsolicited"):
                await driver.delete(9)  # DELETED was not this delete's reply
            standin.join()
            assert standin.closed == [True]
        finally:
            await driver.aclose()
