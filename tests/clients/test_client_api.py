"""Every client method, written once and run on the blocking, asyncio and trio clients
against a real beanstalkd (see conftest: ``client`` awaits every method alike)."""

from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest
from conftest import ClientFactory, ClientView, resolve


async def test_put_reserve_delete(client: ClientView) -> None:
    job_id = await client.put("hello")
    assert isinstance(job_id, int)
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    assert job.body == "hello"
    await job.delete()
    assert await client.peek(job_id) is None


async def test_reserve_timeouts(client: ClientView) -> None:
    assert await client.reserve(timeout=0) is None
    first = await client.put("a")
    second = await client.put("b")
    third = await client.put("c")
    job = await client.reserve()  # timeout=None: a plain reserve, served at once
    assert job.id == first
    job = await client.reserve(timeout=None)
    assert job.id == second
    job = await client.reserve(timeout=2.5)
    assert job.id == third
    assert await client.reserve(timeout=0) is None
    stats = await client.stats()
    assert stats["cmd-reserve"] == 2
    assert stats["cmd-reserve-with-timeout"] == 3
    assert stats["current-jobs-reserved"] == 3


async def test_use_using_and_put_into_used_tube(client: ClientView) -> None:
    assert await client.using() == "default"
    assert await client.use("emails") == "emails"
    assert await client.using() == "emails"
    job_id = await client.put("to emails")
    assert (await client.stats_job(job_id))["tube"] == "emails"
    # peek-ready looks at the used tube, reserve at the watched ones.
    assert (await client.peek_ready()).id == job_id
    assert await client.reserve(timeout=0) is None
    assert await client.use("default") == "default"
    assert await client.peek_ready() is None


async def test_watch_ignore_watching(client: ClientView) -> None:
    assert await client.watching() == ["default"]
    assert await client.watch("a") == 2
    assert await client.watch("b") == 3
    assert await client.watch("a") == 3  # already watched: same count
    assert await client.watching() == ["default", "a", "b"]
    assert await client.ignore("default") == 2
    assert sorted(await client.watching()) == ["a", "b"]
    assert await client.ignore("never-watched") == 2
    await client.use("b")
    job_id = await client.put("in b")
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    await job.delete()


async def test_tubes(client: ClientView, clients: ClientFactory) -> None:
    assert await client.tubes() == ["default"]
    await client.use("one")
    await client.watch("two")
    assert sorted(await client.tubes()) == ["default", "one", "two"]
    other = clients()
    assert sorted(await other.tubes()) == ["default", "one", "two"]


async def test_priorities_and_fifo_within_a_priority(client: ClientView) -> None:
    puts = [("p5", 5), ("p1-first", 1), ("p3", 3), ("p1-second", 1), ("p0", 0), ("max", 2**32 - 1)]
    ids = {body: await client.put(body, priority=priority) for body, priority in puts}
    order = ["p0", "p1-first", "p1-second", "p3", "p5", "max"]
    for body in order:
        job = await client.reserve(timeout=0)
        assert (job.id, job.body) == (ids[body], body)
    assert await client.reserve(timeout=0) is None


async def test_put_options_show_in_stats_job(client: ClientView) -> None:
    job_id = await client.put("x", priority=7, delay=0, ttr=42)
    stats = await client.stats_job(job_id)
    assert stats["id"] == job_id
    assert stats["tube"] == "default"
    assert stats["state"] == "ready"
    assert stats["pri"] == 7
    assert stats["ttr"] == 42
    assert stats["delay"] == 0
    job = await client.reserve_job(job_id)
    stats = await job.stats()
    assert stats["state"] == "reserved"
    assert stats["reserves"] == 1
    assert 0 < stats["time-left"] <= 42


async def test_release_with_priority_and_delay(client: ClientView) -> None:
    job_id = await client.put("r", priority=10)
    job = await client.reserve(timeout=0)
    await client.release(job_id, priority=3)
    stats = await client.stats_job(job_id)
    assert (stats["state"], stats["pri"], stats["releases"]) == ("ready", 3, 1)
    job = await client.reserve(timeout=0)
    await job.release(priority=4, delay=100)
    stats = await job.stats()
    assert (stats["state"], stats["pri"], stats["delay"]) == ("delayed", 4, 100)
    assert (await client.peek_delayed()).id == job_id
    assert await client.reserve(timeout=0) is None


async def test_release_and_delete_accept_job_objects(client: ClientView) -> None:
    await client.put("obj")
    view = await client.reserve(timeout=0)
    await client.release(view.job)  # the Job itself, not its id
    view = await client.reserve(timeout=0)
    await client.touch(view.job)
    assert (await client.stats_job(view.job))["state"] == "reserved"
    await client.delete(view.job)
    assert await client.peek(view.id) is None


async def test_bury_peek_buried_and_kick(client: ClientView) -> None:
    first = await client.put("one")
    second = await client.put("two")
    assert await client.peek_buried() is None
    job = await client.reserve(timeout=0)
    await job.bury()
    job = await client.reserve(timeout=0)
    await client.bury(job.id, priority=9)
    stats = await client.stats_job(second)
    assert (stats["state"], stats["pri"], stats["buries"]) == ("buried", 9, 1)
    peeked = await client.peek_buried()
    assert (peeked.id, peeked.body) == (first, "one")  # the oldest buried job
    assert await client.kick(bound=1) == 1
    assert (await client.stats_job(first))["state"] == "ready"
    assert (await client.stats_job(second))["state"] == "buried"
    assert await client.kick(10) == 1
    assert await client.kick() == 0
    assert (await client.stats_job(second))["kicks"] == 1


async def test_job_methods(client: ClientView) -> None:
    job_id = await client.put("methods", ttr=60)
    job = await client.reserve(timeout=0)
    await job.touch()
    assert (await job.stats())["state"] == "reserved"
    await job.bury()
    assert (await job.stats())["state"] == "buried"
    await job.kick()
    assert (await job.stats())["state"] == "ready"
    job = await client.reserve(timeout=0)
    await job.release()
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    await job.delete()
    assert await client.peek(job_id) is None


async def test_peek_family(client: ClientView) -> None:
    assert await client.peek(1) is None
    assert await client.peek_ready() is None
    assert await client.peek_delayed() is None
    assert await client.peek_buried() is None
    ready = await client.put("ready", priority=5)
    await client.put("ready-later", priority=6)
    delayed_far = await client.put("delayed-far", delay=500)
    delayed_near = await client.put("delayed-near", delay=100)
    peeked = await client.peek(ready)
    assert (peeked.id, peeked.body) == (ready, "ready")
    assert (await client.peek_ready()).id == ready
    peeked = await client.peek_delayed()
    assert (peeked.id, peeked.body) == (delayed_near, "delayed-near")
    # peek finds a job whatever its state, reserved by someone else included.
    job = await client.reserve(timeout=0)
    assert (await client.peek(job.id)).body == "ready"
    assert (await client.peek(delayed_far)).body == "delayed-far"


async def test_delay_and_kick(client: ClientView) -> None:
    job_id = await client.put("later", delay=300)
    assert (await client.peek_delayed()).id == job_id
    assert await client.peek_ready() is None
    stats = await client.stats_job(job_id)
    assert (stats["state"], stats["delay"]) == ("delayed", 300)
    assert 0 < stats["time-left"] <= 300
    assert await client.reserve(timeout=0) is None
    assert await client.kick(bound=1) == 1  # no buried job: kicks delayed ones
    assert (await client.stats_job(job_id))["state"] == "ready"
    assert await client.peek_delayed() is None
    job = await client.reserve(timeout=0)
    assert job.id == job_id


async def test_kick_job(client: ClientView) -> None:
    delayed = await client.put("d", delay=300)
    buried = await client.put("b")
    job = await client.reserve(timeout=0)
    await job.bury()
    await client.kick_job(delayed)
    await client.kick_job(buried)
    assert (await client.stats_job(delayed))["state"] == "ready"
    assert (await client.stats_job(buried))["state"] == "ready"


async def test_reserve_job(client: ClientView) -> None:
    first = await client.put("first")
    second = await client.put("second")
    delayed = await client.put("delayed", delay=300)
    job = await client.reserve_job(second)  # not the next in line
    assert (job.id, job.body) == (second, "second")
    job = await client.reserve_job(delayed)  # delayed jobs can be reserved by id
    assert job.body == "delayed"
    job = await client.reserve(timeout=0)
    assert job.id == first
    await job.bury()
    job = await client.reserve_job(first)  # and buried ones
    assert (await job.stats())["state"] == "reserved"


async def test_stats(client: ClientView) -> None:
    await client.put("x")
    stats = await client.stats()
    assert stats["version"] == "1.12"
    assert stats["current-jobs-ready"] == 1
    assert stats["cmd-put"] == 1
    assert stats["total-jobs"] == 1
    assert stats["max-job-size"] == 65535
    assert stats["current-connections"] == 1


async def test_stats_tube(client: ClientView) -> None:
    await client.use("counted")
    await client.put("1")
    await client.put("2", delay=100)
    stats = await client.stats_tube("counted")
    assert stats["name"] == "counted"
    assert stats["current-jobs-ready"] == 1
    assert stats["current-jobs-delayed"] == 1
    assert stats["total-jobs"] == 2
    assert stats["current-using"] == 1
    assert stats["current-watching"] == 0
    assert stats["pause"] == 0


async def test_pause_tube(client: ClientView, clients: ClientFactory) -> None:
    producer = clients(use="paused")
    job_id = await producer.put("held")
    await client.watch("paused")
    await client.ignore("default")
    await client.pause_tube("paused", 100)
    assert await client.reserve(timeout=0) is None
    stats = await client.stats_tube("paused")
    assert stats["pause"] == 100
    assert 0 < stats["pause-time-left"] <= 100
    assert stats["cmd-pause-tube"] == 1
    assert stats["current-jobs-ready"] == 1
    await client.pause_tube("paused", 0)  # ends the pause (beanstalkd makes it 1 ns)
    job = await client.reserve(timeout=10)  # served once the server lifts the pause
    assert job.id == job_id


async def test_put_many(client: ClientView) -> None:
    bodies = [f"job {i}" for i in range(10_000)]
    ids = await client.put_many(bodies, priority=3, ttr=30)
    assert len(ids) == 10_000
    assert all(a < b for a, b in itertools.pairwise(ids))
    stats = await client.stats()
    assert stats["current-jobs-ready"] == 10_000
    assert stats["cmd-put"] == 10_000
    job = await client.peek(ids[1234])
    assert job.body == "job 1234"
    stats = await client.stats_job(ids[-1])
    assert (stats["pri"], stats["ttr"]) == (3, 30)
    # The connection is in step after the batch.
    assert await client.using() == "default"


async def test_put_many_empty_and_large_bodies(client: ClientView) -> None:
    assert await client.put_many([]) == []
    bodies = [bytes([i]) * 60_000 for i in range(20)]  # more than one pipelining window
    ids = await client.put_many(bodies)
    assert len(ids) == 20
    for job_id, body in zip(ids, bodies, strict=True):
        assert (await client.peek(job_id)).body == body.decode()


@pytest.mark.parametrize("options", [{}, {"encoding": None}])
async def test_put_many_accepts_any_iterable(
    clients: ClientFactory, options: dict[str, Any]
) -> None:
    client = clients(**options)
    ids = await client.put_many(b"%d" % i for i in range(5))
    assert len(ids) == 5
    assert (await client.stats())["current-jobs-ready"] == 5


async def test_close_releases_reserved_jobs(client: ClientView, clients: ClientFactory) -> None:
    job_id = await client.put("held")
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    await client.close()
    await client.close()  # closing twice is harmless
    other = clients()
    stats = await other.stats_job(job_id)
    assert stats["state"] == "ready"
    job = await other.reserve(timeout=0)
    assert job.id == job_id


async def test_client_options_use_and_watch(clients: ClientFactory) -> None:
    client = clients(use="produce", watch=["consume-a", "consume-b"])
    assert await client.using() == "produce"
    assert sorted(await client.watching()) == ["consume-a", "consume-b"]
    single = clients(watch="only")
    assert await single.watching() == ["only"]
    keeps_default = clients(watch=["default", "extra"])
    assert await keeps_default.watching() == ["default", "extra"]


async def test_connect(clients: ClientFactory) -> None:
    client = clients()
    await client.connect()
    await client.connect()  # already connected: nothing happens
    assert (await client.stats())["total-connections"] == 1


async def test_context_manager(clients: ClientFactory, transport: str) -> None:
    observer = clients()
    raw = clients().client
    if transport == "blocking":
        with raw as entered:
            assert entered is raw
            assert (await observer.stats())["current-connections"] == 2  # connected on entry
            job_id = await resolve(raw.put("held"))
            assert (await resolve(raw.reserve(timeout=0))).id == job_id
    else:
        async with raw as entered:
            assert entered is raw
            assert (await observer.stats())["current-connections"] == 2
            job_id = await raw.put("held")
            assert (await raw.reserve(timeout=0)).id == job_id
    # Leaving the block closed the connection, so the server gave the job back.
    job = await observer.reserve(timeout=10)
    assert job.id == job_id


async def test_connection_refused(clients: ClientFactory) -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        host, port = placeholder.getsockname()[:2]
    client = clients((host, port))  # nothing listens there any more
    with pytest.raises(OSError):  # noqa: PT011 - each event loop words it its own way
        await client.stats()
    with pytest.raises(OSError):  # noqa: PT011
        await client.put("x")
