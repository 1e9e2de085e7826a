"""The server role of the protocol: bytes in, commands out; reply events in, bytes out.

It reads command lines the way beanstalkd 1.12 does, quirks included, because the embedded
server must answer every line exactly as the real one would:

* the server looks at the stream through a 224-byte window that starts where the current
  line starts; a line ends at the *first* ``\\r`` of the window, and only if ``\\n`` follows
  it inside the window;
* a full window without a line end is thrown away, and so is every following 224-byte
  window until one holds a line end; then one ``BAD_FORMAT`` answers the whole run;
* commands match by prefix, in beanstalkd's order; no match is ``UNKNOWN_COMMAND``, a match
  whose arguments do not parse is ``BAD_FORMAT``;
* numbers are plain digits after any number of spaces; a put whose line fails to parse
  leaves its body to be read as commands, and a put whose body is too large has it skipped
  before ``JOB_TOO_BIG`` is sent.

Because the windows are counted from line starts, what comes out never depends on how the
stream was split into reads. Lines that cannot become a command come out as
:class:`Rejected`, carrying the reply to send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import InvalidArgument

__all__ = ["Rejected", "ServerConnection"]

_LINE = 224
_ULONG_MAX = 2**64 - 1
_LONG_MAX = 2**63 - 1
_CLOSED = e.Closed()
_Parser: TypeAlias = Callable[[bytes], c.Command]
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()")
_Result: TypeAlias = "c.Command | Rejected | e.Closed | e.NeedDataType"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command line that cannot run: send ``reply``.

    ``command`` is the command class whose prefix matched (``None`` when none did).
    ``counted`` is true when beanstalkd got far enough to count the line in its ``cmd-*``
    statistics before refusing it (a put whose size parsed, a job id of 0, a ``pause-tube``
    whose name is not a valid tube name). It takes no part in equality.
    """

    reply: e.Event
    command: type[c.Command] | None = None
    counted: bool = field(default=False, compare=False)


class _Bad(Exception):
    """A line did not parse: answer with ``reply``."""

    def __init__(self, reply: e.Event, *, counted: bool = False) -> None:
        super().__init__(reply)
        self.reply = reply
        self.counted = counted


# Fresh exceptions each time: raising one shared instance would grow its traceback forever.
def _bad_format(*, counted: bool = False) -> _Bad:
    return _Bad(e.BadFormat(), counted=counted)


def _not_found() -> _Bad:
    return _Bad(e.NotFound(), counted=True)


def _unsigned(line: bytes, pos: int, limit: int) -> tuple[int, int]:
    """Read a number as beanstalkd's ``read_u32``/``read_u64`` do: spaces, then digits."""
    size = len(line)
    while pos < size and line[pos] == 0x20:
        pos += 1
    start = pos
    while pos < size and 0x30 <= line[pos] <= 0x39:
        pos += 1
    if pos == start:
        raise _bad_format()
    value = int(line[start:pos])
    if value > limit:
        raise _bad_format()
    return value, pos


def _strtol(line: bytes, pos: int) -> tuple[int, int] | None:
    """C's ``strtol``/``strtoul`` prefix parse: whitespace, a sign, digits; None if no digits."""
    size = len(line)
    while pos < size and line[pos] in b" \t\n\v\f\r":
        pos += 1
    negative = False
    if pos < size and line[pos] in b"+-":
        negative = line[pos] == 0x2D
        pos += 1
    start = pos
    while pos < size and 0x30 <= line[pos] <= 0x39:
        pos += 1
    if pos == start:
        return None
    value = int(line[start:pos])
    return (-value if negative else value), pos


def _end(line: bytes, pos: int, *, counted: bool = False) -> None:
    if pos != len(line):
        raise _bad_format(counted=counted)


def _name(raw: bytes, *, counted: bool = False) -> str:
    try:
        return v.tube_name(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidArgument):
        raise _bad_format(counted=counted) from None


def _unchecked(cls: type[c.Command], **fields: object) -> c.Command:
    """Build a command from values beanstalkd accepts but a client must never send."""
    return c._rebuild(cls, tuple(fields[name] for name in cls._field_names))


class ServerConnection:
    """The server side of one connection, without I/O.

    ``next_event()`` returns a command to run, a :class:`Rejected` line to answer, a
    :class:`Closed` after the client's end of stream, or :data:`NEED_DATA`. ``send(reply)``
    returns the reply's bytes. A ``reserve-with-timeout`` with a negative timeout (which
    beanstalkd 1.12 treats as "wait forever") comes out with ``timeout == -1``.
    """

    __slots__ = ("_body", "_buf", "_endline", "_eof", "_max_job_size", "_pos", "_put", "_skip")

    def __init__(self, *, max_job_size: int = 65535) -> None:
        self._max_job_size = v.integer(max_job_size, "max_job_size", 0, 2**30)
        self._buf = bytearray()
        self._pos = 0  # where the unparsed bytes start in _buf
        self._eof = False
        self._put: tuple[int, int, int] | None = None  # a parsed put line awaiting its body
        self._body = 0  # its body size
        self._skip = 0  # bytes of an oversized body still to throw away
        self._endline = False  # throwing an over-long line away, window by window

    @property
    def max_job_size(self) -> int:
        """The largest body a put may carry."""
        return self._max_job_size

    @property
    def buffered(self) -> int:
        """How many received bytes are not parsed yet (a transport bounds its reading by it)."""
        return len(self._buf) - self._pos

    @property
    def pending_put(self) -> tuple[int, int, int, int] | None:
        """``(priority, delay, ttr, size)`` of a put whose line parsed and whose body has
        not all arrived yet, else None. beanstalkd creates the job (and counts the put)
        as soon as the line parses, so the embedded server needs to know."""
        if self._put is None:
            return None
        return (*self._put, self._body)

    @property
    def skipping(self) -> bool:
        """True while the body of a put over ``max_job_size`` is being thrown away (its
        ``JOB_TOO_BIG`` comes once it has all arrived; beanstalkd counted the put already)."""
        return self._skip > 0

    @property
    def idle(self) -> bool:
        """True when every byte received so far has been parsed and nothing is pending."""
        return self._pos == len(self._buf) and not (self._put or self._skip or self._endline)

    @property
    def eof(self) -> bool:
        """True once the client has closed its end of the stream."""
        return self._eof

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the client; ``b""`` means it closed its end."""
        if data:
            self._buf += data
        else:
            self._eof = True

    def send(self, reply: e.Event) -> bytes:
        """Return the bytes of ``reply``."""
        return reply.encode()

    def next_event(self) -> c.Command | Rejected | e.Closed | e.NeedDataType:
        """Return the next command (or rejected line) the client sent."""
        buf = self._buf
        while True:
            available = len(buf) - self._pos
            if self._skip:
                taken = min(self._skip, available)
                self._pos += taken
                self._skip -= taken
                if self._skip:
                    return self._starved()
                return Rejected(e.JobTooBig(), c.Put, counted=True)
            if self._put is not None:
                return self._put_body()
            start = self._pos
            end = start + min(available, _LINE)
            # Only the first \r of the window counts, and only if its \n is in the window.
            cr = buf.find(b"\r", start, end - 1)
            if cr >= 0 and buf[cr + 1] == 0x0A:
                self._pos = cr + 2
                if self._endline:
                    self._endline = False
                    return Rejected(e.BadFormat())
                return self._dispatch(bytes(buf[start:cr]))
            if end - start < _LINE:
                return self._starved()
            # A full window with no line end: beanstalkd throws it away and goes on
            # discarding, one window at a time, until a line end shows up.
            self._pos = end
            self._endline = True

    def _starved(self) -> e.Closed | e.NeedDataType:
        if self._eof:
            self._buf.clear()
            self._pos = 0
            return _CLOSED
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        return e.NEED_DATA

    def _put_body(self) -> _Result:
        buf = self._buf
        size = self._body
        start = self._pos
        if len(buf) - start < size + 2:
            return self._starved()
        assert self._put is not None  # set whenever _put_body runs
        priority, delay, ttr = self._put
        self._put = None
        ok = buf[start + size : start + size + 2] == b"\r\n"
        body = bytes(buf[start : start + size])
        self._pos = start + size + 2
        if not ok:
            return Rejected(e.ExpectedCrlf(), c.Put, counted=True)
        return _unchecked(c.Put, body=body, priority=priority, delay=delay, ttr=ttr)

    def _dispatch(self, line: bytes) -> _Result:
        if b"\x00" in line:  # beanstalkd checks for NUL before it looks at the command
            return Rejected(e.BadFormat())
        for prefix, parse in _BY_FIRST_BYTE.get(line[:1], ()):  # noqa: B007 - used below
            if line.startswith(prefix):
                break
        else:
            return Rejected(e.UnknownCommand())
        kind = _KIND[prefix]
        try:
            if kind is c.Put:
                return self._put_line(line)
            return parse(line)
        except _Bad as bad:
            return Rejected(bad.reply, kind, counted=bad.counted)

    def _put_line(self, line: bytes) -> _Result:
        priority, pos = _unsigned(line, 4, v.U32_MAX)
        delay, pos = _unsigned(line, pos, v.U32_MAX)
        ttr, pos = _unsigned(line, pos, v.U32_MAX)
        size, pos = _unsigned(line, pos, v.U32_MAX)
        # From here on beanstalkd has counted the put.
        if size > self._max_job_size:
            self._skip = size + 2
            return self.next_event()
        _end(line, pos, counted=True)
        self._put = (priority, delay, max(ttr, 1))
        self._body = size
        return self._put_body()


def _exact(cls: type[c.Command]) -> tuple[bytes, _Parser]:
    word = cls.word

    def parse(line: bytes) -> c.Command:
        if line != word:
            raise _bad_format()
        return cls()

    return word, parse


def _tube_command(cls: type[c.Command]) -> tuple[bytes, _Parser]:
    prefix = cls.word + b" "

    def parse(line: bytes) -> c.Command:
        return cls(_name(line[len(prefix) :]))  # type: ignore[call-arg]

    return prefix, parse


def _job_command(cls: type[c.Command]) -> tuple[bytes, _Parser]:
    prefix = cls.word + b" "

    def parse(line: bytes) -> c.Command:
        job, pos = _unsigned(line, len(prefix), _ULONG_MAX)
        _end(line, pos)
        if job == 0:
            raise _not_found()
        return cls(job)  # type: ignore[call-arg]

    return prefix, parse


def _release(line: bytes) -> c.Command:
    job, pos = _unsigned(line, 8, _ULONG_MAX)
    priority, pos = _unsigned(line, pos, v.U32_MAX)
    delay, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    if job == 0:
        raise _not_found()
    return c.Release(job, priority, delay)


def _bury(line: bytes) -> c.Command:
    job, pos = _unsigned(line, 5, _ULONG_MAX)
    priority, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    if job == 0:
        raise _not_found()
    return c.Bury(job, priority)


def _kick(line: bytes) -> c.Command:
    # beanstalkd reads the bound with strtoul, ignores what follows the digits, refuses an
    # overflow (errno), and keeps the low 32 bits (the count is an unsigned int).
    parsed = _strtol(line, 5)
    if parsed is None or abs(parsed[0]) > _ULONG_MAX:
        raise _bad_format()
    return c.Kick(parsed[0] % 2**32)


def _reserve_with_timeout(line: bytes) -> c.Command:
    # 1.12 reads the timeout with strtol into an int: no digits means 0, big values wrap,
    # a negative one waits forever, and only a long overflow is an error.
    parsed = _strtol(line, 21)
    value = 0 if parsed is None else parsed[0]
    if not -_LONG_MAX - 1 <= value <= _LONG_MAX:
        raise _bad_format()
    value = (value + 2**31) % 2**32 - 2**31
    if value < 0:
        return _unchecked(c.ReserveWithTimeout, timeout=-1)
    return c.ReserveWithTimeout(value)


def _quit(line: bytes) -> c.Command:
    return c.Quit()


def _pause_tube(line: bytes) -> c.Command:
    pos = 10
    size = len(line)
    while pos < size and line[pos] == 0x20:
        pos += 1
    start = pos
    while pos < size and line[pos] in _NAME_CHARS:
        pos += 1
    if pos == start:
        raise _bad_format()
    raw = line[start:pos]
    delay, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    # The line parsed, so beanstalkd counts it, and only then checks the name's grammar.
    return c.PauseTube(_name(raw, counted=True), delay)


def _never(line: bytes) -> c.Command:  # pragma: no cover - put is parsed by the connection
    raise _bad_format()


# beanstalkd's prefix table, in the order it tries them.
_TABLE: list[tuple[bytes, _Parser]] = [
    (b"put ", _never),
    _job_command(c.Peek),
    _exact(c.PeekReady),
    _exact(c.PeekDelayed),
    _exact(c.PeekBuried),
    (b"reserve-with-timeout ", _reserve_with_timeout),
    _job_command(c.ReserveJob),
    _exact(c.Reserve),
    _job_command(c.Delete),
    (b"release ", _release),
    (b"bury ", _bury),
    (b"kick ", _kick),
    _job_command(c.KickJob),
    _job_command(c.Touch),
    _job_command(c.StatsJob),
    _tube_command(c.StatsTube),
    _exact(c.Stats),
    _tube_command(c.Use),
    _tube_command(c.Watch),
    _tube_command(c.Ignore),
    _exact(c.ListTubesWatched),
    _exact(c.ListTubeUsed),
    _exact(c.ListTubes),
    (b"quit", _quit),
    (b"pause-tube", _pause_tube),
]

# The same table split by first byte (keeping its order), so a line is tried only against
# the prefixes that can match it.
_BY_FIRST_BYTE: dict[bytes, list[tuple[bytes, _Parser]]] = {}
for _entry in _TABLE:
    _BY_FIRST_BYTE.setdefault(_entry[0][:1], []).append(_entry)

_KIND: dict[bytes, type[c.Command]] = {
    b"put ": c.Put,
    b"reserve-with-timeout ": c.ReserveWithTimeout,
    b"release ": c.Release,
    b"bury ": c.Bury,
    b"kick ": c.Kick,
    b"quit": c.Quit,
    b"pause-tube": c.PauseTube,
}
for _command in c.ALL_COMMANDS:
    _KIND.setdefault(_command.word + b" ", _command)
    _KIND.setdefault(_command.word, _command)
