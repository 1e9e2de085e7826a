"""Commands and events: golden bytes, argument validation, value semantics."""

from __future__ import annotations

import copy
import enum
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from helpers import (
    GOLDEN_COMMANDS,
    GOLDEN_EVENTS,
    MAX_LINE,
    RESERVE_TIMEOUT_MAX,
    TUBE_200,
    U32_MAX,
    U64_MAX,
    case_id,
)

from jackstalk._protocol import events as events_module
from jackstalk._protocol import validate as validate
from jackstalk._protocol.commands import (
    ALL_COMMANDS,
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    Bury,
    Command,
    Delete,
    Ignore,
    Kick,
    KickJob,
    ListTubes,
    ListTubesWatched,
    ListTubeUsed,
    PauseTube,
    Peek,
    PeekBuried,
    PeekDelayed,
    PeekReady,
    Put,
    Quit,
    Release,
    Reserve,
    ReserveJob,
    ReserveWithTimeout,
    Stats,
    StatsJob,
    StatsTube,
    Touch,
    Use,
    Watch,
)
from jackstalk._protocol.errors import (
    ArgumentTypeError,
    BadFormatError,
    BuriedError,
    CommandError,
    ConnectionClosedError,
    DeadlineSoonError,
    DrainingError,
    Error,
    ExpectedCrlfError,
    InternalError,
    InvalidArgument,
    InvalidTubeName,
    JackstalkError,
    JobTooBigError,
    NotFoundError,
    NotIgnoredError,
    OutOfMemoryError,
    ProtocolError,
    ServerError,
    TimedOutError,
    UnknownCommandError,
)
from jackstalk._protocol.events import Buried, Event, Inserted, Kicked, NotFound, Reserved, Using

# ------------------------------------------------------------------ golden bytes


@pytest.mark.parametrize(("command", "wire"), GOLDEN_COMMANDS, ids=case_id)
def test_command_golden_bytes(command: Command, wire: bytes) -> None:
    assert command.encode() == wire


def test_put_example_from_the_issue() -> None:
    assert Put(b"hi", priority=1, delay=2, ttr=3).encode() == b"put 1 2 3 2\r\nhi\r\n"


def test_golden_bytes_cover_all_25_commands() -> None:
    assert len(ALL_COMMANDS) == 25
    assert len(set(ALL_COMMANDS)) == 25
    assert {type(command) for command, _ in GOLDEN_COMMANDS} == set(ALL_COMMANDS)


@pytest.mark.parametrize(("event", "wire"), GOLDEN_EVENTS, ids=case_id)
def test_event_golden_bytes(event: Event, wire: bytes) -> None:
    assert event.encode() == wire


def test_golden_bytes_cover_every_event_class() -> None:
    event_classes = {
        cls
        for cls in vars(events_module).values()
        if isinstance(cls, type) and issubclass(cls, Event) and cls is not Event
    }
    assert {type(event) for event, _ in GOLDEN_EVENTS} == event_classes


def test_defaults() -> None:
    assert DEFAULT_PRIORITY == 2**31
    assert DEFAULT_TTR == 120
    put = Put(b"x")
    assert (put.priority, put.delay, put.ttr) == (DEFAULT_PRIORITY, 0, DEFAULT_TTR)
    release = Release(1)
    assert (release.priority, release.delay) == (DEFAULT_PRIORITY, 0)
    assert Bury(1).priority == DEFAULT_PRIORITY


def test_command_words() -> None:
    for command, wire in GOLDEN_COMMANDS:
        assert wire.startswith(type(command).word)
        assert wire[len(type(command).word) : len(type(command).word) + 1] in (b" ", b"\r")


# ------------------------------------------------------------------ reply tables (notes §3)

_ANY = {"OUT_OF_MEMORY", "INTERNAL_ERROR", "BAD_FORMAT", "UNKNOWN_COMMAND"}
_EXPECTED_REPLIES: dict[type[Command], dict[str, int]] = {
    Put: {"INSERTED": 1, "BURIED": 1, "EXPECTED_CRLF": 0, "JOB_TOO_BIG": 0, "DRAINING": 0},
    Use: {"USING": 1},
    Reserve: {"RESERVED": 2, "DEADLINE_SOON": 0, "TIMED_OUT": 0},
    ReserveWithTimeout: {"RESERVED": 2, "DEADLINE_SOON": 0, "TIMED_OUT": 0},
    ReserveJob: {"RESERVED": 2, "NOT_FOUND": 0},
    Delete: {"DELETED": 0, "NOT_FOUND": 0},
    Release: {"RELEASED": 0, "BURIED": 0, "NOT_FOUND": 0},
    Bury: {"BURIED": 0, "NOT_FOUND": 0},
    Touch: {"TOUCHED": 0, "NOT_FOUND": 0},
    Watch: {"WATCHING": 1},
    Ignore: {"WATCHING": 1, "NOT_IGNORED": 0},
    Peek: {"FOUND": 2, "NOT_FOUND": 0},
    PeekReady: {"FOUND": 2, "NOT_FOUND": 0},
    PeekDelayed: {"FOUND": 2, "NOT_FOUND": 0},
    PeekBuried: {"FOUND": 2, "NOT_FOUND": 0},
    Kick: {"KICKED": 1},
    KickJob: {"KICKED": 0, "NOT_FOUND": 0},
    Stats: {"OK": 1},
    StatsJob: {"OK": 1, "NOT_FOUND": 0},
    StatsTube: {"OK": 1, "NOT_FOUND": 0},
    ListTubes: {"OK": 1},
    ListTubesWatched: {"OK": 1},
    ListTubeUsed: {"USING": 1},
    PauseTube: {"PAUSED": 0, "NOT_FOUND": 0},
}


@pytest.mark.parametrize("cls", list(_EXPECTED_REPLIES), ids=lambda cls: cls.__name__)
def test_reply_tables_match_protocol_notes(cls: type[Command]) -> None:
    expected = {word.encode(): count for word, count in _EXPECTED_REPLIES[cls].items()}
    expected.update({word.encode(): 0 for word in _ANY})
    assert dict(cls.replies) == expected


def test_quit_expects_no_reply() -> None:
    assert dict(Quit.replies) == {}


def test_only_reserves_wait() -> None:
    assert {cls for cls in ALL_COMMANDS if cls.waits} == {Reserve, ReserveWithTimeout}


def test_only_put_is_answered_inserted() -> None:
    # The one-reply fast parse relies on it: it checks the command's class, not its table.
    assert [cls for cls in ALL_COMMANDS if b"INSERTED" in cls.replies] == [Put]


# ------------------------------------------------------------------ tube names

VALID_TUBES = [
    "a",
    "default",
    "A-Z",
    "foo-",
    "0",
    "123",
    "true",
    "+",
    "/",
    ";",
    ".",
    "$",
    "_",
    "(",
    ")",
    "a-b+c/d;e.f$g_h(i)",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()",
    TUBE_200,
]
INVALID_TUBES = [
    "",
    "-",
    "-foo",
    "a b",
    " a",
    "a ",
    "a\r",
    "a\n",
    "foo\n",
    "a\r\nb",
    "a\x00",
    "\x00",
    "a\t",
    "a*b",
    "a:b",
    "a#b",
    "a,b",
    "a" * 201,
    "t\u00fcbe",
    "\u0661",  # a non-ASCII digit
    "\uff41",  # a full-width letter
]
TUBE_COMMANDS = [Use, Watch, Ignore, StatsTube]


@pytest.mark.parametrize("name", VALID_TUBES)
def test_valid_tube_names(name: str) -> None:
    for cls in TUBE_COMMANDS:
        command = cls(name)
        assert command.tube == name
        assert command.encode() == cls.word + b" " + name.encode("ascii") + b"\r\n"
    assert PauseTube(name, 1).tube == name


@pytest.mark.parametrize("name", INVALID_TUBES, ids=repr)
def test_invalid_tube_names(name: str) -> None:
    for cls in TUBE_COMMANDS:
        with pytest.raises(InvalidTubeName):
            cls(name)
    with pytest.raises(InvalidTubeName):
        PauseTube(name, 1)


def test_invalid_tube_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="tube"):
        Use("-x")
    assert issubclass(InvalidTubeName, InvalidArgument)
    assert issubclass(InvalidTubeName, ValueError)
    assert issubclass(InvalidTubeName, JackstalkError)


@pytest.mark.parametrize("value", [b"foo", None, 1, bytearray(b"foo")], ids=repr)
def test_tube_name_must_be_str(value: object) -> None:
    for cls in TUBE_COMMANDS:
        with pytest.raises(ArgumentTypeError):
            cls(value)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        PauseTube(value, 1)  # type: ignore[arg-type]


def test_str_subclass_tube_name_is_normalised() -> None:
    class Name(str):
        pass

    command = Use(Name("foo"))
    assert type(command.tube) is str
    assert command == Use("foo")


# ------------------------------------------------------------------ integers

U32_FIELDS: list[Callable[[Any], Command]] = [
    lambda v: Put(b"", priority=v),
    lambda v: Put(b"", delay=v),
    lambda v: Put(b"", ttr=v),
    lambda v: Release(1, priority=v),
    lambda v: Release(1, delay=v),
    lambda v: Bury(1, priority=v),
    lambda v: Kick(v),
    lambda v: PauseTube("foo", v),
]
U32_IDS = [
    "put-pri",
    "put-delay",
    "put-ttr",
    "release-pri",
    "release-delay",
    "bury-pri",
    "kick",
    "pause",
]

JOB_ID_FIELDS: list[Callable[[Any], Command]] = [
    ReserveJob,
    Delete,
    Touch,
    Peek,
    KickJob,
    StatsJob,
    lambda v: Release(v),
    lambda v: Bury(v),
]
JOB_ID_IDS = ["reserve-job", "delete", "touch", "peek", "kick-job", "stats-job", "release", "bury"]


@pytest.mark.parametrize("build", U32_FIELDS, ids=U32_IDS)
def test_u32_fields(build: Callable[[Any], Command]) -> None:
    for value in (0, 1, U32_MAX):
        build(value)
    for value in (-1, U32_MAX + 1, 2**64):
        with pytest.raises(InvalidArgument):
            build(value)
    for bad in (True, False, 1.0, "1", None, b"1"):
        with pytest.raises(ArgumentTypeError):
            build(bad)


@pytest.mark.parametrize("build", JOB_ID_FIELDS, ids=JOB_ID_IDS)
def test_job_id_fields(build: Callable[[Any], Command]) -> None:
    for value in (1, 2**32, U64_MAX):
        build(value)
    for value in (0, -1, U64_MAX + 1):
        with pytest.raises(InvalidArgument):
            build(value)
    for bad in (True, 1.5, "7", None):
        with pytest.raises(ArgumentTypeError):
            build(bad)


def test_reserve_timeout_range() -> None:
    assert ReserveWithTimeout(0).timeout == 0
    assert ReserveWithTimeout(RESERVE_TIMEOUT_MAX).timeout == RESERVE_TIMEOUT_MAX
    for value in (-1, RESERVE_TIMEOUT_MAX + 1, U32_MAX):
        with pytest.raises(InvalidArgument):
            ReserveWithTimeout(value)
    for bad in (True, 0.5, "1", None):
        with pytest.raises(ArgumentTypeError):
            ReserveWithTimeout(bad)  # type: ignore[arg-type]


def test_bool_is_refused_even_when_in_range() -> None:
    with pytest.raises(ArgumentTypeError, match="bool"):
        Delete(True)
    with pytest.raises(ArgumentTypeError, match="bool"):
        Kick(False)
    with pytest.raises(TypeError):
        ReserveWithTimeout(False)


def test_index_integers_are_accepted_and_normalised() -> None:
    class Priority(enum.IntEnum):
        HIGH = 5

    class Indexable:
        def __index__(self) -> int:
            return 7

    put = Put(b"", priority=Priority.HIGH, delay=Indexable(), ttr=Priority.HIGH)  # type: ignore[arg-type]
    assert (put.priority, put.delay, put.ttr) == (5, 7, 5)
    assert type(put.priority) is int
    assert type(put.delay) is int
    assert put.encode() == b"put 5 7 5 0\r\n\r\n"
    job = Delete(Priority.HIGH)
    assert type(job.id) is int
    assert job.encode() == b"delete 5\r\n"
    assert ReserveWithTimeout(Indexable()).timeout == 7  # type: ignore[arg-type]


def test_argument_type_error_is_a_type_error() -> None:
    assert issubclass(ArgumentTypeError, TypeError)
    assert issubclass(ArgumentTypeError, JackstalkError)
    assert issubclass(InvalidArgument, ValueError)


# ------------------------------------------------------------------ bodies


@pytest.mark.parametrize(
    "value", ["hi", "", None, 5, bytearray(b"hi"), memoryview(b"hi")], ids=repr
)
def test_body_must_be_bytes(value: object) -> None:
    with pytest.raises(ArgumentTypeError):
        Put(value)  # type: ignore[arg-type]


def test_str_body_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bytes"):
        Put("hi")  # type: ignore[arg-type]


def test_bytes_subclass_body_is_normalised() -> None:
    class Body(bytes):
        pass

    put = Put(Body(b"abc"))
    assert type(put.body) is bytes
    assert put == Put(b"abc")


def test_body_may_hold_any_byte() -> None:
    body = bytes(range(256)) + b"\r\n" * 3
    assert Put(body, 1, 2, 3).encode() == b"put 1 2 3 %d\r\n%b\r\n" % (len(body), body)


def test_validators_return_what_they_accept() -> None:
    assert validate.body(b"x") == b"x"
    assert validate.u32(7, "priority") == 7
    assert validate.job_id(9) == 9
    assert validate.tube_name("foo") == "foo"
    assert validate.integer(3, "n", 0, 5) == 3
    with pytest.raises(InvalidArgument, match="n must be between 0 and 5"):
        validate.integer(6, "n", 0, 5)


# ------------------------------------------------------------------ line lengths


def _first_line(wire: bytes) -> bytes:
    return wire[: wire.index(b"\r\n") + 2]


EXTREMES: list[Command] = [
    Put(b"x" * 1000, U32_MAX, U32_MAX, U32_MAX),
    Use(TUBE_200),
    ReserveWithTimeout(RESERVE_TIMEOUT_MAX),
    ReserveJob(U64_MAX),
    Delete(U64_MAX),
    Release(U64_MAX, U32_MAX, U32_MAX),
    Bury(U64_MAX, U32_MAX),
    Touch(U64_MAX),
    Watch(TUBE_200),
    Ignore(TUBE_200),
    Peek(U64_MAX),
    Kick(U32_MAX),
    KickJob(U64_MAX),
    StatsJob(U64_MAX),
    StatsTube(TUBE_200),
    PauseTube(TUBE_200, U32_MAX),
    Reserve(),
    PeekReady(),
    PeekDelayed(),
    PeekBuried(),
    Stats(),
    ListTubes(),
    ListTubeUsed(),
    ListTubesWatched(),
    Quit(),
]


def test_extremes_cover_every_command() -> None:
    assert {type(command) for command in EXTREMES} == set(ALL_COMMANDS)


@pytest.mark.parametrize("command", EXTREMES, ids=case_id)
def test_every_line_fits_in_224_bytes(command: Command) -> None:
    line = _first_line(command.encode())
    assert len(line) <= MAX_LINE
    assert line.count(b"\r") == 1
    assert b"\n" not in line[:-1]
    assert b"\x00" not in line


def test_longest_line_is_exactly_224_bytes() -> None:
    assert len(PauseTube(TUBE_200, U32_MAX).encode()) == MAX_LINE


# ------------------------------------------------------------------ value semantics


def test_commands_are_immutable() -> None:
    put = Put(b"x")
    with pytest.raises(AttributeError):
        put.priority = 5  # type: ignore[misc]  # mypy refuses it too
    with pytest.raises(AttributeError):
        del put.body
    with pytest.raises(AttributeError):
        Reserve().extra = 1  # type: ignore[attr-defined]


def test_commands_compare_by_type_and_fields() -> None:
    assert Put(b"x", 1, 2, 3) == Put(b"x", 1, 2, 3)
    assert Put(b"x", 1, 2, 3) != Put(b"x", 1, 2, 4)
    assert Reserve() == Reserve()
    assert PeekReady() != PeekDelayed()
    assert Use("foo") != Watch("foo")
    assert Delete(1) != Touch(1)
    assert Delete(1) != 1
    assert Delete(1).__eq__(1) is NotImplemented
    assert hash(Put(b"x", 1, 2, 3)) == hash(Put(b"x", 1, 2, 3))
    assert len({Use("a"), Use("a"), Watch("a"), Use("b")}) == 3


def test_command_repr() -> None:
    assert repr(Put(b"hi", 1, 2, 3)) == "Put(body=b'hi', priority=1, delay=2, ttr=3)"
    assert repr(Reserve()) == "Reserve()"
    assert repr(Use("foo")) == "Use(tube='foo')"
    assert repr(Release(1, 2, 3)) == "Release(id=1, priority=2, delay=3)"


def test_base_command_encodes_its_word() -> None:
    assert Command().encode() == b"\r\n"


def test_commands_survive_copy_and_pickle() -> None:
    # Immutable value objects copy and pickle like the events do (fields rebuilt from the
    # private slots, without re-running the client-side checks).
    for command, _ in GOLDEN_COMMANDS:
        assert copy.copy(command) == command
        assert copy.deepcopy([command]) == [command]
        assert pickle.loads(pickle.dumps(command)) == command


def test_events_are_frozen_values() -> None:
    assert Inserted(5) == Inserted(5)
    assert Inserted(5) != Inserted(6)
    assert Buried() != Buried(1)
    assert Kicked() != Kicked(0)
    assert NotFound() == NotFound()
    assert Reserved(1, b"a") == Reserved(1, b"a")
    assert Using("a") != Using("b")
    with pytest.raises(AttributeError):
        Inserted(5).id = 6  # type: ignore[misc]
    with pytest.raises(AttributeError):
        NotFound().extra = 1  # type: ignore[attr-defined]
    assert pickle.loads(pickle.dumps(Reserved(1, b"\x00"))) == Reserved(1, b"\x00")
    assert copy.deepcopy(Buried(3)) == Buried(3)
    assert hash(Reserved(1, b"a")) == hash(Reserved(1, b"a"))
    assert Inserted(5) != Buried(5)
    assert repr(Reserved(1, b"a")) == "Reserved(id=1, body=b'a')"
    assert repr(NotFound()) == "NotFound()"
    match Reserved(7, b"x"):
        case Reserved(job_id, body):
            assert (job_id, body) == (7, b"x")
        case _:
            raise AssertionError("events match by position")


# ------------------------------------------------------------------ the error tree

_REPLY_ERRORS: dict[type[CommandError], str] = {
    NotFoundError: "NOT_FOUND",
    TimedOutError: "TIMED_OUT",
    DeadlineSoonError: "DEADLINE_SOON",
    JobTooBigError: "JOB_TOO_BIG",
    BuriedError: "BURIED",
    DrainingError: "DRAINING",
    NotIgnoredError: "NOT_IGNORED",
    ExpectedCrlfError: "EXPECTED_CRLF",
    OutOfMemoryError: "OUT_OF_MEMORY",
    InternalError: "INTERNAL_ERROR",
    BadFormatError: "BAD_FORMAT",
    UnknownCommandError: "UNKNOWN_COMMAND",
}


@pytest.mark.parametrize("cls", list(_REPLY_ERRORS), ids=lambda cls: cls.__name__)
def test_command_errors_name_their_reply(cls: type[CommandError]) -> None:
    assert cls.reply == _REPLY_ERRORS[cls]
    assert issubclass(cls, CommandError)
    assert not issubclass(cls, (ProtocolError, ConnectionError, ValueError, TypeError))
    # every reply word is an event word the client can produce
    assert any(type(event).word == cls.reply.encode() for event, _ in GOLDEN_EVENTS)


def test_server_errors() -> None:
    for cls in (OutOfMemoryError, InternalError, BadFormatError, UnknownCommandError):
        assert issubclass(cls, ServerError)
    assert not issubclass(NotFoundError, ServerError)


def test_buried_error_job_id() -> None:
    assert BuriedError("buried", 5).job_id == 5
    assert BuriedError("buried", job_id=7).job_id == 7
    error = BuriedError("buried")
    assert error.job_id is None
    assert str(error) == "buried"


def test_error_families() -> None:
    assert Error is JackstalkError
    for cls in (InvalidArgument, ArgumentTypeError, ProtocolError, ConnectionClosedError):
        assert issubclass(cls, JackstalkError)
    assert issubclass(ConnectionClosedError, ConnectionError)
    assert not issubclass(ProtocolError, CommandError)
    assert not issubclass(InvalidArgument, CommandError)


def test_put_refuses_a_body_over_the_size_field(monkeypatch: pytest.MonkeyPatch) -> None:
    # A body over 2**32-1 bytes cannot be described by the size field; shrink the limit
    # rather than allocate 4 GiB.
    from jackstalk._protocol import commands as _commands

    monkeypatch.setattr(_commands, "_U32_MAX", 3)
    monkeypatch.setattr(validate, "U32_MAX", 3)
    with pytest.raises(InvalidArgument, match="over the protocol's limit"):
        Put(b"four", 0, 0, 0)
    assert Put(b"thr", 0, 0, 0).body == b"thr"
