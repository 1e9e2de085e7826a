"""Hypothesis properties of both roles: chunking never matters, garbage never hangs or crashes,
and each role reads back exactly what the other one writes."""

from __future__ import annotations

import importlib
import warnings

import pytest
from helpers import (
    TubeModel,
    chunkings,
    commands,
    drain,
    exchanges,
    pending,
    server_drain,
    state,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from jackstalk._protocol.commands import Command, Delete, Put, Quit, Use
from jackstalk._protocol.connection import Connection, ConnectionState
from jackstalk._protocol.errors import ConnectionClosedError, ProtocolError
from jackstalk._protocol.events import NEED_DATA, Closed, Deleted, Event, Inserted, Using
from jackstalk._protocol.server_connection import Rejected, ServerConnection

# When a property fails, Hypothesis imports libcst to write its failure patch, and libcst warns
# on import (mypy_extensions.TypedDict). With pyproject's ``filterwarnings = error`` that turns
# the failure into an INTERNALERROR that hides the falsifying example, so import it once here,
# quietly, while it is harmless.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        importlib.import_module("libcst")
    except ImportError:  # pragma: no cover - libcst is optional
        pass

# Hypothesis' own caches key on tuples that mix bytes and ints; on a rare hash collision
# comparing two keys raises BytesWarning, an error under ``python -bb`` (seen about once in
# ten runs). Ignore it in Hypothesis' frames only, so jackstalk's own code stays checked.
pytestmark = pytest.mark.filterwarnings("ignore::BytesWarning:hypothesis")

# Example counts stay at Hypothesis' default; no deadline, so a slow CI box cannot flake.
SETTINGS = settings(deadline=None)


def _client_events(pairs: list[tuple[Command, Event]], pieces: list[bytes]) -> Connection:
    conn = Connection()
    for command, _ in pairs:
        conn.send(command)
    seen: list[Event | Closed] = []
    for piece in pieces:
        if piece:  # b"" would mean end of stream
            conn.receive_data(piece)
            seen += drain(conn)
    conn.receive_data(b"")
    seen += drain(conn)
    assert seen == [event for _, event in pairs] + [Closed()]
    return conn


@SETTINGS
@given(pairs=exchanges(), data=st.data())
def test_any_chunking_of_a_reply_stream_gives_the_same_events(
    pairs: list[tuple[Command, Event]], data: st.DataObject
) -> None:
    wire = b"".join(event.encode() for _, event in pairs)
    whole = _client_events(pairs, [wire] if wire else [])
    chunked = _client_events(pairs, data.draw(chunkings(wire), label="pieces"))
    assert whole.used == chunked.used
    assert whole.watching == chunked.watching
    assert state(whole) is state(chunked) is ConnectionState.CLOSED


@SETTINGS
@given(pairs=exchanges())
def test_tracked_tube_state_matches_the_server(pairs: list[tuple[Command, Event]]) -> None:
    model = TubeModel()
    for command, event in pairs:
        model.apply(command, event)
    conn = _client_events(pairs, [b"".join(event.encode() for _, event in pairs)])
    assert conn.used == model.used
    assert sorted(conn.watching) == sorted(model.watching)


@SETTINGS
@given(pairs=exchanges(), data=st.data())
def test_server_encoded_events_parse_back_on_the_client(
    pairs: list[tuple[Command, Event]], data: st.DataObject
) -> None:
    server = ServerConnection()
    wire = b"".join(server.send(event) for _, event in pairs)
    _client_events(pairs, data.draw(chunkings(wire), label="pieces"))


_NOISE = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"0",
        b"1",
        b"-",
        b"\x00",
        b"INSERTED",
        b"INSERTED 5\r\n",
        b"BURIED",
        b"KICKED",
        b"OK 3\r\nabc\r\n",
        b"RESERVED 1 2\r\n",
        b"FOUND 9 0\r\n\r\n",
        b"USING default\r\n",
        b"WATCHING 1\r\n",
        b"WATCHING 2\r\n",
        b"NOT_FOUND\r\n",
        b"x" * 100,
        b"18446744073709551616",
    ]
)
_GARBAGE = st.one_of(st.binary(max_size=300), st.lists(_NOISE, max_size=30).map(b"".join))


@SETTINGS
@given(
    cmds=st.lists(commands(), max_size=6),
    garbage=_GARBAGE,
    eof=st.booleans(),
    data=st.data(),
)
def test_client_survives_arbitrary_bytes(
    cmds: list[Command], garbage: bytes, eof: bool, data: st.DataObject
) -> None:
    conn = Connection(max_body=1000)
    for command in cmds:
        conn.send(command)
    pieces = data.draw(chunkings(garbage), label="pieces")
    budget = len(garbage) + len(cmds) + 10
    calls = 0
    try:
        for piece in [*pieces, b""] if eof else pieces:
            conn.receive_data(piece)
            while True:
                calls += 1
                assert calls <= budget, "next_event keeps returning without consuming input"
                item = conn.next_event()
                if item is NEED_DATA or isinstance(item, Closed):
                    break
                assert isinstance(item, Event)
    except (ProtocolError, ConnectionClosedError) as error:
        failure: type[Exception] = type(error)
    else:
        if eof:
            assert state(conn) is ConnectionState.CLOSED
            assert pending(conn) == ()
        return
    assert state(conn) is ConnectionState.ERROR
    with pytest.raises(failure):
        conn.next_event()
    with pytest.raises(failure):
        conn.send(Quit())


def _wire_and_expected(cmds: list[Command], *, quit_last: bool) -> tuple[bytes, list[Command]]:
    conn = Connection()
    wire = b"".join(conn.send(command) for command in cmds)
    expected = [
        Put(c.body, c.priority, c.delay, max(c.ttr, 1)) if isinstance(c, Put) else c for c in cmds
    ]
    if quit_last:
        wire += conn.send(Quit())
        expected.append(Quit())
    return wire, expected


@SETTINGS
@given(cmds=st.lists(commands(), max_size=10), quit_last=st.booleans(), data=st.data())
def test_server_parses_what_the_client_sends(
    cmds: list[Command], quit_last: bool, data: st.DataObject
) -> None:
    wire, expected = _wire_and_expected(cmds, quit_last=quit_last)
    server = ServerConnection(max_job_size=1000)
    parsed: list[Command | Rejected | Closed] = []
    for piece in data.draw(chunkings(wire), label="pieces"):
        server.receive_data(piece)
        parsed += server_drain(server)
    server.receive_data(b"")
    parsed += server_drain(server)
    assert parsed == [*expected, Closed()]


def _server_items(pieces: list[bytes]) -> list[Command | Rejected | Closed]:
    server = ServerConnection(max_job_size=20)
    items: list[Command | Rejected | Closed] = []
    for piece in pieces:
        server.receive_data(piece)
        items += server_drain(server, limit=len(piece) + 10)
    server.receive_data(b"")
    items += server_drain(server, limit=10)
    assert items[-1] == Closed()
    return items


_COMMAND_NOISE = st.sampled_from(
    [
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\x00",
        b"7",
        b"-1",
        b"put 1 0 1 3",
        b"put 1 0 1 30",
        b"put 1 0 0 0\r\n",
        b"peek 1",
        b"kick ",
        b"reserve-with-timeout ",
        b"use foo",
        b"pause-tube",
        b"quit",
        b"stats",
        b"y" * 100,
        b"z" * 223,
    ]
)


@SETTINGS
@given(
    garbage=st.one_of(st.binary(max_size=600), st.lists(_COMMAND_NOISE, max_size=40).map(b"".join)),
    data=st.data(),
)
def test_server_survives_arbitrary_bytes_and_ignores_chunking(
    garbage: bytes, data: st.DataObject
) -> None:
    # beanstalkd's reads are windows of 224 bytes counted from where each line (or discarded
    # run) starts, so what it makes of a stream cannot depend on how the stream was split.
    whole = _server_items([garbage] if garbage else [])
    chunked = _server_items(data.draw(chunkings(garbage), label="pieces"))
    assert chunked == whole
    for item in whole:
        assert isinstance(item, Command | Rejected | Closed)


def _outcome(conn: Connection) -> tuple[str, object]:
    """The next reply or NEED_DATA, or the kind of error the connection raises for it."""
    try:
        return ("event", conn.next_event())
    except (ProtocolError, ConnectionClosedError) as error:
        return ("error", type(error))


@SETTINGS
@given(
    command=commands(),
    reply=st.one_of(
        _GARBAGE, exchanges().map(lambda pairs: pairs[0][1].encode() if pairs else b"")
    ),
)
def test_the_fast_lane_reads_as_the_general_parser_does(command: Command, reply: bytes) -> None:
    # The general path: send, receive, next_event.
    general = Connection(max_body=1000)
    general.send(command)
    general.receive_data(reply)
    expected = _outcome(general)
    # The fast lane: the same bytes written and read while idle, handed to try_reply.
    fast = Connection(max_body=1000)
    assert fast.idle
    event = fast.try_reply(command, reply)
    if event is not None:
        assert expected == ("event", event)
        assert fast.idle  # answered: nothing pending, nothing buffered
        assert fast.used == general.used
        assert fast.watching == general.watching
    else:
        assert _outcome(fast) == expected
        assert pending(fast) == pending(general)
        assert state(fast) is state(general)


@SETTINGS
@given(pairs=exchanges())
def test_the_fast_lane_takes_every_well_formed_single_reply_it_can(
    pairs: list[tuple[Command, Event]],
) -> None:
    for command, event in pairs[:1]:  # (later replies depend on the earlier ones)
        conn = Connection()
        answered = conn.try_reply(command, event.encode())
        general = Connection()
        general.send(command)
        general.receive_data(event.encode())
        assert (answered if answered is not None else general.next_event()) == event


def _read_all(conn: Connection, pieces: list[bytes], batched: bool) -> list[object]:
    """Everything ``conn`` reads from ``pieces`` (then the end of the stream): its events in
    order, ``NEED_DATA`` marks where it waited for more, and the error that ended it."""
    seen: list[object] = []
    try:
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            while True:
                if batched:
                    items: list[object] = list(conn.next_events())
                else:
                    item = conn.next_event()
                    items = [] if item is NEED_DATA else [item]
                if not items:
                    seen.append(NEED_DATA)
                    break
                seen += items
                if isinstance(items[-1], Closed):
                    return seen
    except (ProtocolError, ConnectionClosedError) as error:
        seen.append(("error", type(error), str(error)))
    return seen


@SETTINGS
@given(
    pairs=exchanges(),
    tail=st.one_of(st.just(b""), _GARBAGE),
    extra=st.lists(commands(), max_size=3),
    data=st.data(),
)
def test_batched_replies_read_as_one_at_a_time(
    pairs: list[tuple[Command, Event]], tail: bytes, extra: list[Command], data: st.DataObject
) -> None:
    # Well-formed replies, then garbage (for the commands in `extra`), in any chunking:
    # next_events gives the same events, errors and state as next_event called repeatedly.
    wire = b"".join(event.encode() for _, event in pairs) + tail
    pieces = data.draw(chunkings(wire), label="pieces")
    one, batch = Connection(max_body=1000), Connection(max_body=1000)
    for command in [*(command for command, _ in pairs), *extra]:
        one.send(command)
        batch.send(command)
    assert _read_all(batch, pieces, batched=True) == _read_all(one, pieces, batched=False)
    assert state(batch) is state(one)
    assert pending(batch) == pending(one)
    assert (batch.used, batch.watching) == (one.used, one.watching)


def test_batched_replies_take_a_run_of_line_replies_in_one_call() -> None:
    conn = Connection()
    for command in [Put(b"a"), Put(b"b"), Delete(7), Put(b"c"), Use("x")]:
        conn.send(command)
    conn.receive_data(b"INSERTED 1\r\nINSERTED 2\r\nDELETED\r\nINSERTED 3\r\nUSING x\r\n")
    assert conn.next_events() == [Inserted(1), Inserted(2), Deleted(), Inserted(3)]
    assert conn.next_events() == [Using("x")]  # any other reply: one per call
    assert conn.used == "x"
    assert conn.next_events() == []
    assert conn.idle


_LINES = [
    b"INSERTED 1",
    b"INSERTED 42",
    b"INSERTED 0",
    b"INSERTED 007",
    b"INSERTED 18446744073709551615",
    b"INSERTED 18446744073709551616",
    b"INSERTED 123456789012345678901",
    b"INSERTED 0000000000000000000001",
    b"INSERTED ",
    b"INSERTED",
    b"INSERTED  1",
    b"INSERTED 1 2",
    b"INSERTED -1",
    b"INSERTEDX 1",
    b"INSERTED\x001",
    b"BURIED 3",
    b"BURIED",
    b"DELETED",
    b"NOT_FOUND",
    b"JOB_TOO_BIG",
    b"DRAINING",
    b"TOUCHED",
    b"KICKED",
    b"KICKED 2",
    b"USING default",
    b"I" * 300,
]
_LINE_REPLIES = st.sampled_from(_LINES)


@SETTINGS
@given(
    exchange=st.lists(
        st.tuples(st.one_of(st.just(Put(b"x")), st.just(Put(b"x")), commands()), _LINE_REPLIES),
        max_size=12,
    ),
    data=st.data(),
)
def test_batched_line_replies_check_what_the_general_parser_checks(
    exchange: list[tuple[Command, bytes]], data: st.DataObject
) -> None:
    # Line replies that the batch pass takes or must leave to the general parser (wrong
    # command, bad number, extra fields), in any chunking.
    wire = b"".join(line + b"\r\n" for _, line in exchange)
    pieces = data.draw(chunkings(wire), label="pieces")
    one, batch = Connection(), Connection()
    for command, _ in exchange:
        one.send(command)
        batch.send(command)
    assert _read_all(batch, pieces, batched=True) == _read_all(one, pieces, batched=False)
    assert state(batch) is state(one)
    assert pending(batch) == pending(one)


@pytest.mark.parametrize("line", _LINES)
@pytest.mark.parametrize("command", [Put(b"x"), Delete(1)], ids=["put", "delete"])
def test_each_line_reply_after_a_run_reads_as_one_at_a_time(command: Command, line: bytes) -> None:
    wire = b"INSERTED 7\r\nINSERTED 8\r\n" + line + b"\r\nINSERTED 9\r\n"
    one, batch = Connection(), Connection()
    for conn in (one, batch):
        for sent in [Put(b"a"), Put(b"b"), command, Put(b"c")]:
            conn.send(sent)
    assert _read_all(batch, [wire], batched=True) == _read_all(one, [wire], batched=False)
    assert state(batch) is state(one)
