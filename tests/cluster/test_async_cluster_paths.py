"""jackstalk.AsyncCluster's and jackstalk.TrioCluster's less travelled paths on real
beanstalkd processes: a draining server passed over, every server down, a job whose server
died under each of its methods, a body that does not decode (found at once or while
waiting), peeks and kick, tube edge cases with reserving connections, stats with a server
down, and a reserve cancelled while it waits. Each test runs once per event loop library."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from asynckit import Kit
from clusterkit import Server, servers

import jackstalk
from jackstalk._app.cluster import AsyncClusterJob, rendezvous, server_name

OPTIONS: dict[str, Any] = {"backoff": 0.2, "max_backoff": 0.5}
SLOW: dict[str, Any] = {"backoff": 60.0, "max_backoff": 60.0}
"""A failed server stays down for the whole test."""

Cluster = jackstalk.AsyncCluster | jackstalk.TrioCluster


@pytest.fixture(params=["asyncio", "trio"])
def kit(request: pytest.FixtureRequest) -> Kit:
    return Kit(request.param)


@pytest.fixture
def two() -> Iterator[list[Server]]:
    with servers(2, None) as started:
        yield started


def _stats(server: Server) -> dict[str, Any]:
    with jackstalk.Client(server.address) as client:
        return dict(client.stats())


def _drain(server: Server) -> None:
    """Put ``server`` in drain mode (SIGUSR1) and return once it says so."""
    assert server.process is not None
    # An answer first: beanstalkd handles SIGUSR1 once it serves (before, it would die).
    assert _stats(server)["draining"] is False
    os.kill(server.process.pid, signal.SIGUSR1)
    for _ in range(10_000):
        if _stats(server)["draining"] is True:
            return
    raise AssertionError("the server never entered drain mode")


def _until_waiting(group: list[Server], count: int = 1) -> None:
    """Return once ``count`` reserves wait on every server of ``group`` (bounded)."""
    for _ in range(100_000):
        if all(_stats(server)["current-waiting"] >= count for server in group):
            return
    raise AssertionError("no reserve waited on every server")


def _name(server: Server) -> str:
    return server_name(server.address)


def test_a_draining_server_is_passed_over(kit: Kit, two: list[Server]) -> None:
    draining, open_ = two

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            await cluster.put("warm", key=_key_for(_name(draining), cluster.servers))
            _drain(draining)
            placed = {(await cluster.put(f"job {n}")).server for n in range(6)}
            assert placed == {_name(open_)}
            assert "DrainingError" in cluster.down()[_name(draining)]
            key = _key_for(_name(draining), cluster.servers)
            assert (await cluster.put("keyed", key=key)).server == _name(open_)
            _drain(open_)
            with pytest.raises(jackstalk.ConnectionClosedError, match=r"\(draining\)"):
                await cluster.put("nowhere")
            with pytest.raises(jackstalk.ConnectionClosedError, match="none is up"):
                await cluster.put_many(["a", "b"])
        assert _stats(open_)["current-jobs-ready"] == 7

    kit.run(main)


def _key_for(name: str, names: list[str]) -> str:
    for n in range(10_000):
        key = f"key-{n}"
        if rendezvous(key, names)[0] == name:
            return key
    raise AssertionError(f"no key prefers {name}")


def test_every_server_down(kit: Kit, two: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], **OPTIONS) as cluster:
            assert await cluster.reserve(timeout=0) is None  # reserving connections open
            for server in two:
                server.kill()
            with pytest.raises(jackstalk.ConnectionClosedError, match="no server took"):
                await cluster.put("x")
            assert set(cluster.down()) == set(cluster.servers)
            # Nothing is up: the reserve sleeps out the backoffs, trying again, until its end.
            assert await cluster.reserve(timeout=0.3) is None
            stats = await cluster.stats()
            assert stats.servers == {}
            assert set(stats.down) == set(cluster.servers)
        for call in ("tubes", "kick", "peek_ready", "peek_delayed", "stats", "stats_tube"):
            async with kit.cluster([s.address for s in two], **SLOW) as cluster:
                assert cluster.down() == {}
                if call == "tubes":
                    assert await cluster.tubes() == []
                elif call == "kick":
                    assert await cluster.kick(5) == 0
                elif call == "peek_ready":
                    assert await cluster.peek_ready() is None
                elif call == "peek_delayed":
                    assert await cluster.peek_delayed() is None
                elif call == "stats":
                    assert set((await cluster.stats()).down) == set(cluster.servers)
                else:
                    stats = await cluster.stats_tube("default")
                    assert stats.total == {"name": "default"}
                assert set(cluster.down()) == set(cluster.servers)
                with pytest.raises(jackstalk.ConnectionClosedError, match="down: "):
                    await cluster.put("x", key="k")

    kit.run(main)


def test_stats_and_commands_with_one_server_down(kit: Kit, two: list[Server]) -> None:
    dead, alive = two

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            await cluster.use("work")
            for n in range(4):
                await cluster.put(f"job {n}")
            dead.kill()
            stats = await cluster.stats_tube("work")
            assert list(stats.servers) == [_name(alive)]
            assert list(stats.down) == [_name(dead)]
            assert stats.total["current-jobs-ready"] == 2
            assert "work" in await cluster.tubes()
            assert await cluster.watch("work") == 2
            assert await cluster.ignore("default") == 1
            job = await cluster.reserve(timeout=2)
            assert job is not None
            assert job.server == _name(alive)
            await job.bury()
            assert await cluster.kick(3) == 1
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            with pytest.raises(jackstalk.ConnectionClosedError) as caught:
                await cluster.peek(jackstalk.ClusterJobId(_name(dead), 1))
            assert f"server: {_name(dead)}" in caught.value.__notes__
            assert _name(dead) in cluster.down()

    kit.run(main)


def test_peeks_kick_and_job_commands(kit: Kit, two: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], names=["a", "b"], **OPTIONS) as cluster:
            assert await cluster.peek_ready() is None
            assert await cluster.peek_delayed() is None
            assert await cluster.peek_buried() is None
            delayed = await cluster.put("later", delay=3600)
            found = await cluster.peek_delayed()
            assert found is not None
            assert found.ref == delayed
            assert (await found.stats())["state"] == "delayed"
            await found.kick()  # a peeked job acts through its server's command connection
            ready = await cluster.peek_ready()
            assert ready == found
            await found.delete()
            assert await cluster.peek(delayed) is None

            for n in range(4):  # two on each server
                await cluster.put(f"job {n}")
            held = [await cluster.reserve(timeout=2) for _ in range(4)]
            assert {job.server for job in held if job is not None} == {"a", "b"}
            for job in held:
                assert job is not None
                assert (await job.stats())["state"] == "reserved"
                await job.bury()
            buried = await cluster.peek_buried()
            assert buried is not None
            assert repr(buried).startswith(f"AsyncClusterJob(server={buried.server!r}, id=")
            assert await cluster.kick(1) == 1  # the bound is reached on the first server
            assert await cluster.kick(10) == 3
            first = await cluster.reserve(timeout=2)
            assert first is not None
            with pytest.raises(jackstalk.NotFoundError) as caught:
                await first.kick()  # a reserved job is neither buried nor delayed
            assert f"server: {first.server}" in caught.value.__notes__
            await first.delete()
            with pytest.raises(jackstalk.NotFoundError):
                await first.delete()  # the error stands: the connection is fine
            # Its connection holds nothing now: the next reserve on that server uses it.
            again = await cluster.reserve(timeout=2)
            assert again is not None
            await again.release()
            assert cluster.down() == {}

    kit.run(main)


@pytest.mark.parametrize("method", ["delete", "release", "bury", "touch", "kick", "stats"])
def test_every_method_of_a_job_whose_server_died_raises_job_lost(
    kit: Kit, two: list[Server], method: str
) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            await cluster.put("one")
            await cluster.put("two")
            job = await cluster.reserve(timeout=2)
            assert job is not None
            victim = next(s for s in two if _name(s) == job.server)
            victim.kill()
            with pytest.raises(jackstalk.JobLostError) as broke:
                await getattr(job, method)()
            assert broke.value.server == job.server
            assert broke.value.job_id == job.id
            assert "outcome is unknown" in str(broke.value)
            with pytest.raises(jackstalk.JobLostError, match="the connection that reserved"):
                await getattr(job, method)()
            survivor = await cluster.reserve(timeout=2)
            assert survivor is not None
            assert survivor.server != job.server
            await survivor.delete()

    kit.run(main)


def test_a_body_that_does_not_decode(kit: Kit, two: list[Server]) -> None:
    target = two[0]

    def put_raw() -> int:
        with jackstalk.Client(target.address, encoding=None) as raw:
            job_id: int = raw.put(b"\xff not utf-8")
            return job_id

    async def check(caught: pytest.ExceptionInfo[jackstalk.BodyDecodeError], job_id: int) -> None:
        assert str(caught.value).startswith(f"{_name(target)}: ")
        job = caught.value.job
        assert isinstance(job, AsyncClusterJob)
        assert job.server == _name(target)
        assert job.id == job_id
        assert job.body == b"\xff not utf-8"
        await job.bury()  # still reserved: it can be buried

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **OPTIONS) as cluster:
            job_id = put_raw()
            with pytest.raises(jackstalk.BodyDecodeError) as caught:
                await cluster.reserve(timeout=2)  # found by the first look
            await check(caught, job_id)

            def put_once_waiting() -> None:
                _until_waiting(two)
                put_raw()

            async def put_later() -> None:
                await kit.thread(put_once_waiting)

            async with kit.background(put_later):
                # (caught inside: trio would wrap it in its nursery's exception group)
                with pytest.raises(jackstalk.BodyDecodeError) as waited:
                    await cluster.reserve(timeout=30)  # found by the wait on every server
            await check(waited, job_id + 1)  # the next put on that server
            assert await cluster.reserve(timeout=0) is None
        assert _stats(target)["current-jobs-buried"] == 2

    kit.run(main)


def test_tubes_reach_idle_reserving_connections(kit: Kit, two: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            with pytest.raises(jackstalk.NotIgnoredError):
                await cluster.ignore("default")
            assert await cluster.reserve(timeout=0) is None  # a reserving connection each
            assert await cluster.watch("other") == 2
            assert await cluster.ignore("default") == 1
            assert await cluster.ignore("never-watched") == 1
            for server in two:  # the command and the reserving connection watch "other"
                with jackstalk.Client(server.address) as client:
                    assert client.stats_tube("other")["current-watching"] == 2
            await cluster.put("in other", tube="other")
            job = await cluster.reserve(timeout=2)
            assert job is not None
            assert job.body == "in other"
            # A server that fails is marked down; the job held on the other one stays held.
            victim = next(s for s in two if _name(s) != job.server)
            victim.kill()
            assert await cluster.watch("third") == 2
            assert _name(victim) in cluster.down()
            assert (await job.stats())["state"] == "reserved"
            await job.delete()

    kit.run(main)


def test_a_watch_during_a_concurrent_reserve(kit: Kit, two: list[Server]) -> None:
    """A watch while a reserve waits leaves the waiting connections alone (they get the
    tubes when they reconnect): the next reserve finds a job in the new tube."""

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **OPTIONS) as cluster:
            got: list[AsyncClusterJob] = []

            async def consume() -> None:
                got.append(await cluster.reserve())

            async with kit.background(consume):
                await kit.thread(lambda: _until_waiting(two))
                assert await cluster.watch("late") == 2
            assert got == []
            await cluster.put("late job", tube="late")
            job = await cluster.reserve(timeout=2)
            assert job is not None
            assert job.body == "late job"
            await job.delete()

    kit.run(main)


def test_a_reserve_cancelled_while_it_waits(kit: Kit, two: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], **OPTIONS) as cluster:
            got: list[AsyncClusterJob] = []

            async def consume() -> None:
                got.append(await cluster.reserve())

            async with kit.background(consume):
                await kit.thread(lambda: _until_waiting(two))
            assert got == []
            assert [_stats(s)["current-waiting"] for s in two] == [0, 0]
            await cluster.put("after")
            job = await cluster.reserve(timeout=2)
            assert job is not None
            await job.delete()

    kit.run(main)


def test_a_put_refused_by_the_client_is_not_an_outage(kit: Kit, two: list[Server]) -> None:
    async def main() -> None:
        async with kit.cluster([s.address for s in two], **OPTIONS) as cluster:
            with pytest.raises(jackstalk.InvalidArgument) as caught:
                await cluster.put("x", priority=-1)
            assert any(note.startswith("server: ") for note in caught.value.__notes__)
            assert cluster.down() == {}

    kit.run(main)


def test_a_put_cancelled_on_its_way(kit: Kit, two: list[Server]) -> None:
    """A put cut off by the caller's deadline while its server is frozen: the server is
    skipped a while, the cancellation goes on."""
    frozen = two[0]

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            key = _key_for(_name(frozen), cluster.servers)
            await cluster.put("warm", key=key)
            with frozen.frozen():
                if kit.name == "asyncio":
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.3):
                            await cluster.put("cold", key=key)
                else:
                    with trio.move_on_after(0.3) as scope:
                        await cluster.put("cold", key=key)
                    assert scope.cancelled_caught
            assert _name(frozen) in cluster.down()

    kit.run(main)


def test_a_server_killed_while_the_reserve_waits(kit: Kit, two: list[Server]) -> None:
    victim, survivor = two

    async def main() -> None:
        async with kit.cluster([s.address for s in two], **SLOW) as cluster:
            with pytest.raises(jackstalk.NotFoundError, match="no server has the tube"):
                await cluster.stats_tube("no-such-tube")

            def kill_then_put() -> None:
                _until_waiting(two)
                victim.kill()
                for _ in range(100_000):  # until the waiting reserve saw it die
                    if _name(victim) in cluster.down():
                        break
                else:
                    raise AssertionError("the dead server was never marked down")
                with jackstalk.Client(survivor.address) as client:
                    client.put("survivor's")

            async def in_thread() -> None:
                await kit.thread(kill_then_put)

            async with kit.background(in_thread):
                job = await cluster.reserve(timeout=30)
            assert job is not None
            assert job.server == _name(survivor)
            assert "ConnectionClosedError" in cluster.down()[_name(victim)]
            await job.delete()

    kit.run(main)


def test_repr(kit: Kit) -> None:
    cluster: Cluster = kit.cluster([("127.0.0.1", 1)], names=["only"])
    assert repr(cluster) == f"{kit.cluster.__name__}(['only'])"
