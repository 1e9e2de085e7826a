"""Forced worker shutdown, in a subprocess per case, as a deployed worker meets it: the grace
period running out, and a second SIGINT or SIGTERM, on each of the three drivers.

Each is a normal event: one log line on stderr, never a traceback; the job the handler held
goes back to ready. Grace over: the run method returns (exit status 0). A second signal: it
raises ``SystemExit(128 + signal number)``, which is the process's exit status.

The child says what it is doing on stdout (``HANDLING`` once its handler runs, ``STOPPING``
once the worker took the first signal); the test waits for those lines before it signals,
so no signal is sent early and none is merged with the one before.

For the second signal, the blocking child's handler waits in short steps, as a handler at
work does: CPython runs a signal's Python handler between bytecodes, so a signal that lands
in the instant between the first handler's end and the main thread's next blocking call
waits for that call to return (with one endless wait, forever). The grace period's own
signal has no such instant, and is tested on one endless wait.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import jackstalk
from jackstalk.testing import BeanstalkdServer

DRIVERS = ("blocking", "asyncio", "trio")
LIMIT = 60.0
"""Seconds a child may take to say a line or to exit before the test gives up on it."""

CHILD = r"""
import asyncio
import os
import sys
import threading
import time

import jackstalk

driver, host, port, grace, how, wait = sys.argv[1:]


def say(text):
    os.write(1, text.encode() + b"\n")  # unbuffered, and safe inside a signal handler


class Worker(jackstalk.Worker):
    def stop(self):
        super().stop()
        say("STOPPING")  # (only now: a signal before would be taken for the first one)


def started():
    say("HANDLING")
    if how == "stop-inside":  # the docs' grace example: stop() from the handler itself
        worker.stop()


if driver == "blocking":

    def handle(job):
        started()
        if wait == "steps":
            while True:
                time.sleep(0.01)
        threading.Event().wait()  # never set: only an interruption ends it

elif driver == "asyncio":

    async def handle(job):
        started()
        await asyncio.Event().wait()

else:
    import trio

    async def handle(job):
        started()
        await trio.sleep_forever()


worker = Worker(handle, address=(host, int(port)), grace=float(grace))
if driver == "blocking":
    handled = worker.run()
elif driver == "asyncio":
    handled = asyncio.run(worker.run_asyncio())
else:
    handled = trio.run(worker.run_trio)
say(f"RETURNED {handled}")
"""


class Child:
    """A worker process, and what it printed so far."""

    def __init__(
        self, server: BeanstalkdServer, driver: str, grace: float, how: str, wait: str
    ) -> None:
        assert isinstance(server.address, tuple)
        host, port = server.address
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, driver, host, str(port), str(grace), how, wait],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.out = b""

    def wait_for(self, line: str) -> None:
        """Read the child's stdout until ``line`` (fails if it exits or stays silent)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + LIMIT
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while (line + "\n").encode() not in self.out:
                left = deadline - time.monotonic()
                assert left > 0, f"no {line!r} from the child; it said {self.out!r}"
                if not selector.select(left):
                    continue
                chunk = os.read(self.process.stdout.fileno(), 4096)
                assert chunk, f"the child ended before {line!r}: {self.finish()}"
                self.out += chunk

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the child to exit: its status, stdout and stderr."""
        out, err = self.process.communicate(timeout=LIMIT)
        return self.process.returncode, (self.out + out).decode(), err.decode()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Children started by the test; any still running at the end is killed."""
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


def start(
    children: list[Child],
    server: BeanstalkdServer,
    driver: str,
    grace: float,
    how: str,
    wait: str = "endless",
) -> tuple[Child, int]:
    """Put one job, start a worker child on it, and wait until its handler runs."""
    with jackstalk.Client(server.address, timeout=30) as client:
        job_id = client.put("stuck")
    child = Child(server, driver, grace, how, wait)
    children.append(child)
    child.wait_for("HANDLING")
    return child, job_id


def assert_back_to_ready(server: BeanstalkdServer, job_id: int) -> None:
    with jackstalk.Client(server.address, timeout=30) as client:
        stats = client.stats_job(job_id)
    assert stats["state"] == "ready"
    assert stats["reserves"] == 1


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("how", ["stop-inside", "signal"])
def test_grace_over_is_one_line_and_a_normal_return(
    beanstalkd: BeanstalkdServer, children: list[Child], driver: str, how: str
) -> None:
    """stop() (the docs' example) or one SIGTERM, then a handler that outlives the grace
    period: it is cancelled, one warning says so, the run method returns, exit status 0."""
    child, job_id = start(children, beanstalkd, driver, 0.2, how)
    if how == "signal":
        child.signal(signal.SIGTERM)
    status, out, err = child.finish()
    assert status == 0, err
    assert "RETURNED 0" in out  # (a cancelled handler is not counted as handled)
    assert "Traceback" not in err
    assert "never retrieved" not in err
    assert err.splitlines() == [
        "grace period of 0.2 s over: 1 running handler(s) cancelled, their jobs go back to ready"
    ]
    assert_back_to_ready(beanstalkd, job_id)


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_second_signal_exits_with_128_plus_the_signal(
    beanstalkd: BeanstalkdServer, children: list[Child], driver: str, number: signal.Signals
) -> None:
    """The first signal starts the graceful stop; a second one cancels the handler at once
    and the run method raises SystemExit(128 + signal number): no traceback, one line."""
    child, job_id = start(children, beanstalkd, driver, 600, "signal", "steps")
    child.signal(number)
    child.wait_for("STOPPING")
    child.signal(number)
    status, out, err = child.finish()
    assert status == 128 + number, err
    assert "RETURNED" not in out
    assert "Traceback" not in err
    assert err.splitlines() == [
        f"second {number.name}: stopping now; 1 running handler(s) cancelled, their jobs go"
        f" back to ready (exit status {128 + number})"
    ]
    assert_back_to_ready(beanstalkd, job_id)
