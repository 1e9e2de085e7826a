"""Server restarts: beanstalkd stops and a new one starts on the same port. Clients of every
kind recover on their next calls, with their tube state restored, and a command sent into
the dead connection is reported as failed and never re-sent to the new server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
from faultkit import CALL_LIMIT, Driver, apoll, observer, tube_jobs

import jackstalk
from jackstalk.testing import run_beanstalkd

TUBE = "restart"
WATCH = ["restart", "second"]


async def _first_success(call: Callable[[], Awaitable[Any]], tries: int = 2) -> tuple[Any, int]:
    """Call until it works (at most ``tries`` times); return the result and the failures.

    Only a connection error may come before the success."""
    for failures in range(tries):
        try:
            return await call(), failures
        except ConnectionError:
            if failures + 1 == tries:
                raise
    raise AssertionError("unreachable")


async def _check_state(driver: Driver) -> None:
    assert await driver.using() == TUBE
    assert sorted(await driver.watching()) == sorted(WATCH)


async def test_idle_clients_recover_after_a_restart(transport: str) -> None:
    """The listening socket is kept (socket activation), as systemd does it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        drivers = [Driver(transport, (host, port), use=TUBE, watch=WATCH) for _ in range(3)]
        try:
            with run_beanstalkd(listener=listener):
                for driver in drivers:
                    assert await driver.put("on the first server") > 0
            with run_beanstalkd(listener=listener) as second, observer(second.address) as obs:
                obs.watch(TUBE)
                failures = 0
                for index, driver in enumerate(drivers):
                    job_id, failed = await _first_success(partial(driver.put, f"j{index}"))
                    failures += failed
                    assert obs.peek(job_id).body == f"j{index}"  # type: ignore[union-attr]
                    await _check_state(driver)
                # The puts that hit a dead connection were not re-sent: one job per client.
                assert tube_jobs(obs, TUBE)["total"] == len(drivers)
                stats = obs.stats()
                assert stats["cmd-put"] == len(drivers)
                assert stats["cmd-use"] == len(drivers)
        finally:
            for driver in drivers:
                await driver.aclose()


async def test_restart_through_a_closed_port(transport: str) -> None:
    """Between the two servers nothing listens: calls fail at once (connection refused)
    instead of hanging, and work again once the new server is up."""
    first = socket.create_server(("127.0.0.1", 0))
    host, port = first.getsockname()[:2]
    driver = Driver(transport, (host, port), use=TUBE, watch=WATCH)
    try:
        with first, run_beanstalkd(listener=first):
            await driver.put("first")
        for _ in range(2):
            # ConnectionRefusedError from the blocking and asyncio clients; trio words a
            # failed connect as a plain OSError (the refusals are its cause).
            with pytest.raises(OSError):  # noqa: PT011
                await driver.stats()
        with (
            socket.create_server((host, port)) as second,
            run_beanstalkd(listener=second),
            observer((host, port)) as obs,
        ):
            await _check_state(driver)
            obs.watch(TUBE)
            job_id = await driver.put("second")
            assert obs.peek(job_id).body == "second"  # type: ignore[union-attr]
            assert tube_jobs(obs, TUBE)["total"] == 1
    finally:
        await driver.aclose()


async def _background(kind: str, driver: Driver, name: str, *args: Any) -> Any:
    """Start ``driver.<name>(*args)`` so that it runs while this task goes on; return
    an awaitable of its outcome (the result, or the exception it raised)."""
    if kind == "blocking":
        method = getattr(driver.client, name)

        def run() -> Any:
            try:
                return method(*args)
            except Exception as error:
                return error

        return asyncio.ensure_future(asyncio.to_thread(run))

    async def run_async() -> Any:
        try:
            return await driver.call(name, *args)
        except Exception as error:
            return error

    if kind == "asyncio":
        return asyncio.ensure_future(run_async())
    raise AssertionError("trio uses a nursery")


async def test_waiting_reserve_fails_fast_and_recovers(transport: str) -> None:
    """A worker blocked in ``reserve()`` sees the server go: its reserve raises
    ``ConnectionClosedError`` at once (not after a timeout), and its next reserve is served
    by the new server."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        worker = Driver(transport, (host, port), use=TUBE, watch=WATCH, limit=CALL_LIMIT)
        outcome: list[Any] = []
        try:
            with run_beanstalkd(listener=listener) as first, observer(first.address) as obs:

                async def waiting() -> None:
                    await apoll(
                        transport,
                        lambda: obs.stats()["current-waiting"] == 1,
                        what="the reserve waits",
                    )

                if transport == "trio":
                    async with trio.open_nursery() as nursery:

                        async def reserve() -> None:
                            try:
                                outcome.append(await worker.reserve())
                            except Exception as error:
                                outcome.append(error)

                        nursery.start_soon(reserve)
                        await waiting()
                        first.process.terminate()
                        first.process.wait(CALL_LIMIT)
                else:
                    future = await _background(transport, worker, "reserve")
                    await waiting()
                    first.process.terminate()
                    first.process.wait(CALL_LIMIT)
                    outcome.append(await future)
            assert len(outcome) == 1
            assert isinstance(outcome[0], jackstalk.ConnectionClosedError), outcome
            with run_beanstalkd(listener=listener) as second, observer(second.address) as obs:
                obs.use(TUBE)
                job_id = obs.put("for the recovered worker")
                job = await worker.reserve(timeout=5)
                assert (job.id, job.body) == (job_id, "for the recovered worker")
                await worker.delete(job.id)
                await _check_state(worker)
        finally:
            await worker.aclose()
