"""The async clients' own I/O pieces, driven directly: the asyncio protocol's read and
write flow control, the command locks' queueing and cancellation, and the trio client's
writes when the socket buffer is full. (The client tests drive them through real servers;
these reach the cases a well-behaved server rarely produces.)"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import trio
import trio.testing

from jackstalk.transports import asyncio as asyncio_transport
from jackstalk.transports import trio as trio_transport
from jackstalk.transports.trio import TrioClient


class FakeTransport:
    """Records what the protocol asks of its transport."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def _stream() -> tuple[Any, FakeTransport]:
    stream = asyncio_transport._Stream(asyncio.get_running_loop())
    transport = FakeTransport()
    stream.connection_made(transport)  # type: ignore[arg-type]
    return stream, transport


# ---------------------------------------------------------------- asyncio: reading


def test_unread_data_over_the_limit_pauses_reading_until_taken() -> None:
    async def main() -> None:
        stream, transport = _stream()
        chunk = b"x" * (asyncio_transport._LIMIT // 2)
        stream.data_received(chunk)
        stream.data_received(chunk)
        assert transport.calls == []  # at the limit exactly: still reading
        stream.data_received(b"y")
        stream.data_received(b"z")  # (already paused: asked once)
        assert transport.calls == ["pause"]
        assert await stream.receive() == chunk + chunk + b"yz"
        assert transport.calls == ["pause", "resume"]

    asyncio.run(main())


def test_a_waiting_read_is_woken_by_data_then_by_the_end() -> None:
    async def main() -> None:
        stream, _ = _stream()
        reading = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0)  # the read now waits
        stream.data_received(b"INSERTED 1\r\n")
        assert await reading == b"INSERTED 1\r\n"
        reading = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0)
        stream.eof_received()
        assert await reading == b""
        assert await stream.receive() == b""  # and stays ended

    asyncio.run(main())


def test_a_lost_connection_raises_its_error_after_the_data_that_came() -> None:
    async def main() -> None:
        stream, _ = _stream()
        stream.data_received(b"partial")
        stream.connection_lost(ConnectionResetError("reset by peer"))
        assert await stream.receive() == b"partial"
        with pytest.raises(ConnectionResetError, match="reset by peer"):
            await stream.receive()

    asyncio.run(main())


# ---------------------------------------------------------------- asyncio: writing


def test_drain_waits_while_writing_is_paused() -> None:
    async def main() -> None:
        stream, _ = _stream()
        await stream.drain()  # not paused: returns at once
        stream.pause_writing()
        draining = asyncio.ensure_future(stream.drain())
        await asyncio.sleep(0)
        assert not draining.done()
        stream.resume_writing()
        await draining

    asyncio.run(main())


def test_drain_fails_when_the_connection_is_lost_meanwhile() -> None:
    async def main() -> None:
        stream, _ = _stream()
        stream.pause_writing()
        draining = asyncio.ensure_future(stream.drain())
        await asyncio.sleep(0)
        stream.connection_lost(None)
        with pytest.raises(ConnectionResetError):
            await draining

    asyncio.run(main())


# ---------------------------------------------------------------- the command locks


def test_asyncio_lock_hands_over_in_order_and_skips_cancelled_waiters() -> None:
    async def main() -> None:
        lock = asyncio_transport._CommandLock()
        assert lock.try_acquire()
        assert not lock.try_acquire()
        order: list[str] = []

        async def waiter(name: str) -> None:
            await lock.acquire()
            order.append(name)
            lock.release()

        first = asyncio.ensure_future(waiter("first"))
        gone = asyncio.ensure_future(waiter("gone"))
        last = asyncio.ensure_future(waiter("last"))
        await asyncio.sleep(0)  # all three queue
        gone.cancel()
        await asyncio.sleep(0)  # cancelled while queued: it leaves the queue
        lock.release()
        await asyncio.gather(first, last)
        assert gone.cancelled()
        assert order == ["first", "last"]
        assert lock.try_acquire()  # free again, nobody queued

    asyncio.run(main())


def test_asyncio_lock_handed_to_a_waiter_cancelled_before_it_runs_passes_on() -> None:
    async def main() -> None:
        lock = asyncio_transport._CommandLock()
        assert lock.try_acquire()
        handed = asyncio.ensure_future(lock.acquire())
        after = asyncio.ensure_future(lock.acquire())
        await asyncio.sleep(0)
        lock.release()  # the lock now belongs to `handed`, which has not run yet
        handed.cancel()  # ... and is cancelled before it does
        with pytest.raises(asyncio.CancelledError):
            await handed
        await after  # it passed the lock on
        lock.release()
        assert lock.try_acquire()

    asyncio.run(main())


def test_trio_lock_hands_over_in_order() -> None:
    async def main() -> None:
        lock = trio_transport._CommandLock()
        assert lock.try_acquire()
        parked: list[int] = []
        order: list[int] = []

        async def waiter(number: int) -> None:
            parked.append(number)  # (trio starts tasks in any order: queue order is this)
            await lock.acquire()
            order.append(number)
            lock.release()

        async with trio.open_nursery() as nursery:
            for number in range(3):
                nursery.start_soon(waiter, number)
            await trio.testing.wait_all_tasks_blocked()
            lock.release()
        assert order == parked
        assert sorted(order) == [0, 1, 2]
        assert lock.try_acquire()

    trio.run(main)


# ---------------------------------------------------------------- trio: full buffers


async def _write_all(client: TrioClient, data: bytes) -> None:
    """The transport's write primitive: what fits at once, then the rest as room frees."""
    rest = client._write(data)
    if rest is not None:
        await rest


def test_trio_send_waits_for_room_when_the_socket_buffer_is_full() -> None:
    # A socketpair with small buffers: the write cannot go out in one call, so the rest
    # is written as the reader frees room (no byte lost, none reordered).
    data = bytes(range(256)) * 4096  # 1 MiB

    async def main() -> None:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        theirs.setblocking(False)
        client = TrioClient()
        client._socket = ours
        received = bytearray()

        async def read_all() -> None:
            while len(received) < len(data):
                await trio.lowlevel.wait_readable(theirs)
                received.extend(theirs.recv(65536))

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_all)
                await _write_all(client, data)
        assert bytes(received) == data
        ours.close()
        theirs.close()

    trio.run(main)


def test_trio_send_on_a_full_buffer_starts_with_the_wait() -> None:
    # The buffer is already full when the command is sent: the first write sends nothing.
    async def main() -> None:
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        ours.setblocking(False)
        theirs.setblocking(False)
        try:
            while True:
                ours.send(b"f" * 65536)
        except BlockingIOError:
            pass
        client = TrioClient()
        client._socket = ours
        drained = bytearray()

        async def drain_then_stop(cancel: trio.CancelScope) -> None:
            while not drained.endswith(b"end"):
                await trio.lowlevel.wait_readable(theirs)
                drained.extend(theirs.recv(65536))
            cancel.cancel()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain_then_stop, nursery.cancel_scope)
                await _write_all(client, b"end")
        assert drained.endswith(b"fend")  # the filler, then the command, whole
        ours.close()
        theirs.close()

    trio.run(main)
