"""The trio client: the core driven over trio streams (TCP or Unix)."""

from __future__ import annotations

import socket
from contextlib import AbstractAsyncContextManager

import trio

from jackstalk._asyncbase import AsyncTransport
from jackstalk._errors import ConnectionClosedError

__all__ = ["TrioClient"]

_READ = 65536


class TrioClient(AsyncTransport):
    """A trio beanstalkd client.

    Safe to share between tasks: commands run one at a time per connection, in FIFO order.
    A command issued while a reserve waits raises :class:`ClientBusyError` instead of
    waiting behind it. Use ``trio.fail_after``/``move_on_after`` for deadlines.
    Cancelling a command closes the connection (the server then returns any job it held
    to ready); the next call reconnects and restores the used tube and the watch list.
    """

    _stream: trio.SocketStream

    async def _open_stream(self) -> None:
        address = self.address
        if isinstance(address, str):
            self._stream = await trio.open_unix_socket(address)
        else:
            self._stream = await trio.open_tcp_stream(*address)
            self._stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._stream.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

    async def _send(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def _receive(self) -> bytes:
        return await self._stream.receive_some(_READ)

    def _abort_stream(self) -> None:
        # The socket closes without an await, so this also works inside a cancelled scope.
        self._stream.socket.close()

    def _make_lock(self) -> AbstractAsyncContextManager[object]:
        return trio.StrictFIFOLock()

    def _map_error(self, error: BaseException) -> BaseException:
        if isinstance(error, trio.BrokenResourceError | trio.ClosedResourceError):
            return ConnectionClosedError(f"connection lost: {error}")
        return super()._map_error(error)
