"""Every server error reply a client can trigger from outside, and the body-size limits,
on all three clients against a real beanstalkd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import ClientFactory, ClientView

import jackstalk
from jackstalk.testing import run_beanstalkd

MISSING = 987_654


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.delete(MISSING), id="delete"),
        pytest.param(lambda c: c.touch(MISSING), id="touch"),
        pytest.param(lambda c: c.release(MISSING), id="release"),
        pytest.param(lambda c: c.bury(MISSING), id="bury"),
        pytest.param(lambda c: c.kick_job(MISSING), id="kick_job"),
        pytest.param(lambda c: c.stats_job(MISSING), id="stats_job"),
        pytest.param(lambda c: c.reserve_job(MISSING), id="reserve_job"),
        pytest.param(lambda c: c.stats_tube("no-such-tube"), id="stats_tube"),
        pytest.param(lambda c: c.pause_tube("no-such-tube", 10), id="pause_tube"),
    ],
)
async def test_not_found(client: ClientView, call: Callable[[ClientView], Awaitable[Any]]) -> None:
    await client.put("someone else's")  # the server has a job, just not that one
    with pytest.raises(jackstalk.NotFoundError) as caught:
        await call(client)
    assert isinstance(caught.value, jackstalk.CommandError)
    # An error reply leaves the connection in step.
    assert await client.using() == "default"
    assert (await client.stats())["total-connections"] == 1


async def test_not_found_for_jobs_in_the_wrong_state(
    client: ClientView, clients: ClientFactory
) -> None:
    ready = await client.put("ready")
    with pytest.raises(jackstalk.NotFoundError):
        await client.touch(ready)  # not reserved
    with pytest.raises(jackstalk.NotFoundError):
        await client.release(ready)
    with pytest.raises(jackstalk.NotFoundError):
        await client.bury(ready)
    with pytest.raises(jackstalk.NotFoundError):
        await client.kick_job(ready)  # neither buried nor delayed
    other = clients()
    job = await other.reserve(timeout=0)
    with pytest.raises(jackstalk.NotFoundError):
        await client.delete(job.id)  # reserved by another connection
    with pytest.raises(jackstalk.NotFoundError):
        await client.release(job.id)
    await job.delete()
    with pytest.raises(jackstalk.NotFoundError):
        await job.delete()
    with pytest.raises(jackstalk.NotFoundError):
        await job.stats()


async def test_not_ignored(client: ClientView) -> None:
    with pytest.raises(jackstalk.NotIgnoredError):
        await client.ignore("default")
    assert await client.watching() == ["default"]
    await client.watch("other")
    assert await client.ignore("default") == 1
    with pytest.raises(jackstalk.NotIgnoredError):
        await client.ignore("other")
    assert await client.watching() == ["other"]


async def test_job_too_big_from_the_server(clients: ClientFactory) -> None:
    with run_beanstalkd(max_job_size=100) as server:
        client = clients(server.address, max_job_size=1000)
        assert await client.put(b"x" * 100) > 0  # exactly the server's limit
        with pytest.raises(jackstalk.JobTooBigError):
            await client.put(b"x" * 101)
        with pytest.raises(jackstalk.JobTooBigError):
            await client.put(b"\r\n" * 500)  # the server skips the whole body
        assert await client.put("fits") > 0
        stats = await client.stats()
        assert stats["max-job-size"] == 100
        assert stats["current-jobs-ready"] == 2
        await client.close()


async def test_put_many_reports_each_failure(clients: ClientFactory) -> None:
    with run_beanstalkd(max_job_size=10) as server:
        client = clients(server.address, max_job_size=1000)
        bodies = [b"ok-1", b"x" * 11, b"ok-2", b"y" * 500, b"ok-3"]
        with pytest.raises(jackstalk.BatchError) as caught:
            await client.put_many(bodies)
        error = caught.value
        assert isinstance(error, jackstalk.CommandError)
        results = error.results
        assert len(results) == 5
        assert isinstance(results[1], jackstalk.JobTooBigError)
        assert isinstance(results[3], jackstalk.JobTooBigError)
        stored = [results[0], results[2], results[4]]
        assert all(isinstance(job_id, int) for job_id in stored)
        assert stored == sorted(stored)
        for job_id, body in zip(stored, ["ok-1", "ok-2", "ok-3"], strict=True):
            assert (await client.peek(job_id)).body == body
        assert (await client.stats())["current-jobs-ready"] == 3
        await client.close()


async def test_max_job_size_bodies(client: ClientView, clients: ClientFactory) -> None:
    largest = bytes(range(256)) * 255 + bytes(range(255))
    assert len(largest) == 65535  # the server's and the client's default limit
    job_id = await client.put(largest)
    assert (await client.stats_job(job_id))["state"] == "ready"
    binary = clients(encoding=None)
    job = await binary.reserve(timeout=0)
    assert job.body == largest
    before = await client.stats()
    with pytest.raises(jackstalk.JobBodyTooLarge) as caught:
        await client.put(largest + b"!")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(jackstalk.JobBodyTooLarge):
        await client.put_many([b"fine", largest + b"!"])  # checked before the first byte
    # A client that never connected refuses too, before it connects at all.
    fresh = clients()
    with pytest.raises(jackstalk.JobBodyTooLarge):
        await fresh.put("é" * 32768)  # 65536 bytes once encoded
    after = await client.stats()
    for name in ("cmd-put", "total-jobs", "total-connections"):
        assert after[name] == before[name], name
    assert await client.using() == "default"


async def test_client_max_job_size_option(clients: ClientFactory) -> None:
    client = clients(max_job_size=10)
    assert await client.put(b"0123456789") > 0
    with pytest.raises(jackstalk.JobBodyTooLarge):
        await client.put(b"0123456789A")
    assert await client.put(b"") > 0


async def test_deadline_soon_at_once_for_a_ttr_1_job(client: ClientView) -> None:
    job_id = await client.put("short", ttr=1)
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    # The connection holds a job inside the 1 s safety margin and nothing else is ready.
    with pytest.raises(jackstalk.DeadlineSoonError):
        await client.reserve(timeout=0)
    with pytest.raises(jackstalk.DeadlineSoonError):
        await client.reserve(timeout=5)
    await job.delete()
    assert await client.reserve(timeout=0) is None


async def test_argument_errors_are_raised_before_any_io(clients: ClientFactory) -> None:
    client = clients()
    with pytest.raises(jackstalk.InvalidTubeName):
        await client.use("bad name")
    with pytest.raises(ValueError, match="priority"):
        await client.put("x", priority=2**32)
    with pytest.raises(ValueError, match="timeout"):
        await client.reserve(timeout=-1)
    with pytest.raises(TypeError):
        await client.reserve(timeout="5")
    with pytest.raises(TypeError):
        await client.put(12)
    with pytest.raises(TypeError):
        await client.delete("12")
    # Nothing above reached the server: the first connection is this one.
    assert (await client.stats())["total-connections"] == 1
    assert (await client.stats())["cmd-use"] == 0
