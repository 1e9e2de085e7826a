"""What the command line prints: not-found messages, job bodies (escaped, ``--raw``, JSON)
and ``top`` off a terminal (plain snapshots, ``--json``). Each command runs as a subprocess
against the test's own beanstalkd."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from clikit import TIME_LIMIT, environment, jackstalk_bytes, jackstalk_cli
from hypothesis import example, given
from hypothesis import strategies as st

import jackstalk
from jackstalk._app.cli import body_text
from jackstalk.testing import BeanstalkdServer


def unescape(text: str) -> bytes:
    """The bytes a ``peek`` line stands for: the documented scheme, undone."""
    out = bytearray()
    for match in re.finditer(r"\\\\|\\x([0-9a-f]{2})|[^\\]|(\\)", text):
        assert match[2] is None, f"a lone backslash in {text!r}"
        if match[1] is not None:
            out.append(int(match[1], 16))
        elif match[0] == "\\\\":
            out += b"\\"
        else:
            out += match[0].encode("utf-8")
    return bytes(out)


# ------------------------------------------------------------------------------ not found


def test_every_not_found_names_what_in_one_wording(beanstalkd: BeanstalkdServer) -> None:
    """``jackstalk: <job N | tube T | STATE job in tube T> not found``, status 1, whichever
    command missed it."""
    cases = {
        ("stats-job", "999999"): "job 999999",
        ("peek", "999999"): "job 999999",
        ("kick-job", "999999"): "job 999999",
        ("delete", "999999"): "job 999999",
        ("stats", "nosuchtube"): "tube nosuchtube",
        ("pause", "nosuchtube", "60"): "tube nosuchtube",
        ("peek", "ready", "empty"): "ready job in tube empty",
        ("peek", "delayed", "empty"): "delayed job in tube empty",
        ("peek", "buried", "empty"): "buried job in tube empty",
    }
    for args, what in cases.items():
        result = jackstalk_cli(beanstalkd, *args)
        assert (result.returncode, result.stdout) == (1, ""), args
        assert result.stderr == f"jackstalk: {what} not found\n", args


def test_a_job_in_the_wrong_state_is_named_with_its_state(beanstalkd: BeanstalkdServer) -> None:
    with (
        jackstalk.Client(beanstalkd.address, use="work") as producer,
        jackstalk.Client(beanstalkd.address, watch="work") as worker,
    ):
        ready = producer.put("ready")
        taken = producer.put("taken")
        job = worker.reserve(timeout=0)  # the older job first: ``ready`` ...
        assert job is not None
        job.release(priority=2**32 - 1)  # ... sent to the back, so ``taken`` comes next
        job = worker.reserve(timeout=0)
        assert job is not None
        assert job.id == taken
        result = jackstalk_cli(beanstalkd, "kick-job", str(ready))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (
            f"jackstalk: job {ready} is ready: only a buried or delayed job is kicked\n"
        )
        result = jackstalk_cli(beanstalkd, "delete", str(taken), "999999", str(ready), "--json")
        assert result.returncode == 1
        assert json.loads(result.stdout) == {"deleted": [ready], "not_found": [taken, 999999]}
        assert result.stderr.splitlines() == [
            f"jackstalk: job {taken} is reserved: only its reserver may delete it",
            "jackstalk: job 999999 not found",
        ]


# ------------------------------------------------------------------------------ bodies


@given(st.binary(max_size=300))
@example(bytes(range(256)))
@example(b"\\x41\\\\")  # text that looks like escapes stays distinguishable
@example("h\u00e9llo \u2713 \U0001f600\u200b\u0085".encode())
def test_peek_line_is_printable_and_stands_for_the_bytes(body: bytes) -> None:
    line = body_text(body)
    assert line.isprintable()  # no control byte at all, not even a newline
    assert unescape(line) == body


def test_peek_escapes_every_non_printable_byte_alike(beanstalkd: BeanstalkdServer) -> None:
    body = b"a\x00b\xff\n\\c\xc3\xa9\t\xe2\x80\x8b\x7f"
    with jackstalk.Client(beanstalkd.address, encoding=None, use="bin") as client:
        job_id = client.put(body)
    result = jackstalk_bytes(beanstalkd, "peek", str(job_id))
    assert result.returncode == 0, result.stderr
    expected = f"{job_id}\na\\x00b\\xff\\x0a\\\\cé\\x09\\xe2\\x80\\x8b\\x7f\n"
    assert result.stdout.decode("utf-8") == expected
    result = jackstalk_bytes(beanstalkd, "peek", "ready", "bin")
    assert result.stdout.decode("utf-8") == expected


def test_peek_raw_writes_the_body_bytes_and_nothing_else(beanstalkd: BeanstalkdServer) -> None:
    bodies = [bytes(range(256)) + b"\r\n\x00", b"", b"plain text\n\n"]
    with jackstalk.Client(beanstalkd.address, encoding=None, use="raw") as client:
        ids = [client.put(body) for body in bodies]
    for job_id, body in zip(ids, bodies, strict=True):
        result = jackstalk_bytes(beanstalkd, "peek", str(job_id), "--raw")
        assert (result.returncode, result.stdout, result.stderr) == (0, body, b"")
    result = jackstalk_bytes(beanstalkd, "peek", "ready", "raw", "--raw")
    assert result.stdout == bodies[0]
    shown = jackstalk_cli(beanstalkd, "peek", str(ids[0]), "--json")
    assert json.loads(shown.stdout) == {"id": ids[0], "body_hex": bodies[0].hex()}


# ------------------------------------------------------------------------------ top


def test_top_json_is_one_snapshot(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, use="visible") as client:
        client.put("now")
        client.put("later", delay=3600)
    result = jackstalk_cli(beanstalkd, "top", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.count("\n") == 1
    snapshot = json.loads(result.stdout)
    assert set(snapshot) == {"server", "tubes"}
    assert snapshot["server"]["current-jobs-ready"] == 1
    assert snapshot["server"]["version"] == "1.12"
    assert list(snapshot["tubes"]) == ["default", "visible"]
    visible = snapshot["tubes"]["visible"]
    assert (visible["current-jobs-ready"], visible["current-jobs-delayed"]) == (1, 1)


def test_top_off_a_terminal_prints_plain_snapshots(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, use="visible") as client:
        client.put("x")
    result = jackstalk_cli(beanstalkd, "top", "--iterations", "3", "--interval", "0")
    assert (result.returncode, result.stderr) == (0, "")
    assert "\x1b" not in result.stdout  # no escape codes into a pipe
    assert "q or Ctrl-C quits" not in result.stdout
    snapshots = re.split(r"\n\n(?=beanstalkd )", result.stdout)
    assert len(snapshots) == 3
    for snapshot in snapshots:
        assert snapshot.startswith("beanstalkd 1.12  uptime ")
        assert re.search(r"^visible\s+1\s+0\s+0\s+0\s+0\s+1\s+\d+\.\d$", snapshot, re.M)


def test_top_stops_quietly_when_its_reader_goes(beanstalkd: BeanstalkdServer) -> None:
    """``jackstalk top | head``: once the reader closes the pipe, top exits 0, no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jackstalk", "top", "--interval", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(beanstalkd),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        assert process.stdout.readline().startswith(b"beanstalkd 1.12")
        process.stdout.close()  # the reader goes; top is still writing snapshots
        status = process.wait(timeout=TIME_LIMIT)
        errors = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert (status, errors) == (0, b"")


@pytest.mark.parametrize("args", [("tubes", "--json"), ("stats", "--json")])
def test_other_reading_commands_also_stop_quietly_on_a_closed_pipe(
    beanstalkd: BeanstalkdServer, args: tuple[str, ...]
) -> None:
    """The output fits the pipe, so it is flushed before the end: a closed pipe shows up in
    the flush, still without a traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jackstalk", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(beanstalkd),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    try:
        status = process.wait(timeout=TIME_LIMIT)
        errors = process.stderr.read()
    finally:
        process.stderr.close()
    assert (status, errors) == (0, b"")
