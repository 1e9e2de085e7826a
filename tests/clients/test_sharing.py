"""Many callers on one client: threads sharing a blocking client, and tasks pipelining their
commands on one asyncio or trio client, against real beanstalkd and the embedded server.

Every caller must get exactly its own reply; the server must hold exactly the jobs whose
puts were confirmed, plus those of puts cancelled after they were written; no job is left
reserved by a caller that went away.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio

import jackstalk
from jackstalk.testing import BeanstalkdServer

LIMIT = 60.0
"""Seconds any one call may take: a failing test's bound, never a synchronisation delay."""

# (``address``, from conftest, is a real beanstalkd and the embedded server in turn.)


@contextmanager
def observer(address: Any) -> Iterator[jackstalk.Client]:
    """A client of its own, to look at the server's state."""
    with jackstalk.Client(address, timeout=LIMIT) as client:
        yield client


def total_jobs(client: jackstalk.Client, tube: str) -> int:
    """How many jobs were ever put into ``tube`` (0 if it does not exist)."""
    try:
        return int(client.stats_tube(tube)["total-jobs"])
    except jackstalk.NotFoundError:
        return 0


async def until(kind: str, check: Callable[[], bool], what: str) -> None:
    """Ask the server (``check``) until it says yes, letting the loop run between tries;
    each try is a round trip, not a sleep."""
    for _ in range(20_000):
        if check():
            return
        if kind == "trio":
            await trio.lowlevel.checkpoint()
        else:
            await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


# ---------------------------------------------------------------- threads


@pytest.mark.parametrize("threads", [4, 16])
def test_threads_sharing_a_blocking_client_each_get_their_own_replies(
    address: Any, threads: int
) -> None:
    tube = f"threads-{threads}"
    per_thread = 60
    client = jackstalk.Client(address, use=tube, timeout=LIMIT)
    results: dict[int, list[tuple[str, int]]] = {}
    stats_seen: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(index: int) -> None:
        try:
            start.wait(LIMIT)
            mine: list[tuple[str, int]] = []
            for n in range(per_thread):
                body = f"t{index}-{n}"
                mine.append((body, client.put(body)))
                if n % 7 == 0:
                    stats = client.stats_tube(tube)
                    assert stats["name"] == tube  # a stats reply, not a put's
                    stats_seen.append(stats["total-jobs"])
                if n % 11 == 0:
                    assert client.using() == tube
            results[index] = mine
        except BaseException as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(LIMIT)
    assert errors == []
    ids = [job_id for mine in results.values() for _, job_id in mine]
    assert len(ids) == len(set(ids)) == threads * per_thread
    with observer(address) as watcher:
        assert total_jobs(watcher, tube) == threads * per_thread  # stored == returned
        for mine in results.values():
            for body, job_id in mine[::13]:
                job = watcher.peek(job_id)
                assert job is not None
                assert job.body == body  # the id a thread got is its own job's
    client.close()


def test_a_call_while_another_threads_reserve_waits_is_refused(address: Any) -> None:
    client = jackstalk.Client(address, watch="refuse", timeout=LIMIT)
    got: list[Any] = []

    def reserve() -> None:
        got.append(client.reserve())

    waiting = threading.Thread(target=reserve)
    waiting.start()
    with observer(address) as watcher:
        for _ in range(10_000):  # each try a round trip to the server, not a sleep
            if watcher.stats()["current-waiting"] == 1:
                break
        else:
            pytest.fail("the reserve never waited")
        with pytest.raises(jackstalk.ClientBusyError):
            client.put("behind a reserve")
        watcher.use("refuse")
        job_id = watcher.put("for the reserve")
        waiting.join(LIMIT)
        assert [job.id for job in got] == [job_id]
    client.close()


# ---------------------------------------------------------------- tasks


def _run(kind: str, main: Callable[[], Any]) -> None:
    if kind == "asyncio":
        asyncio.run(main())
    else:
        trio.run(main)


def _client(kind: str, address: Any, **options: Any) -> Any:
    cls = jackstalk.AsyncClient if kind == "asyncio" else jackstalk.TrioClient
    return cls(address, **options)


async def _gather(kind: str, jobs: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(jobs)

    async def run(index: int) -> None:
        results[index] = await jobs[index]()

    if kind == "asyncio":
        await asyncio.gather(*(run(index) for index in range(len(jobs))))
    else:
        async with trio.open_nursery() as nursery:
            for index in range(len(jobs)):
                nursery.start_soon(run, index)
    return results


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
@pytest.mark.parametrize("tasks", [1, 4, 64, 256])
def test_tasks_sharing_a_client_each_get_their_own_replies(
    address: Any, kind: str, tasks: int
) -> None:
    tube = f"tasks-{tasks}"
    steps = max(4, 400 // tasks)

    async def main() -> None:
        client = _client(kind, address, use=tube)
        try:

            async def caller(index: int) -> list[tuple[str, object, object]]:
                rng = random.Random(index)
                seen: list[tuple[str, object, object]] = []
                for n in range(steps):
                    choice = rng.randrange(5)
                    body = f"k{index}-{n}"
                    if choice <= 1:
                        seen.append(("put", body, await client.put(body)))
                    elif choice == 2:
                        ids = await client.put_many([body + "a", body + "b"])
                        seen.append(("put_many", body, ids))
                    elif choice == 3:
                        # An error reply goes to its own caller only.
                        with pytest.raises(jackstalk.NotFoundError):
                            await client.delete(10**12 + index)
                        seen.append(("error", body, None))
                    else:
                        stats = await client.stats_tube(tube)
                        seen.append(("stats", body, stats["name"]))
                return seen

            everything = await _gather(
                kind,
                [lambda i=i: caller(i) for i in range(tasks)],  # type: ignore[misc]
            )
        finally:
            await client.close()
        stored: dict[int, str] = {}
        for seen in everything:
            for what, body, result in seen:
                if what == "put":
                    assert isinstance(result, int)
                    stored[result] = body
                elif what == "put_many":
                    assert isinstance(result, list)
                    stored[result[0]] = body + "a"
                    stored[result[1]] = body + "b"
                elif what == "stats":
                    assert result == tube
        with observer(address) as watcher:
            assert total_jobs(watcher, tube) == len(stored)
            for job_id, body in list(stored.items())[:: max(1, len(stored) // 50)]:
                job = watcher.peek(job_id)
                assert job is not None
                assert job.body == body

    _run(kind, main)


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
@pytest.mark.parametrize("seed", range(6))
def test_random_cancellations_lose_nothing_and_strand_nothing(
    address: Any, kind: str, seed: int
) -> None:
    """Tasks put, peek and reserve-with-timeout on one client while some are cancelled at
    random points: every put either returned its id or was cancelled; the server holds the
    confirmed puts plus at most the cancelled ones, each body at most once; no job stays
    reserved; the client goes on working."""
    tube = f"cancel-{seed}"
    rng = random.Random(seed)
    tasks = rng.choice([8, 32, 128])
    plan = [(rng.random() < 0.3, rng.randrange(4), rng.randrange(6)) for _ in range(tasks)]

    async def main() -> None:
        keeper = jackstalk.Client(address, watch=tube, timeout=LIMIT)  # the tube lives on
        keeper.connect()
        client = _client(kind, address, use=tube, watch=tube)
        confirmed: dict[str, int] = {}
        cancelled: set[str] = set()
        reserved: list[Any] = []
        try:

            async def caller(index: int) -> None:
                cancel, what, turns = plan[index]
                body = f"c{seed}-{index}"

                async def command() -> None:
                    if what == 0 or what == 1:
                        confirmed[body] = await client.put(body)
                    elif what == 2:
                        job = await client.peek(10**12 + index)
                        assert job is None
                    else:
                        job = await client.put_many([body])
                        confirmed[body] = job[0]

                if not cancel:
                    await command()
                    return
                if kind == "asyncio":
                    task = asyncio.ensure_future(command())
                    for _ in range(turns):
                        await asyncio.sleep(0)  # a turn of the loop, no time passes
                    task.cancel()
                    try:
                        await task
                    except asyncio.CancelledError:
                        if what != 2:
                            cancelled.add(body)
                else:
                    with trio.CancelScope() as scope:
                        for _ in range(turns):
                            await trio.lowlevel.checkpoint()
                        scope.cancel()
                        await command()
                    if scope.cancelled_caught and what != 2:
                        cancelled.add(body)

            await _gather(kind, [lambda i=i: caller(i) for i in range(tasks)])  # type: ignore[misc]
            # The client goes on working: the late replies of cancelled commands were read
            # and dropped, in order.
            assert await client.using() == tube
            job = await client.reserve(timeout=0)
            while job is not None:
                reserved.append(job)
                await job.delete()
                job = await client.reserve(timeout=0)
        finally:
            await client.close()
        bodies = [job.body for job in reserved]
        assert len(bodies) == len(set(bodies))  # nothing stored twice
        assert set(confirmed) <= set(bodies)  # nothing confirmed was lost
        assert set(bodies) <= set(confirmed) | cancelled  # nothing unknown was stored
        with observer(address) as watcher:
            assert watcher.stats()["current-jobs-reserved"] == 0
            assert total_jobs(watcher, tube) == len(bodies)
        keeper.close()

    _run(kind, main)


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
def test_a_cancelled_reserve_closes_its_connection(beanstalkd: BeanstalkdServer, kind: str) -> None:
    """A reserve cut off while it waits closes the connection, so no job the server hands
    out afterwards can be reserved for a caller that went away; the next call reconnects."""

    async def main() -> None:
        client = _client(kind, beanstalkd.address, use="back", watch="back")
        with observer(beanstalkd.address) as watcher:
            await client.connect()

            async def waiting() -> None:
                await until(kind, lambda: watcher.stats()["current-waiting"] == 1, "a wait")

            if kind == "asyncio":
                task = asyncio.ensure_future(client.reserve())
                await waiting()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            else:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.reserve)
                    await waiting()
                    nursery.cancel_scope.cancel()
            await until(
                kind,
                lambda: watcher.stats()["current-connections"] == 1,  # the watcher's own
                "the reserve's connection closed",
            )
            watcher.use("back")
            job_id = watcher.put("not for a caller that left")
            assert watcher.stats_job(job_id)["state"] == "ready"
            assert await client.using() == "back"  # the next call reconnects
        await client.close()

    _run(kind, main)


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
def test_submitted_without_awaiting_memory_stays_bounded(
    beanstalkd: BeanstalkdServer, kind: str
) -> None:
    """Thousands of puts started at once: the client holds at most its bound of commands
    queued and in flight; the others wait for room (and all complete)."""
    from jackstalk._api.async_transport import MAX_COMMANDS

    total = MAX_COMMANDS * 2 + 100

    async def main() -> None:
        client = _client(kind, beanstalkd.address, use="bounded")
        peak = 0

        async def put(index: int) -> int:
            nonlocal peak
            peak = max(peak, client._count)
            job_id: int = await client.put(f"{index}")
            peak = max(peak, client._count)
            return job_id

        ids = await _gather(kind, [lambda i=i: put(i) for i in range(total)])  # type: ignore[misc]
        await client.close()
        assert len(set(ids)) == total
        assert peak <= MAX_COMMANDS

    _run(kind, main)
