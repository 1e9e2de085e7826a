"""The command line, driven as a user would: a subprocess against a real beanstalkd."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from clikit import DOCS, jackstalk_cli

import jackstalk
from jackstalk.testing import BeanstalkdServer


def test_put_peek_and_json(beanstalkd: BeanstalkdServer) -> None:
    result = jackstalk_cli(beanstalkd, "put", "jobs", "hello", "--priority", "5", "--ttr", "9")
    assert (result.returncode, result.stdout) == (0, "1\n")
    result = jackstalk_cli(beanstalkd, "stats-job", "1", "--json")
    stats = json.loads(result.stdout)
    assert (stats["tube"], stats["pri"], stats["ttr"], stats["state"]) == ("jobs", 5, 9, "ready")
    result = jackstalk_cli(beanstalkd, "peek", "ready", "jobs", "--json")
    assert json.loads(result.stdout) == {"id": 1, "body": "hello"}


def test_put_reads_stdin_and_keeps_binary_bodies(beanstalkd: BeanstalkdServer) -> None:
    body = bytes(range(1, 128))
    result = jackstalk_cli(beanstalkd, "put", "raw", "-", stdin=body)
    assert result.returncode == 0, result.stderr
    with jackstalk.Client(beanstalkd.address, encoding=None) as client:
        job = client.peek(int(result.stdout))
        assert job is not None
        assert job.body == body


def test_stats_tube_table_and_json(beanstalkd: BeanstalkdServer) -> None:
    jackstalk_cli(beanstalkd, "put", "123", "x")
    result = jackstalk_cli(beanstalkd, "stats", "123", "--json")
    stats = json.loads(result.stdout)
    assert stats["name"] == "123"  # a tube name stays a string
    assert stats["current-jobs-ready"] == 1
    table = jackstalk_cli(beanstalkd, "stats").stdout
    assert re.search(r"^current-jobs-ready\s+1$", table, re.M)
    assert json.loads(jackstalk_cli(beanstalkd, "stats", "--json").stdout)["draining"] is False


def test_not_found_is_exit_1_with_one_line(beanstalkd: BeanstalkdServer) -> None:
    for args in (("peek", "42"), ("stats-job", "42"), ("kick-job", "42"), ("stats", "nope")):
        result = jackstalk_cli(beanstalkd, *args)
        assert result.returncode == 1, args
        assert result.stdout == ""
        assert len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr


def test_usage_errors_are_exit_2(beanstalkd: BeanstalkdServer) -> None:
    for args in (("put", "bad tube!", "x"), ("delete", "abc"), ("peek", "soon", "t"), ()):
        result = jackstalk_cli(beanstalkd, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_cannot_connect_is_exit_3(tmp_path: Path) -> None:
    result = jackstalk_cli(None, "--help")
    assert result.returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "jackstalk", "stats", "--address", str(tmp_path / "no.sock")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("jackstalk: cannot connect")
    assert "Traceback" not in result.stderr


def test_unix_socket_address(beanstalkd_unix: BeanstalkdServer) -> None:
    result = jackstalk_cli(beanstalkd_unix, "tubes", "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, ["default"])


def test_drain_and_kick_counts(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, use="work") as client:
        client.put_many(["a", "b", "c"])
        client.put("later", delay=3600)
    result = jackstalk_cli(beanstalkd, "drain", "work", "--json")
    assert json.loads(result.stdout) == {"deleted": 3}
    assert jackstalk_cli(beanstalkd, "drain", "work").returncode == 1
    result = jackstalk_cli(beanstalkd, "drain", "work", "--all")
    assert (result.returncode, result.stdout) == (0, "deleted 1 job(s) from work\n")


# ------------------------------------------------------------------ the page's sessions


def _sessions() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every `$` line of docs/cli.md."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def _matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def test_cli_page_sessions(beanstalkd: BeanstalkdServer) -> None:
    steps = _sessions()
    assert len(steps) > 10
    for command, expected in steps:
        words = command.split(" ")
        assert words[0] == "jackstalk"
        args = [word.strip('"') for word in words[1:]]
        result = jackstalk_cli(beanstalkd, *args)
        actual = (result.stderr + result.stdout).splitlines()
        assert len(actual) == len(expected), (command, actual)
        for want, got in zip(expected, actual, strict=True):
            assert _matches(want, got), (command, want, got)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_top_draws_and_quits_on_q(beanstalkd: BeanstalkdServer) -> None:
    """`top` in a real terminal (a pty): read its screen back, then press q."""
    import pty
    import select

    with jackstalk.Client(beanstalkd.address, use="visible") as client:
        client.put("x")
    address = f"{beanstalkd.address[0]}:{beanstalkd.address[1]}"
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execv(
            sys.executable,
            [sys.executable, "-m", "jackstalk", "top", "--address", address, "--interval", "30"],
        )
    screen = b""
    try:
        while b"q or Ctrl-C quits" not in screen:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"top drew nothing: {screen!r}"
            screen += os.read(fd, 65536)
        os.write(fd, b"q")
        while True:  # read to the end: the pty closes when top exits
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                os.kill(pid, 9)
                pytest.fail("top did not quit on q")
            try:
                if not os.read(fd, 65536):
                    break
            except OSError:  # EIO: the child side closed
                break
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = screen.decode()
    assert "beanstalkd 1.12" in text
    assert re.search(r"visible\s+1\s+0\s+0\s+0\s+0\s+1", text)
    assert os.waitstatus_to_exitcode(status) == 0
