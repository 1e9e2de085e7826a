"""The trio client: the core driven over trio's I/O waits (TCP or Unix).

trio opens the connection (name resolution, happy eyeballs, TLS); a plain connection's
socket is then driven directly, with ``trio.lowlevel.wait_readable``/``wait_writable``.
A ``SocketStream`` passes through the scheduler once in ``send_all`` and once in
``receive_some``, where one command needs one pass: waiting for its reply (which is a
full checkpoint, so every command stays one).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable
from time import monotonic as _monotonic

import trio

from jackstalk._api.async_transport import AsyncTransport, CommandLock, Waiter
from jackstalk._api.pipeline import IDLE_CHECK
from jackstalk._protocol.errors import ConnectionClosedError

__all__ = ["TrioClient"]

_READ = 65536
_LOST_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)

_checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
_wait_readable = trio.lowlevel.wait_readable
_wait_writable = trio.lowlevel.wait_writable


class _CommandLock(CommandLock):
    """The command lock, queueing on a ``ParkingLot``: a task that ``unpark`` rescheduled
    can no longer be cancelled out of ``park``, so the hand-over cannot be lost. Every
    command checkpoints anyway, when it waits for its reply."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        super().__init__()
        self._queue = trio.lowlevel.ParkingLot()

    async def acquire(self) -> None:
        await self._queue.park()  # the lock is ours when this returns

    def release(self) -> None:
        queue = self._queue
        if not (queue and queue.unpark(count=1)):  # (an empty lot is false)
            self._locked = False


class _Waiter(Waiter):
    """A task's wait for a wake-up, parked in trio's scheduler."""

    __slots__ = ("_task", "_woken")

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None
        self._woken = False

    def wake(self) -> None:
        task = self._task
        if task is None:
            self._woken = True
        else:
            self._task = None
            trio.lowlevel.reschedule(task)

    def wait(self) -> Awaitable[None] | None:
        if self._woken:
            self._woken = False
            return None
        self._task = trio.lowlevel.current_task()
        # (returned to be awaited by the caller at once: no coroutine frame of our own)
        return trio.lowlevel.wait_task_rescheduled(self._abort)  # noqa: ASYNC105

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._task = None
        return trio.lowlevel.Abort.SUCCEEDED


class TrioClient(AsyncTransport):
    """A trio beanstalkd client.

    Share one between many tasks: their commands are pipelined on its connection, and
    each gets its own reply, with no background task of the client's own. A command
    issued while a reserve waits raises :class:`ClientBusyError` instead of waiting behind
    it. Use ``trio.fail_after``/``move_on_after`` for deadlines. Cancelling a command
    leaves the connection open (its reply is read and dropped); cancelling a reserve
    closes it, so the server returns any job it held to ready. After a failure the next
    call reconnects and restores the used tube and the watch list.
    """

    _socket: socket.socket
    """A plain connection's socket (non-blocking), taken over from trio's stream."""
    _stream: trio.SocketStream
    _tls: trio.SSLStream[trio.SocketStream] | None = None
    """The TLS layer over ``_stream`` when the client has ``ssl``."""
    _used_at = 0.0
    """When the last command started (``time.monotonic``), for the idle check."""

    async def _open_stream(self) -> None:
        address = self.address
        self._tls = None
        if isinstance(address, str):
            stream = await trio.open_unix_socket(address)
        else:
            stream = await trio.open_tcp_stream(*address)
            stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl is not None:
                self._stream = stream
                self._tls = await self._handshake(self.ssl, address[0])
                return
        # No await from here on: the socket changes hands whole.
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        self._socket = sock
        self._used_at = _monotonic()

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

    def _write(self, data: bytes) -> Awaitable[None] | None:
        tls = self._tls
        if tls is not None:
            return tls.send_all(data)
        # Writing what fits is no checkpoint: the wait for the reply, which always
        # follows, is one.
        sock = self._socket
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            return self._send_rest(data, sent)
        return None

    def _cancel_point(self) -> Awaitable[None]:
        return _checkpoint_if_cancelled()  # a command already cancelled sends nothing

    def _make_waiter(self) -> _Waiter:
        return _Waiter()

    async def _pass(self) -> None:
        await trio.lowlevel.checkpoint()

    async def _send_rest(self, data: bytes, sent: int) -> None:
        """Write what did not fit in the socket's buffer, as room frees up."""
        sock = self._socket
        with memoryview(data) as view:
            while sent < len(view):
                await _wait_writable(sock)
                try:
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    pass

    async def _receive(self) -> bytes:
        tls = self._tls
        if tls is not None:
            return bytes(await tls.receive_some(_READ))  # bytes already: no copy
        sock = self._socket
        while True:
            await _wait_readable(sock)  # a full checkpoint, even when data is there
            try:
                return sock.recv(_READ)
            except BlockingIOError:
                pass

    def _abort_stream(self) -> None:
        # The socket closes without an await, so this also works inside a cancelled scope.
        if self._tls is not None:
            self._stream.socket.close()
            return
        sock = self._socket
        trio.lowlevel.notify_closing(sock)  # a task waiting on it raises ClosedResourceError
        sock.close()

    def _check_idle(self) -> bool:
        # Nothing reads in the background here, so a connection that sat unused for a while
        # is read from (one system call, without waiting) before a command goes out on it.
        now = _monotonic()
        idle = now - self._used_at > IDLE_CHECK
        self._used_at = now
        if not idle or self._tls is not None:
            return False
        try:
            data = self._socket.recv(_READ)  # a non-blocking socket
        except BlockingIOError:
            return False  # open, with nothing to read
        except OSError:
            return True  # reset
        if data:
            self._conn.receive_data(data)  # a reply to nothing: refused on send
        return not data

    def _make_lock(self) -> _CommandLock:
        return _CommandLock()

    def _map_error(self, error: BaseException) -> BaseException:
        if isinstance(error, trio.BrokenResourceError | trio.ClosedResourceError):
            return ConnectionClosedError(f"connection lost: {error}")
        return super()._map_error(error)
