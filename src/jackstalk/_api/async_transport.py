"""The command loop both async clients share, written against four stream primitives.

An async transport supplies how to open a stream, send bytes, receive bytes, close the
stream at once, and make a lock; everything else (serialising commands, refusing to queue
behind a waiting reserve, pipelining batches, reconnecting and restoring tube state, and
dropping the connection when a command is cut short) is here, once. Nothing here imports
an event loop library.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from types import TracebackType
from typing import NoReturn, Self

from jackstalk._api.async_methods import AsyncCommands
from jackstalk._api.pipeline import windows
from jackstalk._protocol.commands import Command
from jackstalk._protocol.connection import Connection
from jackstalk._protocol.errors import ClientBusyError, ConnectionClosedError, JackstalkError
from jackstalk._protocol.events import NEED_DATA, Closed, Event

__all__ = ["AsyncTransport", "CommandLock"]

log = logging.getLogger("jackstalk.client")


class CommandLock:
    """A FIFO lock whose free case costs no await: every command takes it.

    A transport supplies the queue (:meth:`acquire`, :meth:`release`). Whoever releases the
    lock hands it to the first in the queue, so a free lock has no queue and
    :meth:`try_acquire` can never jump it.
    """

    __slots__ = ("_locked",)

    def __init__(self) -> None:
        self._locked = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free and no one queues for it; never waits."""
        if self._locked:
            return False
        self._locked = True
        return True

    async def acquire(self) -> None:
        """Queue for the lock (after :meth:`try_acquire` failed); cancellable."""
        raise NotImplementedError

    def release(self) -> None:
        """Hand the lock to the first in the queue, or free it."""
        raise NotImplementedError


class AsyncTransport(AsyncCommands):
    """Base of the asyncio and trio clients; see the module docstring."""

    _connected = False
    _ready = False
    _reserves = 0
    """Reserves running or queued for the lock: a command issued now would wait behind them."""
    _lock: CommandLock | None = None
    _conn = Connection()
    _connections = 0  # connections opened so far: a later one is a reconnect (for the log)

    # ---------------------------------------------------------------- the primitives

    async def _open_stream(self) -> None:
        """Connect to ``self.address``."""
        raise NotImplementedError

    def _write(self, data: bytes) -> Awaitable[None] | None:
        """Write all of ``data``: ``None`` once it is written, or an awaitable to await
        first (backpressure, or a library that checks for cancellation before it writes).
        Not a coroutine itself, so that the common case costs no coroutine per command."""
        raise NotImplementedError

    async def _receive(self) -> bytes:
        """Read what is there (at least one byte), or ``b""`` at the end of the stream."""
        raise NotImplementedError

    def _abort_stream(self) -> None:
        """Close the stream now, without awaiting (it must work while cancelled)."""
        raise NotImplementedError

    def _make_lock(self) -> CommandLock:
        """A FIFO lock of the event loop library."""
        raise NotImplementedError

    def _check_idle(self) -> bool:
        """Before a command is sent: True when the server closed the stream meanwhile (the
        connection is then replaced: nothing was sent on it, so nothing can be lost or done
        twice). Bytes the server sent meanwhile, replies to nothing, go to the core, which
        then refuses the command as unsolicited data. May look without waiting, or not at
        all (then a dead stream is found by the command itself)."""
        return False

    def _map_error(self, error: BaseException) -> BaseException:
        """The library's own closed-stream errors as :class:`ConnectionClosedError`."""
        if isinstance(error, OSError) and not isinstance(error, JackstalkError | TimeoutError):
            return ConnectionClosedError(f"connection lost: {error}")
        return error

    # ---------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Open the connection now (it otherwise opens on first use)."""
        if self._connected:
            return  # (also while a reserve waits on it: nothing to refuse)
        lock = await self._acquire()
        try:
            if not self._connected:
                await self._open()
        finally:
            lock.release()

    async def _open(self) -> None:
        await self._open_stream()
        self._connected = True
        self._conn = Connection(max_body=self.max_job_size)
        self._ready = False
        restore = self._restore_commands()
        if restore:
            try:
                self._check_restored(await self._send_many(restore))
            except BaseException:
                self._drop()  # not ready: what this connection confirmed is not remembered
                raise
        self._ready = True
        if self._connections:
            log.info("reconnected to %s: use %r, watch %r", self.address, self._use, self._watch)
        else:
            log.debug("connected to %s: use %r, watch %r", self.address, self._use, self._watch)
        self._connections += 1

    async def close(self) -> None:
        """Close the connection; reserved jobs go back to ready. The next call reconnects."""
        self._drop()

    def _drop(self) -> None:
        if self._connected:
            self._connected = False
            if self._ready:
                # What the server confirmed is what the next connection restores.
                self._remember(self._conn.used, self._conn.watching)
            self._conn.abort()
            self._abort_stream()
            log.debug("closed the connection to %s", self.address)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ---------------------------------------------------------------- commands

    async def _acquire(self) -> CommandLock:
        """Take the command lock, or raise :class:`ClientBusyError` if a reserve waits."""
        if self._reserves:
            raise ClientBusyError("a reserve is waiting on this connection; use another client")
        lock = self._lock
        if lock is None:
            lock = self._lock = self._make_lock()
        if not lock.try_acquire():
            await lock.acquire()
        return lock

    async def _execute(self, command: Command, /) -> Event:
        # The hot path of every method: _acquire, the reconnect check and the reply loop
        # are written out here, to spare frames and awaits per command.
        if self._reserves:
            raise ClientBusyError("a reserve is waiting on this connection; use another client")
        lock = self._lock
        if lock is None:
            lock = self._lock = self._make_lock()
        # From here on, a reserve counts as waiting, even while it queues for the lock:
        # whatever is issued after it could only run once it is answered.
        waits = command.waits
        if waits:
            self._reserves += 1
        try:
            if not lock.try_acquire():
                await lock.acquire()
            try:
                if not self._connected or self._check_idle():
                    self._drop()
                    await self._open()
                conn = self._conn
                receive = self._receive
                try:
                    if conn.idle:
                        # The fast lane: one command, one read holding its whole reply (the
                        # core checks it as its general parser would, or takes it over).
                        waiter = self._write(command.encode())
                        if waiter is not None:
                            await waiter
                        answer = conn.try_reply(command, await receive())
                        event = answer if answer is not None else conn.next_event()
                    else:
                        waiter = self._write(conn.send(command))  # (refused after unread bytes)
                        if waiter is not None:
                            await waiter
                        event = NEED_DATA
                    while event is NEED_DATA:
                        conn.receive_data(await receive())
                        event = conn.next_event()
                    if type(event) is Closed:
                        raise ConnectionClosedError("server closed the connection")
                except BaseException as error:
                    self._fail(error)
                return event  # type: ignore[return-value]
            finally:
                lock.release()
        finally:
            if waits:
                self._reserves -= 1

    async def _execute_many(self, commands: list[Command], /) -> list[Event]:
        lock = await self._acquire()
        try:
            if not self._connected or self._check_idle():
                self._drop()
                await self._open()
            return await self._send_many(commands)
        finally:
            lock.release()

    async def _send_many(self, commands: list[Command]) -> list[Event]:
        conn = self._conn
        events: list[Event] = []
        try:
            in_flight = 0
            buffered = False  # (the connection refuses a command after unread bytes)
            for window in windows(commands):
                waiter = self._write(b"".join([conn.send(command) for command in window]))
                if waiter is not None:
                    await waiter
                # One window stays in flight while the replies of the one before are read.
                if in_flight:
                    await self._read(events, in_flight, buffered)
                    buffered = True
                in_flight = len(window)
            await self._read(events, in_flight, buffered)
        except BaseException as error:
            self._fail(error)
        return events

    async def _read(self, events: list[Event], count: int, buffered: bool) -> None:
        """Read the next ``count`` replies into ``events``; with ``buffered`` False nothing
        is buffered yet, so the first one is read from the stream at once."""
        conn = self._conn
        for _ in range(count):
            event = conn.next_event() if buffered else NEED_DATA
            buffered = True
            while event is NEED_DATA:
                conn.receive_data(await self._receive())
                event = conn.next_event()
            if type(event) is Closed:
                raise ConnectionClosedError("server closed the connection")
            events.append(event)  # type: ignore[arg-type]

    def _fail(self, error: BaseException) -> NoReturn:
        """Drop the connection after ``error`` (a cancellation included) cut a command
        short, then raise it. The command's outcome is unknown; it is never retried."""
        log.info("dropping the connection to %s after %r", self.address, error)
        self._drop()
        mapped = self._map_error(error)
        if mapped is error:
            raise error
        raise mapped from error
