"""The worker on its rarer paths: argument checks, hooks that settle the job themselves,
repeated signals, a stop before the run, and every server of ``addresses=`` down."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import jackstalk
from jackstalk._app import worker as worker_module
from jackstalk.testing import BeanstalkdServer


def _noop(job: Any) -> None:
    raise AssertionError(f"no job expected, got {job!r}")


@pytest.fixture
def refused() -> Iterator[tuple[str, int]]:
    """A loopback port that refuses connections: bound, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[:2]
    finally:
        sock.close()


class StopWhenDown(logging.Handler):
    """Stops the worker the first time it reports a server down."""

    def __init__(self, worker: jackstalk.Worker) -> None:
        super().__init__()
        self.worker = worker
        self.downs = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "down" in record.getMessage():
            self.downs += 1
            self.worker.stop()


# --------------------------------------------------------------------- arguments


def test_addresses_must_be_a_list() -> None:
    with pytest.raises(jackstalk.InvalidArgument, match="a list of addresses"):
        jackstalk.Worker(_noop, addresses="127.0.0.1:11300")


def test_a_worker_with_addresses_refuses_a_client(beanstalkd: BeanstalkdServer) -> None:
    worker = jackstalk.Worker(_noop, addresses=[beanstalkd.address])
    with jackstalk.Client(beanstalkd.address) as client:
        with pytest.raises(jackstalk.InvalidArgument, match="makes its own clients"):
            worker.run(client)
        assert client.stats()["current-connections"] == 1  # nothing else was opened


def test_signal_names() -> None:
    assert worker_module._signal_name(signal.SIGTERM) == "SIGTERM"
    assert worker_module._signal_name(9999) == "signal 9999"


# --------------------------------------------------------------------- stopping


def test_a_worker_stopped_before_it_runs_handles_nothing(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address) as client:
        client.put("waiting")
    worker = jackstalk.Worker(_noop, address=beanstalkd.address)
    before = worker.stopping
    worker.stop()
    assert (before, worker.stopping) == (False, True)
    assert worker.run() == 0
    with jackstalk.Client(beanstalkd.address) as client:
        assert client.stats()["current-jobs-ready"] == 1


def test_repeated_signals_force_the_stop_once(caplog: pytest.LogCaptureFixture) -> None:
    worker = jackstalk.Worker(_noop, address=("127.0.0.1", 1))
    with caplog.at_level(logging.INFO, "jackstalk.worker"):
        worker._signalled(signal.SIGINT)
        assert worker.stopping
        worker._signalled(signal.SIGTERM)  # the second forces the stop (no driver runs)
        worker._signalled(signal.SIGINT)  # a third changes nothing
        worker._log_grace_over()  # no handler running: nothing to say
    forced = [r for r in caplog.records if r.getMessage().startswith("second ")]
    assert [r.getMessage().split(":")[0] for r in forced] == ["second SIGTERM"]
    assert not any("grace period" in r.getMessage() for r in caplog.records)
    with pytest.raises(SystemExit) as exit_info:
        worker._finish()
    assert exit_info.value.code == 128 + signal.SIGTERM


# --------------------------------------------------------------------- hooks


def test_a_failure_hook_that_deletes_the_job_settles_it(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address) as client:
        (job_id,) = client.put_many(["x"])
    failures: list[tuple[int, str]] = []
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        box[0].stop()
        raise ValueError("boom")

    def on_failure(job: jackstalk.Job, error: BaseException) -> None:
        failures.append((job.id, str(error)))
        job.delete()

    worker = jackstalk.Worker(handle, address=beanstalkd.address, on_failure=on_failure)
    box.append(worker)
    assert worker.run() == 1
    assert failures == [(job_id, "boom")]
    with jackstalk.Client(beanstalkd.address) as client:
        stats = client.stats()
    # Deleted by the hook: neither released nor buried, and not asked about again.
    assert (stats["current-jobs-ready"], stats["current-jobs-buried"]) == (0, 0)
    assert (stats["cmd-delete"], stats["cmd-release"], stats["cmd-stats-job"]) == (1, 0, 0)


def test_a_failed_job_that_is_gone_is_left_alone(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address) as client:
        (job_id,) = client.put_many(["x"])
    box: list[jackstalk.Worker] = []

    def handle(job: jackstalk.Job) -> None:
        box[0].stop()
        job.client.delete(job_id)  # through its client, not job.delete(): unnoticed
        raise ValueError("boom")

    worker = jackstalk.Worker(handle, address=beanstalkd.address)
    box.append(worker)
    assert worker.run() == 1
    with jackstalk.Client(beanstalkd.address) as client:
        stats = client.stats()
    assert (stats["cmd-stats-job"], stats["cmd-release"], stats["cmd-bury"]) == (1, 0, 0)
    assert stats["current-jobs-ready"] == stats["current-jobs-buried"] == 0


# --------------------------------------------------------------------- several servers


@pytest.mark.parametrize("driver", ["blocking", "asyncio"])
def test_worker_with_every_server_down_waits_then_stops(
    refused: tuple[str, int], driver: str
) -> None:
    worker = jackstalk.Worker(
        _noop, addresses=[refused], server_backoff=0.01, server_backoff_cap=0.01
    )
    watcher = StopWhenDown(worker)
    logger = logging.getLogger("jackstalk.worker")
    logger.addHandler(watcher)
    try:
        if driver == "blocking":
            assert worker.run() == 0
        else:
            assert asyncio.run(asyncio.wait_for(worker.run_asyncio(), 60)) == 0
    finally:
        logger.removeHandler(watcher)
    assert watcher.downs == 1
    assert worker.lost == 0
