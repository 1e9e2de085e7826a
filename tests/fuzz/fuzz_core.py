"""Fuzz the sans-IO client core with arbitrary server bytes.

Usage (from the repository root):

* plain: ``python tests/fuzz/fuzz_core.py < input`` runs one input (exit status 0: fine);
* atheris: ``python tests/fuzz/fuzz_core.py --atheris [libFuzzer options] [corpus dir]``;
* afl (python-afl): ``py-afl-fuzz -i corpus -o findings -- python tests/fuzz/fuzz_core.py``;
* ``python tests/fuzz/fuzz_core.py --write-corpus DIR`` writes seed inputs (one well-formed
  reply stream per command) for either fuzzer.

An input is laid out as: one byte choosing how many commands are pending (1-8), whether
``max_body`` is small, and whether the stream ends (EOF) after the data; one byte per
command choosing it; one byte choosing the chunk size (1-64 bytes, or all at once); then
the bytes the "server" sent. :func:`fuzz_one` feeds them to a :class:`jackstalk.Connection`
whose commands are pending and checks the invariants: only ``ProtocolError`` or
``ConnectionClosedError`` may escape; every event answers its command with a reply that
command may get; an error leaves the connection unusable for good; and feeding the bytes in
chunks gives exactly the events and the error that feeding them whole does.
``tests/fuzz/test_fuzz_core.py`` runs the same function under hypothesis in CI.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import jackstalk
from jackstalk import Connection, ConnectionClosedError, ProtocolError

__all__ = ["COMMANDS", "decode", "fuzz_one", "main", "seeds"]

COMMANDS: tuple[jackstalk.Command, ...] = (
    jackstalk.Put(b"body"),
    jackstalk.Use("tube"),
    jackstalk.Reserve(),
    jackstalk.ReserveWithTimeout(0),
    jackstalk.ReserveJob(1),
    jackstalk.Delete(1),
    jackstalk.Release(1),
    jackstalk.Bury(1),
    jackstalk.Touch(1),
    jackstalk.Watch("tube"),
    jackstalk.Ignore("default"),
    jackstalk.Peek(1),
    jackstalk.PeekReady(),
    jackstalk.PeekDelayed(),
    jackstalk.PeekBuried(),
    jackstalk.Kick(5),
    jackstalk.KickJob(1),
    jackstalk.StatsJob(1),
    jackstalk.StatsTube("tube"),
    jackstalk.Stats(),
    jackstalk.ListTubes(),
    jackstalk.ListTubeUsed(),
    jackstalk.ListTubesWatched(),
    jackstalk.PauseTube("tube", 10),
    jackstalk.Quit(),
)
"""What the selector bytes pick from: every command (``quit`` expects no reply)."""

SMALL_MAX_BODY = 16
"""``max_body`` when the input asks for a small one (exercises the body limit)."""

_ALLOWED = (ProtocolError, ConnectionClosedError)


class Input:
    """An input split into its parts."""

    def __init__(
        self,
        commands: list[jackstalk.Command],
        max_body: int,
        eof: bool,
        chunk: int,
        stream: bytes,
    ) -> None:
        self.commands = commands
        self.max_body = max_body
        self.eof = eof
        self.chunk = chunk
        self.stream = stream


def decode(data: bytes) -> Input:
    """Split ``data`` into commands, options and the stream (any bytes decode)."""
    header = data[0] if data else 0
    count = 1 + (header & 0x07)
    picks = data[1 : 1 + count]
    commands = [COMMANDS[pick % len(COMMANDS)] for pick in picks] or [COMMANDS[0]]
    rest = data[1 + count :]
    chunk_byte = rest[0] if rest else 0
    chunk = 0 if chunk_byte >= 0xC0 else 1 + chunk_byte % 64  # 0: all at once
    return Input(
        commands=commands,
        max_body=SMALL_MAX_BODY if header & 0x08 else 2**30,
        eof=bool(header & 0x10),
        chunk=chunk,
        stream=rest[1:],
    )


Outcome = tuple[list[object], type[BaseException] | None]


def _run(case: Input, chunk: int) -> Outcome:
    """Feed the stream ``chunk`` bytes at a time (0: all at once); return the events and
    the class of the error that ended it (None: no error)."""
    conn = Connection(max_body=case.max_body)
    sent: list[jackstalk.Command] = []
    for command in case.commands:
        try:
            conn.send(command)
        except _ALLOWED:
            break  # after quit nothing more can be sent
        if type(command) is not jackstalk.Quit:
            sent.append(command)
    stream = case.stream
    size = chunk or max(len(stream), 1)
    pieces = [stream[start : start + size] for start in range(0, len(stream), size)]
    if case.eof:
        pieces.append(b"")
    events: list[object] = []
    try:
        for piece in pieces:
            conn.receive_data(piece)
            for _ in range(len(stream) + 2):  # each event consumes at least a byte
                event = conn.next_event()
                if event is jackstalk.NEED_DATA:
                    break
                if isinstance(event, jackstalk.Closed):
                    assert len(events) == len(sent), "closed with replies still due"
                    break
                assert len(events) < len(sent), f"more replies than commands: {event!r}"
                command = sent[len(events)]
                assert isinstance(event, jackstalk.Event)
                assert event.word in command.replies, f"{event!r} cannot answer {command!r}"
                events.append(event)
            else:
                raise AssertionError("next_event() made no progress")
    except _ALLOWED as error:
        _check_poisoned(conn)
        return events, type(error)
    return events, None


def _check_poisoned(conn: Connection) -> None:
    """After an error the connection refuses everything, with an allowed error."""
    assert conn.state is jackstalk.ConnectionState.ERROR, conn.state
    for attempt in (conn.next_event, lambda: conn.send(jackstalk.Stats())):
        try:
            attempt()
        except _ALLOWED:
            continue
        raise AssertionError("a failed connection accepted more work")


def fuzz_one(data: bytes) -> None:
    """Run one input; raise AssertionError (or whatever else escaped) on a violation.

    Only ``ProtocolError`` and ``ConnectionClosedError`` may come out of the core, and
    those are caught here; anything else propagates and counts as a crash.
    """
    case = decode(data)
    whole = _run(case, 0)
    if case.chunk:
        chunked = _run(case, case.chunk)
        assert chunked == whole, f"fed in {case.chunk}-byte chunks: {chunked} != {whole}"
    one_by_one = _run(case, 1) if len(case.stream) <= 512 else whole
    assert one_by_one == whole, f"fed byte by byte: {one_by_one} != {whole}"


def _sample_reply(command: jackstalk.Command) -> bytes:
    """A well-formed reply to ``command`` on a fresh connection."""
    e = jackstalk
    replies: dict[type[jackstalk.Command], jackstalk.Event] = {
        e.Put: e.Inserted(7),
        e.Use: e.Using("tube"),
        e.Reserve: e.Reserved(3, b"hello\r\nworld"),
        e.ReserveWithTimeout: e.TimedOut(),
        e.ReserveJob: e.Reserved(1, b""),
        e.Delete: e.Deleted(),
        e.Release: e.Buried(),
        e.Bury: e.Buried(),
        e.Touch: e.Touched(),
        e.Watch: e.Watching(2),
        e.Ignore: e.NotIgnored(),
        e.Peek: e.Found(1, b"x" * 20),
        e.PeekReady: e.NotFound(),
        e.PeekDelayed: e.Found(2, b"later"),
        e.PeekBuried: e.NotFound(),
        e.Kick: e.Kicked(3),
        e.KickJob: e.Kicked(),
        e.StatsJob: e.Ok(b"---\nid: 1\ntube: default\nstate: ready\n"),
        e.StatsTube: e.NotFound(),
        e.Stats: e.Ok(b'---\ncurrent-jobs-ready: 0\nversion: "1.12"\n'),
        e.ListTubes: e.Ok(b"---\n- default\n- tube\n"),
        e.ListTubeUsed: e.Using("default"),
        e.ListTubesWatched: e.Ok(b"---\n- default\n"),
        e.PauseTube: e.Paused(),
    }
    reply = replies.get(type(command))
    return b"" if reply is None else reply.encode()


def seeds() -> Iterator[bytes]:
    """Inputs with a well-formed reply stream: one per command, and a few pipelines."""
    for index, command in enumerate(COMMANDS):
        yield bytes([0, index, 0xFF]) + _sample_reply(command)
        yield bytes([0x10, index, 0]) + _sample_reply(command)  # 1-byte chunks, then EOF
    pipeline = list(range(8))
    stream = b"".join(_sample_reply(COMMANDS[index]) for index in pipeline)
    yield bytes([7, *pipeline, 5]) + stream
    yield bytes([7 | 0x08, *pipeline, 3]) + stream  # small max_body: Reserved is too big


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--write-corpus"]:
        if len(args) != 2:
            print("usage: fuzz_core.py --write-corpus DIR", file=sys.stderr)
            return 2
        directory = Path(args[1])
        directory.mkdir(parents=True, exist_ok=True)
        for number, seed in enumerate(seeds()):
            (directory / f"seed-{number:03d}").write_bytes(seed)
        return 0
    if args[:1] == ["--atheris"]:
        atheris = importlib.import_module("atheris")
        atheris.Setup([sys.argv[0], *args[1:]], fuzz_one)
        atheris.Fuzz()
        return 0
    try:
        afl = importlib.import_module("afl")
    except ImportError:
        fuzz_one(sys.stdin.buffer.read())
        return 0
    while afl.loop(10_000):  # persistent mode: afl rewrites stdin for each input
        sys.stdin.buffer.seek(0)
        fuzz_one(sys.stdin.buffer.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
