"""beanstalkd processes the cluster tests can kill, freeze and restart on the same port.

Each server gets its listening socket by socket activation (as ``jackstalk.testing`` does it,
so it accepts connections the moment it starts), but this process closes its own copy at
once: when the server dies, its port refuses connections, as a dead server's port does.
A restart binds the same port again and hands it to a new beanstalkd reading the same
binlog directory (``-b``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

import jackstalk

_SCRIPT = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&0 0</dev/null'


class Server:
    """One beanstalkd with a binlog, on a fixed loopback port once started."""

    def __init__(self, binlog: Path | None) -> None:
        self.binlog = binlog
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> None:
        """Start beanstalkd (again, on the same port and binlog, after :meth:`kill`)."""
        path = shutil.which("beanstalkd")
        if path is None:
            pytest.skip("beanstalkd is not on PATH")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(512)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.port = listener.getsockname()[1]
            options = [] if self.binlog is None else ["-b", str(self.binlog)]
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", _SCRIPT, path, *options],
                stdin=listener.fileno(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={**os.environ},
            )

    def kill(self) -> None:
        """SIGKILL: the server dies at once, its connections drop, its port refuses."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP for the block: connections are accepted by the kernel, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)


@contextmanager
def servers(count: int, root: Path | None) -> Iterator[list[Server]]:
    """``count`` running servers (with binlogs under ``root`` when it is given)."""
    with ExitStack() as stack:
        started = []
        for index in range(count):
            binlog = None
            if root is not None:
                binlog = root / f"binlog{index}"
                binlog.mkdir()
            server = Server(binlog)
            stack.callback(server.stop)
            server.start()
            started.append(server)
        yield started


def fill(group: list[Server], per_server: int) -> set[str]:
    """Put ``per_server`` jobs straight onto each server of ``group``; their bodies."""
    bodies = set()
    for index, server in enumerate(group):
        with jackstalk.Client(server.address) as client:
            batch = [f"s{index}-{n}" for n in range(per_server)]
            client.put_many(batch)
            bodies.update(batch)
    return bodies


def reserves(group: list[Server]) -> list[int]:
    """How many reserves with a timeout each server of ``group`` has answered so far."""
    counts = []
    for server in group:
        with jackstalk.Client(server.address) as client:
            counts.append(client.stats()["cmd-reserve-with-timeout"])
    return counts


def idle_reserves(group: list[Server]) -> list[int]:
    """The reserves a worker sent each server of ``group`` in a window of about two
    seconds, measured by the server itself (two one-second reserves on an empty tube)."""
    before = reserves(group)
    with jackstalk.Client(group[0].address, watch="clock") as clock:
        assert clock.reserve(timeout=1) is None
        assert clock.reserve(timeout=1) is None
    after = reserves(group)
    delta = [b - a for a, b in zip(before, after, strict=True)]
    delta[0] -= 2  # the clock's own
    return delta
