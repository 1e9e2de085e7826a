"""The embedded server beside the real beanstalkd: speed, start-up, memory and fairness.

Run::

    python tests/bench/bench_embedded.py [SECTION ...] [--json FILE]

Sections (all of them when none is named):

``round-trips``
    ``put``, ``reserve-with-timeout 0`` and ``delete`` with jackstalk's blocking client, one
    command at a time, on a fresh server of each kind (the embedded one in a background
    thread of this process, as ``jackstalk.testing.embedded_server`` runs it); round trips
    per second, median of ``--repeat`` runs of ``--ops``.
``startup``
    ``python -m jackstalk serve -l 127.0.0.1 -p PORT`` and ``beanstalkd -l 127.0.0.1 -p
    PORT`` launched ``--launches`` times each: the time from the launch to the first TCP
    connect that succeeds (polled every 0.2 ms), to the first reply (``list-tube-used``),
    and from SIGTERM to the process's exit; medians. For scale, the same interpreter
    launched to do nothing but listen (the floor for any Python server here).
``memory``
    Each server started the same way; RSS (``/proc/PID/status``) after one connection,
    then after ``--jobs`` puts of 10-byte bodies (pipelined, 1,000 at a time): the
    difference per job.
``latency``
    One process floods a server with pipelined puts on one connection (at most 2,000
    unanswered) for ``--flood`` seconds; meanwhile another connection sends ``stats``
    every 5 ms and times each reply: median, 99th percentile and maximum.

Not collected by pytest. Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import jackstalk
from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd

Address = tuple[str, int] | str
Launcher = Callable[[int], list[str]]

POLL = 0.0002  # seconds between connect attempts while a server starts
PUT = b"put 0 0 120 10\r\n0123456789\r\n"


# ------------------------------------------------------------------ round trips


@contextmanager
def embedded() -> Iterator[Address]:
    with embedded_server() as server:
        yield server.address


@contextmanager
def real() -> Iterator[Address]:
    with run_beanstalkd() as server:
        yield server.address


def round_trips(address: Address, ops: int) -> float:
    """Put, reserve and delete ``ops`` jobs; return round trips per second."""
    with jackstalk.Client(address, encoding=None) as client:
        for _ in range(100):  # warm up: connection, caches
            client.delete(client.put(b"warm-up"))
        start = time.perf_counter()
        for _ in range(ops):
            client.put(b"job body")
            job = client.reserve(timeout=0)
            assert job is not None
            job.delete()
        elapsed = time.perf_counter() - start
        stats = client.stats()
        assert stats["total-jobs"] == ops + 100
        assert stats["current-jobs-ready"] == 0
    return ops / elapsed


def section_round_trips(args: argparse.Namespace) -> dict[str, Any]:
    servers: dict[str, Callable[[], AbstractContextManager[Address]]] = {"embedded": embedded}
    if beanstalkd_available():
        servers["beanstalkd"] = real
    results: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(args.repeat):
        for name, start in servers.items():
            with start() as address:
                results[name].append(round_trips(address, args.ops))
    print(f"put + reserve + delete round trips per second ({args.ops} x {args.repeat}, median)")
    out: dict[str, Any] = {}
    for name, rates in results.items():
        median = statistics.median(rates)
        out[name] = {"median": median, "min": min(rates), "max": max(rates)}
        print(f"  {name:<12} {median:>9,.0f}/s   (min {min(rates):,.0f}, max {max(rates):,.0f})")
    return out


# ------------------------------------------------------------------ servers as processes


def launchers() -> dict[str, Launcher]:
    """The command line of each server kind, given a port."""
    found: dict[str, Launcher] = {
        "embedded": lambda port: [
            sys.executable,
            "-m",
            "jackstalk",
            "serve",
            "-l",
            "127.0.0.1",
            "-p",
            str(port),
        ]
    }
    if beanstalkd_available():
        found["beanstalkd"] = lambda port: ["beanstalkd", "-l", "127.0.0.1", "-p", str(port)]
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connect_when_up(port: int, process: subprocess.Popen[bytes]) -> socket.socket:
    """Connect as soon as the server listens (polling); fail if it exits first."""
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except ConnectionRefusedError as refused:
            if process.poll() is not None:
                status = process.returncode
                raise RuntimeError(f"the server exited with status {status}") from refused
            time.sleep(POLL)


def read_until(sock: socket.socket, count: int, marker: bytes = b"\r\n") -> bytes:
    """Read until ``count`` occurrences of ``marker`` have arrived."""
    data = bytearray()
    seen = 0
    while seen < count:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(f"closed after {bytes(data[-200:])!r}")
        seen += (data[-len(marker) + 1 :] + chunk).count(marker) if data else chunk.count(marker)
        data += chunk
    return bytes(data)


def stop(process: subprocess.Popen[bytes]) -> float:
    """SIGTERM the server; return the seconds it took to exit."""
    start = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return time.perf_counter() - start


class Launched:
    """A server process, a connection to it, and how long it took to exit when stopped."""

    def __init__(self, process: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.process = process
        self.sock = sock
        self.exit_seconds = 0.0

    def stop(self) -> None:
        self.sock.close()
        self.exit_seconds = stop(self.process)


@contextmanager
def launched(launch: Launcher) -> Iterator[Launched]:
    port = free_port()
    process = subprocess.Popen(launch(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect_when_up(port, process)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = Launched(process, sock)
        try:
            yield server
        finally:
            server.sock.close()
    finally:
        if process.poll() is None:
            stop(process)


def rss(pid: int) -> int:
    """Resident memory of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


# ------------------------------------------------------------------ start-up

BARE_LISTENER = """
import socket, sys
sock = socket.create_server(("127.0.0.1", int(sys.argv[1])))
conn, _ = sock.accept()
conn.recv(100)
conn.sendall(b"USING default\\r\\n")
conn.recv(100)
"""


def section_startup(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    print(f"start-up ({args.launches} launches each, median; min in brackets)")
    kinds = launchers()
    kinds["python floor"] = lambda port: [sys.executable, "-c", BARE_LISTENER, str(port)]
    for name, launch in kinds.items():
        up: list[float] = []
        replied: list[float] = []
        exits: list[float] = []
        for _ in range(args.launches):
            port = free_port()
            argv = launch(port)
            start = time.perf_counter()
            process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                with connect_when_up(port, process) as sock:
                    up.append(time.perf_counter() - start)
                    sock.sendall(b"list-tube-used\r\n")
                    assert read_until(sock, 1) == b"USING default\r\n"
                    replied.append(time.perf_counter() - start)
            finally:
                exits.append(stop(process))
        row = {
            "connect_ms": statistics.median(up) * 1000,
            "connect_min_ms": min(up) * 1000,
            "reply_ms": statistics.median(replied) * 1000,
            "exit_ms": statistics.median(exits) * 1000,
            "exit_max_ms": max(exits) * 1000,
        }
        out[name] = row
        print(
            f"  {name:<12} connect {row['connect_ms']:6.1f} ms ({row['connect_min_ms']:.1f})"
            f"   first reply {row['reply_ms']:6.1f} ms"
            f"   exit on SIGTERM {row['exit_ms']:6.1f} ms (max {row['exit_max_ms']:.1f})"
        )
    return out


# ------------------------------------------------------------------ memory


def section_memory(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    batch = 1000
    print(f"memory: RSS after {args.jobs:,} puts of 10-byte bodies minus RSS before")
    for name, launch in launchers().items():
        with launched(launch) as server:
            sock = server.sock
            sock.sendall(b"list-tube-used\r\n")
            read_until(sock, 1)
            before = rss(server.process.pid)
            for done in range(0, args.jobs, batch):
                count = min(batch, args.jobs - done)
                sock.sendall(PUT * count)
                read_until(sock, count)
            sock.sendall(b"stats\r\n")
            assert b"\ncurrent-jobs-ready: %d\n" % args.jobs in read_until(sock, 1, b"\n\r\n")
            after = rss(server.process.pid)
            server.stop()
        per_job = (after - before) / args.jobs
        out[name] = {
            "before": before,
            "after": after,
            "per_job": per_job,
            "exit_ms": server.exit_seconds * 1000,
        }
        print(
            f"  {name:<12} {before / 2**20:6.1f} MB -> {after / 2**20:6.1f} MB"
            f"   {per_job:6.0f} bytes per job"
            f"   (then exit on SIGTERM in {server.exit_seconds * 1000:.0f} ms)"
        )
    if len(out) == 2:
        ratio = out["embedded"]["per_job"] / out["beanstalkd"]["per_job"]
        print(f"  embedded / beanstalkd per job: {ratio:.2f}")
    return out


# ------------------------------------------------------------------ latency under a flood

FLOOD = r"""
import selectors, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
put = b"put 0 0 120 10\r\n0123456789\r\n"
batch = put * 100
sock = socket.create_connection(("127.0.0.1", port))
sock.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
sent = answered = 0
pending = b""
started = False
end = None
while end is None or time.monotonic() < end:
    for _, events in sel.select(0.1):
        if events & selectors.EVENT_READ:
            data = sock.recv(1 << 20)
            answered += data.count(b"\r\n")
            if not started and answered:
                started = True
                end = time.monotonic() + seconds
                print("started", flush=True)
        if events & selectors.EVENT_WRITE:
            if not pending and sent - answered < 2000:
                pending = batch
                sent += 100
            if pending:
                pending = pending[sock.send(pending):]
print(answered, flush=True)
"""


def section_latency(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    print(f"stats latency while another connection floods puts ({args.flood:g} s)")
    for name, launch in launchers().items():
        with launched(launch) as server:
            sock = server.sock
            port = sock.getpeername()[1]
            flood = subprocess.Popen(
                [sys.executable, "-c", FLOOD, str(port), str(args.flood)],
                stdout=subprocess.PIPE,
            )
            assert flood.stdout is not None
            assert flood.stdout.readline() == b"started\n"
            samples: list[float] = []
            end = time.monotonic() + args.flood
            while time.monotonic() < end:
                start = time.perf_counter()
                sock.sendall(b"stats\r\n")
                read_until(sock, 1, b"\n\r\n")
                samples.append(time.perf_counter() - start)
                time.sleep(0.005)
            puts = int(flood.stdout.readline())
            flood.wait()
            flood.stdout.close()
        samples.sort()
        row = {
            "median_ms": statistics.median(samples) * 1000,
            "p99_ms": samples[int(len(samples) * 0.99)] * 1000,
            "max_ms": samples[-1] * 1000,
            "samples": len(samples),
            "puts_per_s": puts / args.flood,
        }
        out[name] = row
        print(
            f"  {name:<12} median {row['median_ms']:7.2f} ms   99% {row['p99_ms']:7.2f} ms"
            f"   max {row['max_ms']:7.2f} ms   ({len(samples)} stats;"
            f" flood {row['puts_per_s']:,.0f} puts/s)"
        )
    return out


# ------------------------------------------------------------------ main

SECTIONS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "round-trips": section_round_trips,
    "startup": section_startup,
    "memory": section_memory,
    "latency": section_latency,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument("--ops", type=int, default=5000, help="round trips per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="round-trip runs per server")
    parser.add_argument("--launches", type=int, default=20, help="start-ups per server")
    parser.add_argument("--jobs", type=int, default=200_000, help="puts for the memory test")
    parser.add_argument("--flood", type=float, default=3.0, help="seconds of put flood")
    parser.add_argument("--json", help="write the figures to this file as well")
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]!r}: choose from {', '.join(SECTIONS)}")
    if not beanstalkd_available():
        print("beanstalkd is not on PATH: measuring the embedded server only", file=sys.stderr)
    results = {name: SECTIONS[name](args) for name in (args.sections or SECTIONS)}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
