"""The command pipeline both async clients share, written against a few stream primitives.

An async transport supplies how to open a stream, write bytes, receive bytes, close the
stream at once, make a waiter and a lock, and let other tasks run once; everything else is
here, once, and nothing here imports an event loop library.

Many tasks may share one client. Their commands are pipelined on its one connection:

- A command is written at once when nothing is in flight (the fast lane: its reply is read
  as one command's). Otherwise it joins the queue, and the queue goes out in one write per
  turn of the event loop, encoded only then, so a command cancelled before it is written is
  simply dropped. Several writes may be in flight.
- Replies are read by one of the waiting tasks at a time (the reader) and handed to their
  waiters in order as they arrive; when the reader's own reply has come, the next waiter
  reads. No task of the client's own runs in the background.
- A command cancelled after it was written leaves the connection open: its reply is read
  and dropped in order. A cancelled reserve still closes the connection, so that the server
  hands back the job it may have reserved.
- A connection lost with commands in flight fails each of them with
  :class:`ConnectionClosedError` (their outcome is unknown; nothing is sent again); commands
  not yet written go out on the next connection, after the tube state is restored. A
  malformed reply does the same. An error reply goes to its own waiter only.
- Commands queued and in flight are bounded (:data:`MAX_COMMANDS`, :data:`MAX_BYTES`); a
  caller beyond the bound waits for room, and that wait is cancellable. A batch
  (``put_many``) goes out window by window, so other callers' commands go out between its
  windows.
- A command issued while a reserve waits raises :class:`ClientBusyError`: the server reads
  nothing on a connection while its reserve waits, so the command could only go out once a
  job came. Reserve on a client of its own.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable
from types import TracebackType
from typing import Self

from jackstalk._api.async_methods import AsyncCommands
from jackstalk._api.pipeline import windows
from jackstalk._protocol.commands import Command, Put
from jackstalk._protocol.connection import Connection
from jackstalk._protocol.errors import ClientBusyError, ConnectionClosedError, JackstalkError
from jackstalk._protocol.events import NEED_DATA, Closed, Event

__all__ = ["MAX_BYTES", "MAX_COMMANDS", "AsyncTransport", "CommandLock", "Waiter"]

log = logging.getLogger("jackstalk.client")

MAX_COMMANDS = 4096
"""Most commands a client holds queued and in flight; a caller beyond waits for room."""

MAX_BYTES = 4 * 2**20
"""Most job-body bytes a client holds queued and in flight; a caller beyond waits for room
(a single put larger than this goes out alone)."""

_BUSY = "a reserve is waiting on this connection; use another client"


class CommandLock:
    """A FIFO lock whose free case costs no await: it serialises opening the connection.

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


class Waiter:
    """One task's wait for a wake-up: :meth:`wake` from anywhere (without awaiting),
    :meth:`wait` (cancellable) from the task. A wake before the wait is kept."""

    __slots__ = ()

    def wake(self) -> None:
        raise NotImplementedError

    def wait(self) -> Awaitable[None] | None:
        """None if a wake came since the last wait (it is used up); else an awaitable
        that returns at the next wake. Not a coroutine itself: most waits need no frame."""
        raise NotImplementedError


# A command's way through the pipeline.
_QUEUED = 0  # in the queue, not written: dropped if its caller gives up
_WRITTEN = 1  # written, its reply due
_DONE = 2  # answered (``event``) or failed (``error``)
_DROPPED = 3  # its caller gave up before it was written, or after it was answered
_ABANDONED = 4  # its caller gave up after it was written: the reply is read and dropped


class _Slot:
    """One command on its way: queued, written, answered."""

    __slots__ = ("command", "error", "event", "size", "state", "waiter")

    def __init__(self, command: Command) -> None:
        self.command = command
        self.state = _QUEUED
        self.event: Event | None = None
        self.error: BaseException | None = None
        self.waiter: Waiter | None = None
        self.size = len(command.body) if type(command) is Put else 0

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            waiter.wake()


class AsyncTransport(AsyncCommands):
    """Base of the asyncio and trio clients; see the module docstring."""

    _connected = False
    _ready = False
    _opening = False
    _reserves = 0
    """Reserves submitted and not answered: a command issued now would wait behind them."""
    _lock: CommandLock | None = None
    _conn = Connection()
    _connections = 0  # connections opened so far: a later one is a reconnect (for the log)
    _generation = 0  # connections dropped so far: a reader notices its own was dropped
    _reading = False  # a task reads replies
    _flushing = False  # a task is about to write the queue, or writing it
    _exclusive = False  # a fast-lane command is in flight: the core has not recorded it
    _burst = False  # replies just went to several waiters: their next commands go out together
    _count = 0  # commands queued and in flight
    _bytes = 0  # their job-body bytes
    _inflight: deque[_Slot]
    _outbox: deque[_Slot]
    _room: deque[Waiter]

    # ---------------------------------------------------------------- the primitives

    async def _open_stream(self) -> None:
        """Connect to ``self.address``."""
        raise NotImplementedError

    def _write(self, data: bytes) -> Awaitable[None] | None:
        """Write all of ``data``: ``None`` once it is written (or buffered), or an awaitable
        to await for the rest (backpressure). Writing starts before this returns, so a
        caller's cancellation cannot unwrite what it started. Not a coroutine itself, so
        that the common case costs no coroutine per write."""
        raise NotImplementedError

    async def _receive(self) -> bytes:
        """Read what is there (at least one byte), or ``b""`` at the end of the stream."""
        raise NotImplementedError

    def _abort_stream(self) -> None:
        """Close the stream now, without awaiting (it must work while cancelled); a task
        waiting in :meth:`_receive` or on a write then gets an error or the end."""
        raise NotImplementedError

    def _make_lock(self) -> CommandLock:
        """A FIFO lock of the event loop library."""
        raise NotImplementedError

    def _make_waiter(self) -> Waiter:
        """A waiter of the event loop library."""
        raise NotImplementedError

    async def _pass(self) -> None:
        """Let every other ready task run once (a cancellable checkpoint)."""
        raise NotImplementedError

    def _writable(self) -> Awaitable[None] | None:
        """Before the queue is written: an awaitable to await while the transport asks
        writers to pause (its buffer is full), or None when writing may go on now."""
        return None

    def _cancel_point(self) -> Awaitable[None] | None:
        """Before a command is written at once: an awaitable that raises if the caller is
        already cancelled (so that it never starts), or None where a cancellation can only
        arrive at an await."""
        return None

    def _check_idle(self) -> bool:
        """Before a command is sent on a connection with nothing in flight: True when the
        server closed the stream meanwhile (the connection is then replaced: nothing was
        sent on it, so nothing can be lost or done twice). Bytes the server sent
        meanwhile, replies to nothing, go to the core, which then refuses the command as
        unsolicited data. May look without waiting, or not at all (then a dead stream is
        found by the command itself)."""
        return False

    def _map_error(self, error: BaseException) -> BaseException:
        """The library's own closed-stream errors as :class:`ConnectionClosedError`."""
        if isinstance(error, OSError) and not isinstance(error, JackstalkError | TimeoutError):
            return ConnectionClosedError(f"connection lost: {error}")
        return error

    # ---------------------------------------------------------------- lifecycle

    def _queues(self) -> tuple[deque[_Slot], deque[_Slot]]:
        """The in-flight and outgoing queues, made on first use."""
        try:
            return self._inflight, self._outbox
        except AttributeError:
            self._inflight = deque()
            self._outbox = deque()
            self._room = deque()
            return self._inflight, self._outbox

    async def connect(self) -> None:
        """Open the connection now (it otherwise opens on first use)."""
        if not self._connected:  # (also while a reserve waits on it: nothing to refuse)
            await self._open_once()

    async def _open_once(self) -> None:
        """Open the connection unless another task opened it while this one waited."""
        lock = self._lock
        if lock is None:
            lock = self._lock = self._make_lock()
        if not lock.try_acquire():
            await lock.acquire()
        try:
            if not self._connected:
                await self._open()
        finally:
            lock.release()

    async def _open(self) -> None:
        """Connect and restore the tube state; nothing is in flight meanwhile."""
        self._queues()
        self._opening = True
        try:
            await self._open_stream()
            self._connected = True
            conn = self._conn = Connection(max_body=self.max_job_size)
            self._ready = False
            restore = self._restore_commands()
            if restore:
                try:
                    waiter = self._write(b"".join([conn.send(command) for command in restore]))
                    if waiter is not None:
                        await waiter
                    events: list[Event] = []
                    while len(events) < len(restore):
                        event = conn.next_event()
                        if event is NEED_DATA:
                            conn.receive_data(await self._receive())
                        elif type(event) is Closed:
                            raise ConnectionClosedError("server closed the connection")
                        else:
                            events.append(event)  # type: ignore[arg-type]
                    self._check_restored(events)
                except BaseException as error:
                    self._drop()  # not ready: what this connection confirmed is not remembered
                    mapped = self._map_error(error)
                    if mapped is error:
                        raise
                    raise mapped from error
            self._ready = True
        finally:
            self._opening = False
        if self._connections:
            log.info("reconnected to %s: use %r, watch %r", self.address, self._use, self._watch)
        else:
            log.debug("connected to %s: use %r, watch %r", self.address, self._use, self._watch)
        self._connections += 1

    async def close(self) -> None:
        """Close the connection; reserved jobs go back to ready. The next call reconnects."""
        # (Commands in flight on it fail with ConnectionClosedError.)
        self._drop()  # first: logged as a close, not as a dropped connection
        self._crash(ConnectionClosedError("the client was closed"))

    def _drop(self) -> None:
        if self._connected:
            self._connected = False
            self._generation += 1
            self._exclusive = False
            if self._ready:
                # What the server confirmed is what the next connection restores.
                self._remember(self._conn.used, self._conn.watching)
            self._conn.abort()
            self._abort_stream()
            log.debug("closed the connection to %s", self.address)

    def _crash(self, error: BaseException) -> None:
        """Drop the connection and fail every command in flight on it with ``error``
        (mapped to :class:`ConnectionClosedError` where it is the stream's own error).
        Commands not yet written stay queued for the next connection."""
        if self._connected:
            log.info("dropping the connection to %s after %r", self.address, error)
        self._drop()
        inflight, _ = self._queues()
        mapped = self._map_error(error)
        if _is_cancellation(mapped):
            mapped = ConnectionClosedError("the connection was dropped: a command was cut off")
        while inflight:
            slot = inflight.popleft()
            if slot.state is _WRITTEN:
                slot.state = _DONE
                slot.error = _copy(mapped)
                slot.wake()
            self._free(slot)
        self._reading = False
        self._kick()

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

    # ---------------------------------------------------------------- room

    def _fits(self, count: int, size: int) -> bool:
        """Whether ``count`` more commands of ``size`` body bytes stay within the bounds
        (an empty client takes anything: a single large put goes out alone)."""
        return not self._count or (
            self._count + count <= MAX_COMMANDS and self._bytes + size <= MAX_BYTES
        )

    async def _wait_for_room(self, count: int, size: int) -> None:
        """Queue, in turn, until ``count`` commands of ``size`` bytes fit; cancellable."""
        room = self._room
        waiter = self._make_waiter()
        room.append(waiter)
        try:
            while not (room[0] is waiter and self._fits(count, size)):
                wait = waiter.wait()
                if wait is not None:
                    await wait
        finally:
            room.remove(waiter)
            if room:
                room[0].wake()  # the next in turn may fit too
        self._count += count
        self._bytes += size

    def _free(self, slot: _Slot) -> None:
        """``slot`` no longer holds room (answered, failed or dropped)."""
        self._count -= 1
        self._bytes -= slot.size
        room = self._room
        if room:
            room[0].wake()

    # ---------------------------------------------------------------- commands

    async def _execute(self, command: Command, /) -> Event:
        if self._reserves:
            raise ClientBusyError(_BUSY)
        try:
            inflight = self._inflight
            outbox = self._outbox
        except AttributeError:
            inflight, outbox = self._queues()
        slot = _Slot(command)
        size = slot.size
        waits = command.waits
        if waits:
            self._reserves += 1  # from here on: whatever comes after it would wait behind it
        try:
            count = self._count  # (_fits written out: this runs for every command)
            if self._room or (count and (count >= MAX_COMMANDS or self._bytes + size > MAX_BYTES)):
                await self._wait_for_room(1, size)
            else:
                self._count = count + 1
                self._bytes += size
            if not inflight and not outbox and self._connected and not self._opening:
                if self._check_idle():
                    self._drop()  # closed by the server while unused: open another
                elif self._conn.idle and not self._burst:
                    # The fast lane: nothing in flight, so this command is written at once
                    # and its reply read as one command's (the core takes it over if not).
                    # Written out here, as it is the path of every command of a lone task.
                    point = self._cancel_point()
                    if point is not None:
                        await point  # a command cancelled before it starts never starts
                    conn = self._conn
                    self._exclusive = True
                    slot.state = _WRITTEN
                    inflight.append(slot)
                    generation = self._generation
                    try:
                        waiter = self._write(command.encode())
                        if waiter is not None:
                            await waiter
                    except BaseException as error:
                        self._write_failed(error, generation)
                    if not self._reading and self._generation == generation:
                        self._reading = True
                        try:
                            data = await self._receive()
                        except BaseException as error:
                            self._reading = False
                            if _is_cancellation(error):
                                raise  # (its reply is read and dropped by the next reader)
                            if self._generation == generation:
                                self._crash(error)
                        else:
                            if self._generation == generation:
                                self._exclusive = False
                                answer = conn.try_reply(command, data)
                                if answer is not None:
                                    # Answered: nothing else can be in flight before it.
                                    inflight.popleft()
                                    slot.state = _DONE
                                    self._count -= 1
                                    self._bytes -= size
                                    self._reading = False
                                    if outbox or inflight or self._room:
                                        self._kick()
                                        if self._room:
                                            self._room[0].wake()
                                    return answer
                                try:
                                    self._dispatch()
                                except BaseException as error:
                                    self._crash(error)
                                self._reading = False
                                self._kick()
            if slot.state is _QUEUED:
                outbox.append(slot)
                if self._flushing:
                    # Another task writes the queue soon: wait for the reply (the loop
                    # of _reply, its commonest first step written out)
                    own = slot.waiter = self._make_waiter()
                    wait = own.wait()
                    if wait is not None:
                        await wait
                    if slot.state is _DONE and slot.error is None:
                        return slot.event  # type: ignore[return-value]
                    return await self._reply(slot, own)
            return await self._reply(slot, None)
        except BaseException as error:
            self._give_up(slot, error)
            raise
        finally:
            if waits:
                self._reserves -= 1

    async def _execute_many(self, commands: list[Command], /) -> list[Event]:
        if self._reserves:
            raise ClientBusyError(_BUSY)
        self._queues()
        waits = sum(1 for command in commands if command.waits)
        self._reserves += waits
        waiter = self._make_waiter()
        slots: list[_Slot] = []
        try:
            point = self._cancel_point()
            if point is not None:
                await point
            previous: list[_Slot] = []
            for window in windows(commands):
                current = [_Slot(command) for command in window]
                size = sum(slot.size for slot in current)
                if self._room or not self._fits(len(current), size):
                    await self._wait_for_room(len(current), size)
                else:
                    self._count += len(current)
                    self._bytes += size
                for slot in current:
                    slot.waiter = waiter
                slots += current
                self._outbox.extend(current)
                if self._may_flush():
                    await self._flush()  # a batch is big enough to go out without waiting
                # One window stays in flight while the replies of the one before are read;
                # other callers' commands go out between the windows.
                for slot in previous:
                    await self._reply(slot, waiter)
                previous = current
            for slot in previous:
                await self._reply(slot, waiter)
        except BaseException as error:
            for slot in slots:
                self._give_up(slot, error)
            raise
        finally:
            self._reserves -= waits
        return [slot.event for slot in slots]  # type: ignore[misc]

    def _may_flush(self) -> bool:
        """Whether the queue may be written now (by whoever asks)."""
        return bool(self._outbox) and not (self._flushing or self._exclusive or self._opening)

    def _give_up(self, slot: _Slot, error: BaseException) -> None:
        """The caller of ``slot`` leaves (an error, or its cancellation)."""
        state = slot.state
        if state is _QUEUED:
            slot.state = _DROPPED
            try:
                self._outbox.remove(slot)
            except ValueError:
                pass
            self._free(slot)
        elif state is _WRITTEN:
            if slot.command.waits:
                # A reserve cut off: only closing the connection makes the server hand back
                # a job it may reserve for it.
                self._crash(error)
            slot.state = _ABANDONED  # its reply will be read and dropped, in order
        elif state is _DONE:
            slot.state = _DROPPED
        self._kick()

    def _kick(self) -> None:
        """Wake whoever can take a role that is free: writing the queue, reading replies."""
        outbox = self._outbox
        if outbox and (
            self._may_flush() or (self._exclusive and not self._reading and not self._flushing)
        ):
            outbox[0].wake()
        if not self._reading:
            for slot in self._inflight:
                if slot.state is _WRITTEN and slot.waiter is not None:
                    slot.waiter.wake()
                    break

    async def _reply(self, slot: _Slot, waiter: Waiter | None) -> Event:
        """Wait for ``slot``'s reply, doing whatever the pipeline needs meanwhile: write
        the queue (after one turn of the loop, for the other tasks' commands to join it),
        open a connection for it, or read replies. ``waiter``: the caller's, shared by all
        its commands (None: made here, when the caller first has to wait)."""
        if waiter is None:
            waiter = slot.waiter = self._make_waiter()
        else:
            slot.waiter = waiter
        while True:
            state = slot.state
            if state is _DONE:
                error = slot.error
                if error is not None:
                    raise error
                return slot.event  # type: ignore[return-value]
            if state is _QUEUED and self._may_flush():
                self._flushing = True
                try:
                    await self._pass()
                except BaseException:
                    self._flushing = False
                    raise
                await self._flush()
            elif not self._reading and (
                state is _WRITTEN or (state is _QUEUED and self._exclusive)
            ):
                # Read replies until this one's has come; or, queued behind a fast-lane
                # command whose caller left, until that one's has, so the queue may go.
                await self._read_until(slot)
            else:
                wait = waiter.wait()
                if wait is not None:
                    await wait

    async def _flush(self) -> None:
        """Write every queued command in one write, opening the connection first if there
        is none. Holds the writer's role until the write is done."""
        self._flushing = True
        try:
            if not self._connected:
                await self._open_once()
            writable = self._writable()
            if writable is not None:
                await writable  # the transport's buffer is full: wait until it drains
            outbox = self._outbox
            if not outbox or self._exclusive or not self._connected:
                return
            conn = self._conn
            batch = list(outbox)
            outbox.clear()
            self._burst = False
            try:
                data = b"".join([conn.send(slot.command) for slot in batch])
            except BaseException as error:
                # The connection refuses commands (unsolicited bytes came, or it failed
                # before): none of them was written. They fail with its error.
                self._crash(error)
                for slot in batch:
                    slot.state = _DONE
                    slot.error = _copy(error)
                    slot.wake()
                    self._free(slot)
                return
            for slot in batch:
                slot.state = _WRITTEN
            self._inflight.extend(batch)
            generation = self._generation
            try:
                waiter = self._write(data)
                if waiter is not None:
                    await waiter
            except BaseException as error:
                self._write_failed(error, generation)
        finally:
            self._flushing = False
            self._kick()

    def _write_failed(self, error: BaseException, generation: int) -> None:
        """A write failed or was cut off: part of a command may be on the wire, so the
        connection is dropped and the commands in flight on it fail (this caller's own
        among them, with the connection's error). A cancellation goes on up."""
        if self._generation == generation:
            self._crash(error)
        if _is_cancellation(error):
            raise error

    async def _read_until(self, slot: _Slot) -> None:
        """Read replies and hand them out, in order, until ``slot``'s has come."""
        self._reading = True
        generation = self._generation
        conn = self._conn
        inflight = self._inflight
        receive = self._receive
        try:
            while slot.state is _WRITTEN or (slot.state is _QUEUED and self._exclusive):
                data = await receive()
                if self._generation != generation:
                    return  # dropped meanwhile: every command in flight has failed
                if self._exclusive:
                    # The fast-lane command: the core checks its reply, or records the
                    # command and takes the bytes over. The queue may go out after it.
                    self._exclusive = False
                    answer = conn.try_reply(inflight[0].command, data)
                    if self._outbox:
                        self._outbox[0].wake()
                    if answer is not None:
                        self._deliver(answer)
                        continue
                else:
                    conn.receive_data(data)
                self._dispatch()
        except BaseException as error:
            if _is_cancellation(error):
                raise  # the bytes read so far are in the core: the next reader goes on
            if self._generation == generation:
                self._crash(error)  # every command in flight fails, this one included
            # (else the connection was dropped meanwhile, and this one failed with it)
        finally:
            if self._generation == generation:
                self._reading = False
                self._kick()

    def _dispatch(self) -> None:
        """Hand out every reply the core holds whole, in order. Replies are parsed while
        commands await them; bytes beyond the last are left to the core, which refuses the
        next command as unsolicited data."""
        conn = self._conn
        inflight = self._inflight
        while inflight:
            events = conn.next_events()
            if not events:
                return
            if len(events) > 1:
                self._burst = True
            for event in events:
                if type(event) is Closed:
                    raise ConnectionClosedError("server closed the connection")
                # (_deliver and _free written out: this runs for every pipelined reply)
                slot = inflight.popleft()
                if slot.state is _WRITTEN:
                    slot.state = _DONE
                    slot.event = event  # type: ignore[assignment]
                    waiter = slot.waiter
                    if waiter is not None:
                        waiter.wake()
                self._count -= 1
                self._bytes -= slot.size
            if self._room:
                self._room[0].wake()

    def _deliver(self, event: Event) -> None:
        """Hand the oldest in-flight command its reply (dropped if its caller left)."""
        slot = self._inflight.popleft()
        if slot.state is _WRITTEN:
            slot.state = _DONE
            slot.event = event
            slot.wake()
        self._free(slot)


def _copy(error: BaseException) -> BaseException:
    """An error of the same kind and message for another waiter (an exception object is
    raised by one task only: its traceback grows with every raise)."""
    if isinstance(error, JackstalkError | OSError):
        copy = type(error)(*error.args)
        copy.__cause__ = error
        return copy
    return ConnectionClosedError(f"the connection failed: {error!r}")


def _is_cancellation(error: BaseException) -> bool:
    """True for the event loop's cancellation (no fault of the connection's)."""
    return not isinstance(error, Exception)
