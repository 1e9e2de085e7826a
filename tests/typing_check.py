"""Static proof of the clients' exact types, checked by ``mypy --strict tests`` (nox -s
typecheck); pytest does not collect this file, and nothing here runs any I/O: the functions
are only type-checked, never called.

Every ``assert_type`` below fails the type check if a method's type drifts, for example to
``Any``, or if an async method stops being a coroutine function.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

import jackstalk


def blocking_client_types() -> None:
    client = jackstalk.Client()
    assert_type(jackstalk.Client().put("body"), int)
    assert_type(client.put(b"body", priority=1, delay=0, ttr=60), int)
    assert_type(client.put_many(["a", b"b"]), list[int])
    assert_type(client.use("tube"), str)
    assert_type(client.using(), str)
    assert_type(client.watch("tube"), int)
    assert_type(client.ignore("tube"), int)
    assert_type(client.watching(), list[str])
    assert_type(client.tubes(), list[str])
    assert_type(client.reserve(), jackstalk.Job | None)
    assert_type(client.reserve(timeout=0.5), jackstalk.Job | None)
    assert_type(client.reserve_job(1), jackstalk.Job)
    assert_type(client.peek(1), jackstalk.Job | None)
    assert_type(client.peek_ready(), jackstalk.Job | None)
    assert_type(client.peek_delayed(), jackstalk.Job | None)
    assert_type(client.peek_buried(), jackstalk.Job | None)
    assert_type(client.delete(1), None)
    assert_type(client.release(1, priority=2, delay=3), None)
    assert_type(client.bury(1), None)
    assert_type(client.touch(1), None)
    assert_type(client.kick(bound=1), int)
    assert_type(client.kick_job(1), None)
    assert_type(client.stats(), Any)
    assert_type(client.stats_tube("tube"), Any)
    assert_type(client.stats_job(1), Any)
    assert_type(client.pause_tube("tube", 10), None)
    assert_type(client.connect(), None)
    assert_type(client.close(), None)
    with jackstalk.Client() as entered:
        assert_type(entered, jackstalk.Client)

    job = client.reserve_job(1)
    assert_type(job.id, int)
    assert_type(job.delete(), None)
    assert_type(job.release(priority=1, delay=2), None)
    assert_type(job.bury(), None)
    assert_type(job.touch(), None)
    assert_type(job.kick(), None)
    assert_type(job.stats(), Any)
    assert_type(client.delete(job), None)  # a job or its id


def asyncio_client_types() -> None:
    client = jackstalk.AsyncClient()
    _ = assert_type(jackstalk.AsyncClient().put("body"), Coroutine[Any, Any, int])
    _ = assert_type(client.put_many([b"a"]), Coroutine[Any, Any, list[int]])
    _ = assert_type(client.use("tube"), Coroutine[Any, Any, str])
    _ = assert_type(client.watching(), Coroutine[Any, Any, list[str]])
    _ = assert_type(client.reserve(), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.reserve(timeout=0), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.reserve_job(1), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.peek(1), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.peek_buried(), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.delete(1), Coroutine[Any, Any, None])
    _ = assert_type(client.kick(), Coroutine[Any, Any, int])
    _ = assert_type(client.stats(), Coroutine[Any, Any, Any])


async def asyncio_awaited_types() -> None:
    async with jackstalk.AsyncClient() as client:
        assert_type(client, jackstalk.AsyncClient)
        assert_type(await client.put("body"), int)
        job = await client.reserve()
        assert_type(job, jackstalk.AsyncJob | None)
        if job is not None:
            assert_type(await job.delete(), None)
            assert_type(await job.stats(), Any)
        assert_type(await client.reserve_job(1), jackstalk.AsyncJob)
        assert_type(await client.close(), None)


def trio_client_types() -> None:
    client = jackstalk.TrioClient()
    _ = assert_type(jackstalk.TrioClient().put("body"), Coroutine[Any, Any, int])
    _ = assert_type(client.reserve(), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.reserve_job(1), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.tubes(), Coroutine[Any, Any, list[str]])


async def trio_awaited_types() -> None:
    async with jackstalk.TrioClient() as client:
        assert_type(client, jackstalk.TrioClient)
        assert_type(await client.put_many(["a"]), list[int])
        assert_type(await client.peek_ready(), jackstalk.AsyncJob | None)
