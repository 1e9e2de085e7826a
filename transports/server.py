"""The embedded server's asyncio listener: TCP or Unix sockets in front of the engine.

All protocol work happens in the sans-IO :class:`~jackstalk._engine.hub.Hub`; this module only
moves bytes and keeps time. Like beanstalkd it runs no command while a reply is unsent
(reading stops until the socket takes the reply) or while the connection's reserve waits.
During a wait it still reads (at most 64 KiB, run later) so that it notices at once a
client that hangs up, answers ``TIMED_OUT`` and hands the connection's jobs back, as
beanstalkd does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import resource
import socket
from collections.abc import Callable
from types import TracebackType

from jackstalk._engine.engine import ProcessInfo
from jackstalk._engine.hub import Hub

__all__ = ["EmbeddedServer", "process_info", "start_server"]

log = logging.getLogger("jackstalk.server")

_READ_AHEAD = 65536  # bytes a connection may have received and not run yet
_RUN_LIMIT = 65536  # bytes of replies produced per turn of one connection


def process_info() -> ProcessInfo:
    """This process's pid, host name, kernel version, machine and CPU times."""
    uname = os.uname()

    def rusage() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime, usage.ru_stime

    return ProcessInfo(
        pid=os.getpid(),
        hostname=uname.nodename,
        os=uname.version,
        platform=uname.machine,
        rusage=rusage,
    )


class _Client(asyncio.Protocol):
    """One client connection: hands its bytes to the hub and writes what comes back."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.conn = 0
        self.transport: asyncio.Transport | None = None
        self.blocked = False  # the socket has not taken our last reply yet
        self.reading = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Stop (and so stop running commands) as soon as a reply cannot be sent whole.
        transport.set_write_buffer_limits(high=0)
        self.conn = self.server.hub.connect()
        self.server.clients[self.conn] = self

    def data_received(self, data: bytes) -> None:
        self.server.received(self, data)

    def eof_received(self) -> bool:
        self.server.received(self, b"")
        return True  # keep the socket open for the replies still to come

    def pause_writing(self) -> None:
        self.blocked = True

    def resume_writing(self) -> None:
        self.blocked = False
        self.server.pump([self.conn])

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.lost(self)


class EmbeddedServer:
    """A running embedded beanstalkd; make one with :func:`start_server`."""

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.loop = loop
        self.clients: dict[int, _Client] = {}
        self.address: tuple[str, int] | str = ""
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._unix_path: str | None = None

    # ------------------------------------------------------------------ data path

    def received(self, client: _Client, data: bytes) -> None:
        """Bytes (or the end of stream) from a client."""
        now = self.loop.time()
        self._guard(client, functools.partial(self.hub.receive_data, client.conn, data, now))
        self.pump([client.conn])

    def lost(self, client: _Client) -> None:
        """A client's socket is gone."""
        if self.clients.pop(client.conn, None) is None:
            return
        self.hub.disconnect(client.conn, self.loop.time())
        self.pump(self.hub.take_woken())

    def pump(self, conns: list[int]) -> None:
        """Run what each connection can run now and write the replies; follow wake-ups."""
        hub = self.hub
        todo = list(conns)
        while todo:
            conn = todo.pop()
            client = self.clients.get(conn)
            if client is not None:
                self._guard(client, functools.partial(self._turn, client))
            todo.extend(hub.take_woken())
        self._arm_timer()

    def _turn(self, client: _Client) -> None:
        transport = client.transport
        assert transport is not None
        hub = self.hub
        conn = client.conn
        while not client.blocked and not transport.is_closing():
            data = hub.run(conn, self.loop.time(), _RUN_LIMIT)
            if data:
                transport.write(data)
            if hub.closing(conn):
                transport.close()  # after what is buffered has been written
                return
            if not data or hub.waiting(conn) or hub.idle(conn):
                break
        want = not client.blocked and hub.buffered(conn) < _READ_AHEAD
        if want != client.reading:
            client.reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _guard(self, client: _Client, action: Callable[[], object]) -> None:
        """Run ``action``; a failure there drops that one connection, never the server."""
        try:
            action()
        except Exception:
            log.exception("dropping connection %d after an internal error", client.conn)
            if client.transport is not None:
                client.transport.abort()
            self.lost(client)

    # ------------------------------------------------------------------ time

    def _arm_timer(self) -> None:
        at = self.hub.next_deadline()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            self._timer = self.loop.call_at(at, self._on_timer, at)

    def _on_timer(self, at: float) -> None:
        self._timer = None
        self._timer_at = None
        # The loop may call a little early; the event was due at ``at`` all the same.
        woken = self.hub.tick(max(self.loop.time(), at))
        self.pump(woken)

    # ------------------------------------------------------------------ life cycle

    async def _listen(self, host: str, port: int, unix_path: str | None) -> None:
        if unix_path is not None:
            self._server = await self.loop.create_unix_server(
                lambda: _Client(self), unix_path, backlog=1024
            )
            self._unix_path = unix_path
            self.address = unix_path
        else:
            self._server = await self.loop.create_server(
                lambda: _Client(self), host, port, backlog=1024, reuse_address=True
            )
            name = self._server.sockets[0].getsockname()
            self.address = (name[0], name[1])

    def drain(self) -> None:
        """Refuse new jobs from now on (``DRAINING``), as beanstalkd does after SIGUSR1."""
        self.hub.engine.drain()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for client in list(self.clients.values()):
            if client.transport is not None:
                client.transport.abort()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished."""
        if self._server is not None:
            await self._server.wait_closed()
        if self._unix_path is not None:
            try:
                os.unlink(self._unix_path)
            except FileNotFoundError:
                pass
            self._unix_path = None

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> EmbeddedServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


async def start_server(
    host: str = "127.0.0.1",
    port: int = 11300,
    *,
    unix_path: str | None = None,
    max_job_size: int = 65535,
) -> EmbeddedServer:
    """Listen on ``host``:``port`` (or the Unix socket ``unix_path``) and serve.

    ``port=0`` picks a free port; the server's ``address`` says which. Raises
    :class:`OSError` when the address cannot be used.
    """
    loop = asyncio.get_running_loop()
    hub = Hub(loop.time(), max_job_size=max_job_size, process=process_info())
    server = EmbeddedServer(hub, loop)
    await server._listen(host, port, unix_path)
    return server
