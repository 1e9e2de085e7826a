"""Shared helpers for the core tests: golden data, drain loops, a tube-state model, strategies.

Everything here follows /work/shared/reference/protocol-notes.md (beanstalkd 1.12 on the wire),
not the implementation under test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from jackstalk._protocol.commands import (
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
from jackstalk._protocol.connection import Connection, ConnectionState
from jackstalk._protocol.events import (
    NEED_DATA,
    BadFormat,
    Buried,
    Closed,
    DeadlineSoon,
    Deleted,
    Draining,
    Event,
    ExpectedCrlf,
    Found,
    Inserted,
    Internal,
    JobTooBig,
    Kicked,
    NotFound,
    NotIgnored,
    Ok,
    OutOfMemory,
    Paused,
    Released,
    Reserved,
    TimedOut,
    Touched,
    UnknownCommand,
    Using,
    Watching,
)
from jackstalk._protocol.server_connection import Rejected, ServerConnection

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
RESERVE_TIMEOUT_MAX = 2**31 - 1
MAX_LINE = 224
TUBE_200 = "t" * 200

ClientItem = Event | Closed
ServerItem = Command | Rejected | Closed


# ------------------------------------------------------------------ drain loops


def drain(conn: Connection, limit: int = 10_000) -> list[ClientItem]:
    """Call ``next_event`` until ``NEED_DATA`` (not included) or ``Closed`` (included)."""
    out: list[ClientItem] = []
    for _ in range(limit):
        item = conn.next_event()
        if item is NEED_DATA:
            return out
        out.append(item)
        if isinstance(item, Closed):
            return out
    raise AssertionError(f"next_event did not settle within {limit} calls")


def server_drain(server: ServerConnection, limit: int = 10_000) -> list[ServerItem]:
    """Call ``ServerConnection.next_event`` until ``NEED_DATA`` or ``Closed`` (included)."""
    out: list[ServerItem] = []
    for _ in range(limit):
        item = server.next_event()
        if item is NEED_DATA:
            return out
        out.append(item)
        if isinstance(item, Closed):
            return out
    raise AssertionError(f"next_event did not settle within {limit} calls")


def parse_commands(
    data: bytes, *, max_job_size: int = 65535, eof: bool = False
) -> list[ServerItem]:
    """Feed ``data`` whole to a fresh ``ServerConnection`` and return what it yields."""
    server = ServerConnection(max_job_size=max_job_size)
    server.receive_data(data)
    if eof:
        server.receive_data(b"")
    return server_drain(server)


# Accessors that keep mypy from narrowing a property across calls that change it.
def state(conn: Connection) -> ConnectionState:
    return conn.state


def watching(conn: Connection) -> tuple[str, ...]:
    return conn.watching


def pending(conn: Connection) -> tuple[Command, ...]:
    return conn.pending


def pending_connection(*commands: Command, max_body: int | None = None) -> Connection:
    """A fresh client ``Connection`` with ``commands`` sent."""
    conn = Connection() if max_body is None else Connection(max_body=max_body)
    for command in commands:
        conn.send(command)
    return conn


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts})
    pieces: list[bytes] = []
    start = 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return [piece for piece in pieces if piece]


# ------------------------------------------------------------------ golden data

GOLDEN_COMMANDS: list[tuple[Command, bytes]] = [
    (Put(b"hi", priority=1, delay=2, ttr=3), b"put 1 2 3 2\r\nhi\r\n"),
    (Put(b""), b"put %d 0 %d 0\r\n\r\n" % (DEFAULT_PRIORITY, DEFAULT_TTR)),
    (Put(b"a\r\nb\x00", 0, 0, 0), b"put 0 0 0 5\r\na\r\nb\x00\r\n"),
    (
        Put(b"x", U32_MAX, U32_MAX, U32_MAX),
        b"put 4294967295 4294967295 4294967295 1\r\nx\r\n",
    ),
    (Use("foo"), b"use foo\r\n"),
    (Reserve(), b"reserve\r\n"),
    (ReserveWithTimeout(0), b"reserve-with-timeout 0\r\n"),
    (ReserveWithTimeout(RESERVE_TIMEOUT_MAX), b"reserve-with-timeout 2147483647\r\n"),
    (ReserveJob(7), b"reserve-job 7\r\n"),
    (Delete(1), b"delete 1\r\n"),
    (Delete(U64_MAX), b"delete 18446744073709551615\r\n"),
    (Release(3, 4, 5), b"release 3 4 5\r\n"),
    (Release(3), b"release 3 %d 0\r\n" % DEFAULT_PRIORITY),
    (Bury(6, 7), b"bury 6 7\r\n"),
    (Bury(6), b"bury 6 %d\r\n" % DEFAULT_PRIORITY),
    (Touch(8), b"touch 8\r\n"),
    (Watch("emails"), b"watch emails\r\n"),
    (Ignore("default"), b"ignore default\r\n"),
    (Peek(9), b"peek 9\r\n"),
    (PeekReady(), b"peek-ready\r\n"),
    (PeekDelayed(), b"peek-delayed\r\n"),
    (PeekBuried(), b"peek-buried\r\n"),
    (Kick(10), b"kick 10\r\n"),
    (Kick(0), b"kick 0\r\n"),
    (KickJob(11), b"kick-job 11\r\n"),
    (StatsJob(12), b"stats-job 12\r\n"),
    (StatsTube("a-b+c/d;e.f$g_h(i)"), b"stats-tube a-b+c/d;e.f$g_h(i)\r\n"),
    (Stats(), b"stats\r\n"),
    (ListTubes(), b"list-tubes\r\n"),
    (ListTubeUsed(), b"list-tube-used\r\n"),
    (ListTubesWatched(), b"list-tubes-watched\r\n"),
    (PauseTube("paused", 60), b"pause-tube paused 60\r\n"),
    (PauseTube(TUBE_200, U32_MAX), b"pause-tube " + TUBE_200.encode() + b" 4294967295\r\n"),
    (Quit(), b"quit\r\n"),
]

GOLDEN_EVENTS: list[tuple[Event, bytes]] = [
    (Inserted(5), b"INSERTED 5\r\n"),
    (Inserted(U64_MAX), b"INSERTED 18446744073709551615\r\n"),
    (Buried(5), b"BURIED 5\r\n"),
    (Buried(), b"BURIED\r\n"),
    (Using("emails"), b"USING emails\r\n"),
    (Reserved(5, b"ab"), b"RESERVED 5 2\r\nab\r\n"),
    (Reserved(1, b""), b"RESERVED 1 0\r\n\r\n"),
    (Reserved(2, b"\x00\r\n"), b"RESERVED 2 3\r\n\x00\r\n\r\n"),
    (Found(7, b"body"), b"FOUND 7 4\r\nbody\r\n"),
    (Kicked(3), b"KICKED 3\r\n"),
    (Kicked(0), b"KICKED 0\r\n"),
    (Kicked(), b"KICKED\r\n"),
    (Watching(2), b"WATCHING 2\r\n"),
    (Ok(b"---\n- default\n"), b"OK 14\r\n---\n- default\n\r\n"),
    (Ok(b""), b"OK 0\r\n\r\n"),
    (Deleted(), b"DELETED\r\n"),
    (Released(), b"RELEASED\r\n"),
    (Touched(), b"TOUCHED\r\n"),
    (Paused(), b"PAUSED\r\n"),
    (NotFound(), b"NOT_FOUND\r\n"),
    (TimedOut(), b"TIMED_OUT\r\n"),
    (DeadlineSoon(), b"DEADLINE_SOON\r\n"),
    (JobTooBig(), b"JOB_TOO_BIG\r\n"),
    (Draining(), b"DRAINING\r\n"),
    (NotIgnored(), b"NOT_IGNORED\r\n"),
    (ExpectedCrlf(), b"EXPECTED_CRLF\r\n"),
    (OutOfMemory(), b"OUT_OF_MEMORY\r\n"),
    (Internal(), b"INTERNAL_ERROR\r\n"),
    (BadFormat(), b"BAD_FORMAT\r\n"),
    (UnknownCommand(), b"UNKNOWN_COMMAND\r\n"),
]

# Raw 1.12 captures from protocol-notes §5.
LIST_TUBES_YAML = b"---\n- default\n- emails\n- true\n- 123\n"
STATS_JOB_YAML = (
    b"---\nid: 1\ntube: emails\nstate: reserved\npri: 100\nage: 4\ndelay: 0\nttr: 120\n"
    b"time-left: 116\nfile: 0\nreserves: 1\ntimeouts: 0\nreleases: 0\nburies: 0\nkicks: 0\n"
)
STATS_TUBE_YAML = (
    b"---\nname: emails\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\n"
    b"current-jobs-reserved: 1\ncurrent-jobs-delayed: 1\ncurrent-jobs-buried: 1\n"
    b"total-jobs: 3\ncurrent-using: 1\ncurrent-watching: 1\ncurrent-waiting: 0\n"
    b"cmd-delete: 0\ncmd-pause-tube: 1\npause: 600\npause-time-left: 598\n"
)
STATS_YAML = b'---\ncurrent-jobs-urgent: 0\nversion: "1.12"\nos: #1 SMP PREEMPT_DYNAMIC @0\n'

_JOB = Reserved(42, b"job body")
_FOUND = Found(42, b"job body")

# Every request/response pair of protocol-notes §3, each valid on a fresh connection
# (which uses and watches "default"). UNKNOWN_COMMAND is added for every command below.
REPLY_CASES: list[tuple[Command, Event]] = [
    (Put(b"x"), Inserted(1)),
    (Put(b"x"), Inserted(U64_MAX)),
    (Put(b"x"), Buried(9)),
    (Put(b"x"), ExpectedCrlf()),
    (Put(b"x"), JobTooBig()),
    (Put(b"x"), Draining()),
    (Put(b"x"), OutOfMemory()),
    (Put(b"x"), Internal()),
    (Put(b"x"), BadFormat()),
    (Use("foo"), Using("foo")),
    (Use("default"), Using("default")),
    (Use(TUBE_200), Using(TUBE_200)),
    (Use("foo"), OutOfMemory()),
    (Use("foo"), BadFormat()),
    (Reserve(), _JOB),
    (Reserve(), Reserved(3, b"\x00with\r\nCRLF\r\n\x00")),
    (Reserve(), Reserved(4, b"")),
    (Reserve(), Reserved(5, b"\r\n")),
    (Reserve(), DeadlineSoon()),
    (Reserve(), TimedOut()),
    (Reserve(), BadFormat()),
    (ReserveWithTimeout(0), _JOB),
    (ReserveWithTimeout(5), Reserved(U64_MAX, b"")),
    (ReserveWithTimeout(5), DeadlineSoon()),
    (ReserveWithTimeout(0), TimedOut()),
    (ReserveWithTimeout(0), BadFormat()),
    (ReserveJob(42), _JOB),
    (ReserveJob(42), NotFound()),
    (ReserveJob(42), Internal()),
    (ReserveJob(42), BadFormat()),
    (Delete(1), Deleted()),
    (Delete(1), NotFound()),
    (Delete(1), Internal()),
    (Delete(1), BadFormat()),
    (Release(1), Released()),
    (Release(1), Buried()),
    (Release(1), NotFound()),
    (Release(1, 1, 1), OutOfMemory()),
    (Release(1), BadFormat()),
    (Bury(1), Buried()),
    (Bury(1), NotFound()),
    (Bury(1), Internal()),
    (Bury(1), BadFormat()),
    (Touch(1), Touched()),
    (Touch(1), NotFound()),
    (Touch(1), BadFormat()),
    (Watch("foo"), Watching(2)),
    (Watch("default"), Watching(1)),
    (Watch("foo"), OutOfMemory()),
    (Watch("foo"), BadFormat()),
    (Ignore("foo"), Watching(1)),
    (Ignore("default"), NotIgnored()),
    (Ignore("foo"), BadFormat()),
    (Peek(42), _FOUND),
    (Peek(42), Found(42, b"")),
    (Peek(42), Found(42, b"\x00\r\n")),
    (Peek(42), NotFound()),
    (Peek(42), BadFormat()),
    (PeekReady(), _FOUND),
    (PeekReady(), NotFound()),
    (PeekReady(), BadFormat()),
    (PeekDelayed(), _FOUND),
    (PeekDelayed(), NotFound()),
    (PeekDelayed(), BadFormat()),
    (PeekBuried(), _FOUND),
    (PeekBuried(), NotFound()),
    (PeekBuried(), BadFormat()),
    (Kick(10), Kicked(3)),
    (Kick(10), Kicked(0)),
    (Kick(U32_MAX), Kicked(U32_MAX)),
    (Kick(10), BadFormat()),
    (KickJob(1), Kicked()),
    (KickJob(1), NotFound()),
    (KickJob(1), BadFormat()),
    (Stats(), Ok(STATS_YAML)),
    (Stats(), OutOfMemory()),
    (Stats(), Internal()),
    (Stats(), BadFormat()),
    (StatsJob(1), Ok(STATS_JOB_YAML)),
    (StatsJob(1), NotFound()),
    (StatsJob(1), OutOfMemory()),
    (StatsJob(1), Internal()),
    (StatsJob(1), BadFormat()),
    (StatsTube("emails"), Ok(STATS_TUBE_YAML)),
    (StatsTube("emails"), NotFound()),
    (StatsTube("emails"), OutOfMemory()),
    (StatsTube("emails"), Internal()),
    (StatsTube("emails"), BadFormat()),
    (ListTubes(), Ok(LIST_TUBES_YAML)),
    (ListTubes(), Ok(b"")),
    (ListTubes(), OutOfMemory()),
    (ListTubes(), BadFormat()),
    (ListTubesWatched(), Ok(LIST_TUBES_YAML)),
    (ListTubesWatched(), OutOfMemory()),
    (ListTubesWatched(), BadFormat()),
    (ListTubeUsed(), Using("emails")),
    (ListTubeUsed(), BadFormat()),
    (PauseTube("foo", 10), Paused()),
    (PauseTube("foo", 10), NotFound()),
    (PauseTube("foo", 10), BadFormat()),
]
_ONE_OF_EACH: dict[type[Command], Command] = {}
for _command, _ in REPLY_CASES:
    _ONE_OF_EACH.setdefault(type(_command), _command)
REPLY_CASES += [(command, UnknownCommand()) for command in _ONE_OF_EACH.values()]


def case_id(case: object) -> str:
    """A short pytest id for a (command, event) or (command, bytes) pair."""
    return repr(case)[:60]


# ------------------------------------------------------------------ a model of tube state


@dataclass
class TubeModel:
    """What beanstalkd itself does with use/watch/ignore (protocol-notes §3)."""

    used: str = "default"
    watching: list[str] = field(default_factory=lambda: ["default"])

    def watch_reply(self, tube: str) -> Event:
        return Watching(len(self.watching) + (tube not in self.watching))

    def ignore_reply(self, tube: str) -> Event:
        if tube not in self.watching:
            return Watching(len(self.watching))
        if len(self.watching) == 1:
            return NotIgnored()
        return Watching(len(self.watching) - 1)

    def apply(self, command: Command, event: Event) -> None:
        if isinstance(event, Using):
            self.used = event.tube
        elif isinstance(event, Watching):
            if isinstance(command, Watch) and command.tube not in self.watching:
                self.watching.append(command.tube)
            elif isinstance(command, Ignore) and command.tube in self.watching:
                self.watching.remove(command.tube)


# ------------------------------------------------------------------ strategies

TUBE_PATTERN = r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()\-]{0,199}"


def tube_names() -> st.SearchStrategy[str]:
    """Valid tube names: a few fixed ones (defaults, the 200-char limit) and random ones."""
    return st.one_of(
        st.sampled_from(["default", "foo", "bar", TUBE_200, "(a)$_;+/.-", "0"]),
        st.from_regex(TUBE_PATTERN, fullmatch=True),
    )


u32s = st.integers(0, U32_MAX)
job_ids = st.integers(1, U64_MAX)
bodies = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"", b"\r\n", b"\x00\r\n\x00", b"INSERTED 1\r\n", b"\r"]),
)


def commands(*, include_quit: bool = False) -> st.SearchStrategy[Command]:
    """Any valid command (``Quit`` only on request: it ends a connection)."""
    strategies: list[st.SearchStrategy[Command]] = [
        st.builds(Put, bodies, u32s, u32s, u32s),
        st.builds(Use, tube_names()),
        st.just(Reserve()),
        st.builds(ReserveWithTimeout, st.integers(0, RESERVE_TIMEOUT_MAX)),
        st.builds(ReserveJob, job_ids),
        st.builds(Delete, job_ids),
        st.builds(Release, job_ids, u32s, u32s),
        st.builds(Bury, job_ids, u32s),
        st.builds(Touch, job_ids),
        st.builds(Watch, tube_names()),
        st.builds(Ignore, tube_names()),
        st.builds(Peek, job_ids),
        st.just(PeekReady()),
        st.just(PeekDelayed()),
        st.just(PeekBuried()),
        st.builds(Kick, u32s),
        st.builds(KickJob, job_ids),
        st.builds(StatsJob, job_ids),
        st.builds(StatsTube, tube_names()),
        st.just(Stats()),
        st.just(ListTubes()),
        st.just(ListTubeUsed()),
        st.just(ListTubesWatched()),
        st.builds(PauseTube, tube_names(), u32s),
    ]
    if include_quit:
        strategies.append(st.just(Quit()))
    return st.one_of(strategies)


_ANY_ERROR: list[Event] = [OutOfMemory(), Internal(), BadFormat(), UnknownCommand()]


def reply_strategy(command: Command, model: TubeModel) -> st.SearchStrategy[Event]:
    """A reply beanstalkd could send to ``command`` given the connection's tube state."""
    jobs = st.builds(Reserved, job_ids, bodies)
    found = st.builds(Found, job_ids, bodies)
    ok = st.builds(Ok, bodies)
    normal: st.SearchStrategy[Event]
    if isinstance(command, Put):
        normal = st.one_of(
            st.builds(Inserted, job_ids),
            st.builds(Buried, job_ids),
            st.sampled_from([ExpectedCrlf(), JobTooBig(), Draining()]),
        )
    elif isinstance(command, Use):
        normal = st.just(Using(command.tube))
    elif isinstance(command, Reserve | ReserveWithTimeout):
        normal = st.one_of(jobs, st.sampled_from([DeadlineSoon(), TimedOut()]))
    elif isinstance(command, ReserveJob):
        normal = st.one_of(jobs, st.just(NotFound()))
    elif isinstance(command, Delete):
        normal = st.sampled_from([Deleted(), NotFound()])
    elif isinstance(command, Release):
        normal = st.sampled_from([Released(), Buried(), NotFound()])
    elif isinstance(command, Bury):
        normal = st.sampled_from([Buried(), NotFound()])
    elif isinstance(command, Touch):
        normal = st.sampled_from([Touched(), NotFound()])
    elif isinstance(command, Watch):
        normal = st.just(model.watch_reply(command.tube))
    elif isinstance(command, Ignore):
        normal = st.just(model.ignore_reply(command.tube))
    elif isinstance(command, Peek | PeekReady | PeekDelayed | PeekBuried):
        normal = st.one_of(found, st.just(NotFound()))
    elif isinstance(command, Kick):
        normal = st.builds(Kicked, u32s)
    elif isinstance(command, KickJob):
        normal = st.sampled_from([Kicked(), NotFound()])
    elif isinstance(command, StatsJob | StatsTube):
        normal = st.one_of(ok, st.just(NotFound()))
    elif isinstance(command, Stats | ListTubes | ListTubesWatched):
        normal = ok
    elif isinstance(command, ListTubeUsed):
        normal = st.builds(Using, tube_names())
    elif isinstance(command, PauseTube):
        normal = st.sampled_from([Paused(), NotFound()])
    else:  # pragma: no cover - every command but Quit is listed
        raise AssertionError(f"no replies for {command!r}")
    return st.one_of(normal, normal, normal, st.sampled_from(_ANY_ERROR))


@st.composite
def exchanges(draw: st.DrawFn, max_size: int = 12) -> list[tuple[Command, Event]]:
    """A conversation: commands and the replies a consistent server sends, in order."""
    model = TubeModel()
    out: list[tuple[Command, Event]] = []
    for command in draw(st.lists(commands(), max_size=max_size)):
        event = draw(reply_strategy(command, model))
        model.apply(command, event)
        out.append((command, event))
    return out


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut into random pieces (possibly one piece, possibly one byte each)."""
    if not data:
        return []
    if draw(st.booleans()) and len(data) < 300:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=20))
    return split(data, cuts)
