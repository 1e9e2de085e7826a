"""The server-role ``ServerConnection``: command lines parsed the way beanstalkd 1.12 does.

Every expectation here comes from protocol-notes §1-§2 (and, where the notes are silent,
from 1.12's prot.c: ``which_cmd``, ``read_u32``/``read_u64``, ``strtoul``/``strtol`` with an
``errno`` check, ``conn_process_io``'s ``STATE_WANT_ENDLINE``).
"""

from __future__ import annotations

import copy
import pickle

import pytest
from helpers import (
    GOLDEN_COMMANDS,
    MAX_LINE,
    TUBE_200,
    U32_MAX,
    U64_MAX,
    case_id,
    parse_commands,
    server_drain,
)

from jackstalk._protocol.commands import (
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
from jackstalk._protocol.errors import ArgumentTypeError, InvalidArgument
from jackstalk._protocol.events import (
    NEED_DATA,
    BadFormat,
    Closed,
    ExpectedCrlf,
    Inserted,
    JobTooBig,
    NotFound,
    UnknownCommand,
    Using,
)
from jackstalk._protocol.server_connection import Rejected, ServerConnection

BAD = BadFormat()
UNKNOWN = Rejected(UnknownCommand(), None)


def _expected(command: Command) -> Command:
    # beanstalkd raises a ttr of 0 to 1 (protocol-notes §2).
    if isinstance(command, Put) and command.ttr == 0:
        return Put(command.body, command.priority, command.delay, 1)
    return command


# ------------------------------------------------------------------ well-formed lines


@pytest.mark.parametrize(("command", "wire"), GOLDEN_COMMANDS, ids=case_id)
def test_well_formed_command_parses_back(command: Command, wire: bytes) -> None:
    assert parse_commands(wire) == [_expected(command)]


@pytest.mark.parametrize(("command", "wire"), GOLDEN_COMMANDS, ids=case_id)
def test_well_formed_command_one_byte_at_a_time(command: Command, wire: bytes) -> None:
    server = ServerConnection()
    for i in range(len(wire) - 1):
        server.receive_data(wire[i : i + 1])
        assert server.next_event() is NEED_DATA
    server.receive_data(wire[-1:])
    assert server.next_event() == _expected(command)
    assert server.next_event() is NEED_DATA


def test_pipelined_commands() -> None:
    wire = b"".join(w for _, w in GOLDEN_COMMANDS)
    assert parse_commands(wire) == [_expected(c) for c, _ in GOLDEN_COMMANDS]


def test_put_ttr_zero_is_raised_to_one() -> None:
    assert parse_commands(b"put 1 2 0 1\r\nx\r\n") == [Put(b"x", 1, 2, 1)]
    assert parse_commands(b"put 1 2 00 1\r\nx\r\n") == [Put(b"x", 1, 2, 1)]


def test_put_zero_length_body() -> None:
    assert parse_commands(b"put 0 0 0 0\r\n\r\n") == [Put(b"", 0, 0, 1)]


def test_put_body_with_nul_and_crlf() -> None:
    body = b"\x00\r\nput 1 2 3 4\r\n\x00"
    assert parse_commands(b"put 1 0 5 %d\r\n%b\r\nstats\r\n" % (len(body), body)) == [
        Put(body, 1, 0, 5),
        Stats(),
    ]


def test_put_u32_maxima() -> None:
    assert parse_commands(b"put 4294967295 4294967295 4294967295 0\r\n\r\n") == [
        Put(b"", U32_MAX, U32_MAX, U32_MAX)
    ]


def test_put_body_waits_for_its_crlf() -> None:
    server = ServerConnection()
    server.receive_data(b"put 1 0 1 3\r\nabc")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\r")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\n")
    assert server.next_event() == Put(b"abc", 1, 0, 1)


def test_send_encodes_replies() -> None:
    server = ServerConnection()
    assert server.send(Inserted(5)) == b"INSERTED 5\r\n"
    assert server.send(Using("foo")) == b"USING foo\r\n"


def test_max_job_size() -> None:
    assert ServerConnection().max_job_size == 65535
    assert ServerConnection(max_job_size=2**30).max_job_size == 2**30
    with pytest.raises(InvalidArgument):
        ServerConnection(max_job_size=2**30 + 1)
    with pytest.raises(InvalidArgument):
        ServerConnection(max_job_size=-1)
    with pytest.raises(ArgumentTypeError):
        ServerConnection(max_job_size=True)


# ------------------------------------------------------------------ prefix matching (§1)

PREFIX_CASES: list[tuple[bytes, object]] = [
    (b"\r\n", UNKNOWN),
    (b"RESERVE\r\n", UNKNOWN),
    (b"Stats\r\n", UNKNOWN),
    (b"peek\r\n", UNKNOWN),
    (b"use\r\n", UNKNOWN),
    (b"delete\r\n", UNKNOWN),
    (b"touch\r\n", UNKNOWN),
    (b"kick\r\n", UNKNOWN),
    (b"watch\r\n", UNKNOWN),
    (b"ignore\r\n", UNKNOWN),
    (b"release\r\n", UNKNOWN),
    (b"bury\r\n", UNKNOWN),
    (b"put\r\n", UNKNOWN),
    (b"list\r\n", UNKNOWN),
    (b" stats\r\n", UNKNOWN),
    (b"hello world\r\n", UNKNOWN),
    (b"statsx\r\n", Rejected(BAD, Stats)),
    (b"stats \r\n", Rejected(BAD, Stats)),
    (b"stats-job\r\n", Rejected(BAD, Stats)),
    (b"stats-tube\r\n", Rejected(BAD, Stats)),
    (b"reservex\r\n", Rejected(BAD, Reserve)),
    (b"reserve \r\n", Rejected(BAD, Reserve)),
    (b"reserve-with-timeout\r\n", Rejected(BAD, Reserve)),
    (b"reserve-job\r\n", Rejected(BAD, Reserve)),
    (b"list-tubesx\r\n", Rejected(BAD, ListTubes)),
    (b"list-tubes \r\n", Rejected(BAD, ListTubes)),
    (b"list-tubes-watchedx\r\n", Rejected(BAD, ListTubesWatched)),
    (b"list-tube-usedx\r\n", Rejected(BAD, ListTubeUsed)),
    (b"list-tube-used \r\n", Rejected(BAD, ListTubeUsed)),
    (b"peek-readyx\r\n", Rejected(BAD, PeekReady)),
    (b"peek-delayed \r\n", Rejected(BAD, PeekDelayed)),
    (b"peek-buried1\r\n", Rejected(BAD, PeekBuried)),
    (b"quit\r\n", Quit()),
    (b"quitter\r\n", Quit()),
    (b"quit extra\r\n", Quit()),
    (b"quit \x01\r\n", Quit()),
    (b"pause-tubefoo 10\r\n", PauseTube("foo", 10)),
    (b"pause-tube  foo  10\r\n", PauseTube("foo", 10)),
    (b"pause-tube\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo \r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo 10 \r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo10\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo*bar 10\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo\t10\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube -foo 10\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube " + b"t" * 201 + b" 10\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo 4294967296\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo +1\r\n", Rejected(BAD, PauseTube)),
    (b"pause-tube foo 0\r\n", PauseTube("foo", 0)),
    (b"kick-job 5\r\n", KickJob(5)),
    (b"stats-job 5\r\n", StatsJob(5)),
    (b"stats-tube foo\r\n", StatsTube("foo")),
    (b"reserve-job 5\r\n", ReserveJob(5)),
    (b"reserve-with-timeout 5\r\n", ReserveWithTimeout(5)),
    (b"list-tubes-watched\r\n", ListTubesWatched()),
    (b"list-tube-used\r\n", ListTubeUsed()),
    (b"list-tubes\r\n", ListTubes()),
]


@pytest.mark.parametrize(("line", "expected"), PREFIX_CASES, ids=case_id)
def test_prefix_matching(line: bytes, expected: object) -> None:
    assert parse_commands(line) == [expected]


# ------------------------------------------------------------------ argument syntax (§1, §2)

ARGUMENT_CASES: list[tuple[bytes, object]] = [
    # spaces before numbers, leading zeros
    (b"peek  1\r\n", Peek(1)),
    (b"peek 0001\r\n", Peek(1)),
    (b"delete     18446744073709551615\r\n", Delete(U64_MAX)),
    (b"release  1  2  3\r\n", Release(1, 2, 3)),
    (b"release 01 02 03\r\n", Release(1, 2, 3)),
    (b"bury 1    0\r\n", Bury(1, 0)),
    (b"touch 00000000000000000000000000000007\r\n", Touch(7)),
    # signs, tabs, junk
    (b"peek +1\r\n", Rejected(BAD, Peek)),
    (b"peek -1\r\n", Rejected(BAD, Peek)),
    (b"peek\t1\r\n", UNKNOWN),
    (b"peek \t1\r\n", Rejected(BAD, Peek)),
    (b"peek 1 \r\n", Rejected(BAD, Peek)),
    (b"peek 1x\r\n", Rejected(BAD, Peek)),
    (b"peek 0x10\r\n", Rejected(BAD, Peek)),
    (b"peek \r\n", Rejected(BAD, Peek)),
    (b"delete 1 2\r\n", Rejected(BAD, Delete)),
    (b"release 1 +2 3\r\n", Rejected(BAD, Release)),
    (b"release 1 2 -3\r\n", Rejected(BAD, Release)),
    (b"release 1 2\r\n", Rejected(BAD, Release)),
    (b"release 1 2 3 \r\n", Rejected(BAD, Release)),
    (b"release 1 2 3 4\r\n", Rejected(BAD, Release)),
    (b"bury 1\r\n", Rejected(BAD, Bury)),
    (b"bury 1 -2\r\n", Rejected(BAD, Bury)),
    (b"bury 1 2 \r\n", Rejected(BAD, Bury)),
    (b"touch 1_000\r\n", Rejected(BAD, Touch)),
    # u32 and u64 limits
    (b"release 1 4294967295 4294967295\r\n", Release(1, U32_MAX, U32_MAX)),
    (b"release 1 4294967296 0\r\n", Rejected(BAD, Release)),
    (b"release 1 0 4294967296\r\n", Rejected(BAD, Release)),
    (b"bury 1 4294967296\r\n", Rejected(BAD, Bury)),
    (b"bury 1 99999999999999999999999\r\n", Rejected(BAD, Bury)),
    (b"peek 18446744073709551615\r\n", Peek(U64_MAX)),
    (b"peek 18446744073709551616\r\n", Rejected(BAD, Peek)),
    (b"delete 18446744073709551616\r\n", Rejected(BAD, Delete)),
    (b"stats-job 99999999999999999999999999\r\n", Rejected(BAD, StatsJob)),
    # id 0 parses and then is not found
    (b"peek 0\r\n", Rejected(NotFound(), Peek)),
    (b"peek 000\r\n", Rejected(NotFound(), Peek)),
    (b"reserve-job 0\r\n", Rejected(NotFound(), ReserveJob)),
    (b"delete 0\r\n", Rejected(NotFound(), Delete)),
    (b"touch 0\r\n", Rejected(NotFound(), Touch)),
    (b"kick-job 0\r\n", Rejected(NotFound(), KickJob)),
    (b"stats-job 0\r\n", Rejected(NotFound(), StatsJob)),
    (b"release 0 1 2\r\n", Rejected(NotFound(), Release)),
    (b"bury 0 1\r\n", Rejected(NotFound(), Bury)),
    # ... but syntax is checked before the id
    (b"delete 0 \r\n", Rejected(BAD, Delete)),
    (b"release 0 1\r\n", Rejected(BAD, Release)),
    # tube names: exactly one space, nothing after, grammar, 200 bytes
    (b"use foo\r\n", Use("foo")),
    (b"use  foo\r\n", Rejected(BAD, Use)),
    (b"use foo \r\n", Rejected(BAD, Use)),
    (b"use \r\n", Rejected(BAD, Use)),
    (b"use -foo\r\n", Rejected(BAD, Use)),
    (b"use foo-\r\n", Use("foo-")),
    (b"use a*b\r\n", Rejected(BAD, Use)),
    (b"use a:b\r\n", Rejected(BAD, Use)),
    (b"use a\tb\r\n", Rejected(BAD, Use)),
    (b"use t\xc3\xbcbe\r\n", Rejected(BAD, Use)),
    (b"use " + TUBE_200.encode() + b"\r\n", Use(TUBE_200)),
    (b"use " + b"t" * 201 + b"\r\n", Rejected(BAD, Use)),
    (b"watch a-b+c/d;e.f$g_h(i)\r\n", Watch("a-b+c/d;e.f$g_h(i)")),
    (b"watch  foo\r\n", Rejected(BAD, Watch)),
    (b"ignore foo bar\r\n", Rejected(BAD, Ignore)),
    (b"stats-tube -x\r\n", Rejected(BAD, StatsTube)),
    (b"stats-tube  x\r\n", Rejected(BAD, StatsTube)),
]


@pytest.mark.parametrize(("line", "expected"), ARGUMENT_CASES, ids=case_id)
def test_argument_syntax(line: bytes, expected: object) -> None:
    assert parse_commands(line) == [expected]


# ------------------------------------------------------------------ kick: strtoul (§2)

KICK_CASES: list[tuple[bytes, object]] = [
    (b"kick 5\r\n", Kick(5)),
    (b"kick 5abc\r\n", Kick(5)),
    (b"kick 5 \r\n", Kick(5)),
    (b"kick  5\r\n", Kick(5)),
    (b"kick \t5\r\n", Kick(5)),
    (b"kick +5\r\n", Kick(5)),
    (b"kick 0\r\n", Kick(0)),
    (b"kick -0\r\n", Kick(0)),
    (b"kick 0x10\r\n", Kick(0)),
    (b"kick -1\r\n", Kick(U32_MAX)),
    (b"kick -2\r\n", Kick(U32_MAX - 1)),
    (b"kick 4294967295\r\n", Kick(U32_MAX)),
    (b"kick 4294967296\r\n", Kick(0)),
    (b"kick 4294967301\r\n", Kick(5)),
    (b"kick 18446744073709551615\r\n", Kick(U32_MAX)),
    (b"kick -18446744073709551615\r\n", Kick(1)),
    (b"kick \r\n", Rejected(BAD, Kick)),
    (b"kick abc\r\n", Rejected(BAD, Kick)),
    (b"kick -\r\n", Rejected(BAD, Kick)),
    (b"kick +\r\n", Rejected(BAD, Kick)),
]


@pytest.mark.parametrize(("line", "expected"), KICK_CASES, ids=case_id)
def test_kick_bound_parsing(line: bytes, expected: object) -> None:
    assert parse_commands(line) == [expected]


@pytest.mark.parametrize(
    "line",
    [
        b"kick 18446744073709551616\r\n",
        b"kick 99999999999999999999999\r\n",
        b"kick -18446744073709551616\r\n",
    ],
    ids=repr,
)
def test_kick_bound_overflowing_unsigned_long_is_bad_format(line: bytes) -> None:
    # 1.12 prot.c: count = strtoul(...); if (end_buf == start || errno) -> BAD_FORMAT.
    # strtoul sets errno = ERANGE when the magnitude does not fit in 64 bits.
    assert parse_commands(line) == [Rejected(BAD, Kick)]


# ------------------------------------------------------------------ reserve-with-timeout (§4)

RESERVE_TIMEOUT_CASES: list[tuple[bytes, object]] = [
    (b"reserve-with-timeout 0\r\n", ReserveWithTimeout(0)),
    (b"reserve-with-timeout 00010\r\n", ReserveWithTimeout(10)),
    (b"reserve-with-timeout 2147483647\r\n", ReserveWithTimeout(2**31 - 1)),
    (b"reserve-with-timeout abc\r\n", ReserveWithTimeout(0)),
    (b"reserve-with-timeout \r\n", ReserveWithTimeout(0)),
    (b"reserve-with-timeout -\r\n", ReserveWithTimeout(0)),
    (b"reserve-with-timeout 1abc\r\n", ReserveWithTimeout(1)),
    (b"reserve-with-timeout 1 \r\n", ReserveWithTimeout(1)),
    (b"reserve-with-timeout  \t7\r\n", ReserveWithTimeout(7)),
    (b"reserve-with-timeout +3\r\n", ReserveWithTimeout(3)),
    (b"reserve-with-timeout 4294967296\r\n", ReserveWithTimeout(0)),
    (b"reserve-with-timeout 4294967301\r\n", ReserveWithTimeout(5)),
    (b"reserve-with-timeout -9223372036854775807\r\n", ReserveWithTimeout(1)),
    (b"reserve-with-timeout 99999999999999999999\r\n", Rejected(BAD, ReserveWithTimeout)),
    (b"reserve-with-timeout 9223372036854775808\r\n", Rejected(BAD, ReserveWithTimeout)),
    (b"reserve-with-timeout -99999999999999999999\r\n", Rejected(BAD, ReserveWithTimeout)),
]


@pytest.mark.parametrize(("line", "expected"), RESERVE_TIMEOUT_CASES, ids=case_id)
def test_reserve_with_timeout_loose_parsing(line: bytes, expected: object) -> None:
    assert parse_commands(line) == [expected]


@pytest.mark.parametrize(
    "line",
    [
        b"reserve-with-timeout -1\r\n",
        b"reserve-with-timeout -5\r\n",
        b"reserve-with-timeout 2147483648\r\n",  # wraps to a negative int
        b"reserve-with-timeout 9223372036854775807\r\n",  # LONG_MAX: (int) -> -1
    ],
    ids=repr,
)
def test_reserve_with_negative_timeout_waits_forever(line: bytes) -> None:
    [command] = parse_commands(line)
    assert isinstance(command, ReserveWithTimeout)
    assert command.timeout == -1


def test_reserve_with_timeout_long_min_wraps_to_zero() -> None:
    assert parse_commands(b"reserve-with-timeout -9223372036854775808\r\n") == [
        ReserveWithTimeout(0)
    ]


# ------------------------------------------------------------------ framing (§1)


def test_nul_in_a_line_is_bad_format_and_consumed() -> None:
    assert parse_commands(b"peek 1\x00\r\nstats\r\n") == [Rejected(BAD), Stats()]
    assert parse_commands(b"\x00\r\n") == [Rejected(BAD)]
    assert parse_commands(b"quit\x00\r\n") == [Rejected(BAD)]


def test_bare_lf_does_not_end_a_line() -> None:
    server = ServerConnection()
    server.receive_data(b"list-tube-used\n")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\r\n")
    [rejected] = server_drain(server)
    assert isinstance(rejected, Rejected)
    assert rejected.reply == BAD


def test_cr_and_lf_in_separate_reads() -> None:
    server = ServerConnection()
    server.receive_data(b"stats\r")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\n")
    assert server.next_event() == Stats()


def test_bare_cr_stalls_until_224_bytes_then_one_bad_format() -> None:
    server = ServerConnection()
    stalled = b"list-tube-used\rX\r\nlist-tube-used\r\nstats\r\n"
    server.receive_data(stalled)
    assert server.next_event() is NEED_DATA
    server.receive_data(b"s" * (MAX_LINE - len(stalled) - 1))
    assert server.next_event() is NEED_DATA
    server.receive_data(b"s")  # 224 bytes buffered with no line end: thrown away
    assert server.next_event() is NEED_DATA
    server.receive_data(b"tail\r\nstats\r\n")
    assert server_drain(server) == [Rejected(BAD), Stats()]


def test_224_byte_line_is_accepted() -> None:
    line = b"peek " + b" " * (MAX_LINE - 8) + b"1\r\n"
    assert len(line) == MAX_LINE
    assert parse_commands(line + b"stats\r\n") == [Peek(1), Stats()]
    pause = b"pause-tube " + TUBE_200.encode() + b" 4294967295\r\n"
    assert len(pause) == MAX_LINE
    assert parse_commands(pause) == [PauseTube(TUBE_200, U32_MAX)]


def test_225_byte_line_swallows_the_next_command() -> None:
    # The \r is the last byte of the 224-byte read, so the \n after it does not end the
    # line; the next line's \r\n does, and one BAD_FORMAT covers both (verified on 1.12).
    line = b"peek " + b" " * (MAX_LINE - 7) + b"1\r\n"
    assert len(line) == MAX_LINE + 1
    assert parse_commands(line + b"list-tube-used\r\nstats\r\n") == [Rejected(BAD), Stats()]


def test_226_byte_line_gives_one_bad_format() -> None:
    line = b"peek " + b" " * (MAX_LINE - 6) + b"1\r\n"
    assert parse_commands(line + b"list-tube-used\r\n") == [Rejected(BAD), ListTubeUsed()]


def test_over_long_line_answered_only_when_its_end_arrives() -> None:
    server = ServerConnection()
    for _ in range(20):
        server.receive_data(b"x" * 100)
        assert server.next_event() is NEED_DATA
    server.receive_data(b"\r")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\nstats\r\n")
    assert server_drain(server) == [Rejected(BAD), Stats()]


def test_over_long_line_in_one_piece() -> None:
    assert parse_commands(b"y" * 10_000 + b"\r\nstats\r\n") == [Rejected(BAD), Stats()]


@pytest.mark.parametrize("windows", [2, 3, 5])
def test_over_long_line_whose_cr_ends_a_later_224_byte_window(windows: int) -> None:
    # After a line overflows, 1.12 keeps reading (STATE_WANT_ENDLINE) in 224-byte windows and
    # looks for the first \r of each window followed by \n. A \r that is the last byte of a
    # window is thrown away with it, exactly as for a 225-byte line, so the next command is
    # swallowed here too.
    line = b"z" * (MAX_LINE * windows - 1) + b"\r\n"
    assert parse_commands(line + b"list-tube-used\r\nstats\r\n") == [Rejected(BAD), Stats()]


def test_bare_cr_while_discarding_an_over_long_line_stalls_the_window() -> None:
    # In STATE_WANT_ENDLINE too only the first \r of the window counts: "\rX" in the second
    # window hides the "\r\n" after it, the window is thrown away and the command is lost.
    data = b"a" * 300 + b"\rX\r\nlist-tube-used\r\n" + b"b" * 150 + b"\r\nstats\r\n"
    assert parse_commands(data) == [Rejected(BAD), Stats()]


def test_very_long_line_in_one_piece() -> None:
    # A megabyte without a line end is thrown away window by window, in bounded memory
    # and without recursion, then answered once.
    assert parse_commands(b"v" * 1_000_000 + b"\r\nstats\r\n") == [Rejected(BAD), Stats()]


def test_nul_in_a_put_line_leaves_the_body_unread() -> None:
    assert parse_commands(b"put 1 0 1 5\x00\r\nstats\r\n") == [Rejected(BAD), Stats()]


def test_over_long_line_then_eof() -> None:
    assert parse_commands(b"x" * 500, eof=True) == [Closed()]


# ------------------------------------------------------------------ put specifics (§3)


def test_put_body_too_large_is_skipped_then_job_too_big() -> None:
    server = ServerConnection(max_job_size=5)
    server.receive_data(b"put 1 0 1 6\r\nabc")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"def\r")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\nstats\r\n")
    assert server_drain(server) == [Rejected(JobTooBig(), Put), Stats()]


def test_put_body_too_large_in_one_piece() -> None:
    data = b"put 1 0 1 6\r\nstat\r\n\r\nstats\r\n"
    assert parse_commands(data, max_job_size=5) == [Rejected(JobTooBig(), Put), Stats()]


def test_put_body_too_large_is_skipped_even_without_crlf() -> None:
    data = b"put 1 0 1 6\r\nabcdefXYstats\r\n"
    assert parse_commands(data, max_job_size=5) == [Rejected(JobTooBig(), Put), Stats()]


def test_put_body_of_exactly_max_job_size_is_accepted() -> None:
    assert parse_commands(b"put 1 0 1 5\r\nabcde\r\n", max_job_size=5) == [Put(b"abcde", 1, 0, 1)]


def test_put_size_is_checked_before_trailing_junk() -> None:
    data = b"put 1 0 1 65536 garbage\r\n" + b"j" * 65536 + b"\r\nstats\r\n"
    assert parse_commands(data) == [Rejected(JobTooBig(), Put), Stats()]


def test_put_size_over_u32_is_bad_format_and_body_not_consumed() -> None:
    data = b"put 1 0 1 4294967296\r\nstats\r\n"
    assert parse_commands(data) == [Rejected(BAD, Put), Stats()]


def test_put_body_not_followed_by_crlf() -> None:
    data = b"put 1 0 1 3\r\nabcXYlist-tube-used\r\n"
    assert parse_commands(data) == [Rejected(ExpectedCrlf(), Put), ListTubeUsed()]


def test_put_declared_length_too_small_leaves_leftover_as_commands() -> None:
    data = b"put 1 0 1 1\r\nab\r\nstats\r\n"
    # reads "ab\r" (1 + 2 bytes): not "x\r\n" -> EXPECTED_CRLF; "\nstats" is the next line.
    server = ServerConnection()
    server.receive_data(data)
    events = server_drain(server)
    assert events[0] == Rejected(ExpectedCrlf(), Put)
    assert len(events) == 2
    assert isinstance(events[1], Rejected)
    assert events[1].reply == UnknownCommand()


def test_put_declared_length_too_large_waits() -> None:
    server = ServerConnection()
    server.receive_data(b"put 1 0 1 3\r\nab\r\n")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"\r\n")
    assert server.next_event() == Rejected(ExpectedCrlf(), Put)


def test_put_line_bad_format_leaves_the_body_to_run_as_a_command() -> None:
    data = b"put 1 0 1 14 \r\nlist-tube-used\r\n"
    assert parse_commands(data) == [Rejected(BAD, Put), ListTubeUsed()]


@pytest.mark.parametrize(
    "line",
    [
        b"put 1 0 1\r\n",
        b"put 1 0 1 \r\n",
        b"put 1 0 1 +3\r\n",
        b"put -1 0 1 3\r\n",
        b"put 1 0 1 3x\r\n",
        b"put 4294967296 0 1 3\r\n",
        b"put 1 4294967296 1 3\r\n",
        b"put 1 0 4294967296 3\r\n",
        b"put 1 0 1 3 \r\n",
        b"put x\r\n",
        b"put \r\n",
    ],
    ids=repr,
)
def test_put_line_bad_format(line: bytes) -> None:
    assert parse_commands(line + b"abc\r\n") == [Rejected(BAD, Put), UNKNOWN]


def test_put_with_spaces_before_numbers() -> None:
    assert parse_commands(b"put  1  0  1  3\r\nabc\r\n") == [Put(b"abc", 1, 0, 1)]
    assert parse_commands(b"put 01 02 03 003\r\nabc\r\n") == [Put(b"abc", 1, 2, 3)]


# ------------------------------------------------------------------ end of stream


@pytest.mark.parametrize(
    "data",
    [b"", b"stat", b"put 1 0 1 3\r\nab", b"stats\r"],
    ids=repr,
)
def test_eof_is_closed(data: bytes) -> None:
    server = ServerConnection()
    if data:
        server.receive_data(data)
    server.receive_data(b"")
    assert server.next_event() == Closed()
    assert server.next_event() == Closed()


def test_eof_after_complete_commands() -> None:
    assert parse_commands(b"stats\r\nquit\r\n", eof=True) == [Stats(), Quit(), Closed()]


def test_eof_while_skipping_an_oversized_body() -> None:
    assert parse_commands(b"put 1 0 1 100\r\nabc", max_job_size=10, eof=True) == [Closed()]


def test_rejected_is_a_value() -> None:
    assert Rejected(BAD) == Rejected(BadFormat(), None)
    assert Rejected(BAD, Put) != Rejected(BAD)
    assert Rejected(NotFound(), Peek).command is Peek


# ------------------------------------------------------------------ embedded-server bookkeeping


# Accessors, so mypy does not narrow a property across calls that change it.
def _idle(server: ServerConnection) -> bool:
    return server.idle


def _skipping(server: ServerConnection) -> bool:
    return server.skipping


def _eof(server: ServerConnection) -> bool:
    return server.eof


def _buffered(server: ServerConnection) -> int:
    return server.buffered


def _pending_put(server: ServerConnection) -> tuple[int, int, int, int] | None:
    return server.pending_put


def test_buffered_and_idle() -> None:
    server = ServerConnection()
    assert _idle(server)
    assert _buffered(server) == 0
    server.receive_data(b"stats\r\nlist")
    assert _buffered(server) == 11
    assert not _idle(server)
    assert server.next_event() == Stats()
    assert _buffered(server) == 4
    assert server.next_event() is NEED_DATA
    assert _buffered(server) == 4
    assert not _idle(server)
    server.receive_data(b"-tubes\r\n")
    assert server.next_event() == ListTubes()
    assert _buffered(server) == 0
    assert _idle(server)


def test_pending_put() -> None:
    server = ServerConnection()
    assert _pending_put(server) is None
    server.receive_data(b"put 1 2 0 5\r\nab")
    assert server.next_event() is NEED_DATA
    assert _pending_put(server) == (1, 2, 1, 5)  # ttr already raised to 1
    assert not _idle(server)
    server.receive_data(b"cde\r\n")
    assert server.next_event() == Put(b"abcde", 1, 2, 1)
    assert _pending_put(server) is None
    assert _idle(server)


def test_skipping_an_oversized_body() -> None:
    server = ServerConnection(max_job_size=3)
    assert not _skipping(server)
    server.receive_data(b"put 1 0 1 4\r\nab")
    assert server.next_event() is NEED_DATA
    assert _skipping(server)
    assert not _idle(server)
    server.receive_data(b"cd\r\n")
    assert server.next_event() == Rejected(JobTooBig(), Put)
    assert not _skipping(server)
    assert _idle(server)


def test_discarding_an_over_long_line_is_not_idle() -> None:
    server = ServerConnection()
    server.receive_data(b"x" * MAX_LINE)
    assert server.next_event() is NEED_DATA
    assert _buffered(server) == 0
    assert not _idle(server)
    server.receive_data(b"\r\n")
    assert server.next_event() == Rejected(BAD)
    assert _idle(server)


def test_eof_flag() -> None:
    server = ServerConnection()
    assert not _eof(server)
    server.receive_data(b"")
    assert _eof(server)


COUNTED_CASES: list[tuple[bytes, bool]] = [
    # 1.12 counts a line (cmd-*) once its arguments parse, before it looks anything up.
    (b"put 1 0 1 3 x\r\nabc\r\n", True),  # size parsed, then trailing junk
    (b"put 1 0 1 99999\r\n" + b"j" * 99999 + b"\r\n", True),  # JOB_TOO_BIG
    (b"put 1 0 1 3\r\nabcXY", True),  # EXPECTED_CRLF
    (b"put 1 0 x 3\r\n", False),
    (b"peek 0\r\n", True),
    (b"delete 0\r\n", True),
    (b"release 0 1 2\r\n", True),
    (b"pause-tube -foo 10\r\n", True),  # name grammar is checked after counting
    (b"pause-tube foo\r\n", False),
    (b"use -foo\r\n", False),
    (b"peek 1 \r\n", False),
    (b"kick abc\r\n", False),
    (b"statsx\r\n", False),
    (b"nonsense\r\n", False),
    (b"\x00\r\n", False),
]


@pytest.mark.parametrize(("line", "counted"), COUNTED_CASES, ids=case_id)
def test_rejected_lines_counted_like_beanstalkd(line: bytes, counted: bool) -> None:
    rejected = parse_commands(line)[0]
    assert isinstance(rejected, Rejected)
    assert rejected.counted is counted


def test_commands_built_by_the_server_copy_and_pickle() -> None:
    # The server role builds some commands a client may not (a reserve-with-timeout of -1,
    # "wait forever"); copying or pickling them must not re-run the client-side checks.
    items = parse_commands(
        b"reserve-with-timeout -1\r\nput 1 2 0 1\r\nx\r\nkick -1\r\npause-tubefoo 0\r\n"
    )
    assert len(items) == 4
    for item in items:
        assert copy.copy(item) == item
        assert copy.deepcopy(item) == item
        assert pickle.loads(pickle.dumps(item)) == item
