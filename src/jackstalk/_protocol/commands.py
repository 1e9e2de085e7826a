"""The 25 protocol commands as small immutable objects.

Each command checks its arguments when it is built, so an invalid or injected byte can never
reach the wire, and knows which replies it may receive (``replies``: reply word -> number of
fields after the word), which the client role uses to frame and check every reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Final

from jackstalk._protocol import validate as v
from jackstalk._protocol.value import Value
from jackstalk._protocol.value import field as _field

__all__ = [
    "DEFAULT_PRIORITY",
    "DEFAULT_TTR",
    "Bury",
    "Command",
    "Delete",
    "Ignore",
    "Kick",
    "KickJob",
    "ListTubeUsed",
    "ListTubes",
    "ListTubesWatched",
    "PauseTube",
    "Peek",
    "PeekBuried",
    "PeekDelayed",
    "PeekReady",
    "Put",
    "Quit",
    "Release",
    "Reserve",
    "ReserveJob",
    "ReserveWithTimeout",
    "Stats",
    "StatsJob",
    "StatsTube",
    "Touch",
    "Use",
    "Watch",
]

DEFAULT_PRIORITY = 2**31
"""The middle of the priority range: lower numbers are more urgent, 0 is the most urgent."""

DEFAULT_TTR = 120
"""Seconds a worker may hold a job before the server hands it to another worker."""

# Replies any command can get: the server's own trouble, or a line it could not parse.
_ANY: dict[bytes, int] = {
    b"OUT_OF_MEMORY": 0,
    b"INTERNAL_ERROR": 0,
    b"BAD_FORMAT": 0,
    b"UNKNOWN_COMMAND": 0,
}


def _replies(**words: int) -> Mapping[bytes, int]:
    table = dict(_ANY)
    table.update({word.encode("ascii"): count for word, count in words.items()})
    return table


class Command(Value):
    """Base class of every command.

    Commands are immutable values with read-only fields; two are equal when they are of the
    same class with equal fields.
    """

    __slots__ = ()

    word: ClassVar[bytes] = b""
    """The command word on the wire."""

    replies: ClassVar[Mapping[bytes, int]] = _ANY
    """Reply words this command may receive, each with its number of fields."""

    waits: ClassVar[bool] = False
    """True when the server may hold the reply back (a reserve waiting for a job)."""

    def encode(self) -> bytes:
        """The bytes to send: the command line and, for ``put``, the body."""
        return self.word + b"\r\n"

    def __reduce__(self) -> tuple[object, ...]:
        # copy and pickle rebuild the command from its stored fields, without re-running the
        # client-side checks: the server role builds commands a client may not send (a
        # reserve-with-timeout of -1, which beanstalkd 1.12 reads as "wait for ever").
        return _rebuild, (type(self), self._fields())


def _rebuild(cls: type[Command], fields: tuple[object, ...]) -> Command:
    command = object.__new__(cls)
    for name, value in zip(cls._field_names, fields, strict=True):
        setattr(command, "_" + name, value)
    return command


_U32_MAX = v.U32_MAX
_U64_MAX = v.U64_MAX


class Put(Command):
    """``put``: store a job in the used tube.

    ``priority`` 0 (most urgent) to 2**32-1; ``delay`` seconds before the job is ready;
    ``ttr`` seconds a worker may hold it (the server raises 0 to 1).
    """

    __slots__ = ("_body", "_priority", "_delay", "_ttr")
    body: Final[bytes] = _field("body", "The job body.")
    priority: Final[int] = _field("priority", "0 (most urgent) to 2**32-1.")
    delay: Final[int] = _field("delay", "Seconds before the job is ready.")
    ttr: Final[int] = _field("ttr", "Seconds a worker may hold the job.")
    word = b"put"
    replies = _replies(INSERTED=1, BURIED=1, EXPECTED_CRLF=0, JOB_TOO_BIG=0, DRAINING=0)

    def __init__(
        self,
        body: bytes,
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = DEFAULT_TTR,
    ) -> None:
        # Well-typed arguments skip the checker calls (the same checks, inline); anything
        # else goes through them, in the same order, for the same errors.
        if type(body) is not bytes or len(body) > _U32_MAX:
            body = v.body(body)
        if type(priority) is not int or not 0 <= priority <= _U32_MAX:
            priority = v.u32(priority, "priority")
        if type(delay) is not int or not 0 <= delay <= _U32_MAX:
            delay = v.u32(delay, "delay")
        if type(ttr) is not int or not 0 <= ttr <= _U32_MAX:
            ttr = v.u32(ttr, "ttr")
        self._body = body
        self._priority = priority
        self._delay = delay
        self._ttr = ttr

    def encode(self) -> bytes:
        body = self._body
        return b"put %d %d %d %d\r\n%b\r\n" % (
            self._priority,
            self._delay,
            self._ttr,
            len(body),
            body,
        )


class _TubeCommand(Command):
    __slots__ = ("_tube",)
    tube: Final[str] = _field("tube", "The tube's name.")

    def __init__(self, tube: str) -> None:
        self._tube = v.tube_name(tube)

    def encode(self) -> bytes:
        return b"%b %b\r\n" % (self.word, self._tube.encode("ascii"))


class Use(_TubeCommand):
    """``use``: put and peek act on this tube from now on."""

    __slots__ = ()
    word = b"use"
    replies = _replies(USING=1)


class Watch(_TubeCommand):
    """``watch``: add a tube to the list reserve takes jobs from."""

    __slots__ = ()
    word = b"watch"
    replies = _replies(WATCHING=1)


class Ignore(_TubeCommand):
    """``ignore``: drop a tube from the watch list (the last one cannot be dropped)."""

    __slots__ = ()
    word = b"ignore"
    replies = _replies(WATCHING=1, NOT_IGNORED=0)


class StatsTube(_TubeCommand):
    """``stats-tube``: statistics of one tube."""

    __slots__ = ()
    word = b"stats-tube"
    replies = _replies(OK=1, NOT_FOUND=0)


_RESERVE_REPLIES = _replies(RESERVED=2, DEADLINE_SOON=0, TIMED_OUT=0)


class Reserve(Command):
    """``reserve``: wait, as long as it takes, for a job from a watched tube."""

    __slots__ = ()
    word = b"reserve"
    replies = _RESERVE_REPLIES
    waits = True

    def __init__(self) -> None:
        pass

    def encode(self) -> bytes:
        return b"reserve\r\n"


class ReserveWithTimeout(Command):
    """``reserve-with-timeout``: wait up to ``timeout`` whole seconds (0 = just look)."""

    __slots__ = ("_timeout",)
    timeout: Final[int] = _field("timeout", "Whole seconds to wait (0: only a ready job).")
    word = b"reserve-with-timeout"
    replies = _RESERVE_REPLIES
    waits = True

    def __init__(self, timeout: int) -> None:
        self._timeout = v.integer(timeout, "reserve timeout", 0, v.RESERVE_TIMEOUT_MAX)

    def encode(self) -> bytes:
        return b"reserve-with-timeout %d\r\n" % self._timeout


_ID_DOC = "The job's id."


class _JobCommand(Command):
    __slots__ = ("_id",)
    id: Final[int] = _field("id", _ID_DOC)
    _line: ClassVar[bytes] = b""
    """The command line with the id left as ``%d`` (one format fewer per command)."""

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._line = cls.word + b" %d\r\n"

    def __init__(self, id: int) -> None:  # noqa: A002 - the protocol's own name
        if type(id) is not int or not 0 < id <= _U64_MAX:
            id = v.job_id(id)  # noqa: A001
        self._id = id

    def encode(self) -> bytes:
        return self._line % self._id


class ReserveJob(_JobCommand):
    """``reserve-job``: take one particular ready, delayed or buried job (beanstalkd 1.12+)."""

    __slots__ = ()
    word = b"reserve-job"
    replies = _replies(RESERVED=2, NOT_FOUND=0)


class Delete(_JobCommand):
    """``delete``: remove a job (reserved by this connection, or ready, delayed or buried)."""

    __slots__ = ()
    word = b"delete"
    replies = _replies(DELETED=0, NOT_FOUND=0)


class Touch(_JobCommand):
    """``touch``: restart the time-to-run of a job this connection holds."""

    __slots__ = ()
    word = b"touch"
    replies = _replies(TOUCHED=0, NOT_FOUND=0)


class Peek(_JobCommand):
    """``peek``: look at a job by id, in any state and tube."""

    __slots__ = ()
    word = b"peek"
    replies = _replies(FOUND=2, NOT_FOUND=0)


class KickJob(_JobCommand):
    """``kick-job``: move one buried or delayed job to ready."""

    __slots__ = ()
    word = b"kick-job"
    replies = _replies(KICKED=0, NOT_FOUND=0)


class StatsJob(_JobCommand):
    """``stats-job``: statistics of one job."""

    __slots__ = ()
    word = b"stats-job"
    replies = _replies(OK=1, NOT_FOUND=0)


class Release(Command):
    """``release``: give a reserved job back, with a new priority and an optional delay."""

    __slots__ = ("_id", "_priority", "_delay")
    id: Final[int] = _field("id", _ID_DOC)
    priority: Final[int] = _field("priority", "The job's new priority.")
    delay: Final[int] = _field("delay", "Seconds before the job is ready again.")
    word = b"release"
    replies = _replies(RELEASED=0, BURIED=0, NOT_FOUND=0)

    def __init__(
        self,
        id: int,  # noqa: A002 - the protocol's own name
        priority: int = DEFAULT_PRIORITY,
        delay: int = 0,
    ) -> None:
        self._id = v.job_id(id)
        self._priority = v.u32(priority, "priority")
        self._delay = v.u32(delay, "delay")

    def encode(self) -> bytes:
        return b"release %d %d %d\r\n" % (self._id, self._priority, self._delay)


class Bury(Command):
    """``bury``: park a reserved job in its tube's buried list, with a new priority."""

    __slots__ = ("_id", "_priority")
    id: Final[int] = _field("id", _ID_DOC)
    priority: Final[int] = _field("priority", "The job's new priority.")
    word = b"bury"
    replies = _replies(BURIED=0, NOT_FOUND=0)

    def __init__(self, id: int, priority: int = DEFAULT_PRIORITY) -> None:  # noqa: A002
        self._id = v.job_id(id)
        self._priority = v.u32(priority, "priority")

    def encode(self) -> bytes:
        return b"bury %d %d\r\n" % (self._id, self._priority)


class Kick(Command):
    """``kick``: move up to ``bound`` buried jobs (or, with none buried, delayed jobs)
    of the used tube to ready."""

    __slots__ = ("_bound",)
    bound: Final[int] = _field("bound", "The most jobs to kick.")
    word = b"kick"
    replies = _replies(KICKED=1)

    def __init__(self, bound: int) -> None:
        self._bound = v.u32(bound, "kick bound")

    def encode(self) -> bytes:
        return b"kick %d\r\n" % self._bound


class _NoArgs(Command):
    __slots__ = ()

    def __init__(self) -> None:
        pass


_PEEK_REPLIES = _replies(FOUND=2, NOT_FOUND=0)


class PeekReady(_NoArgs):
    """``peek-ready``: the next ready job of the used tube."""

    __slots__ = ()
    word = b"peek-ready"
    replies = _PEEK_REPLIES


class PeekDelayed(_NoArgs):
    """``peek-delayed``: the delayed job of the used tube that becomes ready first."""

    __slots__ = ()
    word = b"peek-delayed"
    replies = _PEEK_REPLIES


class PeekBuried(_NoArgs):
    """``peek-buried``: the oldest buried job of the used tube."""

    __slots__ = ()
    word = b"peek-buried"
    replies = _PEEK_REPLIES


class Stats(_NoArgs):
    """``stats``: server-wide statistics."""

    __slots__ = ()
    word = b"stats"
    replies = _replies(OK=1)


class ListTubes(_NoArgs):
    """``list-tubes``: every tube that exists."""

    __slots__ = ()
    word = b"list-tubes"
    replies = _replies(OK=1)


class ListTubesWatched(_NoArgs):
    """``list-tubes-watched``: this connection's watch list."""

    __slots__ = ()
    word = b"list-tubes-watched"
    replies = _replies(OK=1)


class ListTubeUsed(_NoArgs):
    """``list-tube-used``: the tube this connection uses."""

    __slots__ = ()
    word = b"list-tube-used"
    replies = _replies(USING=1)


class Quit(_NoArgs):
    """``quit``: the server closes the connection and sends nothing."""

    __slots__ = ()
    word = b"quit"
    replies: ClassVar[Mapping[bytes, int]] = {}


class PauseTube(Command):
    """``pause-tube``: hold back reserves from a tube for ``delay`` seconds."""

    __slots__ = ("_tube", "_delay")
    tube: Final[str] = _field("tube", "The tube's name.")
    delay: Final[int] = _field("delay", "Seconds to hold reserves back.")
    word = b"pause-tube"
    replies = _replies(PAUSED=0, NOT_FOUND=0)

    def __init__(self, tube: str, delay: int) -> None:
        self._tube = v.tube_name(tube)
        self._delay = v.u32(delay, "pause delay")

    def encode(self) -> bytes:
        return b"pause-tube %b %d\r\n" % (self._tube.encode("ascii"), self._delay)


ALL_COMMANDS: tuple[type[Command], ...] = (
    Put,
    Use,
    Reserve,
    ReserveWithTimeout,
    ReserveJob,
    Delete,
    Release,
    Bury,
    Touch,
    Watch,
    Ignore,
    Peek,
    PeekReady,
    PeekDelayed,
    PeekBuried,
    Kick,
    KickJob,
    StatsJob,
    StatsTube,
    Stats,
    ListTubes,
    ListTubeUsed,
    ListTubesWatched,
    PauseTube,
    Quit,
)
"""Every command class, in the order of the protocol document."""
