"""jackstalk against the other Python beanstalkd clients and plain-socket references.

Run: ``nox -s bench`` (installs the competitors), or with whatever is installed::

    python tests/bench/bench_clients.py [--repeat 5] [--ops 5000] [--json PATH]
                                        [--write-docs | --no-docs] [--quick]

Every measurement gets its own fresh beanstalkd (``jackstalk.testing.run_beanstalkd``) on a
free loopback port, so no run inherits another's jobs, ids or memory. Within a scenario the
competitors are measured in turn, repetition after repetition (A B C, B C A, C A B ...: the
order rotates), so that drift of the machine hits all of them alike. Every competitor sends
the same commands (same priority, delay, ttr and body bytes, bodies as ``bytes`` with no
decoding) and the same number of them; each run is checked afterwards against the server's
own counters, so a client that skipped work would be caught. Setup (connecting, pre-filling
a tube) is never timed.

Clients that are not installed are skipped (the test environment has none of them);
``--quick`` runs a few operations once, as a smoke test. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import importlib
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import jackstalk
from jackstalk.testing import beanstalkd_available, run_beanstalkd


def _optional(module: str) -> Any:
    """Import a competitor (or trio) if it is installed; ``None`` otherwise."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


greenstalk = _optional("greenstalk")
pystalk = _optional("pystalk")
aiostalk = _optional("aiostalk")
beanstalkc = _optional("beanstalkc")
trio = _optional("trio")
yaml = _optional("yaml")

Address = tuple[str, int]

# The same wire parameters for every client.
PRI = 1024
DELAY = 0
TTR = 60
SMALL = 100
LARGE = 16 * 1024
READ = 65536
ONE_AT_A_TIME = ("put", "reserve-delete", "roundtrip")
"""The scenario kinds that send one command at a time (scenarios 1-3)."""
PIPELINE_COMMANDS = 512
"""Commands per pipelined window of the raw-pipelined reference."""
PIPELINE_BYTES = 256 * 1024
"""Body bytes per pipelined window of the raw-pipelined reference."""

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "performance.md"


def _body(size: int) -> bytes:
    return b"x" * size


def _put_line(body: bytes) -> bytes:
    return b"put %d %d %d %d\r\n%b\r\n" % (PRI, DELAY, TTR, len(body), body)


class Unavailable(Exception):
    """A competitor cannot run here (not installed, or not written yet)."""


# =============================================================================== raw I/O


def _raw_connect(address: Address) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class RawReader:
    """Reply framing for the raw references: the reply line, then a body by its length.
    Nothing beyond the line is parsed."""

    __slots__ = ("buf", "recv")

    def __init__(self, sock: socket.socket, *, quickack: bool = False) -> None:
        self.recv: Callable[[int], bytes] = sock.recv
        if quickack and hasattr(socket, "TCP_QUICKACK"):
            self.recv = _quickack_recv(sock)
        self.buf = b""

    def _more(self) -> None:
        chunk = self.recv(READ)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def line(self) -> bytes:
        end = self.buf.find(b"\r\n")
        while end < 0:
            self._more()
            end = self.buf.find(b"\r\n")
        buf = self.buf
        self.buf = buf[end + 2 :]
        return buf[:end]

    def body(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            self._more()
        buf = self.buf
        self.buf = buf[size + 2 :]
        return buf[:size]

    def expect(self, word: bytes) -> bytes:
        line = self.line()
        if not line.startswith(word):
            raise RuntimeError(f"expected {word!r}, got {line[:40]!r}")
        return line


def _quickack_recv(sock: socket.socket) -> Callable[[int], bytes]:
    """``recv`` that re-arms TCP_QUICKACK (Linux) after every read.

    beanstalkd does not set TCP_NODELAY, so when one write from us makes it send two
    replies (``DELETED``, then ``RESERVED``), Nagle holds the second back until we
    acknowledge the first, and our delayed ACK waits ~40 ms: a client that sends more than
    one command per write must acknowledge at once, or it runs at ~25 cycles/s.
    """
    recv, setsockopt = sock.recv, sock.setsockopt
    level, option = socket.IPPROTO_TCP, socket.TCP_QUICKACK

    def read(size: int) -> bytes:
        data = recv(size)
        setsockopt(level, option, 1)
        return data

    return read


def _windows(total: int, body: bytes) -> Iterator[int]:
    """Sizes of the raw-pipelined windows: bounded by commands and by bytes."""
    per = max(1, min(PIPELINE_COMMANDS, PIPELINE_BYTES // max(len(body), 1)))
    done = 0
    while done < total:
        size = min(per, total - done)
        yield size
        done += size


def fill(address: Address, body: bytes, count: int) -> None:
    """Put ``count`` jobs, pipelined (the untimed pre-fill, the same for every client)."""
    with _raw_connect(address) as sock:
        _raw_pipelined_puts(sock, body, count)


def _raw_pipelined_puts(sock: socket.socket, body: bytes, count: int) -> None:
    line = _put_line(body)
    recv = _quickack_recv(sock) if hasattr(socket, "TCP_QUICKACK") else sock.recv
    due = 0  # replies not yet read
    pending = b""
    for size in _windows(count, body):
        sock.sendall(line * size)
        # Keep one window in flight: read what the one before it answered.
        due += size
        while due > size:
            pending += recv(READ)
            if not pending:
                raise ConnectionError("server closed the connection")
            lines = pending.count(b"\n")
            due -= lines
            pending = pending[pending.rfind(b"\n") + 1 :]
    while due > 0:
        chunk = recv(READ)
        if not chunk:
            raise ConnectionError("server closed the connection")
        pending += chunk
        due -= pending.count(b"\n")
        pending = pending[pending.rfind(b"\n") + 1 :]


def server_stats(address: Address) -> dict[str, Any]:
    """The server's counters, read after a run to check the work was really done."""
    with _raw_connect(address) as sock:
        sock.sendall(b"stats\r\n")
        reader = RawReader(sock)
        size = int(reader.expect(b"OK ").split()[1])
        return jackstalk.parse_stats(reader.body(size))


# ====================================================================== blocking kits
# A kit drives one client. ``open``/``close`` are untimed; each scenario method is timed as
# a whole, so the harness adds one call per measurement, never one per operation.


class SyncKit:
    """A blocking client under test."""

    name = ""
    kinds: frozenset[str] = frozenset()

    def check(self) -> None:
        """Raise :class:`Unavailable` if the client cannot run here."""

    def open(self, address: Address) -> Any:
        raise NotImplementedError

    def close(self, client: Any) -> None:
        client.close()


class JackstalkKit(SyncKit):
    name = "jackstalk"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "stats", "batch"})

    def open(self, address: Address) -> Any:
        client = jackstalk.Client(address, encoding=None)
        client.connect()
        return client

    def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            put(body, PRI, DELAY, TTR)

    def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            delete(reserve())

    def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            put(body, PRI, DELAY, TTR)
            delete(reserve())

    def stats(self, client: Any, body: bytes, n: int) -> None:
        stats = client.stats
        for _ in range(n):
            stats()

    def batch(self, client: Any, body: bytes, n: int) -> None:
        ids = client.put_many([body] * n, PRI, DELAY, TTR)
        if len(ids) != n:
            raise RuntimeError("put_many returned the wrong number of ids")


WORKER_HOOK_READY = True
"""True: :func:`jackstalk_worker_cycles` drives jackstalk's own worker loop."""


def jackstalk_worker_cycles(client: Any, n: int) -> None:
    """Scenario 7 on jackstalk's worker loop (:class:`jackstalk.Worker`), which sends the
    ``delete`` of one job and the ``reserve`` of the next in one write: reserve and delete
    exactly ``n`` jobs from the pre-filled default tube on ``client``, then return."""
    handled = 0

    def handle(job: Any) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            worker.stop()

    worker = jackstalk.Worker(handle, watch="default")
    worker.run(client)


class JackstalkWorkerKit(JackstalkKit):
    name = "jackstalk-worker"
    kinds = frozenset({"worker"})

    def check(self) -> None:
        if not WORKER_HOOK_READY:
            raise Unavailable(
                "jackstalk's worker loop is not hooked in yet (jackstalk_worker_cycles)"
            )

    def worker(self, client: Any, body: bytes, n: int) -> None:
        jackstalk_worker_cycles(client, n)


class GreenstalkKit(SyncKit):
    name = "greenstalk"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "stats", "batch"})

    def check(self) -> None:
        if greenstalk is None:
            raise Unavailable("greenstalk is not installed")

    def open(self, address: Address) -> Any:
        return greenstalk.Client(address, encoding=None)

    def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            put(body, PRI, DELAY, TTR)

    def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            delete(reserve())

    def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            put(body, PRI, DELAY, TTR)
            delete(reserve())

    def stats(self, client: Any, body: bytes, n: int) -> None:
        stats = client.stats
        for _ in range(n):
            stats()

    def batch(self, client: Any, body: bytes, n: int) -> None:
        put = client.put  # greenstalk has no batch put: sequential puts are its fastest way
        for item in [body] * n:
            put(item, PRI, DELAY, TTR)


class PystalkKit(SyncKit):
    name = "pystalk"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "stats", "batch"})

    def check(self) -> None:
        if pystalk is None:
            raise Unavailable("pystalk is not installed")

    def open(self, address: Address) -> Any:
        client = pystalk.BeanstalkClient(address[0], address[1], auto_decode=False)
        client.stats()  # pystalk connects lazily: connect before the clock starts
        return client

    def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put_job
        for _ in range(n):
            put(body, PRI, DELAY, TTR)

    def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        # pystalk has no plain reserve: reserve-with-timeout 0 takes a ready job at once.
        reserve, delete = client.reserve_job, client.delete_job
        for _ in range(n):
            delete(reserve(0))

    def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put_job, client.reserve_job, client.delete_job
        for _ in range(n):
            put(body, PRI, DELAY, TTR)
            delete(reserve(0))

    def stats(self, client: Any, body: bytes, n: int) -> None:
        stats = client.stats  # PyYAML's C loader when available (pystalk's own choice)
        for _ in range(n):
            stats()

    def batch(self, client: Any, body: bytes, n: int) -> None:
        put = client.put_job
        for item in [body] * n:
            put(item, PRI, DELAY, TTR)


def _yaml_loader() -> Callable[[Any], Any]:
    loader = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    def load(text: Any) -> Any:
        return yaml.load(text, Loader=loader)

    return load


class BeanstalkcKit(SyncKit):
    name = "beanstalkc"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "stats", "batch"})

    def check(self) -> None:
        if beanstalkc is None:
            raise Unavailable("beanstalkc (beanstalkc3) is not installed")
        if yaml is None:
            raise Unavailable("beanstalkc needs PyYAML")

    def open(self, address: Address) -> Any:
        # Its default parser, a bare yaml.load, raises TypeError on PyYAML >= 6: give it the
        # safe loader (C version when available), as its users must.
        return beanstalkc.Connection(
            address[0], address[1], parse_yaml=_yaml_loader(), encoding=None
        )

    def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            put(body, PRI, DELAY, TTR)

    def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            delete(reserve().jid)

    def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            put(body, PRI, DELAY, TTR)
            delete(reserve().jid)

    def stats(self, client: Any, body: bytes, n: int) -> None:
        stats = client.stats
        for _ in range(n):
            stats()

    def batch(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for item in [body] * n:
            put(item, PRI, DELAY, TTR)


class RawSequentialKit(SyncKit):
    """A plain socket, one command at a time: the ceiling for a blocking client."""

    name = "raw-sequential"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "stats", "batch"})

    def open(self, address: Address) -> Any:
        return _raw_connect(address)

    def put(self, sock: socket.socket, body: bytes, n: int) -> None:
        line = _put_line(body)
        send, expect = sock.sendall, RawReader(sock).expect
        for _ in range(n):
            send(line)
            expect(b"INSERTED ")

    def reserve_delete(self, sock: socket.socket, body: bytes, n: int) -> None:
        reader = RawReader(sock)
        send, expect, read_body = sock.sendall, reader.expect, reader.body
        for _ in range(n):
            send(b"reserve\r\n")
            _, job_id, size = expect(b"RESERVED ").split(b" ")
            read_body(int(size))
            send(b"delete " + job_id + b"\r\n")
            expect(b"DELETED")

    def roundtrip(self, sock: socket.socket, body: bytes, n: int) -> None:
        line = _put_line(body)
        reader = RawReader(sock)
        send, expect, read_body = sock.sendall, reader.expect, reader.body
        for _ in range(n):
            send(line)
            expect(b"INSERTED ")
            send(b"reserve\r\n")
            _, job_id, size = expect(b"RESERVED ").split(b" ")
            read_body(int(size))
            send(b"delete " + job_id + b"\r\n")
            expect(b"DELETED")

    def stats(self, sock: socket.socket, body: bytes, n: int) -> None:
        reader = RawReader(sock)
        send, expect, read_body = sock.sendall, reader.expect, reader.body
        for _ in range(n):
            send(b"stats\r\n")
            read_body(int(expect(b"OK ")[3:]))  # the body is left unparsed

    def batch(self, sock: socket.socket, body: bytes, n: int) -> None:
        self.put(sock, body, n)


class BareClient:
    """The least a blocking client can do per command: format it from its arguments, send
    it, and turn the reply into the result, over raw-sequential's framing. No argument
    checks, no command or reply objects, no error replies, no timeouts, no reconnecting."""

    __slots__ = ("body", "close", "expect", "send")

    def __init__(self, sock: socket.socket) -> None:
        reader = RawReader(sock)
        self.send, self.expect, self.body = sock.sendall, reader.expect, reader.body
        self.close = sock.close

    def put(self, body: bytes, priority: int, delay: int, ttr: int) -> int:
        self.send(b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body))
        return int(self.expect(b"INSERTED ")[9:])

    def reserve(self) -> tuple[int, bytes]:
        self.send(b"reserve\r\n")
        _, job_id, size = self.expect(b"RESERVED ").split(b" ")
        return int(job_id), self.body(int(size))

    def delete(self, job_id: int) -> None:
        self.send(b"delete %d\r\n" % job_id)
        self.expect(b"DELETED")


class BareClientKit(SyncKit):
    """A floor for every real client: what raw-sequential does, plus building each command
    from arguments and returning results. What a client checks and models costs beyond it."""

    name = "bare-client"
    kinds = frozenset({"put", "reserve-delete", "roundtrip"})

    def open(self, address: Address) -> Any:
        return BareClient(_raw_connect(address))

    def put(self, client: BareClient, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            put(body, PRI, DELAY, TTR)

    def reserve_delete(self, client: BareClient, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            delete(reserve()[0])

    def roundtrip(self, client: BareClient, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            put(body, PRI, DELAY, TTR)
            delete(reserve()[0])


class RawPipelinedKit(SyncKit):
    """A plain socket sending large windows while it reads the replies of the one before."""

    name = "raw-pipelined"
    kinds = frozenset({"put", "reserve-delete", "batch"})

    def open(self, address: Address) -> Any:
        return _raw_connect(address)

    def put(self, sock: socket.socket, body: bytes, n: int) -> None:
        _raw_pipelined_puts(sock, body, n)

    def batch(self, sock: socket.socket, body: bytes, n: int) -> None:
        _raw_pipelined_puts(sock, body, n)

    def reserve_delete(self, sock: socket.socket, body: bytes, n: int) -> None:
        reader = RawReader(sock, quickack=True)
        send, expect, read_body = sock.sendall, reader.expect, reader.body
        ids: list[bytes] = []
        for size in _windows(n, body):
            # One write: the deletes of the previous window, then this window's reserves.
            send(b"".join([b"delete %b\r\n" % job_id for job_id in ids]) + b"reserve\r\n" * size)
            for _ in ids:
                expect(b"DELETED")
            ids = []
            for _ in range(size):
                _, job_id, length = expect(b"RESERVED ").split(b" ")
                read_body(int(length))
                ids.append(job_id)
        send(b"".join([b"delete %b\r\n" % job_id for job_id in ids]))
        for _ in ids:
            expect(b"DELETED")


class RawWorkerKit(SyncKit):
    """Scenario 7's reference: the delete of one job and the next reserve in one write."""

    name = "raw-worker"
    kinds = frozenset({"worker"})

    def open(self, address: Address) -> Any:
        return _raw_connect(address)

    def worker(self, sock: socket.socket, body: bytes, n: int) -> None:
        reader = RawReader(sock, quickack=True)
        send, expect, read_body = sock.sendall, reader.expect, reader.body
        send(b"reserve\r\n")
        for left in range(n - 1, -1, -1):
            _, job_id, size = expect(b"RESERVED ").split(b" ")
            read_body(int(size))
            send(b"delete " + job_id + (b"\r\nreserve\r\n" if left else b"\r\n"))
            expect(b"DELETED")


# ========================================================================= async kits


class AsyncKit:
    """An asyncio or trio client under test."""

    name = ""
    library = "asyncio"
    kinds: frozenset[str] = frozenset()

    def check(self) -> None:
        if self.library == "trio" and trio is None:
            raise Unavailable("trio is not installed")

    async def open(self, address: Address) -> Any:
        raise NotImplementedError

    async def close(self, client: Any) -> None:
        await client.close()


class JackstalkAsyncKit(AsyncKit):
    name = "jackstalk-asyncio"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "batch"})

    def _client(self, address: Address) -> Any:
        return jackstalk.AsyncClient(address, encoding=None)

    async def open(self, address: Address) -> Any:
        client = self._client(address)
        await client.connect()
        return client

    async def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)

    async def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            await delete(await reserve())

    async def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)
            await delete(await reserve())

    async def batch(self, client: Any, body: bytes, n: int) -> None:
        ids = await client.put_many([body] * n, PRI, DELAY, TTR)
        if len(ids) != n:
            raise RuntimeError("put_many returned the wrong number of ids")


class JackstalkTrioKit(JackstalkAsyncKit):
    name = "jackstalk-trio"
    library = "trio"

    def _client(self, address: Address) -> Any:
        return jackstalk.TrioClient(address, encoding=None)


class AiostalkKit(AsyncKit):
    name = "aiostalk"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "batch"})

    def check(self) -> None:
        if aiostalk is None:
            raise Unavailable("aiostalk is not installed")

    async def open(self, address: Address) -> Any:
        client = aiostalk.Client(address, encoding=None)
        await client.connect()
        return client

    async def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)

    async def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            await delete(await reserve())

    async def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)
            await delete(await reserve())

    async def batch(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for item in [body] * n:
            await put(item, PRI, DELAY, TTR)


class _RawProtocol(asyncio.Protocol):
    """The raw-asyncio reference: a bare protocol, woken by one future per reply.

    (Measured against asyncio streams, ``readline``/``readexactly``, with this harness:
    the protocol used less CPU per operation in all four of put and reserve + delete,
    100 B and 16 KiB, 7 repetitions, and was faster in three of the four paired ratios,
    so it is the reference.)
    """

    def __init__(self) -> None:
        self.buf = b""
        self.waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("server closed the connection"))

    async def _more(self) -> None:
        if self.lost:
            raise ConnectionError("server closed the connection")
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def line(self) -> bytes:
        end = self.buf.find(b"\r\n")
        while end < 0:
            await self._more()
            end = self.buf.find(b"\r\n")
        buf = self.buf
        self.buf = buf[end + 2 :]
        return buf[:end]

    async def body(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            await self._more()
        buf = self.buf
        self.buf = buf[size + 2 :]
        return buf[:size]

    async def expect(self, word: bytes) -> bytes:
        line = await self.line()
        if not line.startswith(word):
            raise RuntimeError(f"expected {word!r}, got {line[:40]!r}")
        return line


class RawAsyncioKit(AsyncKit):
    """One command at a time over asyncio's fastest plain I/O (a Protocol)."""

    name = "raw-asyncio"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "batch"})

    async def open(self, address: Address) -> Any:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(_RawProtocol, *address)
        # asyncio sets TCP_NODELAY on TCP transports itself; set it anyway, to be explicit.
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return protocol

    async def close(self, client: Any) -> None:
        client.transport.close()

    async def put(self, proto: _RawProtocol, body: bytes, n: int) -> None:
        line = _put_line(body)
        assert proto.transport is not None
        write, expect = proto.transport.write, proto.expect
        for _ in range(n):
            write(line)
            await expect(b"INSERTED ")

    async def reserve_delete(self, proto: _RawProtocol, body: bytes, n: int) -> None:
        assert proto.transport is not None
        write, expect, read_body = proto.transport.write, proto.expect, proto.body
        for _ in range(n):
            write(b"reserve\r\n")
            _, job_id, size = (await expect(b"RESERVED ")).split(b" ")
            await read_body(int(size))
            write(b"delete " + job_id + b"\r\n")
            await expect(b"DELETED")

    async def roundtrip(self, proto: _RawProtocol, body: bytes, n: int) -> None:
        line = _put_line(body)
        assert proto.transport is not None
        write, expect, read_body = proto.transport.write, proto.expect, proto.body
        for _ in range(n):
            write(line)
            await expect(b"INSERTED ")
            write(b"reserve\r\n")
            _, job_id, size = (await expect(b"RESERVED ")).split(b" ")
            await read_body(int(size))
            write(b"delete " + job_id + b"\r\n")
            await expect(b"DELETED")

    async def batch(self, proto: _RawProtocol, body: bytes, n: int) -> None:
        await self.put(proto, body, n)


class _RawTrioStream:
    """The raw-trio reference's I/O and framing: a non-blocking socket driven with
    ``trio.lowlevel.wait_readable``, the fastest plain way trio offers (one pass through
    the scheduler per reply; ``SocketStream.send_all`` + ``receive_some`` cost two)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    async def send(self, data: bytes) -> None:
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        while sent < len(data):
            await trio.lowlevel.wait_writable(sock)
            try:
                sent += sock.send(data[sent:])
            except BlockingIOError:
                pass

    async def _more(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            try:
                chunk = self.sock.recv(READ)
                break
            except BlockingIOError:
                pass
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    async def expect(self, word: bytes) -> bytes:
        end = self.buf.find(b"\r\n")
        while end < 0:
            await self._more()
            end = self.buf.find(b"\r\n")
        buf = self.buf
        self.buf = buf[end + 2 :]
        if not buf.startswith(word):
            raise RuntimeError(f"expected {word!r}, got {buf[:40]!r}")
        return buf[:end]

    async def body(self, size: int) -> bytes:
        while len(self.buf) < size + 2:
            await self._more()
        buf = self.buf
        self.buf = buf[size + 2 :]
        return buf[:size]


class RawTrioKit(AsyncKit):
    """One command at a time over a bare socket driven by trio's I/O waits."""

    name = "raw-trio"
    library = "trio"
    kinds = frozenset({"put", "reserve-delete", "roundtrip", "batch"})

    async def open(self, address: Address) -> Any:
        stream = await trio.open_tcp_stream(*address)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        return _RawTrioStream(sock)

    async def close(self, client: Any) -> None:
        trio.lowlevel.notify_closing(client.sock)
        client.sock.close()

    async def put(self, raw: _RawTrioStream, body: bytes, n: int) -> None:
        line = _put_line(body)
        send, expect = raw.send, raw.expect
        for _ in range(n):
            await send(line)
            await expect(b"INSERTED ")

    async def reserve_delete(self, raw: _RawTrioStream, body: bytes, n: int) -> None:
        send, expect, read_body = raw.send, raw.expect, raw.body
        for _ in range(n):
            await send(b"reserve\r\n")
            _, job_id, size = (await expect(b"RESERVED ")).split(b" ")
            await read_body(int(size))
            await send(b"delete " + job_id + b"\r\n")
            await expect(b"DELETED")

    async def roundtrip(self, raw: _RawTrioStream, body: bytes, n: int) -> None:
        line = _put_line(body)
        send, expect, read_body = raw.send, raw.expect, raw.body
        for _ in range(n):
            await send(line)
            await expect(b"INSERTED ")
            await send(b"reserve\r\n")
            _, job_id, size = (await expect(b"RESERVED ")).split(b" ")
            await read_body(int(size))
            await send(b"delete " + job_id + b"\r\n")
            await expect(b"DELETED")

    async def batch(self, raw: _RawTrioStream, body: bytes, n: int) -> None:
        await self.put(raw, body, n)


class _BareAsyncio:
    """bare-client's methods over raw-asyncio's protocol: a floor for asyncio clients."""

    __slots__ = ("body", "expect", "raw", "write")

    def __init__(self, protocol: _RawProtocol) -> None:
        assert protocol.transport is not None
        self.raw = protocol
        self.write, self.expect, self.body = (
            protocol.transport.write,
            protocol.expect,
            protocol.body,
        )

    async def put(self, body: bytes, priority: int, delay: int, ttr: int) -> int:
        self.write(b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body))
        return int((await self.expect(b"INSERTED "))[9:])

    async def reserve(self) -> tuple[int, bytes]:
        self.write(b"reserve\r\n")
        _, job_id, size = (await self.expect(b"RESERVED ")).split(b" ")
        return int(job_id), await self.body(int(size))

    async def delete(self, job_id: int) -> None:
        self.write(b"delete %d\r\n" % job_id)
        await self.expect(b"DELETED")


class _BareTrio:
    """bare-client's methods over raw-trio's socket: a floor for trio clients."""

    __slots__ = ("body", "expect", "raw", "send")

    def __init__(self, stream: _RawTrioStream) -> None:
        self.raw = stream
        self.send, self.expect, self.body = stream.send, stream.expect, stream.body

    async def put(self, body: bytes, priority: int, delay: int, ttr: int) -> int:
        await self.send(b"put %d %d %d %d\r\n%b\r\n" % (priority, delay, ttr, len(body), body))
        return int((await self.expect(b"INSERTED "))[9:])

    async def reserve(self) -> tuple[int, bytes]:
        await self.send(b"reserve\r\n")
        _, job_id, size = (await self.expect(b"RESERVED ")).split(b" ")
        return int(job_id), await self.body(int(size))

    async def delete(self, job_id: int) -> None:
        await self.send(b"delete %d\r\n" % job_id)
        await self.expect(b"DELETED")


class _BareAsyncKit(AsyncKit):
    """An async floor: bare-client's methods (``wrap``) over a raw reference's connection,
    timed with the same calls as jackstalk's async kits."""

    kinds = frozenset({"put", "reserve-delete", "roundtrip"})
    wrap: Callable[[Any], Any]

    async def open(self, address: Address) -> Any:
        return self.wrap(await super().open(address))

    async def close(self, client: Any) -> None:
        await super().close(client.raw)

    async def put(self, client: Any, body: bytes, n: int) -> None:
        put = client.put
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)

    async def reserve_delete(self, client: Any, body: bytes, n: int) -> None:
        reserve, delete = client.reserve, client.delete
        for _ in range(n):
            await delete((await reserve())[0])

    async def roundtrip(self, client: Any, body: bytes, n: int) -> None:
        put, reserve, delete = client.put, client.reserve, client.delete
        for _ in range(n):
            await put(body, PRI, DELAY, TTR)
            await delete((await reserve())[0])


class BareAsyncioKit(_BareAsyncKit, RawAsyncioKit):
    """The asyncio floor: what bare-client is for blocking clients, on raw-asyncio's I/O."""

    name = "bare-asyncio"
    wrap = _BareAsyncio


class BareTrioKit(_BareAsyncKit, RawTrioKit):
    """The trio floor: what bare-client is for blocking clients, on raw-trio's I/O."""

    name = "bare-trio"
    wrap = _BareTrio


Kit = SyncKit | AsyncKit


# ======================================================================== scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    group: str
    kind: str
    body: int
    ops: int
    kits: tuple[Kit, ...]
    references: tuple[str, ...]


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Row:
    client: str
    samples: list[Sample] = field(default_factory=list)


GROUPS = {
    "blocking": "Blocking clients, one command at a time (scenarios 1-4)",
    "batch": "Batch put (scenario 5): jackstalk's put_many, the others put one by one",
    "asyncio": "asyncio (scenario 6)",
    "trio": "trio (scenario 6)",
    "worker": "Worker cycles (scenario 7): delete + next reserve in one write",
}

KIND_TITLES = {
    "put": "put",
    "reserve-delete": "reserve + delete",
    "roundtrip": "put → reserve → delete",
    "stats": "stats (parsed)",
    "batch": "batch put",
    "worker": "worker cycle",
}


def _size_name(size: int) -> str:
    return "16 KiB" if size == LARGE else f"{size} B"


def scenarios(ops: int, batch: int) -> list[Scenario]:
    blocking: tuple[Kit, ...] = (
        JackstalkKit(),
        GreenstalkKit(),
        PystalkKit(),
        BeanstalkcKit(),
        BareClientKit(),
        RawSequentialKit(),
        RawPipelinedKit(),
    )
    asyncio_kits: tuple[Kit, ...] = (
        JackstalkAsyncKit(),
        AiostalkKit(),
        BareAsyncioKit(),
        RawAsyncioKit(),
    )
    trio_kits: tuple[Kit, ...] = (JackstalkTrioKit(), BareTrioKit(), RawTrioKit())
    out: list[Scenario] = []

    def add(
        group: str, kind: str, size: int, n: int, kits: tuple[Kit, ...], refs: tuple[str, ...]
    ) -> None:
        usable = tuple(kit for kit in kits if kind in kit.kinds)
        title = KIND_TITLES[kind] + ("" if kind == "stats" else f" {_size_name(size)}")
        if kind == "batch":
            title = f"batch put {n:,} x {_size_name(size)}"
        key = f"{group}/{kind}/{size}"
        out.append(Scenario(key, title, group, kind, size, n, usable, refs))

    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            refs: tuple[str, ...] = ("greenstalk", "raw-sequential")
            if kind != "roundtrip":
                refs += ("raw-pipelined",)
            add("blocking", kind, size, ops, blocking, refs)
    add("blocking", "stats", 0, ops, blocking, ("greenstalk", "raw-sequential"))
    add(
        "batch",
        "batch",
        SMALL,
        batch,
        (
            JackstalkKit(),
            JackstalkAsyncKit(),
            JackstalkTrioKit(),
            GreenstalkKit(),
            PystalkKit(),
            BeanstalkcKit(),
            AiostalkKit(),
            RawSequentialKit(),
            RawPipelinedKit(),
        ),
        ("greenstalk", "raw-pipelined"),
    )
    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            add("asyncio", kind, size, ops, asyncio_kits, ("aiostalk", "raw-asyncio"))
    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            add("trio", kind, size, ops, trio_kits, ("raw-trio",))
    for size in (SMALL, LARGE):
        add(
            "worker",
            "worker",
            size,
            ops,
            (JackstalkWorkerKit(), _GreenstalkAsWorker(), RawWorkerKit(), _SequentialAsWorker()),
            ("greenstalk", "raw-worker", "raw-sequential"),
        )
    return out


class _SequentialAsWorker(RawSequentialKit):
    """raw-sequential's reserve + delete, listed under scenario 7 for comparison."""

    kinds = frozenset({"worker"})

    def worker(self, sock: socket.socket, body: bytes, n: int) -> None:
        self.reserve_delete(sock, body, n)


class _GreenstalkAsWorker(GreenstalkKit):
    """greenstalk's reserve + delete loop (its fastest worker), under scenario 7."""

    kinds = frozenset({"worker"})

    def worker(self, client: Any, body: bytes, n: int) -> None:
        self.reserve_delete(client, body, n)


# ======================================================================== measuring


def _expected(kind: str, n: int) -> dict[str, int]:
    """Server counters a run of ``kind`` must leave (beyond the pre-fill)."""
    if kind in ("put", "batch"):
        return {"cmd-put": n, "current-jobs-ready": n}
    if kind in ("reserve-delete", "worker"):
        return {"cmd-delete": n, "current-jobs-ready": 0, "current-jobs-reserved": 0}
    if kind == "roundtrip":
        return {"cmd-put": n, "cmd-delete": n, "current-jobs-ready": 0}
    return {"cmd-stats": n}


def _verify(address: Address, kit: Kit, kind: str, n: int, prefill: int) -> None:
    stats = server_stats(address)
    expected = _expected(kind, n)
    if "cmd-put" in expected:
        expected["cmd-put"] += prefill
    for key, value in expected.items():
        got = stats[key]
        # cmd-stats counts the check's own stats too.
        ok = got >= value if key == "cmd-stats" else got == value
        if not ok:
            raise RuntimeError(f"{kit.name} {kind}: server reports {key}={got}, expected {value}")


def _timed_sync(kit: SyncKit, kind: str, address: Address, body: bytes, n: int) -> Sample:
    client = kit.open(address)
    try:
        run = getattr(kit, kind.replace("-", "_"))
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        run(client, body, n)
        return Sample(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        kit.close(client)


def _timed_async(kit: AsyncKit, kind: str, address: Address, body: bytes, n: int) -> Sample:
    async def main() -> Sample:
        client = await kit.open(address)
        try:
            run: Callable[[Any, bytes, int], Awaitable[None]] = getattr(kit, kind.replace("-", "_"))
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            await run(client, body, n)
            return Sample(time.perf_counter() - wall, time.process_time() - cpu)
        finally:
            await kit.close(client)

    if kit.library == "trio":
        result: Sample = trio.run(main)
        return result
    return asyncio.run(main())


def measure(kit: Kit, scenario: Scenario, n: int) -> Sample:
    """One measurement on a fresh server."""
    body = _body(scenario.body)
    prefill = n if scenario.kind in ("reserve-delete", "worker") else 0
    with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
        address = server.address
        assert isinstance(address, tuple)
        if prefill:
            fill(address, body, prefill)
        if isinstance(kit, AsyncKit):
            sample = _timed_async(kit, scenario.kind, address, body, n)
        else:
            sample = _timed_sync(kit, scenario.kind, address, body, n)
        _verify(address, kit, scenario.kind, n, prefill)
    return sample


def run_all(
    selected: list[Scenario], repeat: int, warmup: bool, log: Callable[[str], None]
) -> tuple[dict[str, list[Row]], dict[str, dict[str, str]]]:
    """Measure every scenario, interleaving competitors within each repetition."""
    results: dict[str, list[Row]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for scenario in selected:
        kits: list[Kit] = []
        skipped[scenario.key] = {}
        for kit in scenario.kits:
            try:
                kit.check()
            except Unavailable as why:
                skipped[scenario.key][kit.name] = str(why)
            else:
                kits.append(kit)
        rows = {kit.name: Row(kit.name) for kit in kits}
        log(f"{scenario.title} [{scenario.group}]: {', '.join(rows)}")
        if warmup:
            for kit in kits:
                measure(kit, scenario, min(scenario.ops, 200))
        for rep in range(repeat):
            shift = rep % max(len(kits), 1)
            for kit in kits[shift:] + kits[:shift]:  # rotate who goes first
                rows[kit.name].samples.append(measure(kit, scenario, scenario.ops))
        results[scenario.key] = list(rows.values())
    return results, skipped


# ======================================================================== memory


def _peak(action: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    try:
        kept = action()
        return tracemalloc.get_traced_memory()[1], kept
    finally:
        tracemalloc.stop()


def _floor_peak(jobs: int, size: int) -> int:
    """Peak traced memory of holding ``jobs`` bodies of ``size`` bytes and as many job ids,
    each in a list, and nothing else: the least a put_many that returns the ids, or a
    reserve loop that keeps the jobs, can hold."""

    def hold() -> object:
        bodies = [_body(size) for _ in range(jobs)]
        ids = [1000 + number for number in range(jobs)]  # (not the small ints Python shares)
        return bodies, ids

    return _peak(hold)[0]


def memory_checks(jobs: int, reserves: int) -> list[dict[str, Any]]:
    """Peak traced memory of put_many and a reserve loop, relative to the bodies held.

    The bodies are created after tracing starts, so the peak counts them too: a ratio of 1.0
    would mean no memory at all beyond the bodies themselves. ``floor_ratio`` is the same
    for holding the bodies and the ids alone (Python's own per-object cost).
    """
    out: list[dict[str, Any]] = []
    for size in (LARGE, SMALL):
        with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
            address = server.address
            assert isinstance(address, tuple)
            with jackstalk.Client(address, encoding=None) as client:
                client.put(b"warm-up")

                def put_many(client: Any = client, size: int = size) -> object:
                    bodies = [_body(size) for _ in range(jobs)]
                    client.put_many(bodies, PRI, DELAY, TTR)
                    return bodies

                peak, _ = _peak(put_many)
        held = jobs * size
        out.append(
            {
                "case": f"put_many {jobs:,} x {_size_name(size)}",
                "bodies_bytes": held,
                "peak_bytes": peak,
                "ratio": peak / held,
                "overhead_per_job": (peak - held) / jobs,
                "floor_ratio": _floor_peak(jobs, size) / held,
                "target": size == LARGE,
            }
        )
    with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
        address = server.address
        assert isinstance(address, tuple)
        body = _body(LARGE)
        fill(address, body, reserves + 1)
        with jackstalk.Client(address, encoding=None) as client:
            warm = client.reserve()  # warm-up, untraced
            assert warm is not None
            client.delete(warm)

            def reserve_loop(client: Any = client) -> object:
                jobs_held = []
                for _ in range(reserves):
                    job = client.reserve()
                    client.delete(job)
                    jobs_held.append(job)
                return jobs_held

            peak, _ = _peak(reserve_loop)
    held = reserves * LARGE
    out.append(
        {
            "case": f"reserve + delete loop keeping {reserves:,} x 16 KiB jobs",
            "bodies_bytes": held,
            "peak_bytes": peak,
            "ratio": peak / held,
            "overhead_per_job": (peak - held) / reserves,
            "floor_ratio": _floor_peak(reserves, LARGE) / held,
            "target": True,
        }
    )
    return out


# ======================================================================== placement
#
# One command at a time, client CPU costs wall time only where it lies on the round trip's
# path: before the send, or after the reply. Between the two the client would only wait for
# the server. The probe puts the same synthetic CPU work at each point of raw-sequential's
# put loop, so the table shows what a microsecond of client CPU costs at each point.

PLACES = ("none", "before the send", "between send and reply", "after the reply")


def _busy(rounds: int) -> int:
    """Plain CPU work in Python: no allocation, no system call."""
    total = 0
    for step in range(rounds):
        total += step
    return total


def _rounds_for(micros: float) -> tuple[int, float]:
    """The ``_busy`` rounds that take about ``micros`` of CPU here, and their measured cost."""
    rounds, calls = 100, 2000
    start = time.process_time()
    for _ in range(calls):
        _busy(rounds)
    per_round = (time.process_time() - start) / (calls * rounds) * 1e6
    rounds = max(1, round(micros / per_round))
    start = time.process_time()
    for _ in range(calls):
        _busy(rounds)
    return rounds, (time.process_time() - start) / calls * 1e6


def _placed_puts(place: int, rounds: int) -> Callable[[socket.socket, bytes, int], None]:
    before, between, after = (place == 1, place == 2, place == 3)

    def run(sock: socket.socket, body: bytes, n: int) -> None:
        line = _put_line(body)
        send, expect = sock.sendall, RawReader(sock).expect
        for _ in range(n):
            if before:
                _busy(rounds)
            send(line)
            if between:
                _busy(rounds)
            expect(b"INSERTED ")
            if after:
                _busy(rounds)

    return run


def placement_probe(n: int, repeat: int, micros: float = 2.0) -> dict[str, Any]:
    """Raw-sequential puts of 100 B with ``micros`` of client CPU work placed at each point
    of the round trip; the places take turns as the clients of a scenario do."""
    rounds, work = _rounds_for(micros)
    runs = [_placed_puts(place, rounds) for place in range(len(PLACES))]
    wall: list[list[float]] = [[] for _ in PLACES]
    body = _body(SMALL)
    for rep in range(repeat):
        for offset in range(len(PLACES)):
            place = (rep + offset) % len(PLACES)
            with run_beanstalkd() as server:
                address = server.address
                assert isinstance(address, tuple)
                sock = _raw_connect(address)
                try:
                    gc.collect()
                    start = time.perf_counter()
                    runs[place](sock, body, n)
                    wall[place].append((time.perf_counter() - start) / n * 1e6)
                finally:
                    sock.close()
    rows = []
    for place, name in enumerate(PLACES):
        added = [w - base for w, base in zip(wall[place], wall[0], strict=True)]
        rows.append(
            {
                "place": name,
                "us_per_op": statistics.median(wall[place]),
                "added_us": statistics.median(added) if place else 0.0,
                "added_per_work_us": statistics.median(added) / work if place else 0.0,
            }
        )
    return {"work_us": work, "rows": rows}


def _placement_lines(placement: dict[str, Any]) -> list[str]:
    return [
        f"| {row['place']} | {row['us_per_op']:.1f} | {row['added_us']:+.1f}"
        f" | {row['added_per_work_us']:.2f} |"
        for row in placement["rows"]
    ]


def text_placement(placement: dict[str, Any]) -> str:
    lines = [
        "",
        f"Placement: {placement['work_us']:.1f} µs of CPU per put in raw-sequential's loop",
    ]
    lines.extend(
        f"  {row['place']:<24} {row['us_per_op']:6.1f} µs/op  added {row['added_us']:+5.1f} µs"
        f"  ({row['added_per_work_us']:.2f} µs per µs of work)"
        for row in placement["rows"]
    )
    return "\n".join(lines)


# ======================================================================== reporting


def _rate(sample: Sample, ops: int) -> float:
    return ops / sample.wall


def summarise(selected: list[Scenario], results: dict[str, list[Row]]) -> list[dict[str, Any]]:
    """Medians, ranges and paired ratios (median over repetitions of A_i / B_i)."""
    out: list[dict[str, Any]] = []
    for scenario in selected:
        rows = results.get(scenario.key, [])
        by_name = {row.client: row for row in rows}
        table: list[dict[str, Any]] = []
        for row in rows:
            rates = [_rate(s, scenario.ops) for s in row.samples]
            ratios: dict[str, float] = {}
            for ref in scenario.references:
                other = by_name.get(ref)
                if other is None or other is row:
                    continue
                pairs = [
                    _rate(a, scenario.ops) / _rate(b, scenario.ops)
                    for a, b in zip(row.samples, other.samples, strict=True)
                ]
                ratios[ref] = statistics.median(pairs)
            table.append(
                {
                    "client": row.client,
                    "median": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "rates": rates,
                    "cpu_us_per_op": statistics.median(
                        s.cpu / scenario.ops * 1e6 for s in row.samples
                    ),
                    "ratios": ratios,
                }
            )
        out.append(
            {
                "key": scenario.key,
                "title": scenario.title,
                "group": scenario.group,
                "kind": scenario.kind,
                "body_bytes": scenario.body,
                "ops": scenario.ops,
                "references": list(scenario.references),
                "rows": table,
            }
        )
    return out


@dataclass(frozen=True)
class Target:
    text: str
    group: str
    kinds: tuple[str, ...]
    client: str
    reference: str
    at_least: float


TARGETS = (
    Target(
        "blocking, one at a time ≥ 0.95x raw-sequential",
        "blocking",
        ONE_AT_A_TIME,
        "jackstalk",
        "raw-sequential",
        0.95,
    ),
    Target(
        "blocking, one at a time never below greenstalk",
        "blocking",
        ONE_AT_A_TIME,
        "jackstalk",
        "greenstalk",
        1.0,
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined", "batch", ("batch",), "jackstalk", "raw-pipelined", 0.85
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined",
        "batch",
        ("batch",),
        "jackstalk-asyncio",
        "raw-pipelined",
        0.85,
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined",
        "batch",
        ("batch",),
        "jackstalk-trio",
        "raw-pipelined",
        0.85,
    ),
    Target("stats ≥ 1.2x greenstalk", "blocking", ("stats",), "jackstalk", "greenstalk", 1.2),
    Target(
        "worker cycles ≥ 1.3x greenstalk's reserve + delete",
        "worker",
        ("worker",),
        "jackstalk-worker",
        "greenstalk",
        1.3,
    ),
    Target(
        "asyncio ≥ 0.9x raw-asyncio",
        "asyncio",
        ONE_AT_A_TIME,
        "jackstalk-asyncio",
        "raw-asyncio",
        0.9,
    ),
    Target(
        "asyncio ≥ 1.0x aiostalk",
        "asyncio",
        ONE_AT_A_TIME,
        "jackstalk-asyncio",
        "aiostalk",
        1.0,
    ),
    Target(
        "trio ≥ 0.9x raw-trio",
        "trio",
        ONE_AT_A_TIME,
        "jackstalk-trio",
        "raw-trio",
        0.9,
    ),
)


def _judged_by(target: Target, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenarios a target is judged on."""
    return [s for s in summaries if s["group"] == target.group and s["kind"] in target.kinds]


def _pairs(summary: dict[str, Any], client: str, reference: str) -> list[float] | None:
    """client/reference op/s in each repetition (also when the reference is not a column)."""
    rows = {row["client"]: row for row in summary["rows"]}
    if client not in rows or reference not in rows:
        return None
    return [a / b for a, b in zip(rows[client]["rates"], rows[reference]["rates"], strict=True)]


FLOORS = {"blocking": "bare-client", "asyncio": "bare-asyncio", "trio": "bare-trio"}
"""Per group, the reference whose ratio shows, next to a target, what the least possible
client reaches."""


def check_targets(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's paired ratio (the median; its verdict), the range of the ratio over
    the repetitions, which shows how far machine noise moves it, and the same ratio for the
    group's floor where it ran (``floor``), which shows whether any client could meet it."""
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        for summary in _judged_by(target, summaries):
            pairs = _pairs(summary, target.client, target.reference)
            ratio = None if pairs is None else float(statistics.median(pairs))
            floor_client = FLOORS.get(target.group)
            floor = (
                None if floor_client is None else _pairs(summary, floor_client, target.reference)
            )
            out.append(
                {
                    "target": target.text,
                    "scenario": f"{summary['title']} ({target.client})",
                    "ratio": ratio,
                    "low": None if pairs is None else min(pairs),
                    "high": None if pairs is None else max(pairs),
                    "threshold": target.at_least,
                    "met": None if ratio is None else ratio >= target.at_least,
                    "floor": None if floor is None else float(statistics.median(floor)),
                    "floor_client": None if floor is None else floor_client,
                    "limit": _limit(ratio, floor, target.at_least),
                }
            )
    return out


def _limit(ratio: float | None, floor: list[float] | None, at_least: float) -> str:
    """What keeps a missed target out of reach in this run: the floor missing it too (no
    client with a method per command reaches it), or jackstalk's own cost per command,
    the route every command takes through its layers."""
    if ratio is None or ratio >= at_least or floor is None:
        return ""
    if statistics.median(floor) < at_least:
        return "the floor misses it too"
    return "jackstalk's route"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _fmt_range(item: dict[str, Any]) -> str:
    """A target's range of paired ratios over the repetitions."""
    if item["low"] is None:
        return ""
    return f"{item['low']:.2f}-{item['high']:.2f}x"


def text_tables(summaries: list[dict[str, Any]], skipped: dict[str, dict[str, str]]) -> str:
    lines: list[str] = []
    for summary in summaries:
        refs = summary["references"]
        lines.append("")
        lines.append(f"{summary['title']}  [{summary['group']}, {summary['ops']:,} ops]")
        head = f"  {'client':<20}{'median op/s':>13}{'min-max':>22}{'CPU µs/op':>11}"
        head += "".join(f"{'x' + ref:>17}" for ref in refs)
        lines.append(head)
        for row in summary["rows"]:
            span = f"{_fmt_rate(row['min'])}-{_fmt_rate(row['max'])}"
            line = f"  {row['client']:<20}{_fmt_rate(row['median']):>13}{span:>22}"
            line += f"{row['cpu_us_per_op']:>11.1f}"
            line += "".join(f"{_fmt_ratio(row['ratios'].get(ref)):>17}" for ref in refs)
            lines.append(line)
        for name, why in skipped.get(summary["key"], {}).items():
            lines.append(f"  {name:<20}skipped: {why}")
    return "\n".join(lines)


def text_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["", "Targets"]
    for item in targets:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[item["met"]]
        floor = item["floor"]
        lines.append(
            f"  {verdict:<7}{_fmt_ratio(item['ratio']):>8} {_fmt_range(item):>12}"
            f"  {item['target']}: {item['scenario']}"
            + ("" if floor is None else f"  ({item['floor_client']} {_fmt_ratio(floor)})")
            + (f"  limit: {item['limit']}" if item["limit"] else "")
        )
    return "\n".join(lines)


def text_memory(memory: list[dict[str, Any]]) -> str:
    lines = ["", "Memory (tracemalloc peak / body bytes held; target ≤ 2.0x)"]
    lines.extend(
        f"  {item['ratio']:>6.2f}x  {item['case']}: peak {item['peak_bytes'] / 2**20:,.1f} MiB"
        f" for {item['bodies_bytes'] / 2**20:,.1f} MiB of bodies"
        f" ({item['overhead_per_job']:,.0f} B/job beyond the body; floor"
        f" {item['floor_ratio']:.2f}x)"
        for item in memory
    )
    return "\n".join(lines)


# ======================================================================== the machine


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        done = subprocess.run(
            ["beanstalkd", "-v"], capture_output=True, text=True, timeout=10, check=False
        )
        server = (done.stdout or done.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        server = "unknown"
    versions: dict[str, str] = {}
    for dist in ("jackstalk", "greenstalk", "pystalk", "aiostalk", "beanstalkc3", "trio", "PyYAML"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "beanstalkd": server,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions,
    }


def _md_table(summaries: list[dict[str, Any]], group: str) -> list[str]:
    chosen = [s for s in summaries if s["group"] == group]
    refs: list[str] = []
    for summary in chosen:
        refs.extend(ref for ref in summary["references"] if ref not in refs)
    head = ["scenario", "client", "median op/s", "min-max op/s", "client CPU µs/op"]
    head += [f"x {ref}" for ref in refs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in chosen:
        for row in summary["rows"]:
            name = (
                f"**{row['client']}**" if row["client"].startswith("jackstalk") else row["client"]
            )
            cells = [
                summary["title"],
                name,
                _fmt_rate(row["median"]),
                f"{_fmt_rate(row['min'])}-{_fmt_rate(row['max'])}",
                f"{row['cpu_us_per_op']:.1f}",
            ]
            cells += [_fmt_ratio(row["ratios"].get(ref)) for ref in refs]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


RIVALS = {"blocking": ("greenstalk",), "asyncio": ("aiostalk",), "trio": ()}
"""Per kind, the other clients whose CPU the cost tables show next to jackstalk's."""


def _budget_targets() -> list[Target]:
    """The one-at-a-time targets set against a raw reference: one per kind of client."""
    return [
        target
        for target in TARGETS
        if target.group in FLOORS
        and target.reference.startswith("raw-")
        and target.kinds == ONE_AT_A_TIME
    ]


def _time_budget(summaries: list[dict[str, Any]]) -> list[str]:
    """Where the time of a one-at-a-time command goes, per kind of client: the reference's
    round trip, the budget its target ratio leaves a client, and the CPU each client spends
    beyond the reference."""
    lines = [
        "## Where the time goes (one command at a time)",
        "",
        "One command at a time, a client waits for every reply, so the CPU it spends",
        "before each send and after each reply adds to the round trip (the next section",
        "measures by how much). *round trip* is the raw reference's time per operation;",
        "reaching the target's share of its rate (0.95x or 0.9x) leaves a client the rest",
        "(*budget*). The other columns are each client's CPU µs/op minus the reference's in",
        "the same run: what building, checking, sending and parsing cost it over writing",
        "pre-built bytes. The floor (bare-client, bare-asyncio, bare-trio) spends the least",
        "any client with a method per command can: where its column is above the budget,",
        "the target is out of reach for such a client, whatever it skips. What jackstalk",
        "spends beyond the floor is its route: see *What limits the targets jackstalk misses*.",
        "",
    ]
    shown = False
    for target in _budget_targets():
        chosen = _judged_by(target, summaries)
        present = {row["client"] for s in chosen for row in s["rows"]}
        clients = [
            c for c in (target.client, *RIVALS[target.group], FLOORS[target.group]) if c in present
        ]
        if target.reference not in present or target.client not in present:
            continue
        reference = target.reference
        head = ["scenario", f"{reference} round trip µs/op"]
        head += [f"budget for {target.at_least:g}x µs/op"]
        head += [f"{client} CPU beyond {reference} µs/op" for client in clients]
        lines += [
            f"### {target.text}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for summary in chosen:
            rows = {row["client"]: row for row in summary["rows"]}
            raw = rows.get(reference)
            if raw is None:
                continue
            trip = 1e6 / raw["median"]
            cells = [summary["title"], f"{trip:.1f}", f"{trip * (1 / target.at_least - 1):.1f}"]
            for client in clients:
                row = rows.get(client)
                extra = None if row is None else row["cpu_us_per_op"] - raw["cpu_us_per_op"]
                cells.append("" if extra is None else f"{extra:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        shown = True
    return lines if shown else []


def _own_cost(summaries: list[dict[str, Any]], target: Target) -> tuple[float, float] | None:
    """The lowest and highest CPU µs/op jackstalk spent beyond its floor in the scenarios
    of a one-at-a-time target."""
    extra = []
    for summary in _judged_by(target, summaries):
        rows = {row["client"]: row for row in summary["rows"]}
        mine, floor = rows.get(target.client), rows.get(FLOORS[target.group])
        if mine is not None and floor is not None:
            extra.append(mine["cpu_us_per_op"] - floor["cpu_us_per_op"])
    return (min(extra), max(extra)) if extra else None


def _limits(summaries: list[dict[str, Any]], targets: list[dict[str, Any]]) -> list[str]:
    """Why the missed targets are missed: the section after the targets table."""
    missed = [item for item in targets if item["met"] is False]
    if not missed:
        return []
    costs = []
    for target in _budget_targets():
        span = _own_cost(summaries, target)
        if span is not None:
            costs.append(f"{target.client} {span[0]:.1f} to {span[1]:.1f} µs")
    out_of_reach = sum(item["limit"] == "the floor misses it too" for item in missed)
    route = sum(item["limit"] == "jackstalk's route" for item in missed)
    unexplained = len(missed) - out_of_reach - route
    spent = f" ({'; '.join(costs)} in this run)" if costs else ""
    summary = (
        f"In this run jackstalk misses {len(missed)} of the {len(targets)} targets. For"
        f" {out_of_reach} of them the floor misses the target too: no client with a method"
        f" per command would meet it on this machine, however little it checked. {route}"
        " more are missed by jackstalk's route, the CPU it spends per operation beyond the"
        f" floor of its kind{spent}."
        + (f" Missed without a floor to compare with: {unexplained}." if unexplained else "")
    )
    return [
        "",
        "## What limits the targets jackstalk misses",
        "",
        *textwrap.wrap(summary, width=86),
        "",
        "The route is the steps every command passes through, on which each rule of the",
        "protocol sits once: the method; the operation, which checks the arguments and",
        "builds the command object; the transport's command loop (for the async clients",
        "also the command lock, the idle check and a coroutine per send and per read); the",
        "core, which records the command, encodes it and checks the reply against it; and",
        "the conversion of the reply event into the result. None of these steps is large on",
        "its own, and the checks are not what costs: a put written out in one function,",
        "with the same checks, the same command object and the same reply check, runs",
        "about as many instructions as the floor's put (counted with callgrind, outside",
        "this suite). The cost is the number of steps, each a Python call. jackstalk keeps",
        "the route: it is what lets the three clients share every rule, lets the core be",
        "used without them, and checks every reply against its command.",
        "",
    ]


def write_docs(
    path: Path,
    meta: dict[str, Any],
    summaries: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    skipped: dict[str, dict[str, str]],
    placement: dict[str, Any] | None = None,
) -> None:
    m = meta["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    out = [
        "# Performance",
        "",
        "<!-- Generated by tests/bench/bench_clients.py (nox -s bench). Do not edit by hand:"
        " re-run the suite. -->",
        "",
        "How fast jackstalk is against the other Python beanstalkd clients and against",
        "plain-socket references, measured by `tests/bench/bench_clients.py`. This page is",
        "written by that script; every number on it comes from the run described here.",
        "",
        "## The run",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        f"- Date: {m['date']}",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['platform']})",
        f"- Python: {m['implementation']} {m['python']}",
        f"- Server: {m['beanstalkd']}, a fresh process on a free loopback port per measurement",
        f"- Clients: {versions}",
        f"- Repetitions: {meta['repeat']}; operations per measurement: {meta['ops']:,}"
        f" (batch: {meta['batch']:,})",
        "",
        "## How it is measured",
        "",
        "- Every measurement starts its own beanstalkd, so no run inherits another's jobs.",
        "  Connecting and pre-filling a tube (for the reserve scenarios) are not timed.",
        "- Within a scenario the clients take turns, repetition after repetition, and the",
        "  order rotates each repetition, so drift of the machine hits all of them alike.",
        "- All clients send the same commands with the same priority, delay, ttr and body",
        "  bytes, and get bodies back as `bytes` (no decoding). After each run the server's",
        "  own counters are checked, so a client that skipped work would be caught.",
        "- *median op/s*: the median over repetitions; *min-max*: the range.",
        "  *client CPU µs/op*: CPU time of the benchmark process per operation (the server's",
        "  is not included); it is less disturbed by other load on the machine than op/s.",
        "- *x X* is the **paired** ratio: the median over repetitions of",
        "  (this client's op/s ÷ X's op/s in the same repetition).",
        "- An operation is one command, except: *reserve + delete* and *worker cycle* count",
        "  one job (two commands), *put → reserve → delete* one job (three commands).",
        "- Every client runs with its defaults, except that bodies are bytes (jackstalk's",
        "  blocking client thus keeps its 30 s reply timeout).",
        "- References: *raw-sequential* is a plain blocking socket with TCP_NODELAY,",
        "  pre-built command bytes and one command at a time, reading only the reply line",
        "  (and skipping the body by its length). *raw-pipelined* writes windows of up to",
        f"  {PIPELINE_COMMANDS} commands or {PIPELINE_BYTES // 1024} KiB of bodies while it reads",
        "  the replies of the window before. *raw-asyncio* is an `asyncio.Protocol` with",
        "  one future per reply (it used less CPU than asyncio streams here). *raw-trio*",
        "  drives a non-blocking socket with `trio.lowlevel.wait_readable` (one pass",
        "  through the scheduler per reply, where `SocketStream` takes two; jackstalk's",
        "  trio client does the same). *raw-worker* sends each job's",
        "  `delete` and the next `reserve` in one write.",
        "- *bare-client* is a floor for real clients: raw-sequential's framing plus only",
        "  what every client API must do, a method call per command that formats the",
        "  command from its arguments and returns the job id or body. It checks nothing",
        "  and builds no objects; what jackstalk and the others spend beyond it is their",
        "  own (argument checks, command and reply objects, error handling).",
        "  *bare-asyncio* and *bare-trio* are the same methods, as coroutines, over",
        "  raw-asyncio's and raw-trio's I/O: the floors for the async clients.",
        "- The two references that send several commands per write (raw-pipelined,",
        "  raw-worker) re-arm `TCP_QUICKACK` after every read, a guard against Nagle's",
        "  delay on a server socket without TCP_NODELAY (when one write makes the server",
        "  answer twice, the second answer would wait up to 40 ms for a delayed ACK).",
        "  The servers here have TCP_NODELAY: the socket-activated listener that",
        "  `jackstalk.testing` hands beanstalkd sets it, so the guard costs one system",
        "  call per read and changes nothing else; the clients do not use it.",
        "- For *stats*, raw-sequential does not parse the body; the clients return it",
        "  parsed: jackstalk types every field by key, greenstalk calls `int()` on every",
        "  value, pystalk and beanstalkc use PyYAML's C safe loader (beanstalkc's own",
        "  default, a bare `yaml.load`, fails on PyYAML 6).",
        "- pystalk has no plain `reserve`; it uses `reserve-with-timeout 0` on a full tube.",
        "- Other processes may share the machine: prefer the ratios and CPU µs/op to the",
        "  absolute op/s, and compare runs made on the same machine only.",
        "",
    ]
    for group, title in GROUPS.items():
        if not any(s["group"] == group for s in summaries):
            continue
        out += [f"## {title}", "", *_md_table(summaries, group), ""]
    out += _time_budget(summaries)
    if placement:
        out += [
            "## Where client CPU costs wall time",
            "",
            f"raw-sequential's put loop (100 B) with {placement['work_us']:.1f} µs of plain Python",
            "work per put placed at one point of the round trip, the places taking turns as",
            "the clients of a scenario do. *added* is the paired median increase of the time",
            "per put over the loop without work. Work between the send and the reply can",
            "overlap the server's turn (when the server runs on another CPU); work before",
            "the send or after the reply cannot. A client's argument checks and command",
            "building come before its send, and its reply parsing after the reply. Single",
            "runs of this probe are noisy: compare the rows of one run with each other.",
            "",
            "| work placed | µs/op | added µs/op | added per µs of work |",
            "|---|---|---|---|",
            *_placement_lines(placement),
            "",
        ]
    missing = sorted({f"{name} ({why})" for per in skipped.values() for name, why in per.items()})
    if missing:
        out += ["Not measured: " + "; ".join(missing) + ".", ""]
    out += [
        "## Targets",
        "",
        "*ratio* is the paired ratio the verdict is judged on; *range* is the lowest and",
        "highest paired ratio of the single repetitions, how far noise moved it in this run.",
        "*floor* is the same ratio for the floor of the client's kind (bare-client,",
        "bare-asyncio or bare-trio; see the references), where it ran: a target above it",
        "is out of reach for any client with a method per command. *limit* says, for a",
        "missed target, which of the two kept it out of reach in this run.",
        "",
        "| target | scenario | ratio | range | verdict | floor | limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in targets:
        verdict = {True: "met", False: "**missed**", None: "n/a"}[item["met"]]
        ratio = _fmt_ratio(item["ratio"])
        out.append(
            f"| {item['target']} | {item['scenario']} | {ratio} | {_fmt_range(item)}"
            f" | {verdict} | {_fmt_ratio(item['floor'])} | {item['limit']} |"
        )
    out += _limits(summaries, targets)
    out += [
        "",
        "## Memory",
        "",
        "Peak memory traced by `tracemalloc` while jackstalk's blocking client works, divided",
        "by the body bytes the work holds (the bodies are created after tracing starts, so",
        "1.0x would mean nothing beyond the bodies). Target: at most 2.0x for 16 KiB bodies.",
        "*floor* is the same ratio for a list of the bodies and a list of as many job ids,",
        "and nothing else: Python's own cost per object, which any client that returns the",
        "ids (or keeps the jobs) pays. For 100 B bodies it leaves little of the 2.0x, so",
        "that row shows the fixed per-job cost rather than a target.",
        "",
        "| case | bodies | peak | ratio | floor | beyond the body, per job |",
        "|---|---|---|---|---|---|",
    ]
    for item in memory:
        out.append(
            f"| {item['case']} | {item['bodies_bytes'] / 2**20:,.1f} MiB"
            f" | {item['peak_bytes'] / 2**20:,.1f} MiB | {item['ratio']:.2f}x"
            f" | {item['floor_ratio']:.2f}x | {item['overhead_per_job']:,.0f} B |"
        )
    out.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")


# ======================================================================== main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark jackstalk against other beanstalkd clients and raw sockets."
    )
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--ops", type=int, default=5000, help="operations per measurement")
    parser.add_argument("--batch", type=int, default=10_000, help="jobs per batch put")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument(
        "--write-docs",
        dest="docs",
        action="store_true",
        default=False,
        help=f"regenerate {DOCS.relative_to(ROOT)} (the nox session does)",
    )
    parser.add_argument("--no-docs", dest="docs", action="store_false", help="leave docs alone")
    parser.add_argument(
        "--quick", action="store_true", help="few ops, one repetition: a smoke test"
    )
    parser.add_argument("--only", default="", help="run scenarios whose key contains this")
    args = parser.parse_args(argv)
    if not beanstalkd_available():
        print("beanstalkd is not on PATH: install it (e.g. apt-get install beanstalkd)")
        return 2
    if args.quick:
        args.repeat, args.ops, args.batch = 1, 50, 200
    if args.repeat < 1 or args.ops < 1 or args.batch < 1:
        parser.error("--repeat, --ops and --batch must be at least 1")

    command = os.environ.get("JACKSTALK_BENCH_COMMAND") or shlex.join(
        ["python", "tests/bench/bench_clients.py", *(sys.argv[1:] if argv is None else argv)]
    )
    selected = [s for s in scenarios(args.ops, args.batch) if args.only in s.key]
    started = time.perf_counter()
    results, skipped = run_all(
        selected, args.repeat, warmup=not args.quick, log=lambda text: print(text, flush=True)
    )
    summaries = summarise(selected, results)
    targets = check_targets(summaries)
    memory = memory_checks(200, 50) if args.quick else memory_checks(args.batch, 1000)
    placement = placement_probe(args.ops, args.repeat)
    meta = {
        "command": command,
        "repeat": args.repeat,
        "ops": args.ops,
        "batch": args.batch,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    print(text_tables(summaries, skipped))
    print(text_targets(targets))
    print(text_memory(memory))
    print(text_placement(placement))
    print(f"\n{meta['seconds']} s")
    document = {
        "meta": meta,
        "scenarios": summaries,
        "skipped": skipped,
        "targets": targets,
        "memory": memory,
        "placement": placement,
    }
    with open(args.json, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
    if args.docs:
        if args.quick or args.only:
            print("not writing docs for a --quick or --only run")
        else:
            write_docs(DOCS, meta, summaries, targets, memory, skipped, placement)
            print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
