"""The client-role ``Connection``: framing every reply, protocol errors, EOF, tube tracking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    LIST_TUBES_YAML,
    MAX_LINE,
    REPLY_CASES,
    TUBE_200,
    U64_MAX,
    case_id,
    drain,
    pending,
    pending_connection,
    state,
    watching,
)

import jackstalk
from jackstalk._protocol.commands import (
    ALL_COMMANDS,
    Bury,
    Command,
    Delete,
    Ignore,
    Kick,
    KickJob,
    ListTubes,
    ListTubeUsed,
    Peek,
    Put,
    Quit,
    Release,
    Reserve,
    Stats,
    StatsJob,
    Touch,
    Use,
    Watch,
)
from jackstalk._protocol.connection import Connection, ConnectionState
from jackstalk._protocol.errors import (
    ArgumentTypeError,
    ConnectionClosedError,
    InvalidArgument,
    JackstalkError,
    ProtocolError,
)
from jackstalk._protocol.events import (
    NEED_DATA,
    BadFormat,
    Buried,
    Closed,
    Deleted,
    Event,
    Found,
    Inserted,
    Kicked,
    NotFound,
    NotIgnored,
    Ok,
    Reserved,
    Touched,
    Using,
    Watching,
)

# ------------------------------------------------------------------ every reply, three ways


@pytest.mark.parametrize(("command", "event"), REPLY_CASES, ids=case_id)
def test_reply_fed_whole(command: Command, event: Event) -> None:
    conn = pending_connection(command)
    conn.receive_data(event.encode())
    assert conn.next_event() == event
    assert conn.next_event() is NEED_DATA
    assert pending(conn) == ()
    assert state(conn) is ConnectionState.OPEN


@pytest.mark.parametrize(("command", "event"), REPLY_CASES, ids=case_id)
def test_reply_fed_one_byte_at_a_time(command: Command, event: Event) -> None:
    conn = pending_connection(command)
    wire = event.encode()
    assert conn.next_event() is NEED_DATA
    for i in range(len(wire) - 1):
        conn.receive_data(wire[i : i + 1])
        assert conn.next_event() is NEED_DATA, f"event before byte {i + 1} of {wire!r}"
        assert pending(conn) == (command,)
    conn.receive_data(wire[-1:])
    assert conn.next_event() == event
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(("command", "event"), REPLY_CASES, ids=case_id)
def test_reply_with_trailing_data_kept_for_the_next_event(command: Command, event: Event) -> None:
    conn = pending_connection(command, Touch(1))
    conn.receive_data(event.encode() + b"TOUC")
    assert conn.next_event() == event
    assert pending(conn) == (Touch(1),)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"HED\r\n")
    assert conn.next_event() == Touched()
    assert conn.next_event() is NEED_DATA


@pytest.mark.parametrize(("command", "event"), REPLY_CASES, ids=case_id)
def test_reply_then_a_whole_last_reply_in_one_read(command: Command, event: Event) -> None:
    # The worker's shape: a delete and the next reserve answered in one read. The second
    # reply is the last one due, so it is parsed from what is left of the read as it is.
    conn = pending_connection(command, Reserve())
    conn.receive_data(event.encode() + b"RESERVED 7 3\r\nabc\r\n")
    assert conn.next_event() == event
    assert conn.next_event() == Reserved(7, b"abc")
    assert conn.next_event() is NEED_DATA
    assert pending(conn) == ()


def test_reply_cases_cover_every_command_but_quit() -> None:
    assert {type(command) for command, _ in REPLY_CASES} == set(ALL_COMMANDS) - {Quit}


def test_pipelined_replies_in_one_read() -> None:
    # Every case is valid on a fresh connection; leave out the ones that change the tube
    # state so the rest stay valid when all are pipelined on one connection.
    cases = [
        (command, event)
        for command, event in REPLY_CASES
        if not isinstance(event, Using | Watching)
    ]
    conn = Connection()
    for command, _ in cases:
        conn.send(command)
    conn.receive_data(b"".join(event.encode() for _, event in cases))
    assert drain(conn) == [event for _, event in cases]
    assert pending(conn) == ()
    assert len(cases) > 100


def test_captured_list_tubes_reply() -> None:
    conn = pending_connection(ListTubes())
    conn.receive_data(b"OK 36\r\n---\n- default\n- emails\n- true\n- 123\n\r\n")
    assert conn.next_event() == Ok(LIST_TUBES_YAML)


def test_body_may_look_like_replies() -> None:
    body = b"INSERTED 5\r\nRESERVED 1 3\r\n\r\n\r\n"
    conn = pending_connection(Reserve(), Delete(1))
    conn.receive_data(Reserved(7, body).encode() + b"DELETED\r\n")
    assert drain(conn) == [Reserved(7, body), Deleted()]


def test_large_body_in_pieces() -> None:
    body = bytes(range(256)) * 1000
    conn = pending_connection(Peek(3))
    wire = Found(3, body).encode()
    pieces = [wire[start : start + 999] for start in range(0, len(wire), 999)]
    for piece in pieces[:-1]:
        conn.receive_data(piece)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(pieces[-1])
    assert conn.next_event() == Found(3, body)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 100_000])
def test_reserved_bodies_of_every_size_whole_and_split(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    wire = Reserved(9, body).encode()
    conn = pending_connection(Reserve(), Reserve(), max_body=100_000)
    conn.receive_data(wire + wire[:-1])
    assert conn.next_event() == Reserved(9, body)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(wire[-1:])
    assert conn.next_event() == Reserved(9, body)


def test_shared_one_word_events_are_equal_to_fresh_ones() -> None:
    conn = pending_connection(Release(1), Bury(1), KickJob(1), Delete(1))
    conn.receive_data(b"BURIED\r\nBURIED\r\nKICKED\r\nNOT_FOUND\r\n")
    assert drain(conn) == [Buried(), Buried(), Kicked(), NotFound()]


# ------------------------------------------------------------------ protocol errors

PROTOCOL_ERRORS: list[tuple[str, list[Command], bytes]] = [
    ("unsolicited", [], b"INSERTED 1\r\n"),
    ("unsolicited partial", [], b"I"),
    ("wrong word", [Delete(1)], b"INSERTED 1\r\n"),
    ("lower case word", [Put(b"x")], b"inserted 1\r\n"),
    ("unknown word", [Delete(1)], b"HELLO\r\n"),
    ("empty line", [Delete(1)], b"\r\n"),
    ("reply to quit-less put", [Put(b"x")], b"DELETED\r\n"),
    ("buried id to release", [Release(1)], b"BURIED 5\r\n"),
    ("bare buried to put", [Put(b"x")], b"BURIED\r\n"),
    ("kicked without count to kick", [Kick(1)], b"KICKED\r\n"),
    ("kicked count to kick-job", [KickJob(1)], b"KICKED 5\r\n"),
    ("field on one-word reply", [Delete(1)], b"DELETED 1\r\n"),
    ("trailing space", [Delete(1)], b"DELETED \r\n"),
    ("reserved without size", [Reserve()], b"RESERVED 5\r\n"),
    ("reserved extra field", [Reserve()], b"RESERVED 5 1 1\r\nx\r\n"),
    ("ok without size", [Stats()], b"OK\r\n"),
    ("found to reserve", [Reserve()], b"FOUND 1 1\r\nx\r\n"),
    # Whole single replies that the one-reply fast parse would take, sent to commands that
    # cannot get them.
    ("deleted to put", [Put(b"x")], b"DELETED\r\n"),
    ("inserted to reserve", [Reserve()], b"INSERTED 1\r\n"),
    ("reserved to put", [Put(b"x")], b"RESERVED 1 1\r\nx\r\n"),
    ("ok to put", [Put(b"x")], b"OK 1\r\nx\r\n"),
    ("plus sign", [Put(b"x")], b"INSERTED +5\r\n"),
    ("minus sign", [Put(b"x")], b"INSERTED -5\r\n"),
    ("underscore", [Put(b"x")], b"INSERTED 1_0\r\n"),
    ("double space", [Put(b"x")], b"INSERTED  5\r\n"),
    ("trailing space after number", [Put(b"x")], b"INSERTED 5 \r\n"),
    ("tab", [Put(b"x")], b"INSERTED\t5\r\n"),
    ("letters", [Put(b"x")], b"INSERTED abc\r\n"),
    ("hex", [Put(b"x")], b"INSERTED 0x10\r\n"),
    ("empty number", [Put(b"x")], b"INSERTED \r\n"),
    ("non-ascii digit", [Put(b"x")], "INSERTED \u0665\r\n".encode()),
    ("superscript digit", [Put(b"x")], b"INSERTED \xb2\r\n"),
    ("id zero", [Put(b"x")], b"INSERTED 0\r\n"),
    ("buried id zero", [Put(b"x")], b"BURIED 0\r\n"),
    ("id over u64", [Put(b"x")], b"INSERTED 18446744073709551616\r\n"),
    ("21 digits", [Put(b"x")], b"INSERTED 000000000000000000001\r\n"),
    ("reserved id zero", [Reserve()], b"RESERVED 0 1\r\nx\r\n"),
    ("found id zero", [Peek(1)], b"FOUND 0 1\r\nx\r\n"),
    ("negative size", [Reserve()], b"RESERVED 1 -1\r\n"),
    ("plus size", [Stats()], b"OK +1\r\nx\r\n"),
    ("watching zero", [Watch("foo")], b"WATCHING 0\r\n"),
    ("kicked sign", [Kick(1)], b"KICKED -1\r\n"),
    ("cr inside line", [Put(b"x")], b"INSERTED 5\r\r\n"),
    ("nul in line", [Put(b"x")], b"INSERTED 5\x00\r\n"),
    ("bare lf does not end a line", [Delete(1)], b"DELETED\nDELETED\r\n"),
    ("invalid tube in using", [ListTubeUsed()], b"USING -foo\r\n"),
    ("tube with space in using", [ListTubeUsed()], b"USING a b\r\n"),
    ("non-ascii tube in using", [ListTubeUsed()], "USING t\u00fcbe\r\n".encode()),
    ("tube over 200 in using", [ListTubeUsed()], b"USING " + b"t" * 201 + b"\r\n"),
    ("empty tube in using", [ListTubeUsed()], b"USING \r\n"),
    ("using other after use", [Use("foo")], b"USING other\r\n"),
    ("watch count too high", [Watch("foo")], b"WATCHING 3\r\n"),
    ("watch count too low", [Watch("foo")], b"WATCHING 1\r\n"),
    ("watch twice counted twice", [Watch("default")], b"WATCHING 2\r\n"),
    ("ignore count wrong", [Ignore("default")], b"WATCHING 1\r\n"),
    ("ignore unwatched count wrong", [Ignore("foo")], b"WATCHING 0\r\n"),
    ("body without crlf", [Reserve()], b"RESERVED 1 3\r\nabcXY"),
    ("body with lf only", [Reserve()], b"RESERVED 1 3\r\nabc\n\r"),
    ("body too short", [Peek(1)], b"FOUND 1 2\r\nabc\r\n"),
    ("ok body without crlf", [Stats()], b"OK 1\r\nx\n\n"),
    ("line of 224 bytes without crlf", [Delete(1)], b"A" * MAX_LINE),
    ("line over 224 bytes with crlf", [Delete(1)], b"A" * 300 + b"\r\n"),
    ("line of 225 bytes with crlf", [Put(b"x")], b"INSERTED " + b"0" * 214 + b"\r\n"),
]


@pytest.mark.parametrize(
    ("commands", "data"),
    [(p, d) for _, p, d in PROTOCOL_ERRORS],
    ids=[name for name, _, _ in PROTOCOL_ERRORS],
)
def test_protocol_error_poisons_the_connection(commands: list[Command], data: bytes) -> None:
    conn = pending_connection(*commands)
    conn.receive_data(data)
    with pytest.raises(ProtocolError):
        drain(conn)
    assert state(conn) is ConnectionState.ERROR
    with pytest.raises(ProtocolError):
        conn.next_event()
    with pytest.raises(ProtocolError):
        conn.send(Delete(1))
    conn.receive_data(b"DELETED\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()
    conn.abort()  # already failed: the first error is kept
    with pytest.raises(ProtocolError):
        conn.next_event()


@pytest.mark.parametrize(
    ("commands", "data"),
    [(p, d) for _, p, d in PROTOCOL_ERRORS],
    ids=[name for name, _, _ in PROTOCOL_ERRORS],
)
def test_protocol_error_byte_by_byte(commands: list[Command], data: bytes) -> None:
    conn = pending_connection(*commands)

    def feed() -> None:
        for i in range(len(data)):
            conn.receive_data(data[i : i + 1])
            drain(conn)

    with pytest.raises(ProtocolError):
        feed()
    assert state(conn) is ConnectionState.ERROR


def test_protocol_error_is_not_a_command_error() -> None:
    assert issubclass(ProtocolError, JackstalkError)
    assert not issubclass(ProtocolError, ConnectionError)


def test_unsolicited_data_after_the_replies() -> None:
    conn = pending_connection(Delete(1))
    conn.receive_data(b"DELETED\r\nX")
    assert conn.next_event() == Deleted()
    with pytest.raises(ProtocolError, match="unsolicited"):
        conn.next_event()


def test_long_line_raised_at_224_bytes_without_waiting() -> None:
    conn = pending_connection(Delete(1))
    conn.receive_data(b"D" * (MAX_LINE - 2) + b"\r")
    assert conn.next_event() is NEED_DATA  # 223 bytes: a 224-byte line may still end here
    conn.receive_data(b"X")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_long_line_raised_at_224_bytes_in_small_pieces() -> None:
    conn = pending_connection(Delete(1))
    for _ in range(MAX_LINE // 8 - 1):
        conn.receive_data(b"ABCDEFGH")
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b"ABCDEFGH")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_reply_line_of_208_bytes_is_accepted() -> None:
    conn = pending_connection(Use(TUBE_200))
    wire = b"USING " + TUBE_200.encode() + b"\r\n"
    assert len(wire) == 208
    conn.receive_data(wire)
    assert conn.next_event() == Using(TUBE_200)


def test_body_over_max_body_raised_after_the_header() -> None:
    conn = pending_connection(Reserve(), max_body=10)
    conn.receive_data(b"RESERVED 1 11\r")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\n")
    with pytest.raises(ProtocolError, match="max_body"):
        conn.next_event()
    assert state(conn) is ConnectionState.ERROR


def test_huge_declared_body_raised_before_buffering() -> None:
    conn = pending_connection(Stats())
    conn.receive_data(b"OK 18446744073709551615\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_body_of_exactly_max_body_is_accepted() -> None:
    conn = pending_connection(Reserve(), Peek(1), Stats(), max_body=10)
    conn.receive_data(
        Reserved(1, b"0123456789").encode() + Found(1, b"").encode() + Ok(b"abcdefghij").encode()
    )
    assert drain(conn) == [Reserved(1, b"0123456789"), Found(1, b""), Ok(b"abcdefghij")]
    assert conn.max_body == 10


def test_max_body_zero() -> None:
    conn = pending_connection(Reserve(), Reserve(), max_body=0)
    conn.receive_data(b"RESERVED 1 0\r\n\r\nRESERVED 2 1\r\n")
    assert conn.next_event() == Reserved(1, b"")
    with pytest.raises(ProtocolError):
        conn.next_event()


def test_max_body_validation() -> None:
    assert Connection().max_body == 2**30
    with pytest.raises(InvalidArgument):
        Connection(max_body=-1)
    with pytest.raises(ArgumentTypeError):
        Connection(max_body=True)


def test_body_not_followed_by_crlf_waits_for_both_bytes() -> None:
    conn = pending_connection(Reserve())
    conn.receive_data(b"RESERVED 1 3\r\nabc")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\r")
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"X")
    with pytest.raises(ProtocolError, match="body"):
        conn.next_event()


# ------------------------------------------------------------------ end of stream


def test_eof_with_nothing_pending_is_closed() -> None:
    conn = Connection()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    assert state(conn) is ConnectionState.CLOSED
    assert conn.next_event() == Closed()
    with pytest.raises(ConnectionClosedError):
        conn.send(Delete(1))


def test_eof_after_all_replies_is_closed() -> None:
    conn = pending_connection(Delete(1))
    conn.receive_data(b"DELETED\r\n")
    conn.receive_data(b"")
    assert drain(conn) == [Deleted(), Closed()]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"DELE",
        b"DELETED\r",
        b"RESERVED 1 5\r\n",
        b"RESERVED 1 5\r\nab",
        b"RESERVED 1 5\r\nabcde\r",
    ],
    ids=repr,
)
def test_eof_with_replies_pending(data: bytes) -> None:
    command: Command = Reserve() if data.startswith(b"R") else Delete(1)
    conn = pending_connection(command)
    if data:
        conn.receive_data(data)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ConnectionClosedError) as info:
        conn.next_event()
    assert isinstance(info.value, ConnectionError)
    assert state(conn) is ConnectionState.ERROR
    with pytest.raises(ConnectionClosedError):
        conn.next_event()
    with pytest.raises(ConnectionClosedError):
        conn.send(Delete(1))


def test_eof_with_two_pending_after_one_reply() -> None:
    conn = pending_connection(Delete(1), Delete(2))
    conn.receive_data(b"DELETED\r\n")
    conn.receive_data(b"")
    assert conn.next_event() == Deleted()
    with pytest.raises(ConnectionClosedError, match="1 repl"):
        conn.next_event()


def test_data_after_eof_is_a_caller_bug() -> None:
    conn = Connection()
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")


def test_connection_closed_error_is_a_connection_error() -> None:
    assert issubclass(ConnectionClosedError, ConnectionError)
    assert issubclass(ConnectionClosedError, JackstalkError)


# ------------------------------------------------------------------ abort and quit


def test_abort() -> None:
    conn = pending_connection(Delete(1))
    conn.abort()
    assert state(conn) is ConnectionState.ERROR
    with pytest.raises(ConnectionClosedError, match="1 command"):
        conn.next_event()
    with pytest.raises(ConnectionClosedError):
        conn.send(Delete(2))
    conn.abort()
    with pytest.raises(ConnectionClosedError):
        conn.next_event()


def test_abort_with_nothing_pending() -> None:
    conn = Connection()
    conn.abort()
    with pytest.raises(ConnectionClosedError):
        conn.send(Stats())


def test_abort_after_a_clean_close() -> None:
    conn = Connection()
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    conn.abort()
    with pytest.raises(ConnectionClosedError):
        conn.next_event()


def test_quit() -> None:
    conn = pending_connection(Delete(1))
    assert conn.send(Quit()) == b"quit\r\n"
    assert state(conn) is ConnectionState.CLOSING
    assert pending(conn) == (Delete(1),)
    with pytest.raises(ConnectionClosedError):
        conn.send(Delete(2))
    with pytest.raises(ConnectionClosedError):
        conn.send(Quit())
    conn.receive_data(b"DELETED\r\n")
    assert conn.next_event() == Deleted()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() == Closed()
    assert state(conn) is ConnectionState.CLOSED
    with pytest.raises(ConnectionClosedError):
        conn.send(Delete(2))


def test_quit_then_eof_with_replies_pending() -> None:
    conn = pending_connection(Delete(1))
    conn.send(Quit())
    conn.receive_data(b"")
    with pytest.raises(ConnectionClosedError):
        conn.next_event()


def test_data_after_quit_with_nothing_pending_is_unsolicited() -> None:
    conn = Connection()
    conn.send(Quit())
    conn.receive_data(b"DELETED\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()


# ------------------------------------------------------------------ send


def test_send_returns_the_encoding_and_queues() -> None:
    conn = Connection()
    assert pending(conn) == ()
    assert conn.send(Put(b"hi", 1, 2, 3)) == b"put 1 2 3 2\r\nhi\r\n"
    assert conn.send(Reserve()) == b"reserve\r\n"
    assert pending(conn) == (Put(b"hi", 1, 2, 3), Reserve())
    assert state(conn) is ConnectionState.OPEN


def test_send_refuses_non_commands() -> None:
    conn = Connection()
    with pytest.raises(ArgumentTypeError):
        conn.send(b"stats\r\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        conn.send("stats")  # type: ignore[arg-type]
    assert pending(conn) == ()


def test_need_data_with_nothing_pending() -> None:
    conn = Connection()
    assert conn.next_event() is NEED_DATA
    conn.send(Delete(1))
    assert conn.next_event() is NEED_DATA


# ------------------------------------------------------------------ used / watching tracking


def _exchange(conn: Connection, command: Command, reply: bytes) -> Event:
    conn.send(command)
    conn.receive_data(reply)
    event = conn.next_event()
    assert isinstance(event, Event)
    return event


def test_initial_tube_state() -> None:
    conn = Connection()
    assert conn.used == "default"
    assert watching(conn) == ("default",)


def test_use_is_tracked_when_confirmed() -> None:
    conn = Connection()
    conn.send(Use("foo"))
    assert conn.used == "default"
    conn.receive_data(b"USING foo\r\n")
    assert conn.next_event() == Using("foo")
    assert conn.used == "foo"


def test_failed_use_is_not_tracked() -> None:
    conn = Connection()
    assert _exchange(conn, Use("foo"), b"BAD_FORMAT\r\n") == BadFormat()
    assert conn.used == "default"


def test_list_tube_used_updates_used() -> None:
    conn = Connection()
    assert _exchange(conn, ListTubeUsed(), b"USING emails\r\n") == Using("emails")
    assert conn.used == "emails"


def test_watch_and_ignore_are_tracked() -> None:
    conn = Connection()
    assert _exchange(conn, Watch("foo"), b"WATCHING 2\r\n") == Watching(2)
    assert watching(conn) == ("default", "foo")
    # watching a tube twice keeps the count
    assert _exchange(conn, Watch("foo"), b"WATCHING 2\r\n") == Watching(2)
    assert watching(conn) == ("default", "foo")
    assert _exchange(conn, Watch("default"), b"WATCHING 2\r\n") == Watching(2)
    # ignoring a tube that is not watched is not an error
    assert _exchange(conn, Ignore("bar"), b"WATCHING 2\r\n") == Watching(2)
    assert watching(conn) == ("default", "foo")
    assert _exchange(conn, Ignore("default"), b"WATCHING 1\r\n") == Watching(1)
    assert watching(conn) == ("foo",)
    assert _exchange(conn, Ignore("foo"), b"NOT_IGNORED\r\n") == NotIgnored()
    assert watching(conn) == ("foo",)
    assert _exchange(conn, Ignore("default"), b"WATCHING 1\r\n") == Watching(1)
    assert watching(conn) == ("foo",)


def test_failed_watch_is_not_tracked() -> None:
    conn = Connection()
    assert _exchange(conn, Watch("foo"), b"OUT_OF_MEMORY\r\n") != Watching(2)
    assert watching(conn) == ("default",)


def test_tracking_follows_pipelined_replies_in_order() -> None:
    conn = Connection()
    for command in (Use("a"), Watch("x"), Use("b"), Watch("y"), Ignore("x"), ListTubeUsed()):
        conn.send(command)
    conn.receive_data(b"USING a\r\nWATCHING 2\r\nUSING b\r\nWATCHING 3\r\n")
    assert conn.next_event() == Using("a")
    assert conn.used == "a"
    assert watching(conn) == ("default",)
    drain(conn)
    assert conn.used == "b"
    assert watching(conn) == ("default", "x", "y")
    conn.receive_data(b"WATCHING 2\r\nUSING b\r\n")
    drain(conn)
    assert watching(conn) == ("default", "y")
    assert conn.used == "b"


def test_watching_mismatch_after_ignore_of_unwatched() -> None:
    conn = Connection()
    _exchange(conn, Watch("foo"), b"WATCHING 2\r\n")
    conn.send(Ignore("bar"))
    conn.receive_data(b"WATCHING 1\r\n")
    with pytest.raises(ProtocolError, match="watches"):
        conn.next_event()


def test_watching_property_is_a_snapshot() -> None:
    conn = Connection()
    watching = conn.watching
    _exchange(conn, Watch("foo"), b"WATCHING 2\r\n")
    assert watching == ("default",)


# ------------------------------------------------------------------ other replies details


def test_inserted_and_buried_ids() -> None:
    conn = pending_connection(Put(b""), Put(b""), Put(b""))
    conn.receive_data(b"INSERTED 1\r\nBURIED 18446744073709551615\r\nINSERTED 007\r\n")
    assert drain(conn) == [Inserted(1), Buried(U64_MAX), Inserted(7)]


def test_kicked_count_may_be_zero() -> None:
    conn = pending_connection(Kick(5))
    conn.receive_data(b"KICKED 0\r\n")
    assert conn.next_event() == Kicked(0)


def test_stats_job_not_found() -> None:
    conn = pending_connection(StatsJob(5))
    conn.receive_data(b"NOT_FOUND\r\n")
    assert conn.next_event() == NotFound()


# ------------------------------------------------------------------ no I/O imports


def test_import_jackstalk_imports_no_io_modules() -> None:
    # -I ignores PYTHONPATH and the user site; -S also skips site-packages' .pth files, because
    # this machine's global Python preloads ``threading`` from one of them before any of our
    # code runs. The package is made importable by putting its parent directory on sys.path
    # by hand, wherever it is installed (src/ in a checkout, site-packages when installed).
    parent = str(Path(jackstalk.__file__).resolve().parent.parent)
    code = (
        "import sys\n"
        f"sys.path.insert(0, {parent!r})\n"
        "import jackstalk\n"
        "assert jackstalk.__file__.startswith(sys.path[0]), jackstalk.__file__\n"
        "banned = ('socket', 'asyncio', 'threading', 'trio', 'yaml')\n"
        "print(','.join(sorted(m for m in banned if m in sys.modules)))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


# ------------------------------------------------------------------ reply size bounds


def test_a_job_body_over_max_body_is_refused_before_it_is_read() -> None:
    conn = Connection(max_body=1000)
    conn.send(Reserve())
    conn.receive_data(b"RESERVED 1 1001\r\n")
    with pytest.raises(jackstalk.ReplyTooLargeError, match="1001-byte job body"):
        conn.next_event()
    assert conn.state is ConnectionState.ERROR
    within = Connection(max_body=1000)
    within.send(Reserve())
    within.receive_data(b"RESERVED 1 1000\r\n" + b"x" * 1000 + b"\r\n")
    assert within.next_event() == Reserved(1, b"x" * 1000)


def test_a_document_is_bounded_apart_from_job_bodies() -> None:
    # Stats and lists may exceed a small max_body (a client's max_job_size): they have
    # their own bound, 16 MiB by default.
    conn = Connection(max_body=10)
    conn.send(Stats())
    conn.receive_data(b"OK 20\r\n---\nid: 123456789012\r\n")
    assert conn.next_event() == Ok(b"---\nid: 123456789012")
    assert conn.max_document == 16 * 2**20
    small = Connection(max_document=10)
    small.send(Stats())
    small.receive_data(b"OK 11\r\n")
    with pytest.raises(jackstalk.ReplyTooLargeError, match="11-byte document"):
        small.next_event()


def test_a_large_body_is_read_at_about_its_own_size() -> None:
    import tracemalloc

    size = 8 * 2**20
    chunk = b"x" * 65536
    conn = Connection()
    conn.send(Reserve())
    tracemalloc.start()
    try:
        conn.receive_data(b"RESERVED 7 %d\r\n" % size + chunk)
        assert conn.next_event() is NEED_DATA
        for _ in range(size // len(chunk) - 1):
            conn.receive_data(chunk)
            assert conn.next_event() is NEED_DATA
        _, reading = tracemalloc.get_traced_memory()
        conn.receive_data(b"\r\n")
        event = conn.next_event()
        _, whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(event, Reserved)
    assert event.id == 7
    assert event.body == b"x" * size
    # While it arrives, the body is held once (a growing buffer would copy it as it grows);
    # handing it out as bytes copies it once more.
    assert reading < 1.1 * size, reading
    assert whole < 2.1 * size, whole
    assert conn.idle


@pytest.mark.parametrize("size", [65536, 65537, 200_000])
@pytest.mark.parametrize("piece", [1, 999, 65536, 10**6])
def test_large_bodies_read_alike_in_any_pieces(size: int, piece: int) -> None:
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wire = Reserved(1, body).encode() + b"DELETED\r\n" + Found(2, b"ab").encode()
    if piece == 1:
        pieces = [
            wire[:100],
            wire[100:-30],
            *(wire[i : i + 1] for i in range(len(wire) - 30, len(wire))),
        ]
    else:
        pieces = [wire[start : start + piece] for start in range(0, len(wire), piece)]
    conn = pending_connection(Reserve(), Delete(1), Peek(2))
    events = []
    for chunk in pieces:
        conn.receive_data(chunk)
        events += drain(conn)
    assert events == [Reserved(1, body), Deleted(), Found(2, b"ab")]


def test_a_large_body_cut_short_by_the_end_of_the_stream() -> None:
    conn = pending_connection(Reserve())
    conn.receive_data(b"RESERVED 1 100000\r\n" + b"x" * 5000)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"")
    with pytest.raises(ConnectionClosedError):
        conn.next_event()


def test_a_large_body_without_its_crlf_is_refused() -> None:
    conn = pending_connection(Reserve())
    conn.receive_data(b"RESERVED 1 100000\r\n" + b"x" * 100000 + b"XY")
    with pytest.raises(ProtocolError, match="not followed"):
        conn.next_event()
