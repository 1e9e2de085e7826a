"""The command line's arguments: job ids, numbers, ``--version`` and the help texts.

Most of these run ``main()`` in-process: argparse refuses an argument before any connection
is attempted, so no server is needed (the address given is a closed loopback port anyway).
"""

from __future__ import annotations

import argparse
import re

import pytest
from clikit import DOCS, jackstalk_cli

import jackstalk
from jackstalk.__main__ import build_parser, main
from jackstalk.testing import BeanstalkdServer

NOWHERE = "127.0.0.1:1"
"""An address nothing listens on: were a command to connect, it would fail with status 3."""

BAD_JOB_IDS = ("0", "-1", "-0", "abc", "1.5", "1e3", "0x10", "²", " 7", "18446744073709551616")
GOOD_JOB_IDS = ("1", "007", "18446744073709551615")

JOB_ID_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("peek",),
    ("stats-job",),
    ("kick-job",),
    ("delete",),
    ("delete", "5"),  # a bad id after a good one
)


def _commands() -> dict[str, argparse.ArgumentParser]:
    """Every sub-command's name and parser, as ``jackstalk --help`` lists them."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            return choices
    raise AssertionError("no sub-commands")


def _status(argv: list[str]) -> object:
    """``main(argv)``'s exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exited:
        return exited.code


@pytest.mark.parametrize("command", JOB_ID_COMMANDS, ids=" ".join)
def test_every_invalid_job_id_is_the_same_usage_error(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    for bad in BAD_JOB_IDS:
        with pytest.raises(SystemExit) as exited:
            main([*command, bad, "--address", NOWHERE])
        assert exited.value.code == 2, bad
        out, err = capsys.readouterr()
        assert out == ""
        lines = err.splitlines()
        assert lines[0].startswith(f"usage: jackstalk {command[0]} "), err
        assert lines[-1].startswith(f"jackstalk {command[0]}: error: argument "), err
        assert f"invalid job id {bad!r}" in lines[-1], err
        assert "18446744073709551615" in lines[-1]
        assert "Traceback" not in err


@pytest.mark.parametrize("command", ["peek", "stats-job", "kick-job", "delete"])
def test_valid_job_ids_reach_the_server(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The largest id beanstalkd can hand out is accepted: the command gets as far as
    connecting (and fails there, status 3, as nothing listens)."""
    for good in GOOD_JOB_IDS:
        assert main([command, good, "--address", NOWHERE]) == 3
        _, err = capsys.readouterr()
        assert err.startswith(f"jackstalk: cannot connect to {NOWHERE}"), err


def test_peek_0_is_a_usage_error_not_a_traceback(beanstalkd: BeanstalkdServer) -> None:
    """The reported case, as the user ran it: a subprocess, against a running server."""
    for args in (("peek", "0"), ("peek", "-3"), ("stats-job", "0"), ("delete", "0")):
        result = jackstalk_cli(beanstalkd, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        assert result.stderr.splitlines()[-1].endswith(
            f"invalid job id {args[1]!r}: a whole number from 1 to 18446744073709551615"
        )


def test_peek_words_and_shapes_are_checked_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args, message in (
        (["peek", "soon", "t"], "invalid job id 'soon': ready, delayed, buried or a whole"),
        (["peek", "ready"], "peek ready needs a TUBE"),
        (["peek", "5", "t"], "peek 5 takes no tube"),
        (["peek", "5", "--raw", "--json"], "--raw and --json exclude each other"),
    ):
        assert _status([*args, "--address", NOWHERE]) == 2, args
        _, err = capsys.readouterr()
        assert err.startswith("usage: jackstalk peek "), err
        assert message in err.splitlines()[-1], err


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (["put", "t", "x", "--priority", "-1"], "-1"),
        (["put", "t", "x", "--priority", "4294967296"], "4294967296"),
        (["put", "t", "x", "--delay", "1.5"], "1.5"),
        (["put", "t", "x", "--ttr", "soon"], "soon"),
        (["kick", "t", "-2"], "-2"),
        (["pause", "t", "²"], "²"),
        (["top", "--interval", "-1"], "-1"),
        (["top", "--interval", "nan"], "nan"),
    ],
)
def test_numbers_out_of_the_protocol_range_are_usage_errors(
    args: list[str], bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*args, "--address", NOWHERE])
    assert exited.value.code == 2
    _, err = capsys.readouterr()
    assert f"{bad!r}" in err.splitlines()[-1], err


def test_version_prints_the_version() -> None:
    result = jackstalk_cli(None, "--version")
    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"jackstalk {jackstalk.__version__}\n",
        "",
    )


def test_help_tells_where_the_server_is_and_the_exit_statuses() -> None:
    result = jackstalk_cli(None, "--help")
    assert result.returncode == 0
    text = result.stdout
    for needed in ("--address", "BEANSTALKD_ADDRESS", "127.0.0.1:11300", "--version", "--tls"):
        assert needed in text, needed
    statuses = re.findall(r"^ +([0-3]) +(\S.*)$", text, re.M)
    assert [code for code, _ in statuses] == ["0", "1", "2", "3"], text
    assert "usage error" in dict(statuses)["2"]
    assert "cannot connect" in dict(statuses)["3"]
    # Each queue command's own help ends with the statuses too.
    assert "2  usage error" in jackstalk_cli(None, "stats", "--help").stdout


def test_put_options_have_help_and_defaults() -> None:
    text = " ".join(jackstalk_cli(None, "put", "--help").stdout.split())  # unwrap the lines
    assert re.search(r"--priority PRIORITY 0 \(most urgent\) .*\(default: 2147483648\)", text)
    assert re.search(r"--delay DELAY seconds .*\(default: 0\)", text)
    assert re.search(r"--ttr TTR time to run.*\(default: 120\)", text)


def test_every_command_of_the_help_is_documented() -> None:
    """docs/cli.md mentions each command ``jackstalk --help`` lists (``example`` included)."""
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    commands = _commands()
    assert "example" in commands
    missing = [name for name in commands if f"jackstalk {name}" not in page]
    assert missing == []
