"""What only the async clients have: cancellation, and one client shared by several tasks.

Run on asyncio and trio (this module narrows the ``transport`` fixture to those two). Tasks
wait on events, on the server's replies or on its stats, never on the clock.
"""

from __future__ import annotations

import threading

import pytest
from clientkit import cancel_when, gather, settle, until_stat
from conftest import ClientFactory, ClientView
from standin import LIMIT, Peer, StandIn, answers_using, wait_event

import jackstalk


@pytest.fixture(params=["asyncio", "trio"])
def transport(request: pytest.FixtureRequest) -> str:
    """The async client kinds only."""
    return str(request.param)


async def test_cancel_a_waiting_reserve(
    client: ClientView, clients: ClientFactory, transport: str
) -> None:
    observer = clients()
    await client.watch("jobs")

    async def reserve_is_waiting() -> None:
        await until_stat(observer, "current-waiting", 1)

    await cancel_when(transport, client.reserve, reserve_is_waiting)
    # The cancelled reserve's connection was closed: the server stops waiting on it...
    await until_stat(observer, "current-waiting", 0)
    # ...so a job put now is handed to nobody.
    producer = clients(use="jobs")
    job_id = await producer.put("after the cancel")
    stats = await observer.stats()
    assert stats["current-jobs-reserved"] == 0
    assert stats["current-jobs-ready"] == 1
    # The cancelled client works again: it reconnects, restoring its watch list.
    assert await client.watching() == ["default", "jobs"]
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (job_id, "after the cancel")
    await job.delete()


async def test_cancel_a_reserve_with_timeout(
    client: ClientView, clients: ClientFactory, transport: str
) -> None:
    observer = clients()

    async def reserve() -> object:
        return await client.reserve(timeout=30)

    async def reserve_is_waiting() -> None:
        await until_stat(observer, "current-waiting", 1)

    await cancel_when(transport, reserve, reserve_is_waiting)
    await until_stat(observer, "current-waiting", 0)
    assert await client.reserve(timeout=0) is None
    assert (await observer.stats())["current-connections"] == 2


async def test_cancel_mid_reply(clients: ClientFactory, transport: str) -> None:
    partial_sent = threading.Event()
    closed_seen = threading.Event()

    def trickles(peer: Peer) -> None:
        assert peer.line() == b"reserve"
        peer.send(b"RESERVED 1 5\r\nhe")  # then stalls, the body unfinished
        partial_sent.set()
        assert peer.wait_closed() == b""
        closed_seen.set()

    with StandIn(trickles, answers_using) as standin:
        client = clients(standin.address)

        async def partial_reply_sent() -> None:
            await wait_event(transport, partial_sent)

        await cancel_when(transport, client.reserve, partial_reply_sent)
        # The client closed the connection whose reply it had half read...
        await wait_event(transport, closed_seen)
        # ...and the next call opens a new one, in step from its first byte.
        assert await client.using() == "default"
        await client.close()


async def test_cancel_while_a_put_waits_for_its_reply(
    clients: ClientFactory, transport: str
) -> None:
    # A put cancelled after it was written leaves the connection open: its reply, when it
    # comes, is read and dropped in order, and the next command gets its own.
    put_read = threading.Event()

    def answers_late(peer: Peer) -> list[bytes]:
        body = peer.put()
        put_read.set()
        line = peer.line()  # the next command, pipelined behind the unanswered put
        peer.send(b"INSERTED 41\r\nUSING default\r\n")
        peer.wait_closed()
        return [body, line]

    with StandIn(answers_late) as standin:
        client = clients(standin.address)

        async def put() -> object:
            return await client.put("unanswered")

        async def put_arrived() -> None:
            await wait_event(transport, put_read)

        await cancel_when(transport, put, put_arrived)
        # Not re-sent, and the same connection: the put's late reply is not this one's.
        assert await client.using() == "default"
        await client.close()
    assert standin.results == [[b"unanswered", b"list-tube-used"]]


async def test_shared_client_serialises_commands(client: ClientView, transport: str) -> None:
    async def producer(tag: str) -> list[int]:
        return [await client.put(f"{tag}-{i}") for i in range(200)]

    async def batch() -> list[int]:
        ids: list[int] = []
        for i in range(20):
            ids += await client.put_many([f"batch-{i}-{j}" for j in range(10)])
        return ids

    async def inspector() -> list[str]:
        return [await client.using() for _ in range(200)]

    first, second, batched, used = await gather(
        transport, lambda: producer("a"), lambda: producer("b"), batch, inspector
    )
    assert used == ["default"] * 200
    everything = first + second + batched
    assert len(set(everything)) == 600
    for ids in (first, second, batched):
        assert ids == sorted(ids)
    assert (await client.peek(first[17])).body == "a-17"
    assert (await client.peek(second[199])).body == "b-199"
    assert (await client.peek(batched[15])).body == "batch-1-5"
    assert (await client.stats())["current-jobs-ready"] == 600


async def test_command_while_reserve_waits_is_refused(
    client: ClientView, clients: ClientFactory, transport: str
) -> None:
    observer = clients()

    async def worker() -> object:
        return await client.reserve(timeout=30)

    async def meddler() -> int:
        await until_stat(observer, "current-waiting", 1)
        with pytest.raises(jackstalk.ClientBusyError):
            await client.put("would wait behind the reserve")
        with pytest.raises(jackstalk.ClientBusyError):
            await client.put_many(["nor this"])
        with pytest.raises(jackstalk.ClientBusyError):
            await client.reserve(timeout=0)
        await client.connect()  # already connected: nothing to refuse
        job_id: int = await observer.put("for the worker")
        return job_id

    job, job_id = await gather(transport, worker, meddler)
    assert issubclass(jackstalk.ClientBusyError, RuntimeError)
    assert (job.id, job.body) == (job_id, "for the worker")
    # The refused commands never reached the server, and the client is usable.
    assert (await observer.stats())["cmd-put"] == 1
    await job.delete()
    assert await client.using() == "default"


async def test_close_from_another_task_ends_a_waiting_reserve(
    client: ClientView, clients: ClientFactory, transport: str
) -> None:
    observer = clients()

    async def worker() -> None:
        with pytest.raises(jackstalk.ConnectionClosedError):
            await client.reserve()

    async def closer() -> None:
        await until_stat(observer, "current-waiting", 1)
        await client.close()

    await gather(transport, worker, closer)
    await until_stat(observer, "current-waiting", 0)
    assert await client.reserve(timeout=0) is None


async def test_command_behind_a_queued_reserve_is_refused(
    clients: ClientFactory, transport: str
) -> None:
    put_seen = threading.Event()
    answer_put = threading.Event()

    def holds_the_put(peer: Peer) -> None:
        peer.put()
        put_seen.set()
        assert answer_put.wait(LIMIT)
        peer.send(b"INSERTED 1\r\n")
        assert peer.line() == b"reserve"
        peer.send(b"RESERVED 1 3\r\njob\r\n")
        peer.wait_closed()

    with StandIn(holds_the_put) as standin:
        client = clients(standin.address)

        async def producer() -> object:
            return await client.put("first")

        queued: list[bool] = []

        async def worker() -> object:
            await wait_event(transport, put_seen)
            queued.append(True)
            # The call runs without a pause up to the lock the put holds: from then on the
            # reserve counts as waiting.
            return await client.reserve()

        async def meddler() -> None:
            await wait_event(transport, put_seen)
            while not queued:
                await settle(transport)
            # This put could only run after the reserve, however long that waits.
            with pytest.raises(jackstalk.ClientBusyError):
                await client.put("behind the reserve")
            answer_put.set()

        job_id, job, _ = await gather(transport, producer, worker, meddler)
        assert job_id == 1
        assert (job.id, job.body) == (1, "job")
        await client.close()
