"""The server role of the protocol: bytes in, commands out; reply events in, bytes out.

It reads command lines the way beanstalkd 1.12 does, quirks included, because the embedded
server must answer every line exactly as the real one would:

* a line ends at the first ``\\r`` only if ``\\n`` follows; a line is at most 224 bytes, and a
  longer one is thrown away up to the next ``\\r\\n`` and answered with one ``BAD_FORMAT``;
* commands match by prefix, in beanstalkd's order; no match is ``UNKNOWN_COMMAND``, a match
  whose arguments do not parse is ``BAD_FORMAT``;
* numbers are plain digits, after any number of spaces; a put whose line fails to parse
  leaves its body to be read as commands, and a put whose body is too large has it skipped
  before ``JOB_TOO_BIG`` is sent.

Lines that cannot become a command come out as :class:`Rejected`, carrying the reply to send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from . import _commands as c
from . import _events as e
from . import _validate as v
from ._errors import InvalidArgument

__all__ = ["Rejected", "ServerConnection"]

_LINE = 224
_ULONG_MAX = 2**64 - 1
_LONG_MAX = 2**63 - 1
_CLOSED = e.Closed()
_Parser: TypeAlias = Callable[[bytes], c.Command]
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()")


@dataclass(frozen=True, slots=True)
class Rejected:
    """A command line that cannot run: send ``reply``.

    ``command`` is the command class whose prefix matched (``None`` when none did); the
    server's statistics and job ids depend on it (beanstalkd counts some rejected lines,
    and hands out an id for a put whose body then lacks its ``\\r\\n``).
    """

    reply: e.Event
    command: type[c.Command] | None = None


class _Bad(Exception):
    """A line did not parse: answer with ``reply``."""

    def __init__(self, reply: e.Event) -> None:
        self.reply = reply


_BAD_FORMAT = _Bad(e.BadFormat())
_NOT_FOUND = _Bad(e.NotFound())


def _unsigned(line: bytes, pos: int, limit: int) -> tuple[int, int]:
    """Read a number as beanstalkd's ``read_u32``/``read_u64`` do: spaces, then digits."""
    size = len(line)
    while pos < size and line[pos] == 0x20:
        pos += 1
    start = pos
    while pos < size and 0x30 <= line[pos] <= 0x39:
        pos += 1
    if pos == start:
        raise _BAD_FORMAT
    value = int(line[start:pos])
    if value > limit:
        raise _BAD_FORMAT
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


def _job_id(line: bytes, pos: int) -> tuple[int, int]:
    value, pos = _unsigned(line, pos, _ULONG_MAX)
    return value, pos


def _end(line: bytes, pos: int) -> None:
    if pos != len(line):
        raise _BAD_FORMAT


def _name(raw: bytes) -> str:
    try:
        return v.tube_name(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidArgument):
        raise _BAD_FORMAT from None


def _unchecked(cls: type[c.Command], **fields: object) -> c.Command:
    """Build a command from values beanstalkd accepts but a client must never send."""
    command = object.__new__(cls)
    for name, value in fields.items():
        object.__setattr__(command, name, value)
    return command


class ServerConnection:
    """The server side of one connection, without I/O.

    ``next_event()`` returns a command to run, a :class:`Rejected` line to answer, a
    :class:`Closed` after the client's end of stream, or :data:`NEED_DATA`. ``send(reply)``
    returns the reply's bytes. A ``reserve-with-timeout`` with a negative timeout (which
    beanstalkd 1.12 treats as "wait forever") comes out with ``timeout == -1``.
    """

    __slots__ = ("_body", "_buf", "_eof", "_max_job_size", "_put", "_skip", "_skip_bad")

    def __init__(self, *, max_job_size: int = 65535) -> None:
        self._max_job_size = v.integer(max_job_size, "max_job_size", 0, 2**30)
        self._buf = bytearray()
        self._eof = False
        self._put: tuple[int, int, int] | None = None  # a parsed put line awaiting its body
        self._body = 0  # its body size
        self._skip = 0  # bytes of an oversized body still to throw away
        self._skip_bad = False  # discarding an over-long line up to the next \r\n

    @property
    def max_job_size(self) -> int:
        """The largest body a put may carry."""
        return self._max_job_size

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
        if self._skip:
            taken = min(self._skip, len(buf))
            del buf[:taken]
            self._skip -= taken
            if self._skip:
                return self._starved()
            return Rejected(e.JobTooBig(), c.Put)
        if self._put is not None:
            return self._put_body()
        if self._skip_bad:
            end = buf.find(b"\r\n")
            if end < 0:
                # Keep a trailing \r: its \n may come in the next read.
                keep = 1 if buf.endswith(b"\r") else 0
                del buf[: len(buf) - keep]
                return self._starved()
            del buf[: end + 2]
            self._skip_bad = False
            return Rejected(e.BadFormat())
        cr = buf.find(b"\r", 0, _LINE)
        if cr < 0 or cr + 1 >= min(len(buf), _LINE) or buf[cr + 1] != 0x0A:
            if len(buf) >= _LINE:
                # beanstalkd's command buffer is full without a line end: discard it.
                del buf[:_LINE]
                self._skip_bad = True
                return self.next_event()
            return self._starved()
        line = bytes(buf[:cr])
        del buf[: cr + 2]
        return self._dispatch(line)

    def _starved(self) -> e.Closed | e.NeedDataType:
        if self._eof:
            self._buf.clear()
            return _CLOSED
        return e.NEED_DATA

    def _put_body(self) -> c.Command | Rejected | e.Closed | e.NeedDataType:
        buf = self._buf
        size = self._body
        if len(buf) < size + 2:
            return self._starved()
        assert self._put is not None  # set whenever _put_body runs
        priority, delay, ttr = self._put
        self._put = None
        ok = buf[size : size + 2] == b"\r\n"
        body = bytes(buf[:size])
        del buf[: size + 2]
        if not ok:
            return Rejected(e.ExpectedCrlf(), c.Put)
        return _unchecked(c.Put, body=body, priority=priority, delay=delay, ttr=ttr)

    def _dispatch(self, line: bytes) -> c.Command | Rejected | e.Closed | e.NeedDataType:
        if b"\x00" in line:  # beanstalkd checks for NUL before it looks at the command
            return Rejected(e.BadFormat())
        for prefix, parse in _TABLE:  # noqa: B007 - the match is used below
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
            return Rejected(bad.reply, kind)

    def _put_line(self, line: bytes) -> c.Command | Rejected | e.Closed | e.NeedDataType:
        priority, pos = _unsigned(line, 4, v.U32_MAX)
        delay, pos = _unsigned(line, pos, v.U32_MAX)
        ttr, pos = _unsigned(line, pos, v.U32_MAX)
        size, pos = _unsigned(line, pos, v.U32_MAX)
        if size > self._max_job_size:
            self._skip = size + 2
            return self.next_event()
        _end(line, pos)
        self._put = (priority, delay, max(ttr, 1))
        self._body = size
        return self._put_body()


def _exact(cls: type[c.Command]) -> tuple[bytes, _Parser]:
    word = cls.word

    def parse(line: bytes) -> c.Command:
        if line != word:
            raise _BAD_FORMAT
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
        job, pos = _job_id(line, len(prefix))
        _end(line, pos)
        if job == 0:
            raise _NOT_FOUND
        return cls(job)  # type: ignore[call-arg]

    return prefix, parse


def _release(line: bytes) -> c.Command:
    job, pos = _job_id(line, 8)
    priority, pos = _unsigned(line, pos, v.U32_MAX)
    delay, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    if job == 0:
        raise _NOT_FOUND
    return c.Release(job, priority, delay)


def _bury(line: bytes) -> c.Command:
    job, pos = _job_id(line, 5)
    priority, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    if job == 0:
        raise _NOT_FOUND
    return c.Bury(job, priority)


def _kick(line: bytes) -> c.Command:
    # beanstalkd reads the bound with strtoul and ignores what follows the digits.
    parsed = _strtol(line, 5)
    if parsed is None:
        raise _BAD_FORMAT
    value = parsed[0]
    if abs(value) > _ULONG_MAX:
        bound = _ULONG_MAX  # strtoul saturates on overflow, whatever the sign
    else:
        bound = value % 2**64  # and wraps a negative value
    return c.Kick(bound % 2**32)


def _reserve_with_timeout(line: bytes) -> c.Command:
    # 1.12 reads the timeout with strtol into an int: no digits means 0, big values wrap,
    # a negative one waits forever, and only a long overflow is an error.
    parsed = _strtol(line, 21)
    value = 0 if parsed is None else parsed[0]
    if not -_LONG_MAX - 1 <= value <= _LONG_MAX:
        raise _BAD_FORMAT
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
    tube = _name(line[start:pos])
    delay, pos = _unsigned(line, pos, v.U32_MAX)
    _end(line, pos)
    return c.PauseTube(tube, delay)


def _never(line: bytes) -> c.Command:  # pragma: no cover - put is parsed by the connection
    raise _BAD_FORMAT


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
