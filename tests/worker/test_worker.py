"""The worker helper on all three clients, against a real beanstalkd."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import trio

import jackstalk
from jackstalk.testing import BeanstalkdServer


def producer(server: BeanstalkdServer, **options: Any) -> jackstalk.Client:
    return jackstalk.Client(server.address, timeout=30, **options)


def stopping_after(worker_box: list[jackstalk.Worker], count: int, seen: list[Any]) -> None:
    if len(seen) >= count:
        worker_box[0].stop()


# --------------------------------------------------------------------- blocking


def test_successful_jobs_are_deleted(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd, use="emails") as client:
        ids = client.put_many(["a", "b", "c"])
    seen: list[tuple[int, str]] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        seen.append((job.id, job.body))
        stopping_after(box, 3, seen)

    worker = jackstalk.Worker({"emails": handle}, address=beanstalkd.address)
    box.append(worker)
    assert worker.run() == 3
    assert seen == list(zip(ids, ["a", "b", "c"], strict=True))
    with producer(beanstalkd) as client:
        stats = client.stats()
        assert stats["current-jobs-ready"] == 0
        assert stats["current-jobs-reserved"] == 0
        assert stats["total-jobs"] == 3
        assert "emails" not in client.tubes()  # emptied and unused: the server dropped it


def test_worker_waits_for_the_next_job_beyond_the_reply_timeout(
    beanstalkd: BeanstalkdServer,
) -> None:
    # The delete of the first job and the reserve of the next go out in one write; the
    # next job only becomes ready a second later, five times the client's reply timeout:
    # the pipelined reserve keeps waiting (it has no deadline), it does not time out.
    with producer(beanstalkd) as client:
        client.put("now")
        client.put("in a second", delay=1)
    seen: list[str] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        seen.append(job.body)
        stopping_after(box, 2, seen)

    worker = jackstalk.Worker(handle, address=beanstalkd.address, timeout=0.2)
    box.append(worker)
    assert worker.run() == 2
    assert seen == ["now", "in a second"]


def test_failing_job_is_released_with_backoff(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("boom", priority=7)
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        box[0].stop()
        raise RuntimeError("handler failed")

    worker = jackstalk.Worker(handle, address=beanstalkd.address, backoff_base=60)
    box.append(worker)
    worker.run()
    with producer(beanstalkd) as client:
        stats = client.stats_job(job_id)
    assert stats["state"] == "delayed"
    assert stats["releases"] == 1
    assert stats["delay"] == 60  # backoff_base * 2**0
    assert stats["pri"] == 7  # the priority is kept


def test_backoff_grows_with_releases_and_is_capped() -> None:
    worker = jackstalk.Worker(print, backoff_base=2, backoff_cap=30)
    assert [worker._backoff(n) for n in range(6)] == [2, 4, 8, 16, 30, 30]


def test_procedure_sends_each_settle_with_the_next_reserve_and_logs_odd_replies(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The procedure alone, driven by hand (it does no I/O): the steps it yields, and a
    # settle reply that no server should send, which is logged and otherwise ignored.
    from jackstalk._app.worker import Execute, Handle, WorkerJob
    from jackstalk._protocol import commands as c
    from jackstalk._protocol import events as e

    worker = jackstalk.Worker(lambda job: None, poll=2)
    steps = worker._procedure(jackstalk.Client(encoding=None), WorkerJob)
    first = next(steps)
    assert isinstance(first, Execute)
    assert [type(command) for command in first.commands] == [c.ReserveWithTimeout]
    handle = steps.send([e.Reserved(7, b"x")])
    assert isinstance(handle, Handle)
    assert (handle.job.id, handle.job.body) == (7, b"x")
    step = steps.send(None)  # the handler returned: delete it, with the next reserve
    assert isinstance(step, Execute)
    assert [(type(command), getattr(command, "id", None)) for command in step.commands] == [
        (c.Delete, 7),
        (c.ReserveWithTimeout, None),
    ]
    with caplog.at_level("WARNING", logger="jackstalk.worker"):
        step = steps.send([e.Touched(), e.TimedOut()])
    assert "delete of a finished job got" in caplog.text
    assert isinstance(step, Execute)
    assert [type(command) for command in step.commands] == [c.ReserveWithTimeout]
    worker.stop()
    with pytest.raises(StopIteration):
        steps.send([e.TimedOut()])


def test_job_is_buried_after_max_attempts(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("always fails")
    attempts: list[int] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        attempts.append(job.id)
        if len(attempts) == 2:
            box[0].stop()
        raise ValueError("nope")

    worker = jackstalk.Worker(handle, address=beanstalkd.address, max_attempts=2, backoff_base=0)
    box.append(worker)
    worker.run()
    assert attempts == [job_id, job_id]
    with producer(beanstalkd) as client:
        stats = client.stats_job(job_id)
    assert stats["state"] == "buried"
    assert stats["reserves"] == 2


def test_handler_may_settle_the_job_itself(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd) as client:
        bury_id, release_id = client.put_many(["bury me", "release me"])
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        if job.body == "bury me":
            job.bury(priority=3)
        else:
            job.touch()
            job.release(delay=100)
            box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    worker.run()
    with producer(beanstalkd) as client:
        assert client.stats_job(bury_id)["state"] == "buried"
        assert client.stats_job(bury_id)["pri"] == 3
        assert client.stats_job(release_id)["state"] == "delayed"


def test_handlers_per_tube(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd) as client:
        client.use("images")
        client.put("img")
        client.use("emails")
        client.put("mail")
    seen: list[tuple[str, str]] = []
    box: list[jackstalk.Worker] = []

    def on(tube: str) -> Callable[[jackstalk.Job], None]:
        def handle(job: jackstalk.Job) -> None:
            seen.append((tube, job.body))
            stopping_after(box, 2, seen)

        return handle

    worker = jackstalk.Worker(
        {"emails": on("emails"), "images": on("images")}, address=beanstalkd.address
    )
    box.append(worker)
    worker.run()
    assert sorted(seen) == [("emails", "mail"), ("images", "img")]


def test_undecodable_body_is_buried_not_lost(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd, encoding=None) as client:
        bad = client.put(b"\xff\xfe not utf-8")
        good = client.put(b"fine")
    seen: list[str] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        seen.append(job.body)
        box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    worker.run()
    assert seen == ["fine"]
    with producer(beanstalkd) as client:
        assert client.stats_job(bad)["state"] == "buried"
        assert client.peek(good) is None


def test_worker_needs_tubes_and_callables() -> None:
    with pytest.raises(ValueError, match="at least one tube"):
        jackstalk.Worker({})
    with pytest.raises(ValueError, match="not callable"):
        jackstalk.Worker({"t": "not a function"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="backoff"):
        jackstalk.Worker(print, backoff_base=10, backoff_cap=1)


# --------------------------------------------------------------------- async


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_worker_runs_handlers_concurrently(
    beanstalkd: BeanstalkdServer, library: str
) -> None:
    with producer(beanstalkd) as client:
        client.put_many([str(n) for n in range(20)])
    seen: list[str] = []
    box: list[jackstalk.Worker] = []

    async def handle(job: jackstalk.AsyncJob) -> None:
        if library == "asyncio":
            await asyncio.sleep(0)
        else:
            await trio.lowlevel.checkpoint()
        seen.append(job.body)
        stopping_after(box, 20, seen)

    worker = jackstalk.Worker(handle, address=beanstalkd.address, concurrency=4)
    box.append(worker)
    if library == "asyncio":
        handled = asyncio.run(worker.run_asyncio())
    else:
        handled = trio.run(worker.run_trio)
    assert handled == 20
    assert sorted(seen, key=int) == [str(n) for n in range(20)]
    with producer(beanstalkd) as client:
        assert client.stats()["current-jobs-ready"] == 0
        assert client.stats()["current-jobs-reserved"] == 0


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_shutdown_gives_unfinished_jobs_back(
    beanstalkd: BeanstalkdServer, library: str
) -> None:
    """A handler that never finishes is cancelled after the grace period; its job goes
    back to ready and the worker returns normally."""
    with producer(beanstalkd) as client:
        job_id = client.put("stuck")
    box: list[jackstalk.Worker] = []

    async def handle(job: jackstalk.AsyncJob) -> None:
        box[0].stop()
        if library == "asyncio":
            await asyncio.Event().wait()
        else:
            await trio.Event().wait()

    worker = jackstalk.Worker(handle, address=beanstalkd.address, grace=0.1)
    box.append(worker)
    if library == "asyncio":
        asyncio.run(worker.run_asyncio())
    else:
        trio.run(worker.run_trio)
    with producer(beanstalkd) as client:
        stats = client.stats_job(job_id)
    assert stats["state"] == "ready"
    assert stats["reserves"] == 1


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_worker_keeps_long_jobs_alive(beanstalkd: BeanstalkdServer, library: str) -> None:
    """A handler that works longer than the job's time-to-run: the worker touches it, so
    it never times out. (The handler's own duration is the work being simulated.)"""
    with producer(beanstalkd) as client:
        job_id = client.put("long", ttr=3)
    box: list[jackstalk.Worker] = []
    observed: list[jackstalk.JobStats] = []

    async def handle(job: jackstalk.AsyncJob) -> None:
        if library == "asyncio":
            await asyncio.sleep(4.5)
        else:
            await trio.sleep(4.5)
        observed.append(await job.stats())
        box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    if library == "asyncio":
        asyncio.run(worker.run_asyncio())
    else:
        trio.run(worker.run_trio)
    assert observed[0]["state"] == "reserved"
    assert observed[0]["timeouts"] == 0
    with producer(beanstalkd) as client:
        assert client.peek(job_id) is None  # deleted after the handler returned


def test_handler_deleting_the_job_itself(beanstalkd: BeanstalkdServer) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("delete me")
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        job.delete()
        box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    assert worker.run() == 1
    with producer(beanstalkd) as client:
        assert client.peek(job_id) is None
        assert client.stats()["cmd-delete"] == 1  # the worker did not delete it again


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_async_handler_settles_jobs_itself(beanstalkd: BeanstalkdServer, library: str) -> None:
    with producer(beanstalkd) as client:
        ids = client.put_many(["delete", "bury", "release"])
    box: list[jackstalk.Worker] = []
    settled: list[str] = []

    async def handle(job: jackstalk.AsyncJob) -> None:
        if job.body == "delete":
            await job.delete()
        elif job.body == "bury":
            await job.bury(priority=9)
        else:
            await job.release(delay=600)
        settled.append(job.body)
        if len(settled) == 3:
            box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    if library == "asyncio":
        asyncio.run(worker.run_asyncio())
    else:
        trio.run(worker.run_trio)
    with producer(beanstalkd) as client:
        assert client.peek(ids[0]) is None
        assert client.stats_job(ids[1])["state"] == "buried"
        assert client.stats_job(ids[2])["state"] == "delayed"


def test_example_command_runs_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    from jackstalk.__main__ import main

    assert main(["example"]) == 0
    out = capsys.readouterr().out
    assert "client sends   b'put 10 0 120 5\\r\\nhello\\r\\n'" in out
    assert "client event   Reserved(id=1, body=b'hello')" in out


def test_json_codec_worker_gets_values_and_buries_what_is_not_json(
    beanstalkd: BeanstalkdServer,
) -> None:
    with producer(beanstalkd, encoding=None) as raw:
        bad = raw.put(b"<not json>")
    with producer(beanstalkd, codec="json") as client:
        good = client.put({"user": 7, "action": "welcome"})
    seen: list[Any] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        seen.append(job.body)
        box[0].stop()

    worker = jackstalk.Worker(handle, address=beanstalkd.address, codec="json")
    box.append(worker)
    worker.run()
    assert seen == [{"user": 7, "action": "welcome"}]
    with producer(beanstalkd) as client:
        assert client.stats_job(bad)["state"] == "buried"
        assert client.peek(good) is None


class _PrefixCodec:
    """A codec of the user's own: bytes out, and ``loads`` refuses a body without its tag."""

    def dumps(self, obj: Any, /) -> bytes:
        return b"P" + repr(obj).encode()

    def loads(self, data: bytes, /) -> Any:
        if not data.startswith(b"P"):
            raise LookupError("untagged body")  # not a ValueError: any exception counts
        return data[1:].decode()


def test_codec_object_worker_gets_values_and_buries_what_does_not_decode(
    beanstalkd: BeanstalkdServer,
) -> None:
    with producer(beanstalkd, encoding=None) as raw:
        bad = raw.put(b"untagged")
    with producer(beanstalkd, codec=_PrefixCodec()) as client:
        good = client.put(7)
    seen: list[Any] = []
    buried: list[tuple[int, Any, BaseException]] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        seen.append(job.body)
        box[0].stop()

    def on_bury(job: jackstalk.Job, error: BaseException) -> None:
        buried.append((job.id, job.body, error))

    worker = jackstalk.Worker(
        handle, address=beanstalkd.address, codec=_PrefixCodec(), on_bury=on_bury
    )
    box.append(worker)
    worker.run()
    assert seen == ["7"]
    ((job_id, body, error),) = buried
    assert (job_id, body) == (bad, b"untagged")
    assert isinstance(error, jackstalk.BodyDecodeError)
    assert "untagged body" in str(error)
    with producer(beanstalkd) as client:
        assert client.stats_job(bad)["state"] == "buried"
        assert client.peek(good) is None
