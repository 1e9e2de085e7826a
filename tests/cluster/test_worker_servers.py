"""jackstalk.Worker on three real beanstalkd processes (``addresses=``): every server's jobs
processed, a server killed mid-run (the others drained, no busy polling), restarted from
its binlog (its jobs processed after the backoff), and a job lost with its server."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import Server, fill, idle_reserves, servers

import jackstalk

OPTIONS: dict[str, Any] = {
    "timeout": 3.0,
    "connect_timeout": 1.0,
    "server_backoff": 0.2,
    "server_backoff_cap": 0.5,
}
PER_SERVER = 12


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Server]]:
    with servers(3, tmp_path) as started:
        yield started


class Run:
    """A worker running in a thread, recording the bodies it handled."""

    def __init__(self, group: list[Server], on_job: Callable[[str], None] | None = None) -> None:
        self.handled: list[str] = []
        self.changed = threading.Condition()
        self.on_job = on_job
        self.worker = jackstalk.Worker(self.handle, addresses=[s.address for s in group], **OPTIONS)
        self.result: list[int] = []
        self.thread = threading.Thread(target=lambda: self.result.append(self.worker.run()))

    def handle(self, job: jackstalk.Job) -> None:
        if self.on_job is not None:
            self.on_job(job.body)
        with self.changed:
            self.handled.append(job.body)
            self.changed.notify_all()

    def wait_for(self, bodies: set[str], timeout: float = 60) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: bodies <= set(self.handled), timeout)

    def __enter__(self) -> Run:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def test_jobs_on_every_server_are_all_processed(three: list[Server]) -> None:
    bodies = fill(three, PER_SERVER)
    with Run(three) as run:
        run.wait_for(bodies)
    assert sorted(run.handled) == sorted(bodies)  # each exactly once
    assert run.result == [3 * PER_SERVER]
    assert run.worker.lost == 0
    for server in three:
        with jackstalk.Client(server.address) as client:
            stats = client.stats()
            assert stats["current-jobs-ready"] == stats["current-jobs-reserved"] == 0
            assert stats["cmd-delete"] == PER_SERVER


def test_a_killed_server_is_skipped_then_rejoins(three: list[Server]) -> None:
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

    with Run(three, on_job) as run:
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


def test_a_job_lost_with_its_server_is_logged_not_counted(
    three: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    victim = three[0]
    bodies = fill(three, PER_SERVER)
    killed: list[str] = []

    def on_job(body: str) -> None:
        if not killed and body.startswith("s0-"):
            victim.kill()  # mid-handler: this job's delete cannot reach its server
            killed.append(body)

    caplog.set_level(logging.INFO, logger="jackstalk.worker")
    with Run(three, on_job) as run:
        run.wait_for({b for b in bodies if not b.startswith("s0-")} | set(killed))
        with jackstalk.Client(three[1].address) as client:
            client.put("late")  # handled once the victim's turn, and its failure, are over
        run.wait_for({"late"})
        assert run.worker.lost == 1
        victim.start()  # the lost job is back to ready from the binlog
        run.wait_for(bodies)
    assert Counter(run.handled) == Counter([*bodies, *killed, "late"])  # the lost one twice
    assert run.worker.lost == 1
    assert run.result == [len(bodies) + 1]  # handled jobs, the lost one counted once
    assert any(" lost: " in r.getMessage() and "/" in r.getMessage() for r in caplog.records)
    assert any("is back" in r.getMessage() for r in caplog.records)


def test_arguments_are_checked() -> None:
    def handler(job: Any) -> None:
        pass

    with pytest.raises(ValueError, match="addresses="):
        jackstalk.Worker(handler, address=[("127.0.0.1", 1), ("127.0.0.1", 2)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        jackstalk.Worker(handler, address=("127.0.0.1", 1), addresses=[("127.0.0.1", 2)])
    with pytest.raises(ValueError, match="at least one"):
        jackstalk.Worker(handler, addresses=[])
    with pytest.raises(ValueError, match="server_backoff"):
        jackstalk.Worker(handler, addresses=["/tmp/x"], server_backoff=0)
