"""Static proof of the clients' exact types, checked by ``mypy --strict tests`` (nox -s
typecheck); pytest does not collect this file, and nothing here runs any I/O: the functions
are only type-checked, never called.

Every ``assert_type`` below fails the type check if a method's type drifts, for example to
``Any``, or if an async method stops being a coroutine function. Each ``# type: ignore[code]``
marks a call that must fail the type check: mypy is run with ``--strict`` (which warns about
an unused ignore), so the check fails if such a call ever starts to pass.
"""

from __future__ import annotations

import json
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
    assert_type(client.reserve(), jackstalk.Job)  # waits as long as it takes: never None
    assert_type(client.reserve(None), jackstalk.Job)
    assert_type(client.reserve(timeout=0.5), jackstalk.Job | None)
    assert_type(client.reserve(timeout=0), jackstalk.Job | None)
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
    assert_type(client.stats(), jackstalk.ServerStats)
    assert_type(client.stats()["current-jobs-ready"], int)
    assert_type(client.stats()["rusage-utime"], float)
    assert_type(client.stats()["draining"], bool)
    assert_type(client.stats_tube("tube"), jackstalk.TubeStats)
    assert_type(client.stats_tube("tube")["name"], str)
    assert_type(client.stats_job(1), jackstalk.JobStats)
    assert_type(client.stats_job(1)["pri"], int)
    assert_type(client.stats_job(1)["state"], str)
    assert_type(client.put("body", tube="tube"), int)
    assert_type(client.put_many(["a"], tube="tube"), list[int])
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
    assert_type(job.stats(), jackstalk.JobStats)
    assert_type(job.release(priority=jackstalk.KEEP), None)
    assert_type(job.bury(priority=jackstalk.KEEP), None)
    assert_type(client.delete(job), None)  # a job or its id


def tutorial_loop_types(client: jackstalk.Client) -> None:
    # The tutorial's loop: a plain reserve() is a Job, so its body needs no None check.
    while True:
        job = client.reserve()
        print(job.body)
        job.delete()


class _BytesCodec:
    """A codec of the user's own (``dumps`` may return bytes or str)."""

    def dumps(self, obj: Any, /) -> bytes:
        return repr(obj).encode()

    def loads(self, data: bytes, /) -> Any:
        return data.decode()


def codec_types() -> None:
    jackstalk.Client(codec="json")
    jackstalk.Client(codec=_BytesCodec())
    jackstalk.AsyncClient(codec=json)  # a module with dumps and loads is a codec too
    jackstalk.TrioClient(codec=None)


def calls_that_must_not_type_check(client: jackstalk.Client) -> None:
    # reserve with a timeout may return None: using the job unchecked is an error.
    print(client.reserve(timeout=0).body)  # type: ignore[union-attr]
    client.stats()["no-such-field"]  # type: ignore[typeddict-item]
    client.stats_job(1)["pri"].upper()  # type: ignore[attr-defined]
    client.put("body", tube=1)  # type: ignore[arg-type]
    client.reserve_job(1).release(priority="keep")  # type: ignore[arg-type]
    client.release(1, priority=jackstalk.KEEP)  # type: ignore[arg-type]
    jackstalk.Client(codec="yaml")  # type: ignore[arg-type]
    jackstalk.Client(codec=object())  # type: ignore[arg-type]


def asyncio_client_types() -> None:
    client = jackstalk.AsyncClient()
    _ = assert_type(jackstalk.AsyncClient().put("body"), Coroutine[Any, Any, int])
    _ = assert_type(client.put_many([b"a"]), Coroutine[Any, Any, list[int]])
    _ = assert_type(client.use("tube"), Coroutine[Any, Any, str])
    _ = assert_type(client.watching(), Coroutine[Any, Any, list[str]])
    _ = assert_type(client.reserve(), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.reserve(timeout=0), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.reserve_job(1), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.peek(1), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.peek_buried(), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.delete(1), Coroutine[Any, Any, None])
    _ = assert_type(client.kick(), Coroutine[Any, Any, int])
    _ = assert_type(client.stats(), Coroutine[Any, Any, jackstalk.ServerStats])
    _ = assert_type(client.stats_tube("t"), Coroutine[Any, Any, jackstalk.TubeStats])
    _ = assert_type(client.stats_job(1), Coroutine[Any, Any, jackstalk.JobStats])
    _ = assert_type(client.put("body", tube="t"), Coroutine[Any, Any, int])


async def asyncio_awaited_types() -> None:
    async with jackstalk.AsyncClient() as client:
        assert_type(client, jackstalk.AsyncClient)
        assert_type(await client.put("body"), int)
        job = await client.reserve()
        assert_type(job, jackstalk.AsyncJob)
        assert_type(job.body, Any)
        assert_type(await job.delete(), None)
        assert_type(await job.stats(), jackstalk.JobStats)
        assert_type(await job.release(priority=jackstalk.KEEP), None)
        maybe = await client.reserve(timeout=1)
        assert_type(maybe, jackstalk.AsyncJob | None)
        print(maybe.body)  # type: ignore[union-attr]
        assert_type(await client.reserve_job(1), jackstalk.AsyncJob)
        assert_type(await client.close(), None)


def trio_client_types() -> None:
    client = jackstalk.TrioClient()
    _ = assert_type(jackstalk.TrioClient().put("body"), Coroutine[Any, Any, int])
    _ = assert_type(client.reserve(), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.reserve(timeout=2), Coroutine[Any, Any, jackstalk.AsyncJob | None])
    _ = assert_type(client.reserve_job(1), Coroutine[Any, Any, jackstalk.AsyncJob])
    _ = assert_type(client.tubes(), Coroutine[Any, Any, list[str]])


async def trio_awaited_types() -> None:
    async with jackstalk.TrioClient() as client:
        assert_type(client, jackstalk.TrioClient)
        assert_type(await client.put_many(["a"]), list[int])
        assert_type(await client.peek_ready(), jackstalk.AsyncJob | None)
