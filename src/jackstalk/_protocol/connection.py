"""The client role of the protocol: commands in, bytes out; bytes in, reply events out.

No I/O happens here. A transport writes what :meth:`Connection.send` returns, feeds what it
reads to :meth:`Connection.receive_data` (``b""`` for end of stream) and calls
:meth:`Connection.next_event` until it gets a reply. Commands waiting for replies form a FIFO,
so any number may be pipelined; each reply is framed and checked against the command it
answers. Anything the server was not entitled to send raises :class:`ProtocolError` and leaves
the connection unusable, so a desynchronised stream can never go unnoticed.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import (
    ConnectionClosedError,
    JackstalkError,
    ProtocolError,
    ReplyTooLargeError,
)

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_DOCUMENT", "MAX_LINE", "Connection", "ConnectionState"]

MAX_LINE = 224
"""The protocol's longest line, ``\\r\\n`` included (beanstalkd's own limit)."""

DEFAULT_MAX_BODY = 2**30
"""1 GiB: beanstalkd's own ceiling for ``max-job-size``."""

DEFAULT_MAX_DOCUMENT = 16 * 2**20
"""16 MiB: the largest stats or list document (an ``OK`` reply) accepted by default; a
list of 10,000 tubes of 200-character names is 2 MiB."""

_PREALLOCATE = 64 * 1024
"""A declared body larger than this is read into a buffer of exactly its size, allocated
once, so that reading it holds about 1x its size (a growing buffer would copy it again and
again)."""

_U64_MAX = 2**64 - 1
_CLOSED = e.Closed()

# One-word replies are immutable and carry nothing: share one instance of each.
_SIMPLE: dict[bytes, e.Event] = {
    cls.word: cls()
    for cls in (
        e.Deleted,
        e.Released,
        e.Touched,
        e.Paused,
        e.NotFound,
        e.TimedOut,
        e.DeadlineSoon,
        e.JobTooBig,
        e.Draining,
        e.NotIgnored,
        e.ExpectedCrlf,
        e.OutOfMemory,
        e.Internal,
        e.BadFormat,
        e.UnknownCommand,
    )
}
_BURIED = e.Buried()
_KICKED = e.Kicked()
# Zero-field replies by word, the two with an optional field included.
_ZERO_FIELD: dict[bytes, e.Event] = {**_SIMPLE, b"BURIED": _BURIED, b"KICKED": _KICKED}
# The same by the whole line, end of line included.
_WHOLE_LINES: dict[bytes, e.Event] = {word + b"\r\n": event for word, event in _ZERO_FIELD.items()}
_WHOLE_LINE_MAX = max(map(len, _WHOLE_LINES))  # (a longer read is never hashed)


class ConnectionState(enum.Enum):
    """Where a connection stands."""

    OPEN = "open"
    """Commands may be sent and replies read."""
    CLOSING = "closing"
    """``quit`` was sent; only the end of the stream is still expected."""
    CLOSED = "closed"
    """The stream ended (or ``quit`` completed); nothing more can be sent."""
    ERROR = "error"
    """A protocol violation or an aborted command: the connection must be dropped."""


# Enum member lookups on the class cost a descriptor call each on Python 3.11; the hot paths
# compare against these module constants instead.
_OPEN = ConnectionState.OPEN
_ERROR = ConnectionState.ERROR
_NEED_DATA: Final = e.NEED_DATA
_Command = c.Command
_Quit = c.Quit
_Use = c.Use
_Watch = c.Watch
_Ignore = c.Ignore


# The parser builds the commonest events by filling their private slots itself: what their
# __init__ does, without the cost of calling a class.
_new: Callable[[type], Any] = object.__new__
_Inserted = e.Inserted
_Put = c.Put
_Reserved = e.Reserved
_Ok = e.Ok


def _number(field: bytes, low: int) -> int:
    # bytes.isdigit() is ASCII-only and refuses signs, spaces and underscores, which int()
    # would quietly accept; 20 digits bound the work before int() runs.
    if not field.isdigit() or len(field) > 20:
        raise ProtocolError(f"malformed number {field!r} in reply")
    value = int(field)
    if not low <= value <= _U64_MAX:
        raise ProtocolError(f"number {value} out of range in reply")
    return value


def _tube(field: bytes) -> str:
    try:
        return v.tube_name(field.decode("ascii"))
    except (UnicodeDecodeError, JackstalkError):
        raise ProtocolError(f"malformed tube name {field!r} in reply") from None


def _quick_reply(
    command: c.Command, buf: bytes, max_body: int, max_document: int
) -> e.Event | None:
    """The reply ``buf`` holds when it is exactly one whole reply that ``command`` may get and
    one of the commonest (INSERTED, RESERVED, OK, a one-word reply), parsed by its known
    layout; None for anything else (several replies, a reply split across reads, a reply the
    command may not get, anything malformed), which the general parser then checks from the
    start. The fast lane of :meth:`Connection.next_event` and :meth:`Connection.try_reply`.
    """
    # (Slices and operators rather than bytes methods where they can: on 3.11 most bytes
    # methods parse a tuple of arguments per call.)
    lead = buf[0]
    if lead == 73 and buf[:9] == b"INSERTED " and buf[-2:] == b"\r\n":  # I
        field = buf[9:-2]  # all digits: then this is the only line
        if field.isdigit() and len(field) <= 20:
            job_id = int(field)
            # Put is the one command answered INSERTED (its reply table; a test checks that
            # no other command lists it).
            if 0 < job_id <= _U64_MAX and type(command) is _Put:
                inserted: e.Inserted = _new(_Inserted)
                inserted._id = job_id
                return inserted
    elif lead == 82 and buf[:9] == b"RESERVED " and buf[-2:] == b"\r\n":  # R
        end = buf.find(b"\r\n")
        id_field, _, size_field = buf[9:end].partition(b" ")
        if (
            id_field.isdigit()
            and size_field.isdigit()
            and len(id_field) <= 20
            and len(size_field) <= 20
        ):
            job_id = int(id_field)
            size = int(size_field)
            start = end + 2
            if (
                0 < job_id <= _U64_MAX
                and len(buf) == start + size + 2  # then this is the only reply
                and size <= max_body
                and b"RESERVED" in command.replies
            ):
                reserved: e.Reserved = _new(_Reserved)
                reserved._id = job_id
                reserved._body = buf[start:-2]
                return reserved
    elif lead == 79 and buf[:3] == b"OK " and buf[-2:] == b"\r\n":  # O
        end = buf.find(b"\r\n")
        size_field = buf[3:end]
        if size_field.isdigit() and len(size_field) <= 20:
            size = int(size_field)
            start = end + 2
            if (
                len(buf) == start + size + 2  # then this is the only reply
                and size <= max_document
                and b"OK" in command.replies
            ):
                ok: e.Ok = _new(_Ok)
                ok._data = buf[start:-2]
                return ok
    elif len(buf) <= _WHOLE_LINE_MAX and buf in _WHOLE_LINES:
        event = _WHOLE_LINES[buf]
        if command.replies.get(event.word) == 0:
            return event
    return None


class Connection:
    """The client side of one beanstalkd connection, without I/O.

    ``max_body`` bounds the job body a reply (``RESERVED``, ``FOUND``) may declare, and
    ``max_document`` the stats or list document (``OK``); a larger one raises
    :class:`ReplyTooLargeError` (a :class:`ProtocolError`) before a byte of it is buffered.
    A large body is read into a buffer of its exact size, so reading it holds about 1x it.
    """

    __slots__ = (
        "_body_len",
        "_body_buf",
        "_body_have",
        "_body_word",
        "_body_id",
        "_buf",
        "_eof",
        "_error",
        "_header_end",
        "_max_body",
        "_max_document",
        "_pending",
        "_scan",
        "_state",
        "_used",
        "_watching",
    )

    def __init__(
        self, *, max_body: int = DEFAULT_MAX_BODY, max_document: int = DEFAULT_MAX_DOCUMENT
    ) -> None:
        self._max_body = v.integer(max_body, "max_body", 0, 2**63 - 1)
        self._max_document = v.integer(max_document, "max_document", 0, 2**63 - 1)
        self._buf: bytes | bytearray = b""
        self._scan = 0
        self._eof = False
        self._pending: deque[c.Command] = deque()
        self._state = ConnectionState.OPEN
        self._error: JackstalkError | None = None
        self._used = "default"
        self._watching = ["default"]
        # A reply header whose body has not fully arrived yet.
        self._body_len = -1
        self._body_word = b""
        self._body_id = 0
        self._header_end = 0
        # A large body being read into its own buffer (see _PREALLOCATE): the buffer, and
        # how many of its bytes (body and final CRLF) have arrived.
        self._body_buf: bytearray | None = None
        self._body_have = 0

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> ConnectionState:
        """The connection's state."""
        return self._state

    @property
    def used(self) -> str:
        """The tube in use, as last confirmed by the server (``default`` at first)."""
        return self._used

    @property
    def watching(self) -> tuple[str, ...]:
        """The watch list, as last confirmed by the server (``("default",)`` at first)."""
        return tuple(self._watching)

    @property
    def pending(self) -> tuple[c.Command, ...]:
        """Commands sent whose replies have not been returned yet, oldest first."""
        return tuple(self._pending)

    @property
    def max_body(self) -> int:
        """The largest job body a reply may carry."""
        return self._max_body

    @property
    def max_document(self) -> int:
        """The largest stats or list document a reply may carry."""
        return self._max_document

    # ------------------------------------------------------------------ sending

    def send(self, command: c.Command) -> bytes:
        """Record ``command`` as awaiting its reply and return the bytes to write."""
        if self._state is not _OPEN:
            self._raise_unusable()
        if not isinstance(command, _Command):
            raise v.ArgumentTypeError(f"expected a Command, not {type(command).__name__}")
        if self._buf and not self._pending:
            # Bytes after the last reply (transports stop reading once a reply is in): a
            # reply to no command, which would otherwise be taken for this command's.
            raise self._fail(
                ProtocolError(f"unsolicited data from server: {bytes(self._buf[:64])!r}")
            )
        if type(command) is _Quit:
            self._state = ConnectionState.CLOSING
        else:
            self._pending.append(command)
        return command.encode()

    def abort(self) -> None:
        """Mark the connection unusable: an I/O failure or a cancellation cut a command short.

        After this, the outcome of every pending command is unknown and the stream position
        is lost, so the transport must close it.
        """
        if self._state is not ConnectionState.ERROR:
            self._state = ConnectionState.ERROR
            self._error = ConnectionClosedError(
                f"connection aborted with {len(self._pending)} command(s) in flight"
            )

    @property
    def idle(self) -> bool:
        """Open, with no reply due and nothing unread: a command sent now is answered first."""
        return self._state is _OPEN and not self._pending and not self._buf

    def try_reply(self, command: c.Command, data: bytes) -> e.Event | None:
        """The one-command fast lane: ``command.encode()`` was written while the connection
        was :attr:`idle`, and ``data`` was read after it.

        Returns the reply when ``data`` is exactly one whole reply ``command`` may get, of
        the commonest kinds, and then the connection is idle again. Otherwise returns
        ``None`` after recording ``command`` as sent and ``data`` as received, as
        :meth:`send` and :meth:`receive_data` would: :meth:`next_event` then reads the reply
        with every check. Either way the reply is checked exactly as the general path
        checks it.
        """
        if (
            type(data) is bytes
            and data
            and self._state is _OPEN
            and not self._pending
            and not self._buf
        ):
            event = _quick_reply(command, data, self._max_body, self._max_document)
            if event is not None:
                return event
        self.send(command)
        self.receive_data(data)
        return None

    def _raise_unusable(self) -> None:
        error = self._error
        if isinstance(error, ProtocolError):
            raise ProtocolError(f"connection is unusable after an earlier error: {error}")
        if error is not None:
            raise ConnectionClosedError(str(error))
        raise ConnectionClosedError(f"connection is {self._state.value}")

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the stream; ``b""`` means the server closed it."""
        if data:
            if self._eof:
                raise RuntimeError("received data after the end of the stream")
            if self._body_buf is not None:
                data = self._fill_body(data)
                if not data:
                    return
            buf = self._buf
            if not buf:
                # The common case: a read holds whole replies. Keep the bytes object as it
                # is (no copy); a bytearray only appears when a reply spans reads.
                self._buf = data if type(data) is bytes else bytes(data)
            elif type(buf) is bytes:
                self._buf = bytearray(buf) + data
            else:
                buf += data
        else:
            self._eof = True

    def _fill_body(self, data: bytes) -> bytes:
        """Copy what ``data`` holds of the large body being read into its buffer; return
        the rest (the replies after it)."""
        body = self._body_buf
        assert body is not None
        have = self._body_have
        need = len(body) - have
        if len(data) <= need:
            body[have : have + len(data)] = data
            self._body_have = have + len(data)
            return b""
        with memoryview(data) as view:
            body[have:] = view[:need]
            rest = bytes(view[need:])
        self._body_have = len(body)
        return rest

    def _consume(self, size: int) -> None:
        """Drop the first ``size`` bytes of the buffer (one reply)."""
        buf = self._buf
        if size == len(buf):
            self._buf = b""
        elif type(buf) is bytes:
            if len(self._pending) <= 2:
                # At most one more reply is due (a worker's DELETED, then its RESERVED): the
                # rest stays bytes, so that reply can take next_event's fast lane.
                self._buf = buf[size:]
            else:
                # Many replies in one read: the rest becomes a bytearray, whose front can
                # be dropped without copying what follows, however many replies there are.
                self._buf = bytearray(memoryview(buf)[size:])
        else:
            del buf[:size]  # type: ignore[union-attr]

    def _fail(self, error: JackstalkError) -> JackstalkError:
        self._state = ConnectionState.ERROR
        self._error = error
        self._body_buf = None  # a large body half read is of no more use
        return error

    def next_event(self) -> e.Event | e.Closed | e.NeedDataType:
        """Return the next reply, :data:`NEED_DATA`, or :class:`Closed` after a clean end.

        Raises :class:`ProtocolError` for anything malformed, unexpected or unsolicited, and
        :class:`ConnectionClosedError` when the stream ends while replies are still due.
        """
        if self._state is _ERROR:
            self._raise_unusable()
        buf = self._buf
        pending = self._pending
        # The common case first: a whole reply line is buffered for a pending command.
        if not (buf and pending and self._body_len < 0):
            return self._not_a_line()
        if type(buf) is bytes:
            event = _quick_reply(pending[0], buf, self._max_body, self._max_document)
            if event is not None:
                self._buf = b""
                pending.popleft()
                return event
        end = buf.find(b"\r\n", self._scan)
        if end < 0:
            return self._partial_line()
        if end + 2 > MAX_LINE:
            raise self._fail(ProtocolError(f"reply line longer than {MAX_LINE} bytes"))
        self._scan = 0
        line = buf[:end]
        if type(line) is not bytes:
            line = bytes(line)
        command = pending[0]
        replies = command.replies
        if replies.get(line) == 0:
            # A one-word reply (DELETED, NOT_FOUND, ...): the whole line is the word.
            if end + 2 == len(buf):
                self._buf = b""
            else:
                self._consume(end + 2)
            pending.popleft()
            return _ZERO_FIELD[line]
        fields = line.split(b" ")
        word = fields[0]
        count = replies.get(word)
        if count is None or len(fields) != count + 1:
            raise self._fail(
                ProtocolError(f"unexpected reply {line[:80]!r} to {command.word.decode()}")
            )
        try:
            if word == b"RESERVED" or word == b"FOUND" or word == b"OK":
                return self._start_body(word, fields, end + 2)
            event = self._parse_fields(word, fields[1])
        except ProtocolError as error:
            raise self._fail(error) from None
        self._consume(end + 2)
        pending.popleft()
        if word == b"USING" or word == b"WATCHING":
            self._track(command, event)  # type: ignore[arg-type]
        return event

    def next_events(self) -> list[e.Event | e.Closed]:
        """The replies the buffer holds whole, oldest first; an empty list for
        :data:`NEED_DATA`.

        Calling it until it returns an empty list gives exactly what calling
        :meth:`next_event` until :data:`NEED_DATA` gives, with the same checks and errors:
        a run of the commonest line replies (INSERTED to a put, the one-word replies) is
        parsed in one pass over the buffer, anything else one reply per call. A reply that
        raises is never preceded by others in the same call, so none is lost.
        """
        buf = self._buf
        pending = self._pending
        if not (
            buf and pending and self._body_len < 0 and not self._scan and self._state is not _ERROR
        ):
            event = self.next_event()
            return [] if event is _NEED_DATA else [event]
        events: list[e.Event | e.Closed] = []
        start = 0
        while pending:
            end = buf.find(b"\r\n", start, start + MAX_LINE)
            if end < 0:
                break
            command = pending[0]
            if buf[start] == 73 and type(command) is _Put:  # I: INSERTED <id>
                field = buf[start + 9 : end]
                if buf[start : start + 9] != b"INSERTED " or not field.isdigit() or len(field) > 20:
                    break
                job_id = int(field)
                if not 0 < job_id <= _U64_MAX:
                    break
                inserted: e.Inserted = _new(_Inserted)
                inserted._id = job_id
                events.append(inserted)
            else:
                line = bytes(buf[start:end])
                if command.replies.get(line) != 0:
                    break  # not a one-word reply of this command's
                events.append(_ZERO_FIELD[line])
            pending.popleft()
            start = end + 2
        if not start:
            # The first reply is not of the fast kinds, or not whole: the general parser.
            event = self.next_event()
            return [] if event is _NEED_DATA else [event]
        if start == len(buf):
            self._buf = b""
        else:
            self._consume(start)
        return events

    def _not_a_line(self) -> e.Event | e.Closed | e.NeedDataType:
        """:meth:`next_event` when no reply line can be parsed now: nothing buffered, the
        end of the stream, bytes nobody asked for, or the rest of a reply body."""
        if self._body_buf is not None:
            return self._finish_large_body()
        if not self._buf and not self._eof:
            return _NEED_DATA  # (a transport asking before it reads: nothing to parse yet)
        if self._body_len >= 0:
            return self._finish_body()
        if self._pending:  # and nothing buffered
            return self._partial_line()
        if self._buf:
            raise self._fail(
                ProtocolError(f"unsolicited data from server: {bytes(self._buf[:64])!r}")
            )
        if not self._eof:
            return _NEED_DATA
        self._state = ConnectionState.CLOSED
        return _CLOSED

    def _partial_line(self) -> e.NeedDataType:
        """:meth:`next_event` when the buffer holds no whole reply line yet."""
        size = len(self._buf)
        if size >= MAX_LINE:
            raise self._fail(ProtocolError(f"reply line longer than {MAX_LINE} bytes"))
        if self._eof:
            raise self._fail(self._closed_error())
        self._scan = size - 1 if size else 0
        return _NEED_DATA

    def _parse_fields(self, word: bytes, field: bytes) -> e.Event:
        if word == b"INSERTED":
            return e.Inserted(_number(field, 1))
        if word == b"WATCHING":
            return e.Watching(_number(field, 1))
        if word == b"USING":
            return e.Using(_tube(field))
        if word == b"BURIED":
            return e.Buried(_number(field, 1))
        # KICKED is the only other reply word with one field.
        return e.Kicked(_number(field, 0))

    def _start_body(
        self, word: bytes, fields: list[bytes], header_end: int
    ) -> e.Event | e.NeedDataType:
        size = _number(fields[-1], 0)
        if word == b"OK":
            if size > self._max_document:
                raise ReplyTooLargeError(
                    f"the reply declares a {size}-byte document,"
                    f" over max_document {self._max_document}"
                )
        elif size > self._max_body:
            raise ReplyTooLargeError(
                f"the reply declares a {size}-byte job body, over max_body {self._max_body}"
                " (a client's max_job_size: raise it to take such jobs)"
            )
        self._body_id = _number(fields[1], 1) if word != b"OK" else 0
        self._body_word = word
        self._body_len = size
        self._header_end = header_end
        buf = self._buf
        if size > _PREALLOCATE and len(buf) < header_end + size + 2:
            # All that follows the header is this body: move it to a buffer of the body's
            # own size, which the rest of it fills in place.
            body = bytearray(size + 2)
            have = len(buf) - header_end
            with memoryview(buf) as view:
                body[:have] = view[header_end:]
            self._buf = b""
            self._scan = 0
            self._body_buf = body
            self._body_have = have
            return self._finish_large_body()
        return self._finish_body()

    def _finish_large_body(self) -> e.Event | e.NeedDataType:
        body = self._body_buf
        assert body is not None
        if self._body_have < len(body):
            if self._eof:
                raise self._fail(self._closed_error())
            return e.NEED_DATA
        if body[-2:] != b"\r\n":
            raise self._fail(ProtocolError("reply body is not followed by \\r\\n"))
        del body[-2:]
        self._body_buf = None
        return self._body_event(bytes(body))

    def _finish_body(self) -> e.Event | e.NeedDataType:
        buf = self._buf
        start = self._header_end
        size = self._body_len
        stop = start + size
        if len(buf) < stop + 2:
            if self._eof:
                raise self._fail(self._closed_error())
            return e.NEED_DATA
        if buf[stop : stop + 2] != b"\r\n":
            raise self._fail(ProtocolError("reply body is not followed by \\r\\n"))
        with memoryview(buf) as view:
            body = bytes(view[start:stop])
        self._consume(stop + 2)
        return self._body_event(body)

    def _body_event(self, body: bytes) -> e.Event:
        """The reply whose body just arrived whole."""
        self._body_len = -1
        self._pending.popleft()
        word = self._body_word
        if word == b"RESERVED":
            return _Reserved(self._body_id, body)
        if word == b"OK":
            return e.Ok(body)
        return e.Found(self._body_id, body)

    def _track(self, command: c.Command, event: e.Using | e.Watching) -> None:
        if isinstance(event, e.Using):
            if type(command) is c.Use and event.tube != command.tube:
                raise self._fail(
                    ProtocolError(f"server says it uses {event.tube!r} after use {command.tube!r}")
                )
            self._used = event.tube
            return
        if type(command) is c.Watch:
            if command.tube not in self._watching:
                self._watching.append(command.tube)
        elif type(command) is c.Ignore and command.tube in self._watching:
            self._watching.remove(command.tube)
        if event.count != len(self._watching):
            raise self._fail(
                ProtocolError(
                    f"server watches {event.count} tube(s), the connection tracked "
                    f"{len(self._watching)}"
                )
            )

    def _closed_error(self) -> ConnectionClosedError:
        return ConnectionClosedError(
            f"server closed the connection with {len(self._pending)} reply(ies) pending"
        )
