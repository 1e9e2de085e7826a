"""jackstalk.Worker's run_asyncio() and run_trio() on three real beanstalkd processes
(``addresses=``): every server's jobs processed exactly once, a server killed mid-run (the
others drained, no busy polling), restarted from its binlog (its jobs processed after the
backoff), a job lost with its server, and a forced stop that hands the running job back.
Each test runs once per event loop library; the worker runs in a thread of its own."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from clusterkit import Server, fill, idle_reserves, servers

import jackstalk

OPTIONS: dict[str, Any] = {"server_backoff": 0.2, "server_backoff_cap": 0.5}
PER_SERVER = 12


@pytest.fixture(params=["asyncio", "trio"])
def library(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Server]]:
    with servers(3, tmp_path) as started:
        yield started


class Run:
    """An async worker running in a thread (in its own event loop), recording the bodies
    it handled."""

    def __init__(
        self,
        library: str,
        group: list[Server],
        on_job: Callable[[str], Any] | None = None,
        **options: Any,
    ) -> None:
        self.library = library
        self.handled: list[str] = []
        self.changed = threading.Condition()
        self.on_job = on_job
        self.worker = jackstalk.Worker(
            self.handle, addresses=[s.address for s in group], **{**OPTIONS, **options}
        )
        self.result: list[int] = []
        self.error: list[BaseException] = []
        self.call_soon: Callable[[Callable[[], None]], Any] | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._main)

    def _main(self) -> None:
        try:
            if self.library == "asyncio":
                self.result.append(asyncio.run(self._asyncio()))
            else:
                self.result.append(trio.run(self._trio))
        except BaseException as error:
            self.error.append(error)
            self.started.set()

    async def _asyncio(self) -> int:
        self.call_soon = asyncio.get_running_loop().call_soon_threadsafe
        self.started.set()
        return await self.worker.run_asyncio()

    async def _trio(self) -> int:
        self.call_soon = trio.lowlevel.current_trio_token().run_sync_soon
        self.started.set()
        return await self.worker.run_trio()

    async def handle(self, job: jackstalk.AsyncJob) -> None:
        if self.on_job is not None:
            outcome = self.on_job(job.body)
            if outcome is not None:
                await outcome
        with self.changed:
            self.handled.append(job.body)
            self.changed.notify_all()

    def wait_for(self, bodies: set[str], timeout: float = 60) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: bodies <= set(self.handled), timeout)

    def stop(self) -> None:
        """Stop the worker from its own thread and wait for the run method to return."""
        assert self.started.wait(30)
        if self.call_soon is not None and self.thread.is_alive():
            self.call_soon(self.worker.stop)
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def __enter__(self) -> Run:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        assert self.error == []


def _settled(server: Server) -> None:
    with jackstalk.Client(server.address) as client:
        stats = client.stats()
        assert stats["current-jobs-ready"] == stats["current-jobs-reserved"] == 0


@pytest.mark.parametrize("concurrency", [1, 3])
def test_jobs_on_every_server_are_all_processed(
    library: str, three: list[Server], concurrency: int
) -> None:
    bodies = fill(three, PER_SERVER)
    with Run(library, three, concurrency=concurrency) as run:
        run.wait_for(bodies)
    assert sorted(run.handled) == sorted(bodies)  # each exactly once
    assert run.result == [3 * PER_SERVER]
    assert run.worker.lost == 0
    for server in three:
        _settled(server)
        with jackstalk.Client(server.address) as client:
            assert client.stats()["cmd-delete"] == PER_SERVER


def test_a_job_put_while_waiting_is_taken_wherever_it_is(library: str, three: list[Server]) -> None:
    with Run(library, three) as run:
        for index, server in enumerate(three):
            with jackstalk.Client(server.address) as client:
                client.put(f"late-{index}")
            run.wait_for({f"late-{index}"})
    assert sorted(run.handled) == ["late-0", "late-1", "late-2"]
    for server in three:
        _settled(server)  # the waits that lost were cut off: no job stays hidden


def test_a_killed_server_is_skipped_then_rejoins(library: str, three: list[Server]) -> None:
    victim, live = three[0], three[1:]
    bodies = fill(three, PER_SERVER)
    killed = threading.Event()
    seen: list[str] = []  # (not run.handled: the worker may call this before `run` is bound)

    def on_job(body: str) -> None:
        # Kill the victim while a job of another server runs (it still has jobs): no job
        # of the victim is held then, so none is lost.
        left_on_victim = sum(b.startswith("s0-") for b in seen) < PER_SERVER
        seen.append(body)
        if not killed.is_set() and left_on_victim and not body.startswith("s0-"):
            victim.kill()
            killed.set()

    with Run(library, three, on_job) as run:
        run.wait_for({b for b in bodies if not b.startswith("s0-")})
        assert killed.is_set()
        # The live servers drained; the worker waits without busy polling.
        assert all(count <= 10 for count in idle_reserves(live))
        assert run.worker.lost == 0
        # A job on a live server is still taken while the victim is down.
        with jackstalk.Client(live[1].address) as client:
            client.put("late")
        run.wait_for({"late"})
        victim.start()  # from its binlog: its remaining jobs come back
        run.wait_for(bodies)
    assert Counter(run.handled) == Counter([*bodies, "late"])  # each exactly once
    assert run.worker.lost == 0
    assert run.result == [len(bodies) + 1]
    for server in three:
        _settled(server)


def test_a_job_lost_with_its_server_is_logged_not_counted(
    library: str, three: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    victim = three[0]
    bodies = fill(three, PER_SERVER)
    killed: list[str] = []

    def on_job(body: str) -> None:
        if not killed and body.startswith("s0-"):
            victim.kill()  # mid-handler: this job's delete cannot reach its server
            killed.append(body)

    caplog.set_level(logging.INFO, logger="jackstalk.worker")
    with Run(library, three, on_job) as run:
        run.wait_for({b for b in bodies if not b.startswith("s0-")} | set(killed))
        with jackstalk.Client(three[1].address) as client:
            client.put("late")
        run.wait_for({"late"})
        assert run.worker.lost == 1  # (counted before "late", in the same slot)
        victim.start()  # the lost job is back to ready from the binlog
        run.wait_for(bodies)
    assert Counter(run.handled) == Counter([*bodies, *killed, "late"])  # the lost one twice
    assert run.worker.lost == 1
    assert run.result == [len(bodies) + 1]  # handled jobs, the lost one counted once
    assert any(" lost: " in r.getMessage() and "/" in r.getMessage() for r in caplog.records)
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_a_forced_stop_hands_the_running_job_back(library: str, three: list[Server]) -> None:
    running = threading.Event()

    async def stuck(body: str) -> None:
        running.set()
        if library == "asyncio":
            await asyncio.Event().wait()
        else:
            await trio.sleep_forever()

    run = Run(library, three, stuck, grace=0)
    with jackstalk.Client(three[2].address) as client:
        client.put("stuck")
    run.thread.start()
    assert running.wait(30)
    run.stop()  # grace 0: the handler is cancelled, its connection closed
    assert run.error == []
    assert run.result == [0]
    with jackstalk.Client(three[2].address) as client:
        stats = client.stats()
        assert stats["current-jobs-reserved"] == 0
        assert stats["current-jobs-ready"] == 1  # back to ready, not lost
    for server in three[:2]:
        _settled(server)
