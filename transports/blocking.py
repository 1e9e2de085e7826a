"""The blocking client: the core driven over a plain socket (TCP or Unix)."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterable
from time import monotonic as _monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from jackstalk._api.base import Address, CodecOption
from jackstalk._api.pipeline import IDLE_CHECK, batch_wait, reply_wait, windows
from jackstalk._api.sync_methods import SyncCommands
from jackstalk._protocol.commands import Command
from jackstalk._protocol.connection import Connection
from jackstalk._protocol.errors import ClientBusyError, ConnectionClosedError, JackstalkError
from jackstalk._protocol.events import NEED_DATA, Closed, Event
from jackstalk._protocol.validate import seconds

if TYPE_CHECKING:
    from ssl import SSLContext

__all__ = ["Client"]

log = logging.getLogger("jackstalk.client")
_READ = 65536
_TURN_CHECK = 0.05
"""Seconds between looks, while a thread waits for its turn on the connection, at whether
a reserve holds it (then the wait is refused instead of lasting until a job comes)."""
_BUSY = "a reserve is waiting on this connection; use another client"
_LOST_IN_HANDSHAKE = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError, ConnectionError)


def _deadline(wait: float | None, start: float) -> float | None:
    """When a wait of ``wait`` seconds from ``start`` ends (None: never)."""
    return None if wait is None else start + wait


def _earlier(first: float | None, second: float | None) -> float | None:
    """The earlier of two deadlines (None: never)."""
    if first is None:
        return second
    if second is None:
        return first
    return min(first, second)


class Client(SyncCommands):
    """A blocking beanstalkd client.

    ``timeout`` is how long to wait for a reply beyond what the command itself waits
    (``reserve(timeout=5)`` waits up to 5 s plus ``timeout``; a plain ``reserve()`` waits as
    long as it takes). It bounds the whole reply, however its bytes trickle in: a reply that
    is not whole in time raises :class:`TimeoutError` and closes the connection.
    ``connect_timeout`` bounds connecting. The connection opens on first use and, after a
    failure, again on the next call, restoring the used tube and the watch list.

    Threads may share a client: calls take turns on its connection, and each gets its own
    reply. A call made while another thread's reserve waits raises
    :class:`ClientBusyError` (reserve on a client of its own).
    """

    _connections = 0  # connections opened so far: a later one is a reconnect (for the log)

    def __init__(
        self,
        address: Address | None = None,
        *,
        encoding: str | None = "utf-8",
        use: str = "default",
        watch: str | Iterable[str] = "default",
        parse_yaml: bool | Callable[[str], Any] = True,
        max_job_size: int = 65535,
        timeout: float | None = 30.0,
        connect_timeout: float | None = 10.0,
        ssl: SSLContext | None = None,
        codec: CodecOption = None,
    ) -> None:
        super().__init__(
            address,
            encoding=encoding,
            use=use,
            watch=watch,
            parse_yaml=parse_yaml,
            max_job_size=max_job_size,
            ssl=ssl,
            codec=codec,
        )
        self.timeout = seconds(timeout, "timeout")
        self.connect_timeout = seconds(connect_timeout, "connect_timeout")
        self._sock: socket.socket | None = None
        self._conn = Connection(max_body=self.max_job_size)
        self._ready = False
        self._opening = False
        self._used_at = 0.0
        self._shortened = False  # the kernel's read limit is cut to a reply's deadline
        self._lock = threading.Lock()  # one command (or batch) at a time on the connection
        self._reserving = False  # the command holding the connection is a reserve

    # ------------------------------------------------------------------ connecting

    def connect(self) -> None:
        """Open the connection now (it otherwise opens on first use)."""
        if self._sock is None:
            self._take_turn(False)
            try:
                if self._sock is None:
                    self._open()
            finally:
                self._lock.release()

    def _take_turn(self, waits: bool) -> None:
        """Hold the connection for one call: threads sharing a client take turns, each
        call getting its own reply. A call made while another thread's reserve holds it
        raises :class:`ClientBusyError` rather than wait until a job comes."""
        lock = self._lock
        if not lock.acquire(False):
            while True:
                if self._reserving:
                    raise ClientBusyError(_BUSY)
                if lock.acquire(timeout=_TURN_CHECK):
                    break
        self._reserving = waits

    def _open(self) -> None:
        address = self.address
        if isinstance(address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(address, timeout=self.connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.ssl is not None:
                try:  # the handshake runs here, within connect_timeout
                    sock = self.ssl.wrap_socket(sock, server_hostname=address[0])
                except BaseException as error:
                    sock.close()
                    if isinstance(error, _LOST_IN_HANDSHAKE):
                        raise ConnectionClosedError(
                            f"lost in the TLS handshake: {error}"
                        ) from error
                    raise  # a certificate that does not verify: ssl.SSLCertVerificationError
        if self.ssl is None:
            sock.settimeout(None)  # blocking mode; _limit bounds each call in the kernel
        self._limit(sock, self.timeout)
        self._sock = sock
        self._conn = Connection(max_body=self.max_job_size)
        self._ready = False
        restore = self._restore_commands()
        if restore:
            self._opening = True
            try:
                self._check_restored(self._run_many(restore))
            except BaseException:
                self.close()  # not ready: what this connection confirmed is not remembered
                raise
            finally:
                self._opening = False
        self._ready = True
        self._used_at = _monotonic()
        if self._connections:
            log.info("reconnected to %s: use %r, watch %r", address, self._use, self._watch)
        else:
            log.debug("connected to %s: use %r, watch %r", address, self._use, self._watch)
        self._connections += 1

    def close(self) -> None:
        """Close the connection; reserved jobs go back to ready. The next call reconnects."""
        sock = self._sock
        if sock is not None:
            self._sock = None
            if self._ready:
                # What the server confirmed is what the next connection restores.
                self._remember(self._conn.used, self._conn.watching)
            self._conn.abort()
            try:
                # Wakes a thread blocked reading it (close alone would not).
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # not connected any more
            sock.close()
            log.debug("closed the connection to %s", self.address)

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ I/O

    def _limit(self, sock: socket.socket, limit: float | None) -> None:
        """Bound each send and receive by ``limit`` seconds (None: no bound).

        A plain socket stays in blocking mode with the kernel's own SO_RCVTIMEO/SO_SNDTIMEO,
        so each recv is one system call (Python's socket timeouts poll() before every call);
        a timed-out call raises BlockingIOError. A TLS socket uses Python's timeouts. The
        limit is set once per connection: a command that may wait longer (a reserve) keeps
        reading past it, up to its own deadline, and a reply whose bytes come slowly is cut
        short at the reply's deadline (see :meth:`_rest`).
        """
        if self.ssl is not None:
            sock.settimeout(limit)
        else:
            micros = 0 if limit is None else max(1, round(limit * 1_000_000))
            value = struct.pack("@ll", micros // 1_000_000, micros % 1_000_000)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)

    def _live_socket(self) -> socket.socket:
        """The connection's socket, (re)connecting first when there is none, or when an idle
        connection was closed by the server while unused (safe: nothing was sent on it).
        Bytes the server sent meanwhile, replies to nothing, go to the core, which then
        refuses the next command as unsolicited data."""
        sock = self._sock
        if sock is not None and _monotonic() - self._used_at > IDLE_CHECK:
            try:
                if self.ssl is not None:
                    # Python's timeout would make the peek wait: go non-blocking for it,
                    # and peek at the TCP stream itself, as a TLS socket refuses recv flags.
                    sock.settimeout(0.0)
                    try:
                        closed = socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
                    finally:
                        sock.settimeout(self.timeout)
                else:
                    data = sock.recv(_READ, socket.MSG_DONTWAIT)
                    closed = not data
                    if data:  # a reply to nothing: the core refuses the next command
                        self._conn.receive_data(data)
            except BlockingIOError:
                closed = False
            except OSError:
                closed = True
            if closed:
                log.info("the server closed the idle connection to %s", self.address)
                self.close()
                sock = None
        if sock is None:
            self._open()
            sock = self._sock
            assert sock is not None  # _open sets it or raises
        return sock

    def _execute(self, command: Command, /) -> Event:
        lock = self._lock  # (taking turns is written out here: it runs for every command)
        if not lock.acquire(False):
            self._take_turn(command.waits)
        elif command.waits:
            self._reserving = True
        try:
            now = _monotonic()
            sock = self._sock
            if sock is None or now - self._used_at > IDLE_CHECK:
                sock = self._live_socket()
            self._used_at = now  # when the command started: enough for the idle check
            conn = self._conn
            try:
                if conn.idle:
                    # The fast lane: one command, one read holding its whole reply (the core
                    # checks it as its general parser would, and takes it over when it is not).
                    sock.sendall(command.encode())
                    try:
                        data = sock.recv(_READ)
                    except (BlockingIOError, TimeoutError):
                        wait = reply_wait(command, self.timeout)
                        data = self._read_by(sock, _deadline(wait, now))
                    answer = conn.try_reply(command, data)
                    if answer is not None:
                        return answer
                    event = conn.next_event()
                    if event is NEED_DATA:  # a reply split across reads, bytes of it here
                        event = self._rest(sock, reply_wait(command, self.timeout), now, True)
                else:
                    sock.sendall(conn.send(command))  # (the core refuses it after unread bytes)
                    event = self._rest(sock, reply_wait(command, self.timeout), now, False)
            except BaseException as error:
                self._fail(error)
            if type(event) is Closed:
                self._fail(ConnectionClosedError("server closed the connection"))
            return event  # type: ignore[return-value]
        finally:
            self._reserving = False
            lock.release()

    def _rest(
        self, sock: socket.socket, wait: float | None, started: float, arrived: bool
    ) -> Event | Closed:
        """Read until the next reply is whole: within ``wait`` seconds of ``started`` (None:
        as long as it takes), and once bytes of it ``arrived``, within ``timeout`` of them,
        however slowly they come. Past either, :class:`TimeoutError`."""
        conn = self._conn
        limit = _deadline(wait, started)
        if arrived:
            limit = _earlier(limit, _deadline(self.timeout, _monotonic()))
        try:
            while True:
                conn.receive_data(self._read_by(sock, limit))
                event = conn.next_event()
                if event is not NEED_DATA:
                    return event
                if not arrived:
                    arrived = True
                    limit = _earlier(limit, _deadline(self.timeout, _monotonic()))
        finally:
            if self._shortened:
                self._shortened = False
                try:
                    self._limit(sock, self.timeout)
                except OSError:
                    pass  # the connection broke: it is dropped anyway

    def _read_by(self, sock: socket.socket, limit: float | None) -> bytes:
        """One read that returns by ``limit`` (a ``time.monotonic`` time; None: no limit) or
        raises :class:`TimeoutError`. Each wait in the kernel is bounded by the connection's
        limit, shortened to what is left when less is."""
        while True:
            if limit is not None:
                left = limit - _monotonic()
                if left <= 0:
                    raise TimeoutError("the reply did not come in time")
                if self.timeout is None or left < self.timeout:
                    self._limit(sock, left)
                    self._shortened = True
            try:
                return sock.recv(_READ)
            except (BlockingIOError, TimeoutError):
                pass  # the kernel's limit ran out: see whether the reply's has

    def _execute_many(self, commands: list[Command], /) -> list[Event]:
        self._take_turn(any(command.waits for command in commands))
        try:
            return self._run_many(commands)
        finally:
            self._reserving = False
            self._lock.release()

    def _run_many(self, commands: list[Command]) -> list[Event]:
        """Send ``commands`` pipelined and return their replies (the caller holds the
        connection)."""
        sock = self._sock
        if not self._opening and (sock is None or _monotonic() - self._used_at > IDLE_CHECK):
            sock = self._live_socket()
        assert sock is not None
        conn = self._conn
        events: list[Event] = []
        wait = batch_wait(commands, self.timeout)  # for each reply
        try:
            in_flight = 0
            buffered = False  # (the connection refuses a command after unread bytes)
            for window in windows(commands):
                sock.sendall(b"".join([conn.send(command) for command in window]))
                # Keep one window in flight while reading the replies of the one before:
                # the server never stalls waiting for us, and its replies never pile up.
                if in_flight:
                    self._read(events, in_flight, wait, buffered)
                    buffered = True
                in_flight = len(window)
            self._read(events, in_flight, wait, buffered)
        except BaseException as error:
            self._fail(error)
        self._used_at = _monotonic()
        return events

    def _read(self, events: list[Event], count: int, wait: float | None, buffered: bool) -> None:
        """Read the next ``count`` replies of a batch into ``events``, each within ``wait``;
        with ``buffered`` False nothing is buffered yet, so the first one is read from the
        socket at once."""
        sock = self._sock
        conn = self._conn
        assert sock is not None
        for _ in range(count):
            event = conn.next_event() if buffered else NEED_DATA
            buffered = True
            if event is NEED_DATA:
                event = self._rest(sock, wait, _monotonic(), False)
            if type(event) is Closed:
                raise ConnectionClosedError("server closed the connection")
            events.append(event)  # type: ignore[arg-type]

    def _fail(self, error: BaseException) -> NoReturn:
        """Drop the connection after ``error`` cut a command short, and raise it for the
        caller: socket timeouts as :class:`TimeoutError`, other socket errors as
        :class:`ConnectionClosedError`. The command's outcome is unknown; it is not retried."""
        log.info("dropping the connection to %s after %r", self.address, error)
        self.close()
        if isinstance(error, TimeoutError | BlockingIOError):  # the latter: SO_RCVTIMEO
            raise TimeoutError("no reply from the server in time; connection closed") from error
        if isinstance(error, OSError) and not isinstance(error, JackstalkError):
            raise ConnectionClosedError(f"connection lost: {error}") from error
        raise error
