"""``jackstalk serve`` and ``jackstalk demo`` as a user runs them, and the embedded server's
robustness: garbage, clients that never read, and clients that vanish mid-command."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from serverkit import LIMIT, Serving, jackstalk_cli

import jackstalk
from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd


@pytest.fixture
def serving() -> Iterator[Serving]:
    server = Serving("-p", "0")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()


def test_serve_round_trip_and_clean_exit(serving: Serving) -> None:
    with jackstalk.Client(serving.address, timeout=LIMIT) as client:
        job_id = client.put("hello", priority=3)
        job = client.reserve(timeout=0)
        assert job is not None
        assert (job.id, job.body) == (job_id, "hello")
        job.delete()
        stats = client.stats()
        assert stats["version"] == "1.12"
        assert stats["pid"] == serving.process.pid
    assert serving.stop() == 0


def test_serve_on_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "embedded.sock")
    server = Serving("-l", f"unix:{path}")
    try:
        assert server.address == path
        with jackstalk.Client(path, timeout=LIMIT) as client:
            assert client.put("over unix") == 1
    finally:
        assert server.stop() == 0
    assert not os.path.exists(path)


def test_serve_max_job_size() -> None:
    server = Serving("-p", "0", "-z", "5")
    try:
        with socket.create_connection(server.address, timeout=LIMIT) as sock:  # type: ignore[arg-type]
            sock.sendall(b"put 1 0 1 6\r\nabcdef\r\nput 1 0 1 5\r\nabcde\r\n")
            assert _read_lines(sock, 2) == [b"JOB_TOO_BIG", b"INSERTED 1"]
    finally:
        server.stop()


def test_serve_address_in_use_is_one_line_and_status_1() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = jackstalk_cli("serve", "-p", str(port))
        out, err = process.communicate(timeout=LIMIT)
    assert process.returncode == 1
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"jackstalk serve: cannot listen on 127.0.0.1:{port}: ")
    assert "in use" in lines[0]


@pytest.mark.parametrize(
    "args",
    [["-p", "abc"], ["-p", "70000"], ["-z", "-5"], ["-z", "lots"], ["--bogus"], ["-l"]],
    ids=repr,
)
def test_serve_bad_flags_are_usage_errors(args: list[str]) -> None:
    process = jackstalk_cli("serve", *args)
    _, err = process.communicate(timeout=LIMIT)
    assert process.returncode == 2
    assert "usage: jackstalk" in err


def test_serve_help() -> None:
    process = jackstalk_cli("serve", "--help")
    out, _ = process.communicate(timeout=LIMIT)
    assert process.returncode == 0
    for flag in ("-l ADDR", "-p PORT", "-z BYTES"):
        assert flag in out


# ------------------------------------------------------------------ robustness


def _read_lines(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\r\n") < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data.split(b"\r\n")[:count]


@pytest.fixture
def embedded() -> Iterator[tuple[str, int] | str]:
    with embedded_server(max_job_size=1000) as server:
        yield server.address


def test_garbage_gets_beanstalkd_answers_and_the_server_stays_up(
    embedded: tuple[str, int],
) -> None:
    with socket.create_connection(embedded, timeout=LIMIT) as sock:
        sock.sendall(
            b"hello\r\n\x00\x01\x02\r\n" + b"x" * 5000 + b"\r\nput 1 2\r\nstats-job 99\r\n"
        )
        assert _read_lines(sock, 5) == [
            b"UNKNOWN_COMMAND",
            b"BAD_FORMAT",
            b"BAD_FORMAT",
            b"BAD_FORMAT",
            b"NOT_FOUND",
        ]
    with jackstalk.Client(embedded, timeout=LIMIT) as client:
        assert client.put("still here") == 1


def test_a_client_that_never_reads_does_not_hold_up_others(embedded: tuple[str, int]) -> None:
    with socket.create_connection(embedded, timeout=LIMIT) as hog:
        hog.setblocking(False)
        sent = 0
        request = b"peek-ready\r\nstats\r\n" * 1000
        try:  # write until the server stops reading from it
            for _ in range(10_000):
                sent += hog.send(request)
        except BlockingIOError:
            pass
        assert sent < 10_000 * len(request), "the server never stopped reading"
        with jackstalk.Client(embedded, timeout=LIMIT) as client:
            job_id = client.put("fine")
            job = client.reserve(timeout=0)
            assert job is not None
            assert job.id == job_id
            job.delete()


def test_clients_vanishing_mid_command_do_not_disturb_others(embedded: tuple[str, int]) -> None:
    with jackstalk.Client(embedded, timeout=LIMIT) as client:
        for partial in (b"put 1 0 10 500\r\nonly part of the body", b"stats-j", b"reserve\r\n"):
            with socket.create_connection(embedded, timeout=LIMIT) as sock:
                sock.sendall(partial)
        with socket.create_connection(embedded, timeout=LIMIT) as sock:
            sock.sendall(b"put 1 0 10 1\r\nx\r\nreserve\r\n")
            assert _read_lines(sock, 2) == [b"INSERTED 2", b"RESERVED 2 1"]
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
        # The reset connection's job went back to ready; the half-put job 1 never existed.
        job = client.reserve(timeout=5)
        assert job is not None
        assert job.id == 2
        assert client.peek(1) is None
        assert client.stats()["current-connections"] == 1


def test_quit_with_pipelined_commands_closes_at_the_quit(embedded: tuple[str, int]) -> None:
    with socket.create_connection(embedded, timeout=LIMIT) as sock:
        sock.sendall(b"list-tube-used\r\nquit\r\nstats\r\n")
        data = b""
        while chunk := sock.recv(1000):
            data += chunk
        assert data == b"USING default\r\n"


# ------------------------------------------------------------------ demo


def test_demo_on_the_embedded_server() -> None:
    process = jackstalk_cli("demo")
    out, err = process.communicate(timeout=LIMIT)
    assert process.returncode == 0, err
    assert "using the embedded server" in out
    assert "got job 2 'password reset'" in out  # priority 10 before 500 and 2000
    assert "once its delay ended" in out
    assert "kicks the buried jobs: 1 back to ready" in out
    assert out.rstrip().endswith("done")


def test_demo_on_a_given_server() -> None:
    if not beanstalkd_available():
        pytest.skip("beanstalkd is not on PATH")
    with run_beanstalkd() as real:
        assert isinstance(real.address, tuple)
        host, port = real.address
        process = jackstalk_cli("demo", "--address", f"{host}:{port}")
        out, err = process.communicate(timeout=LIMIT)
    assert process.returncode == 0, err
    assert f"using the server at {host}:{port}" in out
    assert "kicks the buried jobs: 1 back to ready" in out


# ------------------------------------------------------------------ garbage collection


class _FakeHandle:
    def cancel(self) -> None:
        pass


class _FakeLoop:
    """Just what the collector uses of a loop: the time, and call_later (recorded)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.later: list[Callable[[], object]] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> _FakeHandle:
        self.later.append(callback)
        return _FakeHandle()


def test_serve_collects_garbage_when_idle_or_after_a_long_busy_spell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jackstalk._app.serve import _IdleCollector

    collected: list[float] = []
    loop = _FakeLoop()

    def collect(generation: int = 2) -> int:
        collected.append(loop.now)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    server = SimpleNamespace(turns=0)
    threshold = gc.get_threshold()
    try:
        collector = _IdleCollector(server, loop)  # type: ignore[arg-type]
        assert gc.get_threshold()[2] == 2**31 - 1  # no automatic full collection

        def look(turns: int) -> None:
            server.turns = turns
            loop.now += collector.PERIOD
            loop.later.pop()()

        look(0)  # idle, but nothing ran since the start: nothing to collect
        look(5)  # busy
        assert collected == []
        look(5)  # idle after work: collect
        assert collected == [3.0]
        look(5)  # still idle, nothing new
        for turns in range(6, 70):  # busy for a minute without a pause
            look(turns)
        assert collected == [3.0, 63.0]
        collector.stop()
    finally:
        gc.set_threshold(*threshold)
