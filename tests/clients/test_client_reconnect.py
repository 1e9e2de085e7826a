"""Reconnecting: after ``close()``, after the server drops the connection, and never
re-sending a command whose outcome is unknown. All three clients, real beanstalkd."""

from __future__ import annotations

import asyncio
import select
import socket
import struct
import threading

import pytest
from conftest import ClientFactory, ClientView
from standin import LIMIT, Peer, StandIn, answers_using, replies, wait_event

import jackstalk
from jackstalk.testing import run_beanstalkd


async def _set_up_tubes(client: ClientView) -> None:
    assert await client.use("produce") == "produce"
    assert await client.watch("work") == 2
    assert await client.watch("more-work") == 3
    assert await client.ignore("default") == 2


async def _check_tubes(client: ClientView) -> None:
    assert await client.using() == "produce"
    assert sorted(await client.watching()) == ["more-work", "work"]


async def _let_idle_check_see(client: ClientView) -> None:
    """Wait until what the server did to an idle connection (closed it, reset it, sent
    bytes) reaches the client, and make the next command start with the idle check."""
    raw = client.client
    if client.kind == "asyncio":  # the event loop reads in the background
        for _ in range(1000):
            if raw._stream.data or raw._stream.eof:
                return
            await asyncio.sleep(0)
        raise AssertionError("the event loop never saw it")
    sock = raw._sock if client.kind == "blocking" else raw._socket
    assert select.select([sock], [], [], LIMIT)[0], "nothing arrived"
    raw._used_at = float("-inf")  # as if it had been idle for a long time


async def test_reconnect_after_close_restores_tubes(
    client: ClientView, clients: ClientFactory
) -> None:
    await _set_up_tubes(client)
    await client.close()
    await _check_tubes(client)
    observer = clients()
    stats = await observer.stats()
    assert stats["total-connections"] == 3  # the client twice, and the observer
    assert stats["current-connections"] == 2
    # The restored state works: puts go to "produce", reserves come from the watched tubes.
    job_id = await client.put("produced")
    assert (await observer.stats_job(job_id))["tube"] == "produce"
    worker = clients(use="work")
    work_id = await worker.put("work")
    job = await client.reserve(timeout=0)
    assert job.id == work_id


async def test_reconnect_after_close_keeps_later_changes(client: ClientView) -> None:
    await _set_up_tubes(client)
    await client.close()
    await client.use("second")  # reconnects, restores, then changes the tube again
    await client.ignore("work")
    await client.close()
    assert await client.using() == "second"
    assert await client.watching() == ["more-work"]


async def test_reconnect_after_the_server_restarts(clients: ClientFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        client = clients((host, port))
        with run_beanstalkd(listener=listener):
            await _set_up_tubes(client)
            assert await client.put("stored on the first server") > 0
        # The first server is gone, and its connection with it; a second one listens on the
        # same port. The put either goes out on the dead connection (and fails: its outcome
        # is unknown) or, when the client already saw the connection end while it was idle,
        # on a fresh one. Either way it is sent at most once.
        with run_beanstalkd(listener=listener):
            try:
                await client.put("outcome unknown")
                sent = 1
            except jackstalk.ConnectionClosedError:
                sent = 0
            await _check_tubes(client)
            stats = await client.stats()
            assert stats["cmd-put"] == sent  # a failed put is not sent again
            assert stats["total-jobs"] == sent
            assert (stats["cmd-use"], stats["cmd-watch"], stats["cmd-ignore"]) == (1, 2, 1)
            assert stats["total-connections"] == 1
            job_id = await client.put("stored on the second server")
            assert (await client.stats_job(job_id))["tube"] == "produce"
            await client.close()


async def test_idle_connection_closed_by_the_server_is_replaced_silently(
    clients: ClientFactory,
) -> None:
    """A connection the server closed while it sat unused is replaced before the next
    command is sent: nothing was sent on it, so there is nothing to report."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        client = clients((host, port))
        with run_beanstalkd(listener=listener):
            await _set_up_tubes(client)
        with run_beanstalkd(listener=listener):
            await _let_idle_check_see(client)
            assert await client.put("sent once, on a new connection") > 0
            await _check_tubes(client)
            assert (await client.stats())["cmd-put"] == 1


async def test_idle_connection_closed_after_a_batch_is_replaced_silently(
    clients: ClientFactory,
) -> None:
    """The same after a batch whose replies came in one read: the idle check still runs
    before the next command (the async clients then queue it rather than sending it at
    once, for the other callers' commands to join it)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        client = clients((host, port))
        with run_beanstalkd(listener=listener):
            await _set_up_tubes(client)
            assert len(await client.put_many(["one", "two", "three"])) == 3
        with run_beanstalkd(listener=listener):
            await _let_idle_check_see(client)
            assert await client.put("sent once, on a new connection") > 0
            await _check_tubes(client)
            assert (await client.stats())["cmd-put"] == 1


async def test_idle_connection_reset_by_the_server_is_replaced_silently(
    clients: ClientFactory,
) -> None:
    """The same when the connection ends with a reset rather than a clean close."""
    connected = threading.Event()
    reset = threading.Event()

    def resets(peer: Peer) -> None:
        assert connected.wait(LIMIT)  # (a reset during connect() would fail the connect)
        # Linger 0: closing sends RST instead of FIN.
        peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.sock.close()
        reset.set()

    def answers(peer: Peer) -> None:
        assert peer.put() == b"sent once"
        peer.send(b"INSERTED 7\r\n")
        peer.wait_closed()

    with StandIn(resets, answers) as standin:
        client = clients(standin.address)
        await client.connect()
        connected.set()
        await wait_event(clients.kind, reset)
        await _let_idle_check_see(client)
        assert await client.put("sent once") == 7
        await client.close()


async def test_a_reply_to_nothing_that_arrives_while_idle_is_refused(
    clients: ClientFactory,
) -> None:
    """A reply the server sends while no command waits, in a write of its own, is not taken
    for the next command's: that command raises before it is sent (here on an idle
    connection, which every client checks before it sends)."""
    first_read = threading.Event()
    extra_sent = threading.Event()

    def answers_twice(peer: Peer) -> None:
        assert peer.put() == b"once"
        peer.send(b"INSERTED 1\r\n")
        assert first_read.wait(LIMIT)
        peer.send(b"INSERTED 2\r\n")  # a reply to nothing
        extra_sent.set()
        assert peer.wait_closed() == b""  # the second put never went out

    with StandIn(answers_twice) as standin:
        client = clients(standin.address)
        assert await client.put("once") == 1
        first_read.set()
        await wait_event(clients.kind, extra_sent)
        await _let_idle_check_see(client)
        with pytest.raises(jackstalk.ProtocolError, match="unsolicited"):
            await client.put("twice")
        await client.close()


async def test_put_in_flight_is_not_resent(clients: ClientFactory) -> None:
    def takes_the_put_and_hangs_up(peer: Peer) -> bytes:
        return peer.put()  # the whole put arrives; the connection drops unanswered

    with StandIn(takes_the_put_and_hangs_up) as standin:
        client = clients(standin.address)
        with pytest.raises(jackstalk.ConnectionClosedError):
            await client.put("maybe stored")
        await standin.finished(clients.kind)
        assert standin.results == [b"maybe stored"]
        # A real server takes over the port: the next call reconnects and works, and the
        # put is not among what it was sent.
        with run_beanstalkd(listener=standin.listener):
            stats = await client.stats()
            assert stats["cmd-put"] == 0
            assert stats["total-connections"] == 1
            assert await client.put("sent once") > 0
            assert (await client.stats())["cmd-put"] == 1
            await client.close()


async def test_batch_cut_short_is_not_resent(clients: ClientFactory) -> None:
    def takes_two_puts_and_hangs_up(peer: Peer) -> None:
        peer.put()
        peer.send(b"INSERTED 1\r\n")
        peer.put()

    with StandIn(takes_two_puts_and_hangs_up) as standin:
        client = clients(standin.address)
        with pytest.raises(jackstalk.ConnectionClosedError):
            await client.put_many([b"one", b"two", b"three"])
        await standin.finished(clients.kind)
        with run_beanstalkd(listener=standin.listener):
            assert (await client.stats())["cmd-put"] == 0
            await client.close()


async def test_restore_happens_before_the_first_command(clients: ClientFactory) -> None:
    records = replies(b"USING jobs\r\n", b"WATCHING 2\r\n", b"WATCHING 1\r\n", b"USING jobs\r\n")
    with StandIn(records) as standin:
        client = clients(standin.address, use="jobs", watch="work")
        assert await client.using() == "jobs"
        await client.close()
    assert standin.results == [[b"use jobs", b"watch work", b"ignore default", b"list-tube-used"]]


async def test_fractional_reserve_timeout_rounds_up(clients: ClientFactory) -> None:
    with StandIn(replies(b"TIMED_OUT\r\n", b"TIMED_OUT\r\n", b"TIMED_OUT\r\n")) as standin:
        client = clients(standin.address)
        assert await client.reserve(timeout=0.001) is None
        assert await client.reserve(timeout=1.5) is None
        assert await client.reserve(timeout=0) is None
        await client.close()
    assert standin.results == [
        [
            b"reserve-with-timeout 1",
            b"reserve-with-timeout 2",
            b"reserve-with-timeout 0",
        ]
    ]


async def test_protocol_error_drops_the_connection(clients: ClientFactory) -> None:
    answers_nonsense = replies(b"INSERTED 1\r\n")  # not a reply to list-tube-used
    with StandIn(answers_nonsense, answers_using) as standin:
        client = clients(standin.address)
        with pytest.raises(jackstalk.ProtocolError):
            await client.using()
        assert await client.using() == "default"  # a new connection
        await client.close()
