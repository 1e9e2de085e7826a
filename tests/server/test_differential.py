"""The embedded server answers like beanstalkd 1.12, byte for byte.

Hypothesis writes random sequences of raw bytes over a few connections: well-formed commands
with edge values, malformed and over-long lines, bare ``\\r`` and NUL bytes, bodies of the
wrong length or over the size limit, pipelined bursts, quits and hang-ups. A fresh real
beanstalkd and a fresh embedded server get the same bytes, and every reply must be the same
(``stats`` is compared on every field that does not describe the process).

Nothing here depends on time: no delays or reserve timeouts that could run out during an
example (those are in test_engine_time.py and test_realtime.py).
"""

from __future__ import annotations

import os

import pytest
from diffkit import Differential, Mismatch, normalise, split_replies
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
step = st.tuples(st.integers(0, SLOTS - 1), st.one_of(burst, burst, st.none()))


def run_steps(steps: list[tuple[int, bytes | None]]) -> None:
    with run_beanstalkd(max_job_size=MAX_JOB) as server:
        diff = Differential(server.address, max_job_size=MAX_JOB)
        try:
            for slot, data in steps:
                diff.step(slot, data)
            diff.finish()
        finally:
            diff.close()


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
def test_same_replies_as_beanstalkd(steps: list[tuple[int, bytes | None]]) -> None:
    run_steps(steps)


def test_waiting_reservers_are_served_in_beanstalkd_order() -> None:
    # Four waiting reservers on one tube, then four jobs: beanstalkd's set hands them out
    # as 0, 1, 3, 2 (protocol-notes §3); the embedded server must do the same.
    steps: list[tuple[int, bytes | None]] = [(i, b"reserve\r\n") for i in range(4)]
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
