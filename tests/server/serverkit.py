"""The three servers the listener tests run on, and a raw connection to read them with.

``real`` is beanstalkd, ``embedded`` the embedded server in a thread of this process
(``jackstalk.testing.embedded_server``), ``serve`` the embedded server in its own process
(``jackstalk serve``). Each starts on a free loopback port, or on a Unix socket.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd

LIMIT = 30.0  # seconds any single read or exit may take before the test fails
KINDS = ("real", "embedded", "serve")
Address = tuple[str, int] | str


def jackstalk_cli(*args: str) -> subprocess.Popen[str]:
    """``python -m jackstalk ARGS``, with its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "jackstalk", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class Serving:
    """A ``jackstalk serve`` process and the address it said it listens on."""

    def __init__(self, *args: str) -> None:
        self.process = jackstalk_cli("serve", *args)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()  # waits for the server to be listening
        assert line.startswith("jackstalk serve: listening on "), line
        where = line.rsplit(" ", 1)[1].strip()
        if where.startswith("/"):
            self.address: Address = where
        else:
            host, _, port = where.rpartition(":")
            self.address = (host, int(port))

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server and return its exit status."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=LIMIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


@dataclass(frozen=True)
class Running:
    """A server of one kind: its address, and its process (None for the in-thread one)."""

    address: Address
    pid: int | None


def require_beanstalkd() -> None:
    """Skip the test when beanstalkd is missing (fail it in CI)."""
    if not beanstalkd_available():
        if os.environ.get("CI"):
            pytest.fail("beanstalkd is not installed, and CI must run the real-server tests")
        pytest.skip("beanstalkd is not on PATH")


@contextmanager
def running(
    kind: str, *, max_job_size: int = 65535, unix_path: str | None = None
) -> Iterator[Running]:
    """Start a server of ``kind`` until the block ends."""
    if kind == "real":
        require_beanstalkd()
        with run_beanstalkd(max_job_size=max_job_size, unix_path=unix_path) as real:
            yield Running(real.address, real.process.pid)
    elif kind == "embedded":
        with embedded_server(max_job_size=max_job_size, unix_path=unix_path) as embedded:
            yield Running(embedded.address, None)
    else:
        where = ["-l", f"unix:{unix_path}"] if unix_path else ["-p", "0"]
        serving = Serving(*where, "-z", str(max_job_size))
        try:
            yield Running(serving.address, serving.process.pid)
        finally:
            assert serving.stop() == 0


class Wire:
    """A raw client connection that reads whole replies (a body goes with its line)."""

    def __init__(self, address: Address) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(LIMIT)
        self.sock.connect(address)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        assert chunk, f"closed; got so far {self.buf[:200]!r}"
        self.buf += chunk

    def reply(self) -> tuple[bytes, bytes | None]:
        """The next reply line, and its body for ``RESERVED``, ``FOUND`` and ``OK``."""
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        if not line.startswith((b"RESERVED ", b"FOUND ", b"OK ")):
            return line, None
        size = int(line.rsplit(b" ", 1)[1]) + 2
        while len(self.buf) < size:
            self._fill()
        body, self.buf = self.buf[: size - 2], self.buf[size:]
        return line, body

    def line(self) -> bytes:
        """The next reply line (a body is read and dropped)."""
        return self.reply()[0]

    def stats(self, command: bytes = b"stats") -> dict[str, str]:
        """A ``stats`` (or ``stats-tube ...``) reply as a dictionary of strings."""
        self.send(command + b"\r\n")
        line, body = self.reply()
        assert body is not None, line
        pairs = (row.partition(": ") for row in body.decode().splitlines()[1:])
        return {key: value for key, _, value in pairs}

    def close(self) -> None:
        self.sock.close()


def settle(probe: Wire, connections: int) -> dict[str, str]:
    """Ask for ``stats`` until the server has ``connections`` open (it closes a hung-up
    connection a few events later); return the last."""
    for _ in range(10_000):
        stats = probe.stats()
        if int(stats["current-connections"]) == connections:
            return stats
    raise AssertionError(f"still {stats['current-connections']} connections")
