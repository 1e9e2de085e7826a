"""Hostile servers: a stand-in that sends random bytes, huge declared lengths, endless lines,
replies to commands never sent, or valid replies in the wrong order.

On all three clients: the call raises ``jackstalk.ProtocolError`` within a bounded time
(each call is bounded; a hang would raise ``TimeoutError`` instead) and bounded memory
(traced with tracemalloc while the stand-in floods the connection), the client closes the
connection, and its next call works on a real beanstalkd that takes over the port.
"""

from __future__ import annotations

import random
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

import pytest
from faultkit import Driver
from standin import Peer, StandIn

import jackstalk
from jackstalk.testing import run_beanstalkd

MEMORY_LIMIT = 1 << 20
"""Peak bytes a client may allocate while a server floods it (1 MiB)."""

CALL_LIMIT = 5.0
FLOOD_CHUNK = 16384
"""A flood goes on until the client hangs up, within standin.FLOOD_CHUNKS chunks."""


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
    error: type[jackstalk.ProtocolError] = jackstalk.ProtocolError

    def script(self, peer: Peer) -> bool:
        if self.before:
            peer.send(self.before)
        for _ in range(self.commands):
            peer.command()
        if self.reply:
            peer.send(self.reply)
        if self.flood:
            return peer.flood(self.flood)
        return peer.closes()


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
    # Bodies a real server may hold, but larger than the client takes: refused before a
    # byte of them is read (a job body over max_job_size, a document over 16 MiB).
    "reserved-1GiB": Case(
        "reserve",
        reply=b"RESERVED 1 1073741824\r\n",
        flood=DIGITS,
        error=jackstalk.ReplyTooLargeError,
    ),
    "reserved-over-max-job-size": Case(
        "reserve", reply=b"RESERVED 1 65536\r\n", flood=DIGITS, error=jackstalk.ReplyTooLargeError
    ),
    "found-over-max-job-size": Case(
        "peek",
        (1,),
        reply=b"FOUND 1 1001\r\n",
        flood=DIGITS,
        options={"max_job_size": 1000},
        error=jackstalk.ReplyTooLargeError,
    ),
    "ok-over-16MiB": Case(
        "stats", reply=b"OK 16777217\r\n", flood=DIGITS, error=jackstalk.ReplyTooLargeError
    ),
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
                with pytest.raises(case.error):
                    await driver.call(case.call, *case.args)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
            # The event loop keeps running while the test waits: asyncio closes an aborted
            # transport's socket on the loop's next turn.
            await standin.finished(transport)
            assert standin.results == [True], "the client kept the connection open"
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
        return peer.closes()

    with StandIn(doubles) as standin:
        driver = Driver(transport, standin.address, limit=CALL_LIMIT)
        try:
            assert await driver.put("once") == 1
            with pytest.raises(jackstalk.ProtocolError, match="unsolicited"):
                await driver.put("twice")
            await standin.finished(transport)
            assert standin.results == [True]
        finally:
            await driver.aclose()


async def test_an_extra_reply_after_a_batch(transport: str) -> None:
    def one_too_many(peer: Peer) -> bool:
        for _ in range(3):
            peer.command()
        peer.send(b"INSERTED 1\r\nINSERTED 2\r\nINSERTED 3\r\nDELETED\r\n")
        return peer.closes()

    with StandIn(one_too_many) as standin:
        driver = Driver(transport, standin.address, limit=CALL_LIMIT)
        try:
            assert await driver.put_many(["a", "b", "c"]) == [1, 2, 3]
            with pytest.raises(jackstalk.ProtocolError, match="unsolicited"):
                await driver.delete(9)  # DELETED was not this delete's reply
            await standin.finished(transport)
            assert standin.results == [True]
        finally:
            await driver.aclose()
