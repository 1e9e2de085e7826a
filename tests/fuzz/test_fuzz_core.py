"""The fuzz entry point (``fuzz_core.py``) under hypothesis: arbitrary bytes, and mutations
of well-formed reply streams, with every invariant the afl/atheris harness checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fuzz_core import COMMANDS, decode, fuzz_one, main, seeds
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=1500))
@example(b"")
@example(b"\x00\x13\xffRESERVED 1 99999999999\r\n")
@example(b"\x00\x13\x00" + b"9" * 600)
def test_arbitrary_bytes(data: bytes) -> None:
    fuzz_one(data)


@st.composite
def mutated_seeds(draw: st.DrawFn) -> bytes:
    """A well-formed input with a few bytes changed, cut, or repeated."""
    data = bytearray(draw(st.sampled_from(list(seeds()))))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        where = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[where] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[where:where] = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b" ", b"0", b"\x00"]))
        elif kind == "delete" and data:
            del data[where]
        elif kind == "truncate":
            del data[where:]
        elif kind == "repeat":
            data += data[3:]
    return bytes(data)


@SETTINGS
@given(mutated_seeds())
def test_mutated_reply_streams(data: bytes) -> None:
    fuzz_one(data)


def test_seeds_parse_without_errors() -> None:
    """The seeds reach deep states: each well-formed stream parses to one event per
    command (quit aside), with no error."""
    from fuzz_core import _run

    for seed in seeds():
        case = decode(seed)
        events, error = _run(case, 0)
        expected = [command for command in case.commands if type(command).__name__ != "Quit"]
        if case.max_body == 2**30:
            assert error is None, (seed, error)
            assert len(events) == len(expected), seed
        fuzz_one(seed)


def test_decode_covers_every_command() -> None:
    picked = {type(decode(bytes([0, index, 0])).commands[0]) for index in range(len(COMMANDS))}
    assert len(picked) == len(COMMANDS) == 25


def test_stdin_entry_point() -> None:
    """``python tests/fuzz/fuzz_core.py < input``, as an afl run would start it."""
    for data in (b"", b"\x00\x13\xffINSERTED 1\r\n", bytes(range(256))):
        done = subprocess.run(
            [sys.executable, str(HERE / "fuzz_core.py")],
            input=data,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")


def test_write_corpus(tmp_path: Path) -> None:
    assert main(["--write-corpus", str(tmp_path / "corpus")]) == 0
    written = sorted((tmp_path / "corpus").iterdir())
    assert [path.read_bytes() for path in written] == list(seeds())
    assert main(["--write-corpus"]) == 2
