"""The asyncio client: the core driven over an asyncio transport (TCP or Unix).

A small :class:`asyncio.Protocol` stands in for asyncio's streams: it keeps what arrived
and wakes the one task waiting for it (at most one: one task reads at a time), which
costs a fraction of ``StreamReader.read`` and ``StreamWriter.drain`` per command.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
from collections import deque
from collections.abc import Awaitable

from jackstalk._api.async_transport import AsyncTransport, CommandLock, Waiter
from jackstalk._protocol.errors import ConnectionClosedError

__all__ = ["AsyncClient"]

_LIMIT = 256 * 1024
"""Bytes kept unread before the transport stops reading from the socket (resumed as soon
as they are taken), so a server cannot fill memory while no command reads."""
_LOST_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError)


class _Stream(asyncio.Protocol):
    """The bytes of one connection: what arrived unread, whether it ended, and the task
    waiting to read or to write (the event loop calls the ``asyncio.Protocol`` methods)."""

    __slots__ = (
        "data",
        "eof",
        "error",
        "loop",
        "lost",
        "reader",
        "reading_paused",
        "transport",
        "writer",
        "writing_paused",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport
        self.data = b""  # what arrived and was not taken yet
        self.eof = False  # the server closed the stream, or the connection was lost
        self.error: Exception | None = None  # why it was lost, if not by a clean close
        self.lost = False
        self.reading_paused = False
        self.writing_paused = False
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- the event loop's side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.data:
            self.data += data
            if len(self.data) > _LIMIT and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
        else:
            self.data = data
        reader = self.reader  # (_wake_reader written out: this runs for every read)
        if reader is not None:
            self.reader = None
            if not reader.done():
                reader.set_result(None)

    def eof_received(self) -> None:
        self.eof = True  # returning None lets the transport close itself
        self._wake_reader()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = self.lost = True
        self.error = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        writer = self.writer
        if writer is not None:
            self.writer = None
            if not writer.done():
                writer.set_result(None)

    def _wake_reader(self) -> None:
        reader = self.reader
        if reader is not None:
            self.reader = None
            if not reader.done():
                reader.set_result(None)

    # ---------------------------------------------------------------- the client's side

    async def receive(self) -> bytes:
        """What arrived (waiting for it if nothing did), or ``b""`` at the end."""
        if not self.data and not self.eof:
            self.reader = reader = self.loop.create_future()
            await reader
        if self.data:
            return self.take()
        if self.error is not None:
            raise self.error
        return b""

    def take(self) -> bytes:
        """What arrived and was not taken yet (``b""`` if nothing), without waiting."""
        data = self.data
        self.data = b""
        if self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        while self.writing_paused:
            self.writer = writer = self.loop.create_future()
            await writer
        if self.lost:
            raise ConnectionResetError("the connection was lost while writing")


class _CommandLock(CommandLock):
    """The command lock, queueing one future per waiting task."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        super().__init__()
        self._queue: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed over, then cancelled before it ran: pass it on
            else:
                try:
                    self._queue.remove(turn)
                except ValueError:
                    pass  # a release already dropped it
            raise

    def release(self) -> None:
        queue = self._queue
        while queue:
            turn = queue.popleft()
            if not turn.done():  # (a cancelled one is done)
                turn.set_result(None)  # still locked: it belongs to that task now
                return
        self._locked = False


class _Waiter(Waiter):
    """A task's wait for a wake-up, on a future made only when it must wait."""

    __slots__ = ("_future", "_loop", "_woken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] | None = None
        self._woken = False

    def wake(self) -> None:
        future = self._future
        if future is None:
            self._woken = True
        else:
            self._future = None
            if not future.done():  # (a cancelled wait's future is done)
                future.set_result(None)

    def wait(self) -> asyncio.Future[None] | None:
        if self._woken:
            self._woken = False
            return None
        self._future = future = self._loop.create_future()
        return future


class AsyncClient(AsyncTransport):
    """An asyncio beanstalkd client.

    Share one between many tasks: their commands are pipelined on its connection, and
    each gets its own reply. A command issued while a reserve waits raises
    :class:`ClientBusyError` instead of waiting behind it. Use ``asyncio.timeout()`` for
    deadlines. Cancelling a command leaves the connection open (its reply is read and
    dropped); cancelling a reserve closes it, so the server returns any job it held to
    ready. After a failure the next call reconnects and restores the used tube and the
    watch list.
    """

    _stream: _Stream

    async def _open_stream(self) -> None:
        address = self.address
        loop = asyncio.get_running_loop()
        stream = _Stream(loop)
        if isinstance(address, str):
            await loop.create_unix_connection(lambda: stream, address)
        else:
            await loop.create_connection(lambda: stream, *address)
            sock = stream.transport.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl is not None:
                await self._handshake(stream, self.ssl, address[0])
        self._stream = stream
        # The command loop reads through the stream's own method: one frame fewer per read.
        self._receive = stream.receive  # type: ignore[method-assign]
        self._make_waiter = functools.partial(_Waiter, loop)  # type: ignore[method-assign]

    async def _handshake(self, stream: _Stream, context: ssl.SSLContext, host: str) -> None:
        transport = stream.transport
        try:  # the certificate is checked against the host
            tls = await stream.loop.start_tls(transport, stream, context, server_hostname=host)
        except BaseException as error:
            transport.abort()
            if isinstance(error, _LOST_IN_HANDSHAKE):
                raise ConnectionClosedError(f"lost in the TLS handshake: {error}") from error
            raise  # a certificate that does not verify: ssl.SSLCertVerificationError
        if tls is None:  # pragma: no cover - only if the loop closed it meanwhile
            transport.abort()
            raise ConnectionClosedError("lost in the TLS handshake")
        stream.transport = tls

    def _write(self, data: bytes) -> Awaitable[None] | None:
        stream = self._stream
        stream.transport.write(data)
        return stream.drain() if stream.writing_paused else None

    async def _receive(self) -> bytes:
        return await self._stream.receive()

    def _abort_stream(self) -> None:
        transport = self._stream.transport
        # abort() only closes the socket on the loop's next iteration; shutting it down
        # first ends the connection now, so the server sees it go (and frees any job it
        # held) even if the loop is blocked or about to stop.
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already reset by the peer
        transport.abort()

    def _check_idle(self) -> bool:
        # The event loop reads in the background, so what an idle connection got is here.
        stream = self._stream
        if stream.data:
            self._conn.receive_data(stream.take())  # a reply to nothing: refused on send
            return False
        return stream.eof

    def _make_lock(self) -> _CommandLock:
        return _CommandLock()

    def _make_waiter(self) -> _Waiter:
        return _Waiter(asyncio.get_running_loop())

    async def _pass(self) -> None:
        await asyncio.sleep(0)

    def _writable(self) -> Awaitable[None] | None:
        stream = self._stream
        return stream.drain() if stream.writing_paused else None
