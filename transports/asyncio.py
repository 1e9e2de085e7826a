"""The asyncio client: the core driven over asyncio streams (TCP or Unix)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from contextlib import AbstractAsyncContextManager

from jackstalk._asyncbase import AsyncTransport
from jackstalk._errors import ConnectionClosedError

__all__ = ["AsyncClient"]

_READ = 65536
_LOST_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError)


class AsyncClient(AsyncTransport):
    """An asyncio beanstalkd client.

    Safe to share between tasks: commands run one at a time per connection. A command
    issued while a reserve waits raises :class:`ClientBusyError` instead of waiting behind
    it. Use ``asyncio.timeout()`` for deadlines. Cancelling a command closes the
    connection (the server then returns any job it held to ready); the next call
    reconnects and restores the used tube and the watch list.
    """

    _reader: asyncio.StreamReader
    _writer: asyncio.StreamWriter

    async def _open_stream(self) -> None:
        address = self.address
        if isinstance(address, str):
            self._reader, self._writer = await asyncio.open_unix_connection(address)
        else:
            self._reader, self._writer = await asyncio.open_connection(*address)
            sock = self._writer.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl is not None:
                await self._handshake(self.ssl, address[0])

    async def _handshake(self, context: ssl.SSLContext, host: str) -> None:
        try:  # the certificate is checked against the host
            await self._writer.start_tls(context, server_hostname=host)
        except BaseException as error:
            self._writer.transport.abort()
            if isinstance(error, _LOST_IN_HANDSHAKE):
                raise ConnectionClosedError(f"lost in the TLS handshake: {error}") from error
            raise  # a certificate that does not verify: ssl.SSLCertVerificationError

    async def _send(self, data: bytes) -> None:
        writer = self._writer
        writer.write(data)
        if writer.transport.get_write_buffer_size():
            await writer.drain()

    async def _receive(self) -> bytes:
        return await self._reader.read(_READ)

    def _abort_stream(self) -> None:
        transport = self._writer.transport
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

    def _stream_ended(self) -> bool:
        # The event loop reads in the background, so an idle connection's end is seen here.
        return self._reader.at_eof()

    def _make_lock(self) -> AbstractAsyncContextManager[object]:
        return asyncio.Lock()
