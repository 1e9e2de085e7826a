"""The trio client: the core driven over trio streams (TCP or Unix)."""

from __future__ import annotations

import socket
import ssl
from contextlib import AbstractAsyncContextManager

import trio

from jackstalk._asyncbase import AsyncTransport
from jackstalk._errors import ConnectionClosedError

__all__ = ["TrioClient"]

_READ = 65536
_LOST_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)


class _CommandLock:
    """A ``trio.StrictFIFOLock`` taken without a scheduler pass when it is free.

    Every command checkpoints anyway (it sends and receives), so the lock's own checkpoint
    is one trip through the scheduler too many on the fast path; FIFO order is kept, since
    a free lock has no one waiting.
    """

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = trio.StrictFIFOLock()

    async def __aenter__(self) -> None:
        try:
            self._lock.acquire_nowait()
        except trio.WouldBlock:
            await self._lock.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class TrioClient(AsyncTransport):
    """A trio beanstalkd client.

    Safe to share between tasks: commands run one at a time per connection, in FIFO order.
    A command issued while a reserve waits raises :class:`ClientBusyError` instead of
    waiting behind it. Use ``trio.fail_after``/``move_on_after`` for deadlines.
    Cancelling a command closes the connection (the server then returns any job it held
    to ready); the next call reconnects and restores the used tube and the watch list.
    """

    _stream: trio.SocketStream
    _tls: trio.SSLStream[trio.SocketStream] | None = None
    """The TLS layer over ``_stream`` when the client has ``ssl``."""

    async def _open_stream(self) -> None:
        address = self.address
        self._tls = None
        if isinstance(address, str):
            self._stream = await trio.open_unix_socket(address)
        else:
            self._stream = await trio.open_tcp_stream(*address)
            self._stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl is not None:
                self._tls = await self._handshake(self.ssl, address[0])

    async def _handshake(
        self, context: ssl.SSLContext, host: str
    ) -> trio.SSLStream[trio.SocketStream]:
        tls = trio.SSLStream(self._stream, context, server_hostname=host)
        try:
            await tls.do_handshake()
        except BaseException as error:
            self._stream.socket.close()
            if not isinstance(error, trio.BrokenResourceError):
                raise  # cancelled, or timed out
            cause = error.__cause__
            if isinstance(cause, ssl.SSLError) and not isinstance(cause, _LOST_IN_HANDSHAKE):
                # The TLS verdict itself (ssl.SSLCertVerificationError for a certificate that
                # does not verify), as the other clients raise it.
                raise cause from None
            raise ConnectionClosedError(f"lost in the TLS handshake: {error}") from error
        return tls

    async def _send(self, data: bytes) -> None:
        tls = self._tls
        await (self._stream if tls is None else tls).send_all(data)

    async def _receive(self) -> bytes:
        tls = self._tls
        if tls is None:
            return await self._stream.receive_some(_READ)
        return bytes(await tls.receive_some(_READ))  # bytes already: no copy

    def _abort_stream(self) -> None:
        # The socket closes without an await, so this also works inside a cancelled scope.
        self._stream.socket.close()

    def _make_lock(self) -> AbstractAsyncContextManager[object]:
        return _CommandLock()

    def _map_error(self, error: BaseException) -> BaseException:
        if isinstance(error, trio.BrokenResourceError | trio.ClosedResourceError):
            return ConnectionClosedError(f"connection lost: {error}")
        return super()._map_error(error)
