"""Server replies as events: one small immutable class per reply kind.

The client role turns bytes into these; the server role turns them into bytes. Failure
replies (``NOT_FOUND``, ``TIMED_OUT`` ...) are events too: whether one is an exception is the
API layer's decision, not the protocol's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from jackstalk._protocol.value import Value
from jackstalk._protocol.value import field as _field

__all__ = [
    "NEED_DATA",
    "BadFormat",
    "Buried",
    "Closed",
    "DeadlineSoon",
    "Deleted",
    "Draining",
    "Event",
    "ExpectedCrlf",
    "Found",
    "Inserted",
    "Internal",
    "JobTooBig",
    "Kicked",
    "NeedData",
    "NotFound",
    "NotIgnored",
    "Ok",
    "OutOfMemory",
    "Paused",
    "Released",
    "Reserved",
    "TimedOut",
    "Touched",
    "UnknownCommand",
    "Using",
    "Watching",
]


class NeedData(enum.Enum):
    """The type of :data:`NEED_DATA`."""

    NEED_DATA = enum.auto()


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by ``next_event()`` when more bytes must be received first."""

NeedDataType = Literal[NeedData.NEED_DATA]


class Event(Value):
    """Base class of every reply event.

    Events are immutable values with read-only fields; two are equal when they are of the
    same class with equal fields.
    """

    __slots__ = ()

    word: ClassVar[bytes] = b""
    """The reply word on the wire, such as ``b"NOT_FOUND"``."""

    def encode(self) -> bytes:
        """Serialise the reply as the server sends it."""
        return self.word + b"\r\n"


@dataclass(frozen=True, slots=True)
class Closed:
    """The peer closed the stream cleanly, with no reply outstanding."""


# ---------------------------------------------------------------- replies with fields


class Inserted(Event):
    """``INSERTED <id>``: the job was stored."""

    __slots__ = ("_id",)
    __match_args__ = ("id",)
    word: ClassVar[bytes] = b"INSERTED"
    id: Final[int] = _field("id", "The new job's id.")

    def __init__(self, id: int) -> None:  # noqa: A002 - the protocol's own name
        self._id = id

    def encode(self) -> bytes:
        return b"INSERTED %d\r\n" % self._id


class Buried(Event):
    """``BURIED [<id>]``: a put (with the new id) or a release went to the buried list,
    or a bury succeeded (no id)."""

    __slots__ = ("_id",)
    __match_args__ = ("id",)
    word: ClassVar[bytes] = b"BURIED"
    id: Final[int | None] = _field("id", "The new job's id, for a put; None otherwise.")

    def __init__(self, id: int | None = None) -> None:  # noqa: A002
        self._id = id

    def encode(self) -> bytes:
        return b"BURIED\r\n" if self._id is None else b"BURIED %d\r\n" % self._id


class Using(Event):
    """``USING <tube>``: the tube now (or still) used for put and peek."""

    __slots__ = ("_tube",)
    __match_args__ = ("tube",)
    word: ClassVar[bytes] = b"USING"
    tube: Final[str] = _field("tube", "The tube's name.")

    def __init__(self, tube: str) -> None:
        self._tube = tube

    def encode(self) -> bytes:
        return b"USING " + self._tube.encode("ascii") + b"\r\n"


class Reserved(Event):
    """``RESERVED <id> <bytes>``: a job handed to this connection."""

    __slots__ = ("_id", "_body")
    __match_args__ = ("id", "body")
    word: ClassVar[bytes] = b"RESERVED"
    id: Final[int] = _field("id", "The job's id.")
    body: Final[bytes] = _field("body", "The job's body.")

    def __init__(self, id: int, body: bytes) -> None:  # noqa: A002
        self._id = id
        self._body = body

    def encode(self) -> bytes:
        body = self._body
        return b"RESERVED %d %d\r\n%b\r\n" % (self._id, len(body), body)


class Found(Event):
    """``FOUND <id> <bytes>``: a peeked job."""

    __slots__ = ("_id", "_body")
    __match_args__ = ("id", "body")
    word: ClassVar[bytes] = b"FOUND"
    id: Final[int] = _field("id", "The job's id.")
    body: Final[bytes] = _field("body", "The job's body.")

    def __init__(self, id: int, body: bytes) -> None:  # noqa: A002
        self._id = id
        self._body = body

    def encode(self) -> bytes:
        body = self._body
        return b"FOUND %d %d\r\n%b\r\n" % (self._id, len(body), body)


class Kicked(Event):
    """``KICKED [<count>]``: ``kick`` says how many jobs moved; ``kick-job`` says no count."""

    __slots__ = ("_count",)
    __match_args__ = ("count",)
    word: ClassVar[bytes] = b"KICKED"
    count: Final[int | None] = _field("count", "Jobs moved, for kick; None for kick-job.")

    def __init__(self, count: int | None = None) -> None:
        self._count = count

    def encode(self) -> bytes:
        return b"KICKED\r\n" if self._count is None else b"KICKED %d\r\n" % self._count


class Watching(Event):
    """``WATCHING <count>``: how many tubes the connection watches now."""

    __slots__ = ("_count",)
    __match_args__ = ("count",)
    word: ClassVar[bytes] = b"WATCHING"
    count: Final[int] = _field("count", "Tubes watched.")

    def __init__(self, count: int) -> None:
        self._count = count

    def encode(self) -> bytes:
        return b"WATCHING %d\r\n" % self._count


class Ok(Event):
    """``OK <bytes>``: the raw YAML of a stats or list reply."""

    __slots__ = ("_data",)
    __match_args__ = ("data",)
    word: ClassVar[bytes] = b"OK"
    data: Final[bytes] = _field("data", "The YAML document.")

    def __init__(self, data: bytes) -> None:
        self._data = data

    def encode(self) -> bytes:
        data = self._data
        return b"OK %d\r\n%b\r\n" % (len(data), data)


# ---------------------------------------------------------------- one-word replies


class Deleted(Event):
    """``DELETED``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"DELETED"


class Released(Event):
    """``RELEASED``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"RELEASED"


class Touched(Event):
    """``TOUCHED``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"TOUCHED"


class Paused(Event):
    """``PAUSED``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"PAUSED"


class NotFound(Event):
    """``NOT_FOUND``: no such job or tube, or not in a state the command acts on."""

    __slots__ = ()
    word: ClassVar[bytes] = b"NOT_FOUND"


class TimedOut(Event):
    """``TIMED_OUT``: a reserve with a timeout found no job."""

    __slots__ = ()
    word: ClassVar[bytes] = b"TIMED_OUT"


class DeadlineSoon(Event):
    """``DEADLINE_SOON``: a job this connection holds has at most a second left."""

    __slots__ = ()
    word: ClassVar[bytes] = b"DEADLINE_SOON"


class JobTooBig(Event):
    """``JOB_TOO_BIG``: the body is larger than the server's max-job-size."""

    __slots__ = ()
    word: ClassVar[bytes] = b"JOB_TOO_BIG"


class Draining(Event):
    """``DRAINING``: the server takes no new jobs."""

    __slots__ = ()
    word: ClassVar[bytes] = b"DRAINING"


class NotIgnored(Event):
    """``NOT_IGNORED``: the last watched tube cannot be ignored."""

    __slots__ = ()
    word: ClassVar[bytes] = b"NOT_IGNORED"


class ExpectedCrlf(Event):
    """``EXPECTED_CRLF``: a put body was not followed by ``\\r\\n``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"EXPECTED_CRLF"


class OutOfMemory(Event):
    """``OUT_OF_MEMORY``."""

    __slots__ = ()
    word: ClassVar[bytes] = b"OUT_OF_MEMORY"


class Internal(Event):
    """``INTERNAL_ERROR``: a server bug or a failed binlog write."""

    __slots__ = ()
    word: ClassVar[bytes] = b"INTERNAL_ERROR"


class BadFormat(Event):
    """``BAD_FORMAT``: the server could not parse the command line."""

    __slots__ = ()
    word: ClassVar[bytes] = b"BAD_FORMAT"


class UnknownCommand(Event):
    """``UNKNOWN_COMMAND``: no command matches the line."""

    __slots__ = ()
    word: ClassVar[bytes] = b"UNKNOWN_COMMAND"
