"""Cancel each command at every checkpoint it passes, systematically (asyncio and trio).

For n = 0, 1, 2 ... the command runs in a task of its own that is cancelled after its n-th
step: with trio, an instrument counts the task's steps and cancels its scope; with asyncio,
a chain of ``call_soon`` callbacks cancels the task after n loop iterations. The sweep ends
with the first n the command outlives. After every attempt: nothing but the cancellation
escaped (or the command's right result came back), no job is left reserved on the server,
a put or batch stored each job at most once, and the next call on the same client works
with its tube state restored. Each command is swept on a connected client and on a closed
one (so connecting and restoring the tubes are cut too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import trio
from faultkit import CALL_LIMIT, apoll, make_client, observer, tube_jobs

import jackstalk
from jackstalk.testing import BeanstalkdServer

TUBE = "cancel"
WATCH = ("cancel", "cancel-too")
MAX_STEPS = {"trio": 400, "asyncio": 3000}
"""Bounds of the sweep: no command here takes that many steps (loop iterations)."""


@pytest.fixture(params=["asyncio", "trio"])
def transport(request: pytest.FixtureRequest) -> str:
    """The async client kinds only."""
    return str(request.param)


# --------------------------------------------------------------------- cancelling at step n


class _StepCanceller(trio.abc.Instrument):
    """Cancels ``scope`` right after ``task`` has taken ``steps`` steps."""

    def __init__(self, scope: trio.CancelScope, steps: int) -> None:
        self.scope = scope
        self.steps = steps
        self.task: trio.lowlevel.Task | None = None
        self.taken = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.taken += 1
            if self.taken == self.steps:
                self.scope.cancel()


@dataclass
class Outcome:
    cancelled: bool
    result: Any = None


Nudge = Callable[[], None]
"""Called while the command runs (between loop turns), e.g. to put the job a waiting
reserve is waiting for."""


async def _trio_attempt(call: Callable[[], Awaitable[Any]], steps: int, nudge: Nudge) -> Outcome:
    scope = trio.CancelScope()
    if steps == 0:
        scope.cancel()  # cancelled before its first checkpoint
    canceller = _StepCanceller(scope, steps)
    results: list[Any] = []
    finished = trio.Event()

    async def run() -> None:
        canceller.task = trio.lowlevel.current_task()
        try:
            with scope:
                results.append(await call())
        finally:
            finished.set()

    trio.lowlevel.add_instrument(canceller)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            for _ in range(100_000):
                if finished.is_set():
                    break
                nudge()
                await trio.lowlevel.checkpoint()
            await finished.wait()
    finally:
        trio.lowlevel.remove_instrument(canceller)
    if scope.cancelled_caught:
        assert not results
        return Outcome(cancelled=True)
    assert len(results) == 1
    return Outcome(cancelled=False, result=results[0])


async def _asyncio_attempt(call: Callable[[], Awaitable[Any]], steps: int, nudge: Nudge) -> Outcome:
    loop = asyncio.get_running_loop()

    async def run() -> Any:
        return await call()

    task = loop.create_task(run())
    if steps == 0:
        task.cancel()  # cancelled before its first step
    else:

        def tick(left: int) -> None:
            if task.done():
                return
            if left <= 1:
                task.cancel()
            else:
                loop.call_soon(tick, left - 1)

        loop.call_soon(tick, steps)
    for _ in range(100_000):
        if task.done():
            break
        nudge()
        await asyncio.sleep(0)  # one loop iteration; no time passes
    try:
        result = await task
    except asyncio.CancelledError:
        return Outcome(cancelled=True)
    return Outcome(cancelled=False, result=result)


async def attempt(
    kind: str, call: Callable[[], Awaitable[Any]], steps: int, nudge: Nudge = lambda: None
) -> Outcome:
    if kind == "trio":
        return await _trio_attempt(call, steps, nudge)
    return await _asyncio_attempt(call, steps, nudge)


# --------------------------------------------------------------------- the commands


class Bench:
    """The client under test, an observer on the server, and the per-command checks."""

    def __init__(self, kind: str, client: Any, watcher: jackstalk.Client) -> None:
        self.kind = kind
        self.client = client
        self.watcher = watcher
        self.serial = 0

    def body(self) -> str:
        self.serial += 1
        return f"job-{self.serial}"

    def total(self) -> int:
        return tube_jobs(self.watcher, TUBE)["total"]

    async def no_job_reserved(self) -> None:
        await apoll(
            self.kind,
            lambda: self.watcher.stats()["current-jobs-reserved"] == 0,
            what="no job is left reserved",
        )

    async def settled(self) -> None:
        """After a cancelled command: wait until the server has closed the connection the
        client dropped, so that it has handled whatever that connection sent (a reserve or
        a put still in its buffer) before anything is counted."""
        if not self.client._connected:
            await apoll(
                self.kind,
                lambda: self.watcher.stats()["current-connections"] == 1,  # the watcher's
                what="the dropped connection is closed",
            )
        await self.no_job_reserved()

    async def next_call_works(self) -> None:
        assert await self.client.using() == TUBE
        assert sorted(await self.client.watching()) == sorted(WATCH)

    def clean(self) -> None:
        for _ in range(100):
            job = self.watcher.reserve(timeout=0)
            if job is None:
                return
            job.delete()
        raise AssertionError("the tube did not empty")


Setup = Callable[[Bench], Awaitable[tuple[Callable[[], Awaitable[Any]], "Check", Nudge]]]
Check = Callable[[Outcome], Awaitable[None]]


async def put(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    before = bench.total()
    body = bench.body()

    async def check(outcome: Outcome) -> None:
        if outcome.cancelled:
            await bench.settled()
        stored = bench.total() - before
        if outcome.cancelled:
            assert stored in (0, 1)
        else:
            assert stored == 1
            job = bench.watcher.peek(outcome.result)
            assert job is not None
            assert job.body == body

    return lambda: bench.client.put(body), check, lambda: None


async def put_many(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    before = bench.total()
    bodies = [bench.body() for _ in range(3)]

    async def check(outcome: Outcome) -> None:
        if outcome.cancelled:
            await bench.settled()
        stored = bench.total() - before
        if outcome.cancelled:
            assert 0 <= stored <= 3
        else:
            assert stored == 3
            jobs = [bench.watcher.peek(job_id) for job_id in outcome.result]
            assert [job.body if job else None for job in jobs] == bodies

    return lambda: bench.client.put_many(bodies), check, lambda: None


async def reserve_ready(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    body = bench.body()
    job_id = bench.watcher.put(body)

    async def check(outcome: Outcome) -> None:
        if outcome.cancelled:
            await bench.settled()
            assert tube_jobs(bench.watcher, TUBE)["ready"] == 1  # handed back, not lost
        else:
            job = outcome.result
            assert (job.id, job.body) == (job_id, body)
            assert bench.watcher.stats_job(job_id)["state"] == "reserved"
            await bench.client.delete(job_id)

    return bench.client.reserve, check, lambda: None


async def reserve_waiting(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    """A plain reserve with nothing ready: it waits until the observer sees it waiting and
    puts a job, so the sweep also cuts the wait itself."""
    body = bench.body()
    put_ids: list[int] = []

    def nudge() -> None:
        if not put_ids and bench.watcher.stats()["current-waiting"] >= 1:
            put_ids.append(bench.watcher.put(body))

    async def check(outcome: Outcome) -> None:
        if outcome.cancelled:
            await bench.settled()
        else:
            job = outcome.result
            assert [job.id] == put_ids
            assert job.body == body
            await bench.client.delete(job.id)

    return bench.client.reserve, check, nudge


async def reserve_none(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    async def check(outcome: Outcome) -> None:
        assert outcome.cancelled or outcome.result is None

    return lambda: bench.client.reserve(timeout=0), check, lambda: None


async def delete(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    job_id = bench.watcher.put(bench.body())
    job = await bench.client.reserve(timeout=0)
    assert job is not None
    assert job.id == job_id

    async def check(outcome: Outcome) -> None:
        if not outcome.cancelled:
            assert outcome.result is None
            assert bench.watcher.peek(job_id) is None
            return
        # Cancelled before it sent anything (n = 0), the job is still this client's, on its
        # live connection; cancelled later, the connection was dropped and the job was
        # deleted or went back to ready. Either way the caller's retry settles it, and
        # nothing stays reserved.
        try:
            await bench.client.delete(job_id)
        except jackstalk.NotFoundError:
            pass
        await bench.no_job_reserved()
        assert bench.watcher.peek(job_id) is None

    return lambda: bench.client.delete(job_id), check, lambda: None


async def stats(bench: Bench) -> tuple[Callable[[], Awaitable[Any]], Check, Nudge]:
    async def check(outcome: Outcome) -> None:
        if not outcome.cancelled:
            assert isinstance(outcome.result, dict)
            assert outcome.result["version"] == "1.12"

    return bench.client.stats, check, lambda: None


COMMANDS: dict[str, Setup] = {
    "put": put,
    "put_many": put_many,
    "reserve-ready": reserve_ready,
    "reserve-waiting": reserve_waiting,
    "reserve-none": reserve_none,
    "delete": delete,
    "stats": stats,
}


@contextmanager
def _watcher(server: BeanstalkdServer) -> Iterator[jackstalk.Client]:
    with observer(server.address) as watcher:
        watcher.use(TUBE)
        watcher.watch(TUBE)  # keeps the tube and its total-jobs count alive
        watcher.ignore("default")
        yield watcher


CASES = [
    pytest.param(name, connected, id=f"{name}-{'connected' if connected else 'reconnecting'}")
    for name in COMMANDS
    for connected in (True, False)
    # A delete needs the job reserved on the connection it runs on: always connected.
    if connected or name != "delete"
]


@pytest.mark.parametrize(("name", "connected"), CASES)
async def test_cancel_at_every_checkpoint(
    transport: str, beanstalkd: BeanstalkdServer, name: str, connected: bool
) -> None:
    setup = COMMANDS[name]
    client = make_client(transport, beanstalkd.address, use=TUBE, watch=list(WATCH))
    cancelled = 0
    try:
        with _watcher(beanstalkd) as watcher:
            bench = Bench(transport, client, watcher)
            for steps in range(MAX_STEPS[transport]):
                if connected:
                    await client.connect()
                else:
                    await client.close()
                call, check, nudge = await setup(bench)
                if transport == "trio":
                    with trio.fail_after(CALL_LIMIT):
                        outcome = await attempt(transport, call, steps, nudge)
                else:
                    async with asyncio.timeout(CALL_LIMIT):
                        outcome = await attempt(transport, call, steps, nudge)
                await check(outcome)
                await bench.no_job_reserved()
                await bench.next_call_works()
                bench.clean()
                if not outcome.cancelled:
                    break
                cancelled += 1
            else:
                raise AssertionError(f"{name} was still cancelled after {steps} steps")
    finally:
        await client.close()
    # Cancelled at least before it started and at one checkpoint inside it.
    assert cancelled >= 2, cancelled
    print(f"{name}: cancelled at {cancelled} checkpoints, then completed")
