"""The embedded server's listener: TCP or Unix sockets in front of the engine.

All protocol work happens in the sans-IO :class:`~jackstalk._engine.hub.Hub`; this module
moves bytes and keeps time, on non-blocking sockets that the running asyncio loop watches
(``add_reader``/``add_writer``). It follows beanstalkd wherever a client can tell:

* a connection whose replies the socket does not take runs no more commands and is not
  read until they are written; nor does one whose reserve waits, except that it reads on
  (at most 64 KiB, run later) to notice at once a client that hangs up, which gets
  ``TIMED_OUT`` and has its jobs handed back;
* it reads ahead at most 64 KiB of commands, plus the whole body of a put whose line has
  run (up to the largest job size), so any body the server accepts gets in;
* once the client's end of the stream has been seen, each reply is written on its own
  before the next command runs, and the connection closes at the first write that fails:
  exactly the commands beanstalkd would run still run (after a hang-up during a reserve,
  ``TIMED_OUT`` is written, the client's system answers it with a reset, and only the next
  command runs, its reply failing);
* a connection runs commands for about a millisecond, then lets the others run theirs:
  a client that floods the server holds up the others by one such turn at most.

``asyncio`` and the engine are imported when serving starts, after :func:`bind`: so
``jackstalk serve`` accepts connections (the system queues them) as early as it can.
"""

from __future__ import annotations

import os
import socket
import stat
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio
    import logging

    from jackstalk._engine.engine import ProcessInfo
    from jackstalk._engine.hub import Hub

__all__ = ["EmbeddedServer", "bind", "process_info", "start_server"]

_READ_AHEAD = 65536  # bytes a connection may have received and not run yet (beyond a body)
_READ_SIZE = 65536  # bytes asked for per read
_WRITE_LIMIT = 65536  # bytes of replies gathered before they are written
_CHUNK = 32  # commands run before their replies are written (while the client listens)
_TURN = 0.001  # seconds of commands per turn before the other connections get theirs
_ACCEPTS = 64  # connections accepted per turn of the listening socket
_NOT_READY = (BlockingIOError, InterruptedError)


def process_info() -> ProcessInfo:
    """This process's pid, host name, kernel version, machine and CPU times."""
    import resource

    from jackstalk._engine.engine import ProcessInfo

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


def bind(
    host: str = "127.0.0.1",
    port: int = 11300,
    *,
    unix_path: str | None = None,
    backlog: int = 1024,
) -> list[socket.socket]:
    """Listening sockets: one per address of ``host`` (as asyncio's ``create_server`` binds
    them), or the Unix socket ``unix_path`` (a stale socket file there is replaced).

    Connections are queued by the system from here on, before anything serves them. Raises
    :class:`OSError` when the address cannot be used.
    """
    if unix_path is not None:
        try:
            if stat.S_ISSOCK(os.stat(unix_path).st_mode):
                os.remove(unix_path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(unix_path)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return [sock]
    # An ASCII name goes as bytes: a str would load the IDNA codec first (a millisecond).
    name = host.encode("ascii") if host and host.isascii() else host or None
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _Client:
    """One client connection: its socket and what the listener knows about it."""

    __slots__ = ("conn", "eof", "fd", "reading", "scheduled", "sock", "unsent")

    def __init__(self, sock: socket.socket, conn: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = conn
        self.unsent = b""  # replies the socket has not taken yet
        self.eof = False  # the client closed its end
        self.reading = False  # the loop watches the socket for bytes
        self.scheduled = False  # a turn is due on the loop


class EmbeddedServer:
    """A running embedded beanstalkd; make one with :func:`start_server`."""

    def __init__(
        self, hub: Hub, loop: asyncio.AbstractEventLoop, listeners: list[socket.socket]
    ) -> None:
        self.hub = hub
        self.loop = loop
        self.clients: dict[int, _Client] = {}
        self.turns = 0  # turns run so far (the server is idle while this stands still)
        self._listeners = listeners
        name = listeners[0].getsockname()
        self.address: tuple[str, int] | str = name if isinstance(name, str) else name[:2]
        self._unix_path = name if isinstance(name, str) and name[:1] not in ("", "\0") else None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = loop.create_future()
        for sock in listeners:
            loop.add_reader(sock.fileno(), self._accept, sock)

    # ------------------------------------------------------------------ connections

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(_ACCEPTS):
            try:
                sock, _address = listener.accept()
            except _NOT_READY:
                break
            except OSError as exc:  # out of file descriptors, say: try again next turn
                _log().warning("accept failed: %s", exc)
                break
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = _Client(sock, self.hub.connect())
            self.clients[client.conn] = client
            self._want_reading(client, True)

    def _want_reading(self, client: _Client, want: bool) -> None:
        if want != client.reading:
            client.reading = want
            if want:
                self.loop.add_reader(client.fd, self._readable, client)
            else:
                self.loop.remove_reader(client.fd)

    def _drop(self, client: _Client) -> None:
        """Close the client's socket and tell the engine (its jobs go back)."""
        if self.clients.pop(client.conn, None) is None:
            return
        loop = self.loop
        if client.reading:
            loop.remove_reader(client.fd)
        if client.unsent:
            loop.remove_writer(client.fd)
        client.sock.close()
        self.hub.disconnect(client.conn, loop.time())

    def _failed(self, client: _Client) -> None:
        """An internal error while serving one client drops that client, never the server."""
        _log().exception("dropping connection %d after an internal error", client.conn)
        self._drop(client)

    # ------------------------------------------------------------------ data path

    def _readable(self, client: _Client) -> None:
        hub = self.hub
        conn = client.conn
        try:
            # Read until nothing is left (or enough is): a client that sent its last
            # commands and closed must be known to have closed before they run.
            while hub.buffered(conn) < _READ_AHEAD:
                try:
                    data = client.sock.recv(_READ_SIZE)
                except _NOT_READY:
                    break
                except OSError:  # reset: beanstalkd closes the connection
                    self._drop(client)
                    break
                hub.receive_data(conn, data, self.loop.time())
                if not data:
                    client.eof = True
                    break
            if conn in self.clients:
                if client.scheduled:  # its turn is due already: one turn per round
                    self._update_reading(client)
                else:
                    self._turn(client)
        except Exception:
            self._failed(client)
        self._after()

    def _scheduled_turn(self, client: _Client) -> None:
        client.scheduled = False
        if client.conn in self.clients:
            try:
                self._turn(client)
            except Exception:
                self._failed(client)
        self._after()

    def _turn(self, client: _Client) -> None:
        """Run the client's commands for one turn and write their replies."""
        self.turns += 1
        hub = self.hub
        conn = client.conn
        loop = self.loop
        start = loop.time()
        while not client.unsent:
            now = loop.time()
            if client.eof:
                data = hub.run(conn, now, 1)  # one reply at a time: a write may fail
            else:
                data = hub.run(conn, now, _WRITE_LIMIT, commands=_CHUNK)
            if data and not self._send(client, data):
                return
            if hub.closing(conn):
                if not client.unsent:
                    self._drop(client)
                return
            if not hub.more(conn):
                break
            if loop.time() - start >= _TURN:
                self._schedule(client)
                break
        self._update_reading(client)

    def _update_reading(self, client: _Client) -> None:
        """Read while the client is there, its replies are written and little is queued."""
        self._want_reading(
            client,
            not client.eof and not client.unsent and self.hub.buffered(client.conn) < _READ_AHEAD,
        )

    def _send(self, client: _Client, data: bytes) -> bool:
        """Write replies; False when the connection failed (and is dropped)."""
        try:
            sent = client.sock.send(data)
        except _NOT_READY:
            sent = 0
        except OSError:
            self._drop(client)
            return False
        if sent < len(data):
            client.unsent = data[sent:]
            self._want_reading(client, False)
            self.loop.add_writer(client.fd, self._writable, client)
        return True

    def _writable(self, client: _Client) -> None:
        try:
            try:
                sent = client.sock.send(client.unsent)
            except _NOT_READY:
                sent = 0
            except OSError:
                self._drop(client)
                sent = -1
            if sent > 0:
                client.unsent = client.unsent[sent:]
                if not client.unsent:
                    self.loop.remove_writer(client.fd)
                    if self.hub.closing(client.conn):
                        self._drop(client)
                    else:
                        self._turn(client)
        except Exception:
            self._failed(client)
        self._after()

    def _schedule(self, client: _Client) -> None:
        if not client.scheduled:
            client.scheduled = True
            self.loop.call_soon(self._scheduled_turn, client)

    def _wake(self, conns: list[int]) -> None:
        """Give a turn to connections that others' commands or time gave replies."""
        clients = self.clients
        for conn in conns:
            client = clients.get(conn)
            if client is not None and not client.unsent:
                self._schedule(client)

    def _after(self) -> None:
        """After any event: wake who must be woken, and set the timer for what is due next."""
        if self._closed.done():
            return
        self._wake(self.hub.take_woken())
        self._arm_timer()

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
        self._wake(self.hub.tick(max(self.loop.time(), at)))
        self._after()

    # ------------------------------------------------------------------ life cycle

    def drain(self) -> None:
        """Refuse new jobs from now on (``DRAINING``), as beanstalkd does after SIGUSR1."""
        self.hub.engine.drain()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        loop = self.loop
        for sock in self._listeners:
            if sock.fileno() != -1:
                loop.remove_reader(sock.fileno())
                sock.close()
        if self._unix_path is not None:
            try:
                os.unlink(self._unix_path)
            except FileNotFoundError:
                pass
            self._unix_path = None
        for client in list(self.clients.values()):
            self._drop(client)
        self.hub.take_woken()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        if not self._closed.done():
            self._closed.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has been called."""
        await self._closed

    async def serve_forever(self) -> None:
        """Serve until cancelled or closed."""
        await self._closed

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


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("jackstalk.server")


async def start_server(
    host: str = "127.0.0.1",
    port: int = 11300,
    *,
    unix_path: str | None = None,
    max_job_size: int = 65535,
    sockets: list[socket.socket] | None = None,
) -> EmbeddedServer:
    """Listen on ``host``:``port`` (or the Unix socket ``unix_path``) and serve.

    ``port=0`` picks a free port; the server's ``address`` says which. ``sockets`` are
    listening sockets from :func:`bind` to serve instead (the server closes them, and
    unlinks a Unix socket's path, when it closes). Raises :class:`OSError` when the
    address cannot be used.
    """
    import asyncio

    from jackstalk._engine.hub import Hub

    loop = asyncio.get_running_loop()
    if sockets is None:
        sockets = bind(host, port, unix_path=unix_path)
    hub = Hub(loop.time(), max_job_size=max_job_size, process=process_info())
    return EmbeddedServer(hub, loop, sockets)
