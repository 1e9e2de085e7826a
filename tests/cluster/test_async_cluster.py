"""jackstalk.AsyncCluster and jackstalk.TrioCluster on three real beanstalkd processes: puts
spread and keyed, a server killed and restarted from its binlog without losing a job, a
frozen server, reserves that wait on every server at once without polling, and a cancelled
reserve that leaves no job reserved. Each test runs once per event loop library."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asynckit import Kit
from clusterkit import Server, servers

import jackstalk
from jackstalk._app.cluster import server_name

OPTIONS: dict[str, Any] = {"backoff": 0.2, "max_backoff": 0.5}


@pytest.fixture(params=["asyncio", "trio"])
def kit(request: pytest.FixtureRequest) -> Kit:
    return Kit(request.param)


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Server]]:
    with servers(3, tmp_path) as started:
        yield started


def _stat(server: Server, name: str) -> int:
    with jackstalk.Client(server.address) as client:
        stats: dict[str, Any] = dict(client.stats())
        value: int = stats[name]
        return value


def test_puts_spread_evenly_and_keys_stay(kit: Kit, three: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in three], **OPTIONS) as cluster:
            placed = Counter([(await cluster.put(f"job {n}")).server for n in range(300)])
            assert sorted(placed.values()) == [100, 100, 100]
            batch = await cluster.put_many(["a", "b", "c"])
            assert len({ref.server for ref in batch}) == 1
            keys = [f"customer-{n}" for n in range(60)]
            first = {key: (await cluster.put("one", key=key)).server for key in keys}
            again = {key: (await cluster.put("two", key=key)).server for key in keys}
            assert first == again
            assert len(set(first.values())) == 3
            stats = await cluster.stats()
            assert stats.total["current-jobs-ready"] == 303 + 120
            assert stats.down == {}

    kit.run(main)
    assert [_stat(server, "current-jobs-ready") for server in three] != [0, 0, 0]


def test_jobs_name_their_server_and_act_there(kit: Kit, three: list[Server]) -> None:
    names = ["red", "green", "blue"]

    async def main() -> None:
        addresses = [s.address for s in three]
        async with kit.cluster(addresses, names=names, **OPTIONS) as cluster:
            await cluster.use("jobs")
            await cluster.watch("jobs")
            refs = [await cluster.put("x") for _ in range(3)]
            jobs = [await cluster.reserve(timeout=2) for _ in range(3)]
            assert sorted(str(job) for job in jobs) == sorted(f"{name}/1" for name in names)
            assert {job.ref for job in jobs if job is not None} == set(refs)
            for job in jobs:
                assert job is not None
                await job.touch()
                await job.release(priority=5)
            assert (await cluster.stats_tube("jobs")).total["current-jobs-ready"] == 3
            peeked = await cluster.peek(refs[0])
            assert peeked is not None
            assert peeked.ref == refs[0]
            job = await cluster.reserve(timeout=2)
            assert job is not None
            await job.bury()
            assert await cluster.kick(10) == 1
            for _ in range(3):
                job = await cluster.reserve(timeout=2)
                assert job is not None
                await job.delete()
            assert await cluster.reserve(timeout=0) is None
            assert "jobs" in await cluster.tubes()
            await cluster.put("held")
            held = await cluster.reserve(timeout=2)
            assert held is not None
        with pytest.raises(jackstalk.JobLostError) as caught:
            await held.delete()
        assert caught.value.server == held.server

    kit.run(main)


def test_a_killed_server_loses_nothing_that_was_stored(kit: Kit, three: list[Server]) -> None:
    victim = three[1]
    dead = server_name(victim.address)

    async def main() -> None:
        async with kit.cluster([s.address for s in three], **OPTIONS) as cluster:
            stored = {await cluster.put(f"before {n}") for n in range(60)}
            held = None
            for _ in range(10):  # a job of the victim, held reserved when it dies
                job = await cluster.reserve(timeout=2)
                assert job is not None
                if job.server == dead:
                    held = job
                    break
                await job.release()
            assert held is not None

            victim.kill()
            failed: list[str] = []
            for n in range(60):
                try:
                    stored.add(await cluster.put(f"after {n}"))
                except (jackstalk.ConnectionClosedError, TimeoutError) as error:
                    failed.append(str(error))
            # Only a put sent into the dead connection (unknown outcome) raises, naming it.
            assert len(failed) <= 1
            assert all(dead in message for message in failed)
            with pytest.raises(jackstalk.JobLostError):
                await held.delete()
            assert dead in (await cluster.stats()).down

            victim.start()  # from its binlog: the held job is ready again
            seen: set[jackstalk.ClusterJobId] = set()
            for _ in range(400):  # bounded: each round waits at most about a second
                if stored <= seen:
                    break
                found = await cluster.reserve(timeout=1)
                if found is not None:
                    seen.add(found.ref)
                    await found.delete()
            assert stored - seen == set()  # lost = 0
            assert seen == stored  # and nothing was stored that a put did not return
            assert (await cluster.stats()).down == {}

    kit.run(main)


def test_a_frozen_server_raises_and_the_others_go_on(kit: Kit, three: list[Server]) -> None:
    frozen = three[2]
    name = server_name(frozen.address)
    options: dict[str, Any] = {"backoff": 60.0, "max_backoff": 60.0}  # skipped all along

    async def main() -> None:
        async with kit.cluster([s.address for s in three], **options) as cluster:
            for n in range(3):  # every server connected
                await cluster.put(f"warm {n}")
            with frozen.frozen():
                outcomes = []
                for n in range(9):
                    try:
                        async with kit.fail_after(0.5):
                            outcomes.append((await cluster.put(f"cold {n}")).server)
                    except kit.too_slow:
                        outcomes.append("too slow")
                assert outcomes.count("too slow") == 1  # the one put sent to it
                assert name not in outcomes  # the others went elsewhere
                stats = await cluster.stats()
                assert name in stats.down
                assert len(stats.servers) == 2

    kit.run(main)


def test_reserve_waits_on_every_server_without_polling(kit: Kit) -> None:
    options: dict[str, Any] = {"backoff": 60.0, "max_backoff": 60.0}

    async def main() -> None:
        with servers(3, None) as started:
            live = started[1:]
            async with kit.cluster([s.address for s in started], **options) as cluster:
                started[0].kill()  # a dead server never holds up the others
                assert await cluster.reserve(timeout=0) is None
                before = [_stat(s, "cmd-reserve-with-timeout") for s in live]
                assert await cluster.reserve(timeout=3) is None
                after = [_stat(s, "cmd-reserve-with-timeout") for s in live]
                # Idle: one look and one wait per server, not a loop.
                assert all(b - a <= 2 for a, b in zip(before, after, strict=True))

                lonely = started[2]

                def put_once_waiting() -> int:
                    _until_waiting(live)
                    with jackstalk.Client(lonely.address) as client:
                        job_id: int = client.put("only here")
                        return job_id

                async with kit.background(lambda: _put_later(kit, put_once_waiting)):
                    job = await cluster.reserve(timeout=30)
                assert job is not None
                assert job.server == server_name(lonely.address)
                await job.delete()
                assert [_stat(s, "current-jobs-reserved") for s in live] == [0, 0]

    kit.run(main)


async def _put_later(kit: Kit, put: Callable[[], int]) -> None:
    await kit.thread(put)


def _until_waiting(group: list[Server]) -> None:
    """Return once a reserve waits on every server of ``group`` (bounded)."""
    for _ in range(100_000):
        if all(_stat(server, "current-waiting") >= 1 for server in group):
            return
    raise AssertionError("no reserve waited on every server")


def test_a_cancelled_reserve_leaves_no_job_reserved(kit: Kit, three: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in three], **OPTIONS) as cluster:
            got: list[jackstalk.AsyncClusterJob] = []

            async def consume() -> None:
                got.append(await cluster.reserve())

            def put_on_each() -> None:
                _until_waiting(three)
                for server in three:
                    with jackstalk.Client(server.address) as client:
                        client.put("x")

            async with kit.background(consume):
                await kit.thread(put_on_each)
            # The reserve was cancelled, or had handed out one job: every other job is
            # ready again now, not held by a wait that is gone.
            for job in got:
                await job.release()

            def take_all() -> list[int]:
                taken = []
                for server in three:
                    with jackstalk.Client(server.address) as client:
                        job = client.reserve(timeout=5)
                        assert job is not None
                        taken.append(job.id)
                        job.delete()
                return taken

            assert len(await kit.thread(take_all)) == 3
            assert await cluster.reserve(timeout=0) is None

    kit.run(main)


def test_arguments_are_checked(kit: Kit) -> None:
    with pytest.raises(jackstalk.InvalidArgument):
        kit.cluster([])
    with pytest.raises(jackstalk.InvalidArgument):
        kit.cluster([("127.0.0.1", 1)], parse_yaml=False)
    cluster = kit.cluster(["/run/beanstalkd.sock", ("::1", 11300)])
    assert cluster.servers == ["/run/beanstalkd.sock", "[::1]:11300"]


def test_put_into_a_tube_in_one_call(kit: Kit, three: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in three], **OPTIONS) as cluster:
            refs = [await cluster.put(f"mail {n}", tube="mail") for n in range(6)]
            await cluster.put_many(["x", "y"], tube="bulk")
            assert (await cluster.stats_tube("mail")).total["current-jobs-ready"] == 6
            assert (await cluster.stats_tube("bulk")).total["current-jobs-ready"] == 2
            assert len({ref.server for ref in refs}) == 3
            for server in three:  # the tube named last is in use on every server
                with jackstalk.Client(server.address) as client:
                    assert client.stats_tube("bulk")["current-using"] == 1

    kit.run(main)
