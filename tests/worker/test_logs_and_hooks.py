"""What the worker and the clients log, and the worker's ``on_failure``/``on_bury`` hooks, on
all three drivers against a real beanstalkd."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from typing import Any

import pytest
import trio
import trio.testing

import jackstalk
from jackstalk.testing import BeanstalkdServer, run_beanstalkd

DRIVERS = ("blocking", "asyncio", "trio")


def producer(server: BeanstalkdServer, **options: Any) -> jackstalk.Client:
    return jackstalk.Client(server.address, timeout=30, **options)


def run_worker(worker: jackstalk.Worker, driver: str) -> int:
    """Run ``worker`` on ``driver`` until it stops."""
    if driver == "blocking":
        return worker.run()
    if driver == "asyncio":
        return asyncio.run(worker.run_asyncio())
    return trio.run(worker.run_trio)


def failing_handler(driver: str, box: list[jackstalk.Worker], stop_after: int) -> Any:
    """A handler that always raises, and stops the worker after ``stop_after`` calls."""
    calls: list[int] = []

    def fail(job: Any) -> None:
        calls.append(job.id)
        if len(calls) == stop_after:
            box[0].stop()
        raise RuntimeError("the mail server is down")

    async def fail_async(job: Any) -> None:
        fail(job)

    return fail if driver == "blocking" else fail_async


# --------------------------------------------------------------------- logs


@pytest.mark.parametrize("driver", DRIVERS)
def test_handler_failure_is_logged_with_its_traceback(
    beanstalkd: BeanstalkdServer, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("mail")
    box: list[jackstalk.Worker] = []
    worker = jackstalk.Worker(
        failing_handler(driver, box, 1), address=beanstalkd.address, backoff_base=60
    )
    box.append(worker)
    with caplog.at_level(logging.WARNING, logger="jackstalk.worker"):
        run_worker(worker, driver)
    (record,) = [r for r in caplog.records if r.getMessage().startswith(f"job {job_id} failed")]
    assert record.name == "jackstalk.worker"
    assert record.levelno == logging.WARNING
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "Traceback (most recent call last)" in caplog.text
    assert "in fail\n" in caplog.text  # the handler's own frame
    assert "RuntimeError: the mail server is down" in caplog.text


def test_blocking_client_logs_connect_reconnect_close_and_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="jackstalk.client")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        client = jackstalk.Client((host, port), use="emails", watch=["emails"], timeout=30)
        try:
            with run_beanstalkd(listener=listener) as server:
                client.connect()
                client.close()
                assert client.using() == "emails"  # reconnects and restores the tubes
                server.process.terminate()
                server.process.wait()
            listener.close()  # nothing listens any more: a reconnect is refused at once
            with pytest.raises((jackstalk.ConnectionClosedError, ConnectionRefusedError)):
                client.stats()
        finally:
            client.close()
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    where = f"('{host}', {port})"
    assert messages[:3] == [
        ("DEBUG", f"connected to {where}: use 'emails', watch ['emails']"),
        ("DEBUG", f"closed the connection to {where}"),
        ("INFO", f"reconnected to {where}: use 'emails', watch ['emails']"),
    ]
    # The server's end: found when the command fails on the dead connection, or, had the
    # connection sat unused for a while, by the check before it is used.
    dropped = [text for level, text in messages[3:] if level == "INFO"]
    assert len(dropped) == 1, messages
    assert dropped[0].startswith(
        (
            f"dropping the connection to {where} after ConnectionClosedError(",
            f"dropping the connection to {where} after BrokenPipeError(",
            f"dropping the connection to {where} after ConnectionResetError(",
            f"the server closed the idle connection to {where}",
        )
    ), dropped


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
def test_async_clients_log_connect_reconnect_close_and_drop(
    beanstalkd: BeanstalkdServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jackstalk.client")
    options: dict[str, Any] = {"use": "emails", "watch": ["emails"]}

    async def cut_short(client: Any) -> None:
        """Start a reserve, and cancel it once it waits: the connection is dropped."""
        if kind == "asyncio":
            task = asyncio.create_task(client.reserve())
            await asyncio.sleep(0)  # (a turn of the loop: the reserve is sent and waits)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.reserve)
                await trio.testing.wait_all_tasks_blocked()
                nursery.cancel_scope.cancel()

    async def scenario(client: Any) -> None:
        await client.connect()
        await client.close()
        assert await client.using() == "emails"  # reconnects and restores the tubes
        await cut_short(client)
        await client.close()

    if kind == "asyncio":
        asyncio.run(scenario(jackstalk.AsyncClient(beanstalkd.address, **options)))
    else:
        trio.run(scenario, jackstalk.TrioClient(beanstalkd.address, **options))
    where = str(beanstalkd.address)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert messages[0] == ("DEBUG", f"connected to {where}: use 'emails', watch ['emails']")
    reconnected = messages.index(
        ("INFO", f"reconnected to {where}: use 'emails', watch ['emails']")
    )
    closed = messages.index(("DEBUG", f"closed the connection to {where}"))
    dropped = [
        index
        for index, (level, text) in enumerate(messages)
        if level == "INFO" and text.startswith(f"dropping the connection to {where} after Cancel")
    ]
    assert closed < reconnected
    assert len(dropped) == 1
    assert reconnected < dropped[0]
    # A plain close() is no dropped connection: only the reconnect and the drop are INFO.
    assert [index for index, (level, _) in enumerate(messages) if level == "INFO"] == [
        reconnected,
        dropped[0],
    ]
    assert messages[-1] == ("DEBUG", f"closed the connection to {where}")  # the last close()


def test_clients_log_nothing_per_command(
    beanstalkd: BeanstalkdServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jackstalk")
    with producer(beanstalkd) as client:
        caplog.clear()
        for _ in range(10):
            job = client.reserve(timeout=0) if client.put("x") else None
            assert job is not None
            job.delete()
        assert caplog.records == []


@pytest.mark.parametrize("concurrency", [1, 3])
def test_async_worker_raises_a_failure_outside_handlers_and_nothing_else(
    concurrency: int, caplog: pytest.LogCaptureFixture
) -> None:
    """No server: every slot fails to connect; the first failure is raised, and asyncio
    reports none of the others as never retrieved."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        address = unused.getsockname()[:2]  # closed again below: nothing listens there

    async def handle(job: jackstalk.AsyncJob) -> None:
        raise AssertionError("no job can come")

    worker = jackstalk.Worker(handle, address=address, concurrency=concurrency)
    with caplog.at_level(logging.ERROR, logger="asyncio"), pytest.raises(ConnectionRefusedError):
        asyncio.run(worker.run_asyncio())
    del worker
    gc.collect()  # (a task whose failure nobody read is reported when it is collected)
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


# --------------------------------------------------------------------- hooks


def recorder(driver: str, calls: list[tuple[str, int, BaseException]], name: str) -> Any:
    """A hook noting its calls: a plain function for the blocking worker, a coroutine
    function for the async ones (which await what a hook returns)."""

    def note(job: Any, error: BaseException) -> None:
        calls.append((name, job.id, error))

    async def note_async(job: Any, error: BaseException) -> None:
        if driver == "asyncio":
            await asyncio.sleep(0)
        else:
            await trio.lowlevel.checkpoint()
        note(job, error)

    return note if driver == "blocking" else note_async


@pytest.mark.parametrize("driver", DRIVERS)
def test_on_failure_each_time_and_on_bury_once_buried(
    beanstalkd: BeanstalkdServer, driver: str
) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("always fails")
    calls: list[tuple[str, int, BaseException]] = []
    states: list[str] = []
    box: list[jackstalk.Worker] = []

    def on_bury(job: Any, error: BaseException) -> None:
        with producer(beanstalkd) as client:
            states.append(client.stats_job(job.id)["state"])
        calls.append(("on_bury", job.id, error))

    worker = jackstalk.Worker(
        failing_handler(driver, box, 2),
        address=beanstalkd.address,
        max_attempts=2,
        backoff_base=0,
        on_failure=recorder(driver, calls, "on_failure"),
        on_bury=on_bury,
    )
    box.append(worker)
    run_worker(worker, driver)
    assert [(name, ident) for name, ident, _ in calls] == [
        ("on_failure", job_id),
        ("on_failure", job_id),
        ("on_bury", job_id),
    ]
    assert all(isinstance(error, RuntimeError) for _, _, error in calls)
    assert calls[2][2] is calls[1][2]  # on_bury gets the last failure
    assert states == ["buried"]  # called once the server confirmed the bury


@pytest.mark.parametrize("driver", DRIVERS)
def test_on_bury_for_a_body_that_does_not_decode(beanstalkd: BeanstalkdServer, driver: str) -> None:
    with producer(beanstalkd, encoding=None) as client:
        bad = client.put(b"\xff not utf-8")
        good = client.put(b"fine")
    calls: list[tuple[str, int, BaseException]] = []
    bodies: list[Any] = []
    box: list[jackstalk.Worker] = []

    def on_bury(job: Any, error: BaseException) -> None:
        bodies.append(job.body)
        calls.append(("on_bury", job.id, error))

    def handle(job: Any) -> None:
        box[0].stop()

    async def handle_async(job: Any) -> None:
        handle(job)

    worker = jackstalk.Worker(
        handle if driver == "blocking" else handle_async,
        address=beanstalkd.address,
        on_failure=recorder(driver, calls, "on_failure"),
        on_bury=on_bury,
    )
    box.append(worker)
    run_worker(worker, driver)
    assert [(name, ident) for name, ident, _ in calls] == [("on_bury", bad)]
    assert isinstance(calls[0][2], jackstalk.BodyDecodeError)
    assert bodies == [b"\xff not utf-8"]  # the body as bytes: nothing is lost
    with producer(beanstalkd) as client:
        assert client.stats_job(bad)["state"] == "buried"
        assert client.peek(good) is None


@pytest.mark.parametrize("driver", DRIVERS)
def test_hooks_are_not_called_for_successes_or_a_handlers_own_bury(
    beanstalkd: BeanstalkdServer, driver: str
) -> None:
    with producer(beanstalkd) as client:
        ok_id, bury_id = client.put_many(["ok", "bury"])
    calls: list[tuple[str, int, BaseException]] = []
    box: list[jackstalk.Worker] = []
    seen: list[str] = []

    def done(job: Any) -> None:
        seen.append(job.body)
        if len(seen) == 2:
            box[0].stop()

    def handle(job: Any) -> None:
        if job.body == "bury":
            job.bury()
        done(job)

    async def handle_async(job: Any) -> None:
        if job.body == "bury":
            await job.bury()
        done(job)

    worker = jackstalk.Worker(
        handle if driver == "blocking" else handle_async,
        address=beanstalkd.address,
        on_failure=recorder(driver, calls, "on_failure"),
        on_bury=recorder(driver, calls, "on_bury"),
    )
    box.append(worker)
    assert run_worker(worker, driver) == 2
    assert calls == []
    with producer(beanstalkd) as client:
        assert client.peek(ok_id) is None
        assert client.stats_job(bury_id)["state"] == "buried"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failing_hook_is_logged_and_the_worker_carries_on(
    beanstalkd: BeanstalkdServer, driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    with producer(beanstalkd) as client:
        job_id = client.put("fails")
    box: list[jackstalk.Worker] = []

    def broken_hook(job: Any, error: BaseException) -> None:
        raise KeyError("metrics backend gone")

    worker = jackstalk.Worker(
        failing_handler(driver, box, 1),
        address=beanstalkd.address,
        backoff_base=60,
        on_failure=broken_hook,
    )
    box.append(worker)
    with caplog.at_level(logging.ERROR, logger="jackstalk.worker"):
        run_worker(worker, driver)
    (record,) = [r for r in caplog.records if "hook" in r.getMessage()]
    assert record.getMessage() == f"on_failure hook failed for job {job_id}"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], KeyError)
    with producer(beanstalkd) as client:
        assert client.stats_job(job_id)["state"] == "delayed"  # released as usual


def test_hooks_and_grace_are_checked() -> None:
    not_callable: Any = "print"
    with pytest.raises(ValueError, match="on_failure must be callable"):
        jackstalk.Worker(print, on_failure=not_callable)
    with pytest.raises(ValueError, match="on_bury must be callable"):
        jackstalk.Worker(print, on_bury=not_callable)
    with pytest.raises(ValueError, match="grace"):
        jackstalk.Worker(print, grace=-1)
