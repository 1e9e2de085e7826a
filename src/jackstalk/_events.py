"""Server replies as events: one small immutable class per reply kind.

The client role turns bytes into these; the server role turns them into bytes. Failure
replies (``NOT_FOUND``, ``TIMED_OUT`` ...) are events too: whether one is an exception is the
API layer's decision, not the protocol's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

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


class Event:
    """Base class of every reply event."""

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


@dataclass(frozen=True, slots=True)
class Inserted(Event):
    """``INSERTED <id>``: the job was stored."""

    word: ClassVar[bytes] = b"INSERTED"
    id: int

    def encode(self) -> bytes:
        return b"INSERTED %d\r\n" % self.id


@dataclass(frozen=True, slots=True)
class Buried(Event):
    """``BURIED [<id>]``: a put (with the new id) or a release went to the buried list,
    or a bury succeeded (no id)."""

    word: ClassVar[bytes] = b"BURIED"
    id: int | None = None

    def encode(self) -> bytes:
        return b"BURIED\r\n" if self.id is None else b"BURIED %d\r\n" % self.id


@dataclass(frozen=True, slots=True)
class Using(Event):
    """``USING <tube>``: the tube now (or still) used for put and peek."""

    word: ClassVar[bytes] = b"USING"
    tube: str

    def encode(self) -> bytes:
        return b"USING " + self.tube.encode("ascii") + b"\r\n"


@dataclass(frozen=True, slots=True)
class Reserved(Event):
    """``RESERVED <id> <bytes>``: a job handed to this connection."""

    word: ClassVar[bytes] = b"RESERVED"
    id: int
    body: bytes

    def encode(self) -> bytes:
        return b"RESERVED %d %d\r\n%b\r\n" % (self.id, len(self.body), self.body)


@dataclass(frozen=True, slots=True)
class Found(Event):
    """``FOUND <id> <bytes>``: a peeked job."""

    word: ClassVar[bytes] = b"FOUND"
    id: int
    body: bytes

    def encode(self) -> bytes:
        return b"FOUND %d %d\r\n%b\r\n" % (self.id, len(self.body), self.body)


@dataclass(frozen=True, slots=True)
class Kicked(Event):
    """``KICKED [<count>]``: ``kick`` says how many jobs moved; ``kick-job`` says no count."""

    word: ClassVar[bytes] = b"KICKED"
    count: int | None = None

    def encode(self) -> bytes:
        return b"KICKED\r\n" if self.count is None else b"KICKED %d\r\n" % self.count


@dataclass(frozen=True, slots=True)
class Watching(Event):
    """``WATCHING <count>``: how many tubes the connection watches now."""

    word: ClassVar[bytes] = b"WATCHING"
    count: int

    def encode(self) -> bytes:
        return b"WATCHING %d\r\n" % self.count


@dataclass(frozen=True, slots=True)
class Ok(Event):
    """``OK <bytes>``: the raw YAML of a stats or list reply."""

    word: ClassVar[bytes] = b"OK"
    data: bytes

    def encode(self) -> bytes:
        return b"OK %d\r\n%b\r\n" % (len(self.data), self.data)


# ---------------------------------------------------------------- one-word replies


@dataclass(frozen=True, slots=True)
class Deleted(Event):
    """``DELETED``."""

    word: ClassVar[bytes] = b"DELETED"


@dataclass(frozen=True, slots=True)
class Released(Event):
    """``RELEASED``."""

    word: ClassVar[bytes] = b"RELEASED"


@dataclass(frozen=True, slots=True)
class Touched(Event):
    """``TOUCHED``."""

    word: ClassVar[bytes] = b"TOUCHED"


@dataclass(frozen=True, slots=True)
class Paused(Event):
    """``PAUSED``."""

    word: ClassVar[bytes] = b"PAUSED"


@dataclass(frozen=True, slots=True)
class NotFound(Event):
    """``NOT_FOUND``: no such job or tube, or not in a state the command acts on."""

    word: ClassVar[bytes] = b"NOT_FOUND"


@dataclass(frozen=True, slots=True)
class TimedOut(Event):
    """``TIMED_OUT``: a reserve with a timeout found no job."""

    word: ClassVar[bytes] = b"TIMED_OUT"


@dataclass(frozen=True, slots=True)
class DeadlineSoon(Event):
    """``DEADLINE_SOON``: a job this connection holds has at most a second left."""

    word: ClassVar[bytes] = b"DEADLINE_SOON"


@dataclass(frozen=True, slots=True)
class JobTooBig(Event):
    """``JOB_TOO_BIG``: the body is larger than the server's max-job-size."""

    word: ClassVar[bytes] = b"JOB_TOO_BIG"


@dataclass(frozen=True, slots=True)
class Draining(Event):
    """``DRAINING``: the server takes no new jobs."""

    word: ClassVar[bytes] = b"DRAINING"


@dataclass(frozen=True, slots=True)
class NotIgnored(Event):
    """``NOT_IGNORED``: the last watched tube cannot be ignored."""

    word: ClassVar[bytes] = b"NOT_IGNORED"


@dataclass(frozen=True, slots=True)
class ExpectedCrlf(Event):
    """``EXPECTED_CRLF``: a put body was not followed by ``\\r\\n``."""

    word: ClassVar[bytes] = b"EXPECTED_CRLF"


@dataclass(frozen=True, slots=True)
class OutOfMemory(Event):
    """``OUT_OF_MEMORY``."""

    word: ClassVar[bytes] = b"OUT_OF_MEMORY"


@dataclass(frozen=True, slots=True)
class Internal(Event):
    """``INTERNAL_ERROR``: a server bug or a failed binlog write."""

    word: ClassVar[bytes] = b"INTERNAL_ERROR"


@dataclass(frozen=True, slots=True)
class BadFormat(Event):
    """``BAD_FORMAT``: the server could not parse the command line."""

    word: ClassVar[bytes] = b"BAD_FORMAT"


@dataclass(frozen=True, slots=True)
class UnknownCommand(Event):
    """``UNKNOWN_COMMAND``: no command matches the line."""

    word: ClassVar[bytes] = b"UNKNOWN_COMMAND"
