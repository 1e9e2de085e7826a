"""The embedded server's listener on real sockets, beside beanstalkd: bodies past 64 KiB,
hang-ups during a wait, one connection flooding the others, start-up and exit.

Each case runs on the real beanstalkd, on the embedded server in a thread, and on
``jackstalk serve`` in its own process (see serverkit.py). Nothing here waits on time: a
hang-up is settled by asking for ``stats`` until the server has closed the connection, and
a flood is set up while the server is stopped (SIGSTOP) or before its loop runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from serverkit import KINDS, LIMIT, Serving, Wire, running, settle

from jackstalk.transports.server import start_server

BIG = 1_000_000  # -z for the body tests
WAIT = b"watch T\r\nignore default\r\nuse T-o\r\nreserve\r\n"


def _put(body: bytes, priority: int = 0) -> bytes:
    return b"put %d 0 10 %d\r\n%b\r\n" % (priority, len(body), body)


def _body(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


# ------------------------------------------------------------------ bodies


@pytest.mark.parametrize("kind", KINDS)
def test_bodies_up_to_max_job_size_are_taken_whole(kind: str) -> None:
    with running(kind, max_job_size=BIG) as server:
        wire = Wire(server.address)
        for size in (65536 + 1, 128 * 1024, 300_000, BIG):
            body = _body(size)
            wire.send(_put(body) + b"reserve-with-timeout 0\r\n")
            inserted = wire.line()
            assert inserted.startswith(b"INSERTED "), (size, inserted)
            job = inserted.split()[1]
            assert wire.reply() == (b"RESERVED %b %d" % (job, size), body)
            wire.send(b"delete %b\r\n" % job)
            assert wire.line() == b"DELETED"
        # One byte more is refused (the body is read and thrown away), and the connection
        # carries on.
        wire.send(_put(_body(BIG + 1)) + _put(b"after"))
        assert wire.line() == b"JOB_TOO_BIG"
        assert wire.line().startswith(b"INSERTED ")
        stats = wire.stats()
        assert (stats["cmd-put"], stats["total-jobs"]) == ("6", "5")
        wire.close()


# ------------------------------------------------------------------ hang-ups


def _hang_up_during_a_wait(address: tuple[str, int] | str, queued: int) -> int:
    """One write: a reserve that waits, then ``queued`` puts; the replies up to the wait
    read, then the socket closed. Returns how many jobs the server stored."""
    probe = Wire(address)
    wire = Wire(address)
    wire.send(WAIT + b"".join(_put(b"%d" % n) for n in range(queued)))
    assert [wire.line() for _ in range(3)] == [b"WATCHING 2", b"WATCHING 1", b"USING T-o"]
    wire.close()
    stats = settle(probe, 1)
    probe.close()
    assert (stats["cmd-reserve"], stats["current-waiting"]) == ("1", "0")
    # Each put that ran was stored (none was left half-read).
    assert stats["cmd-put"] == stats["total-jobs"] == stats["current-jobs-ready"]
    return int(stats["total-jobs"])


@pytest.mark.parametrize("kind", KINDS)
def test_hang_up_during_a_wait_over_tcp_runs_just_the_next_command(kind: str) -> None:
    # TIMED_OUT is written, the client's system answers it with a reset, the first put
    # runs and its INSERTED cannot be written: the others never run. (If the reset came
    # late, as on a very busy machine, a few more would: on both servers alike.)
    with running(kind) as server:
        assert 1 <= _hang_up_during_a_wait(server.address, 20) < 20


@pytest.mark.parametrize("kind", KINDS)
def test_hang_up_during_a_wait_over_a_unix_socket_runs_nothing_more(
    kind: str, tmp_path: Path
) -> None:
    # A write to a Unix socket whose client has gone fails at once: TIMED_OUT cannot be
    # written, and no queued command runs.
    with running(kind, unix_path=str(tmp_path / "server.sock")) as server:
        assert _hang_up_during_a_wait(server.address, 20) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_half_close_during_a_wait_runs_every_queued_command(kind: str) -> None:
    with running(kind) as server:
        wire = Wire(server.address)
        wire.send(WAIT + _put(b"a") + _put(b"b") + b"watch T-o\r\nreserve\r\n")
        wire.sock.shutdown(socket.SHUT_WR)
        lines = [wire.line() for _ in range(8)]
        assert lines[3:] == [
            b"TIMED_OUT",
            b"INSERTED 1",
            b"INSERTED 2",
            b"WATCHING 2",
            b"RESERVED 1 1",
        ]
        assert wire.sock.recv(100) == b""  # then the server closes
        wire.close()


# ------------------------------------------------------------------ fairness

FLOOD = 2000  # puts queued on one connection in one go


def _flood_then_stats(address: tuple[str, int] | str, stop: int | None) -> int:
    """Queue FLOOD puts on one connection and a ``stats`` on another while the server is
    stopped; return ``cmd-put`` as the stats saw it (how many puts ran before it)."""
    flood = Wire(address)
    other = Wire(address)
    for wire in (flood, other):  # both accepted and served before the server stops
        wire.send(b"list-tube-used\r\n")
        assert wire.line() == b"USING default"
    if stop is not None:
        os.kill(stop, signal.SIGSTOP)
    try:
        flood.send(_put(b"x") * FLOOD)
        other.send(b"stats\r\n")
    finally:
        if stop is not None:
            os.kill(stop, signal.SIGCONT)
    stats = other.reply()[1]
    assert stats is not None
    seen = int(stats.split(b"\ncmd-put: ")[1].split(b"\n")[0])
    assert all(flood.line().startswith(b"INSERTED ") for _ in range(FLOOD))
    flood.close()
    other.close()
    return seen


@pytest.mark.parametrize("kind", ["real", "serve"])
def test_a_flooding_connection_does_not_hold_up_another(kind: str) -> None:
    # beanstalkd runs one command per connection in turn (the stats sees a put or two);
    # the embedded server gives each connection about a millisecond at a time.
    with running(kind) as server:
        assert server.pid is not None
        assert _flood_then_stats(server.address, server.pid) < FLOOD // 2


def test_a_flooding_connection_takes_turns_in_the_embedded_loop() -> None:
    # Both connections' bytes are queued before the server's loop first runs: the stats is
    # answered after at most a turn of the flood, not after all of it.
    async def main() -> int:
        server = await start_server("127.0.0.1", 0)
        loop = asyncio.get_running_loop()
        address = server.address
        assert isinstance(address, tuple)
        flood = socket.create_connection(address, timeout=LIMIT)
        other = socket.create_connection(address, timeout=LIMIT)
        try:
            # Blocking, on purpose: the loop cannot serve anything until both are sent.
            flood.sendall(_put(b"x") * FLOOD)
            other.sendall(b"stats\r\n")
            for sock in (flood, other):
                sock.setblocking(False)
            stats = b""
            while not stats.endswith(b"\n\r\n"):
                stats += await loop.sock_recv(other, 65536)
            replies = b""
            while replies.count(b"\r\n") < FLOOD:
                replies += await loop.sock_recv(flood, 65536)
            assert replies.endswith(b"INSERTED %d\r\n" % FLOOD)
            return int(stats.split(b"\ncmd-put: ")[1].split(b"\n")[0])
        finally:
            flood.close()
            other.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(main()) < FLOOD // 2


# ------------------------------------------------------------------ start-up and exit


def test_serve_listens_before_it_imports_asyncio() -> None:
    # Scripts launch the server and connect at once: it listens (the system queues the
    # connections) before the slow imports.
    process = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "jackstalk", "serve", "-p", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    before: list[str] = []
    for line in process.stderr:
        if line.startswith("jackstalk serve: listening on "):
            break
        before.append(line.rsplit("|", 1)[-1].strip())
    process.send_signal(signal.SIGTERM)
    process.stderr.read()
    assert process.wait(timeout=LIMIT) == 0
    process.stderr.close()
    assert "socket" in before
    assert "asyncio" not in before
    assert "jackstalk._engine.engine" not in before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_exits_at_once_with_jobs_held(signum: int, tmp_path: Path) -> None:
    path = str(tmp_path / "serve.sock")
    server = Serving("-l", f"unix:{path}")
    wire = Wire(server.address)
    wire.send(_put(b"job") * 5000 + b"reserve\r\n")
    lines = [wire.line() for _ in range(5001)]
    assert lines[-1] == b"RESERVED 1 3"
    assert server.stop(signum) == 0
    assert not os.path.exists(path)
    wire.close()
