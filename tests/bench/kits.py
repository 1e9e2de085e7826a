"""The client kits: one per client under test, blocking (``SyncKit``) or async (``AsyncKit``).

jackstalk's blocking, asyncio and trio clients (and its worker cycles); greenstalk, pystalk,
beanstalkc and aiostalk where they are installed; the raw references (raw-sequential,
raw-pipelined, raw-worker, raw-asyncio, raw-trio) and the bare floors (bare-client,
bare-asyncio, bare-trio). ``Kit`` is either kind.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import Callable
from typing import Any

from wire import (
    DELAY,
    PRI,
    READ,
    TTR,
    Address,
    RawReader,
    _put_line,
    _raw_connect,
    _raw_pipelined_puts,
    _windows,
)

import jackstalk


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


class Unavailable(Exception):
    """A competitor cannot run here (not installed, or not written yet)."""


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
