"""The embedded server answers like beanstalkd 1.12, byte for byte.

Hypothesis writes random sequences of raw bytes over a few connections: well-formed commands
with edge values, malformed and over-long lines, bare ``\\r`` and NUL bytes, bodies of the
wrong length or over the size limit, pipelined bursts, quits, half-closes and hang-ups (some
with commands queued behind a reserve that waits). A fresh real beanstalkd and a fresh
embedded server get the same bytes, and every reply must be the same (``stats`` is compared
on every field that does not describe the process).

Nothing here depends on time: no delays or reserve timeouts that could run out during an
example (those are in test_engine_time.py and test_realtime.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from diffkit import Differential, HangUp, Mismatch, Step, normalise, split_replies
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jackstalk.testing import beanstalkd_available, run_beanstalkd

MAX_JOB = 300
SLOTS = 3
EXAMPLES = int(os.environ.get("JACKSTALK_DIFF_EXAMPLES", "600" if os.environ.get("CI") else "200"))

pytestmark = pytest.mark.skipif(
    not beanstalkd_available() and not os.environ.get("CI"),
    reason="needs beanstalkd on PATH",
)


def binary(max_size: int) -> st.SearchStrategy[bytes]:
    # Drawn as latin-1 text: Hypothesis compares its cached choices with ==, and an empty
    # bytes choice next to an integer one trips -bb's BytesWarning while it shrinks.
    chars = st.characters(min_codepoint=0, max_codepoint=255)
    return st.text(chars, max_size=max_size).map(lambda text: text.encode("latin-1"))


def _lines(*parts: bytes) -> bytes:
    return b"".join(part + b"\r\n" for part in parts)


NAMES = [b"default", b"a", b"b", b"true", b"123", b"t" * 200]
BAD_NAMES = [b"t" * 201, b"-x", b"a*b", b"", b" a", b"a "]
name = st.sampled_from(NAMES) | st.sampled_from(NAMES + BAD_NAMES)
job_id = st.sampled_from(
    [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"8", b"18446744073709551615"]
) | st.sampled_from([b"18446744073709551616", b"+1", b"-1", b" 1", b"1 ", b"x", b"", b"01"])
u32 = st.sampled_from(
    [b"0", b"1", b"1023", b"1024", b"2147483648", b"4294967295"]
) | st.sampled_from([b"4294967296", b"+1", b"-1", b"", b"x", b"007"])
# Delays and time-to-run that cannot run out while an example runs (0 and 1 are fine:
# a ttr of 0 or 1 puts the holder inside the one-second margin at once).
delay = st.sampled_from([b"0", b"100", b"3600", b"4294967295"])
ttr = st.sampled_from([b"0", b"1", b"100", b"4294967295"])
body = binary(24) | st.sampled_from([b"x" * MAX_JOB, b"\r\n", b"\x00", b"stats\r\n"])
# Timeouts that answer at once (no digits and 2**32 both mean 0) ...
quick_timeout = st.sampled_from([b"0", b"abc", b"", b"4294967296", b"99999999999999999999"])
# ... and ones that wait: for ever, or longer than an example lasts.
long_timeout = st.sampled_from([b"-1", b"100", b"100 junk"])


@st.composite
def put(draw: st.DrawFn) -> bytes:
    data = draw(body)
    line = b"put %b %b %b %d" % (draw(u32), draw(delay), draw(ttr), len(data))
    return line + b"\r\n" + data + b"\r\n"


@st.composite
def put_oddity(draw: st.DrawFn) -> bytes:
    data = draw(body)
    kind = draw(st.sampled_from(["short", "long", "big", "bad", "trailing"]))
    if kind == "short":  # declared one byte short: EXPECTED_CRLF, the rest runs as commands
        return b"put 1 0 100 %d\r\n%b\r\n" % (max(len(data) - 1, 0), data)
    if kind == "long":  # declared too long: the next bytes are swallowed into the body
        return b"put 1 0 100 %d\r\n%b\r\n" % (len(data) + 3, data)
    if kind == "big":  # over max-job-size: the body is skipped, then JOB_TOO_BIG
        extra = draw(st.integers(1, 40))
        return b"put 1 0 100 %d\r\n%b\r\n" % (MAX_JOB + extra, b"y" * (MAX_JOB + extra))
    if kind == "bad":  # a line that does not parse: the body runs as a command
        return b"put 1 0 %b\r\n%b\r\n" % (draw(u32), draw(st.sampled_from([b"stats", b"x"])))
    return b"put 1 0 100 %d %b\r\n%b\r\n" % (len(data), draw(u32), data)


def command() -> st.SearchStrategy[bytes]:
    id_commands = st.sampled_from(
        [b"reserve-job", b"delete", b"touch", b"kick-job", b"peek", b"stats-job"]
    )
    return st.one_of(
        put(),
        put(),
        st.just(_lines(b"reserve-with-timeout 0")),
        st.builds(lambda t: _lines(b"reserve-with-timeout " + t), quick_timeout),
        st.builds(lambda w, i: _lines(w + b" " + i), id_commands, job_id),
        st.builds(lambda i, p, d: _lines(b"release %b %b %b" % (i, p, d)), job_id, u32, delay),
        st.builds(lambda i, p: _lines(b"bury %b %b" % (i, p)), job_id, u32),
        st.builds(
            lambda n: _lines(b"kick " + n),
            st.sampled_from(
                [b"0", b"1", b"2", b"10", b"-1", b"abc", b"3x", b"99999999999999999999"]
            ),
        ),
        st.builds(
            lambda w, n: _lines(w + b" " + n),
            st.sampled_from([b"use", b"watch", b"ignore", b"stats-tube"]),
            name,
        ),
        st.builds(
            lambda n, d: _lines(b"pause-tube %b %b" % (n, d)),
            name,
            st.sampled_from([b"0", b"100", b"x"]),
        ),
        st.sampled_from(
            [
                _lines(word)
                for word in (
                    b"stats",
                    b"list-tubes",
                    b"list-tube-used",
                    b"list-tubes-watched",
                    b"peek-ready",
                    b"peek-delayed",
                    b"peek-buried",
                )
            ]
        ),
    )


def malformed() -> st.SearchStrategy[bytes]:
    return st.one_of(
        put_oddity(),
        binary(30).map(lambda junk: junk + b"\r\n"),
        st.integers(200, 700).map(lambda n: b"x" * n + b"\r\n"),
        st.sampled_from(
            [
                b"list-tube-used\rX\r\n",
                b"stats\x00\r\n",
                b"list-tube-used\n",
                b"\r\n",
                b"RESERVE\r\n",
                b"statsx\r\n",
                b"reserve \r\n",
                b"pause-tubedefault 0\r\n",
                b"peek  1\r\n",
                b"quit\r\n",
                b"quitter\r\n",
                b"y" * 223 + b"\r\n",
                b"z" * 222 + b"\r\n",
            ]
        ),
    )


# A reserve that may wait ends its burst: beanstalkd serves connections with work in turn,
# one reply per turn, so commands queued behind a wait and run when it ends would race
# with the commands of the connection that ended it (see diffkit).
waiting = st.sampled_from([_lines(b"reserve")]) | long_timeout.map(
    lambda t: _lines(b"reserve-with-timeout " + t)
)
burst = st.tuples(
    st.lists(st.one_of(command(), command(), command(), malformed()), max_size=5),
    st.one_of(st.just(b""), st.just(b""), waiting),
).map(lambda parts: b"".join(parts[0]) + parts[1])
# A hang-up: a burst, maybe a reserve that waits with commands queued behind it, then the
# socket is closed (beanstalkd answers TIMED_OUT and runs just one of the queued commands).
queued = st.lists(st.one_of(command(), command(), malformed()), max_size=3).map(b"".join)
hang_up = st.builds(
    lambda first, wait, then: HangUp(first + wait + then),
    burst,
    st.one_of(st.just(b""), waiting),
    queued,
)
step = st.tuples(st.integers(0, SLOTS - 1), st.one_of(burst, burst, burst, st.none(), hang_up))


def run_steps(
    steps: list[Step], *, max_job_size: int = MAX_JOB, unix_path: str | None = None
) -> list[int]:
    """Play ``steps`` on both servers (over TCP, or the Unix socket ``unix_path``); return
    how many replies the real server wrote after each hang-up."""
    with run_beanstalkd(max_job_size=max_job_size, unix_path=unix_path) as server:
        diff = Differential(server.address, max_job_size=max_job_size)
        try:
            for slot, data in steps:
                diff.step(slot, data)
            diff.finish()
        finally:
            diff.close()
    return diff.written_after_hang_up


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # each failure is printed whole; replays could mix old choice types
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(step, min_size=1, max_size=25))
@example(
    steps=[
        (0, b"watch a\r\nreserve\r\n"),
        (1, b"watch a\r\nreserve\r\n"),
        (2, b"use a\r\nput 5 0 100 1\r\nx\r\nput 5 0 100 1\r\ny\r\n"),
        (2, b"stats-tube a\r\nstats\r\n"),
    ]
)
@example(
    steps=[
        (0, b"put 0 0 1 1\r\nx\r\nreserve\r\nreserve\r\nreserve-with-timeout 0\r\n"),
        (1, b"use a\r\nput 0 0 0 0\r\n\r\npause-tube a 100\r\n"),
        (0, b"watch a\r\nreserve\r\nlist-tubes-watched\r\n"),
        (1, None),
    ]
)
@example(
    steps=[
        (0, HangUp(b"watch a\r\nreserve\r\nput 1 0 1 1\r\nx\r\n")),
        (1, b"watch a\r\nreserve\r\n"),
        (2, HangUp(b"use a\r\nreserve\r\nput 2 0 1 1\r\ny\r\nput 3 0 1 1\r\nz\r\n")),
    ]
)
def test_same_replies_as_beanstalkd(steps: list[Step]) -> None:
    run_steps(steps)


@settings(
    max_examples=max(EXAMPLES // 4, 10),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_same_replies_as_beanstalkd_over_a_unix_socket(steps: list[Step]) -> None:
    # A write to a client that has hung up fails at once here: no reply goes through.
    with tempfile.TemporaryDirectory() as folder:
        written = run_steps(steps, unix_path=os.path.join(folder, "beanstalkd.sock"))
    assert set(written) <= {0}


def test_waiting_reservers_are_served_in_beanstalkd_order() -> None:
    # Four waiting reservers on one tube, then four jobs: beanstalkd's set hands them out
    # as 0, 1, 3, 2 (protocol-notes §3); the embedded server must do the same.
    steps: list[Step] = [(i, b"reserve\r\n") for i in range(4)]
    steps += [(4, b"put 1 0 100 1\r\n%d\r\n" % i) for i in range(4)]
    steps += [(4, b"stats\r\n")]
    run_steps(steps)


def test_lists_remove_by_swapping_the_last_entry() -> None:
    run_steps(
        [
            (0, b"watch foo\r\nwatch bar\r\nignore default\r\nlist-tubes-watched\r\n"),
            (1, b"use x\r\nuse y\r\nlist-tubes\r\n"),
            (0, None),
            (2, b"list-tubes\r\n"),
        ]
    )


def test_disconnect_returns_jobs_to_waiting_reservers() -> None:
    run_steps(
        [
            (0, b"put 3 0 100 1\r\na\r\nput 2 0 100 1\r\nb\r\nreserve\r\nreserve\r\n"),
            (1, b"reserve\r\n"),
            (2, b"reserve\r\n"),
            (0, None),
            (3, b"stats\r\n"),
        ]
    )


def _put(body: bytes) -> bytes:
    return b"put 0 0 10 %d\r\n%b\r\n" % (len(body), body)


WAIT = b"watch T\r\nignore default\r\nuse T-o\r\nreserve\r\n"
HANG_UPS: list[Step] = [
    (0, HangUp(WAIT + _put(b"first") + _put(b"second"))),
    (1, HangUp(WAIT + b"stats\r\n" + _put(b"third"))),
    (2, HangUp(WAIT + b"list-tube-used\r\n" * 12 + _put(b"fourth"))),
    (3, HangUp(WAIT + _put(b"x" * 250) + _put(b"fifth"))),  # a body past 224 bytes
    (4, HangUp(WAIT + b"put 0 0 10 5\r\nab")),  # a body that never ends
    (5, HangUp(WAIT + _put(b"y" * (MAX_JOB + 1)) + _put(b"sixth"))),  # too big
    (6, HangUp(WAIT + b"reserve\r\n" + _put(b"seventh"))),
    (7, HangUp(WAIT + b"quit\r\n" + _put(b"eighth"))),
    (8, b"stats-tube T-o\r\n"),
]
"""Hang-ups during a wait with commands queued: one write each, the replies up to the wait
read, then the socket closed."""


def test_hang_up_during_a_wait_over_tcp_runs_the_next_command() -> None:
    # beanstalkd answers TIMED_OUT, the client's system answers that with a reset, the next
    # command runs and its reply cannot be written: one job from the first hang-up, and the
    # same state on both sides after each (more commands run if the reset comes late).
    written = run_steps(HANG_UPS)
    assert all(count >= 1 for count in written[:7]), written  # (a quit leaves no trace)


def test_hang_up_during_a_wait_over_a_unix_socket_runs_nothing_more(tmp_path: Path) -> None:
    # There the TIMED_OUT write itself fails: no queued command runs.
    assert run_steps(HANG_UPS, unix_path=str(tmp_path / "beanstalkd.sock")) == [0] * 8


def test_hang_up_hands_jobs_to_waiting_reservers() -> None:
    run_steps(
        [
            (0, b"watch w\r\nreserve\r\n"),
            (1, b"use w\r\n" + _put(b"a") + _put(b"b") + b"watch w\r\nreserve\r\nreserve\r\n"),
            (2, HangUp(b"watch w\r\nreserve\r\nuse w\r\n" + _put(b"c"))),
            (1, HangUp(b"")),
            (3, b"stats\r\n"),
        ]
    )


def test_half_close_during_a_wait_runs_every_queued_command() -> None:
    wait = b"watch T\r\nignore default\r\nuse T-o\r\nreserve\r\n"
    run_steps([(0, wait + _put(b"first") + _put(b"second")), (0, None), (1, b"stats\r\n")])


def test_bodies_up_to_max_job_size() -> None:
    # Bodies over 64 KiB, up to exactly -z, are taken whole; one byte more is refused.
    size = 1_000_000
    steps: list[Step] = []
    for length in (65537, 131072, 300_000, size, size + 1):
        body = bytes(range(256)) * (length // 256) + bytes(range(length % 256))
        steps.append((0, _put(body) + b"reserve-with-timeout 0\r\n"))
        steps.append((0, b"stats\r\n"))
    steps.append((1, HangUp(b"put 0 0 10 %d\r\n" % size + b"z" * 100_000)))
    run_steps(steps, max_job_size=size)


def test_equal_delays_begun_in_one_burst_end_in_that_order() -> None:
    # One burst: the put's delay begins before the release's, so beanstalkd's clock puts
    # job 2 first although job 1 has the smaller id (and the deadline is far off).
    for delay in (b"100", b"4294967295"):
        run_steps(
            [
                (0, b"use d\r\n" + _put(b"one") + b"reserve-job 1\r\n"),
                (0, b"put 0 %b 10 3\r\ntwo\r\nrelease 1 0 %b\r\npeek-delayed\r\n" % (delay, delay)),
                (1, b"use d\r\nkick 1\r\npeek-delayed\r\n"),
            ]
        )


def test_default_max_job_size() -> None:
    with run_beanstalkd() as server:
        diff = Differential(server.address, max_job_size=65535)
        try:
            for size in (65535, 65536):
                diff.step(0, b"put 1 0 1 %d\r\n%b\r\nstats\r\n" % (size, b"j" * size))
        finally:
            diff.close()


def test_normalise_blanks_only_process_fields() -> None:
    reply = b'OK 40\r\n---\ncurrent-jobs-urgent: 1\npid: 12\nversion: "1.12"\n\r\n'
    assert normalise(reply) == (
        b'OK *\r\n---\ncurrent-jobs-urgent: 1\npid: *\nversion: "1.12"\n\r\n'
    )
    assert normalise(b"OK 9\r\n---\n- pid\n\r\n") == b"OK 9\r\n---\n- pid\n\r\n"
    assert split_replies(b"OK 2\r\nab\r\nUSING a\r\nFOUND 1 0\r\n\r\n") == [
        b"OK 2\r\nab\r\n",
        b"USING a\r\n",
        b"FOUND 1 0\r\n\r\n",
    ]
    assert issubclass(Mismatch, AssertionError)
