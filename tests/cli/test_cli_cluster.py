"""The command line on several servers (``--address`` repeated, or a comma-separated
``BEANSTALKD_ADDRESS``): a row per server and the total for stats, tubes and top, a stopped
server shown as down, puts spread over the servers, drain emptying all of them. Against three
real beanstalkd processes (tests/cluster/clusterkit.py, whose servers can be killed: a dead
server's port refuses connections)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from clikit import DOCS, ROOT, TIME_LIMIT, show

import jackstalk
from jackstalk.__main__ import main


def _load_clusterkit() -> ModuleType:
    """tests/cluster/clusterkit.py, loaded by its path (pytest puts only the running test's
    own folder on ``sys.path``)."""
    loaded = sys.modules.get("clusterkit")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(
        "clusterkit", ROOT / "tests" / "cluster" / "clusterkit.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["clusterkit"] = module
    spec.loader.exec_module(module)
    return module


clusterkit = _load_clusterkit()


@pytest.fixture
def servers() -> Iterator[list[Any]]:
    """Three running beanstalkd (clusterkit servers: ``address``, ``kill()``)."""
    with clusterkit.servers(3, None) as started:
        yield started


def names(servers: list[Any]) -> list[str]:
    return [show(server.address) for server in servers]


def cli(servers: list[Any], *args: str, env_list: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m jackstalk ARGS`` with every server in ``BEANSTALKD_ADDRESS`` (or, with
    ``env_list=False``, each one as an ``--address``)."""
    env = {key: value for key, value in os.environ.items() if key != "BEANSTALKD_ADDRESS"}
    addresses = names(servers)
    if env_list:
        env["BEANSTALKD_ADDRESS"] = ",".join(addresses)
    else:
        args = (*args, *(word for name in addresses for word in ("--address", name)))
    return subprocess.run(
        [sys.executable, "-m", "jackstalk", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=TIME_LIMIT,
        check=False,
    )


def fill(servers: list[Any], tube: str, counts: list[int]) -> None:
    """Put ``counts[i]`` jobs into ``tube`` on server ``i`` (none: the tube is not there)."""
    for server, count in zip(servers, counts, strict=True):
        if count:
            with jackstalk.Client(server.address, use=tube) as client:
                client.put_many([f"job {n}" for n in range(count)])


def ready(server: Any, tube: str) -> int:
    with jackstalk.Client(server.address) as client:
        try:
            return int(client.stats_tube(tube)["current-jobs-ready"])
        except jackstalk.NotFoundError:
            return 0


def cells(text: str, first: str) -> list[str]:
    """The cells of the text table's row that starts with ``first``."""
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == first:
            return words[1:]
    raise AssertionError(f"no row {first!r} in:\n{text}")


# ------------------------------------------------------------------ addresses


def test_repeated_address_and_comma_list_are_the_same_servers(servers: list[Any]) -> None:
    fill(servers, "work", [1, 2, 0])
    from_env = cli(servers, "stats", "work", "--json")
    from_options = cli(servers, "stats", "work", "--json", env_list=False)
    assert from_env.returncode == from_options.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout) == json.loads(from_options.stdout)
    assert list(json.loads(from_env.stdout)["servers"]) == names(servers)


def test_one_address_among_several_in_the_environment_wins(servers: list[Any]) -> None:
    """``--address`` replaces the environment's list: one server, today's output."""
    fill(servers, "work", [1, 0, 0])
    result = cli(servers, "tubes", "--address", names(servers)[0], "--json")
    assert (result.returncode, json.loads(result.stdout)) == (0, ["default", "work"])


def test_several_addresses_are_a_usage_error_where_one_server_is_meant(
    servers: list[Any],
) -> None:
    for args in (("peek", "1"), ("stats-job", "1"), ("delete", "1"), ("kick", "t")):
        result = cli(servers, *args)
        assert (result.returncode, result.stdout) == (2, ""), args
        assert result.stderr.startswith(f"usage: jackstalk {args[0]} ")
        assert result.stderr.splitlines()[-1] == (
            f"jackstalk {args[0]}: error: {args[0]} works on one server, and"
            " $BEANSTALKD_ADDRESS names 3: give a single --address"
        )


def test_an_address_given_twice_is_a_usage_error(
    servers: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    first = names(servers)[0]
    assert main(["stats", "--address", first, "--address", first]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"jackstalk stats: error: address {first} is given twice (--address)"
    )


def test_a_bad_address_in_the_list_is_a_usage_error(
    servers: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BEANSTALKD_ADDRESS", f"{names(servers)[0]}, localhost:99999")
    assert main(["tubes"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "jackstalk tubes: error: argument --address: bad port in address 'localhost:99999'"
    )


# ------------------------------------------------------------------ reading


def test_stats_has_a_column_per_server_and_the_total(servers: list[Any]) -> None:
    fill(servers, "work", [1, 2, 0])
    result = cli(servers, "stats", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    stats = json.loads(result.stdout)
    assert set(stats) == {"servers", "total", "down"}
    assert stats["down"] == {}
    ready_by_server = {name: doc["current-jobs-ready"] for name, doc in stats["servers"].items()}
    assert ready_by_server == dict(zip(names(servers), [1, 2, 0], strict=True))
    assert stats["total"]["current-jobs-ready"] == 3
    assert stats["total"]["version"] == ["1.12"] * 3  # what does not add up: one per server

    text = cli(servers, "stats").stdout
    assert text.splitlines()[0].split() == [*names(servers), "total"]
    assert cells(text, "current-jobs-ready") == ["1", "2", "0", "3"]
    assert cells(text, "version") == ["1.12", "1.12", "1.12", "1.12"]  # all agree
    assert cells(text, "pid")[-1] == "-"  # they differ


def test_stats_tube_shows_a_server_without_the_tube(servers: list[Any]) -> None:
    fill(servers, "work", [1, 2, 0])
    stats = json.loads(cli(servers, "stats", "work", "--json").stdout)
    _, second, third = names(servers)
    assert stats["servers"][third] is None  # answered, has no such tube
    assert stats["servers"][second]["current-jobs-ready"] == 2
    assert (stats["total"]["name"], stats["total"]["current-jobs-ready"]) == ("work", 3)
    text = cli(servers, "stats", "work").stdout
    assert cells(text, "current-jobs-ready") == ["1", "2", "-", "3"]
    assert cells(text, "name") == ["work", "work", "-", "work"]
    missing = cli(servers, "stats", "nosuchtube")
    assert (missing.returncode, missing.stderr) == (1, "jackstalk: tube nosuchtube not found\n")


def test_tubes_has_a_row_per_server_and_the_total(servers: list[Any]) -> None:
    fill(servers, "a", [1, 0, 0])
    fill(servers, "b", [0, 1, 0])
    first, second, third = names(servers)
    result = cli(servers, "tubes", "--json")
    assert json.loads(result.stdout) == {
        "servers": {first: ["default", "a"], second: ["default", "b"], third: ["default"]},
        "total": ["default", "a", "b"],
        "down": {},
    }
    text = cli(servers, "tubes").stdout
    assert [line.split() for line in text.splitlines()] == [
        [first, "default", "a"],
        [second, "default", "b"],
        [third, "default"],
        ["total", "default", "a", "b"],
    ]


def test_top_json_has_each_server_and_the_total(servers: list[Any]) -> None:
    fill(servers, "work", [2, 0, 1])
    result = cli(servers, "top", "--json")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.count("\n") == 1
    snapshot = json.loads(result.stdout)
    assert set(snapshot) == {"servers", "total", "down"}
    first, second, third = names(servers)
    assert list(snapshot["servers"]) == [first, second, third]
    assert list(snapshot["servers"][second]["tubes"]) == ["default"]
    assert snapshot["servers"][third]["tubes"]["work"]["current-jobs-ready"] == 1
    assert snapshot["servers"][first]["server"]["current-jobs-ready"] == 2
    assert snapshot["total"]["server"]["current-jobs-ready"] == 3
    assert snapshot["total"]["tubes"]["work"]["current-jobs-ready"] == 3
    assert snapshot["down"] == {}


def test_top_off_a_terminal_prints_server_rows_and_totals(servers: list[Any]) -> None:
    fill(servers, "work", [2, 0, 1])
    result = cli(servers, "top", "--iterations", "2", "--interval", "0")
    assert (result.returncode, result.stderr) == (0, "")
    assert "\x1b" not in result.stdout
    snapshots = re.split(r"\n\n(?=beanstalkd )", result.stdout)
    assert len(snapshots) == 2
    for snapshot in snapshots:
        assert snapshot.startswith("beanstalkd 1.12  servers 3 down 0  connections 3  ")
        first, second, third = names(servers)
        # ready reserved delayed buried waiting total puts/s
        assert cells(snapshot, first)[:6] == ["2", "0", "0", "0", "0", "2"]
        assert cells(snapshot, second)[:6] == ["0", "0", "0", "0", "0", "0"]
        assert cells(snapshot, third)[:6] == ["1", "0", "0", "0", "0", "1"]
        assert cells(snapshot, "total")[:6] == ["3", "0", "0", "0", "0", "3"]
        assert cells(snapshot, "work")[:6] == ["3", "0", "0", "0", "0", "3"]


# ------------------------------------------------------------------ a server down


def test_a_stopped_server_shows_as_down(servers: list[Any]) -> None:
    fill(servers, "work", [1, 2, 0])
    servers[1].kill()
    first, stopped, third = names(servers)
    warning = re.compile(rf"^jackstalk: {re.escape(stopped)} is down \(cannot connect: .+\)$")

    result = cli(servers, "stats", "--json")
    assert result.returncode == 0
    assert warning.match(result.stderr.strip()), result.stderr
    stats = json.loads(result.stdout)
    assert list(stats["servers"]) == [first, third]
    assert list(stats["down"]) == [stopped]
    assert "cannot connect" in stats["down"][stopped]
    assert stats["total"]["current-jobs-ready"] == 1  # the live servers' total
    text = cli(servers, "stats", "work").stdout
    assert cells(text, "current-jobs-ready") == ["1", "down", "-", "1"]

    tubes = cli(servers, "tubes")
    assert warning.match(tubes.stderr.strip()), tubes.stderr
    assert cells(tubes.stdout, stopped) == ["down"]
    assert list(json.loads(cli(servers, "tubes", "--json").stdout)["down"]) == [stopped]

    top = json.loads(cli(servers, "top", "--json").stdout)
    assert (list(top["servers"]), list(top["down"])) == ([first, third], [stopped])
    screen = cli(servers, "top", "--iterations", "1").stdout
    assert screen.startswith("beanstalkd 1.12  servers 3 down 1  ")
    assert cells(screen, stopped)[:3] == ["down", "cannot", "connect:"]
    assert cells(screen, "total")[:6] == ["1", "0", "0", "0", "0", "1"]


def test_every_server_down_is_cannot_connect(servers: list[Any]) -> None:
    for server in servers:
        server.kill()
    for args in (("stats",), ("stats", "work"), ("tubes",), ("top", "--json"), ("put", "t", "x")):
        result = cli(servers, *args)
        assert (result.returncode, result.stdout) == (3, ""), args
        assert "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, (args, result.stderr)


# ------------------------------------------------------------------ put and drain


def _put_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """``jackstalk put ... --json`` run in this process (quicker than a process per put)."""
    assert main([*args, "--json"]) == 0
    put: dict[str, Any] = json.loads(capsys.readouterr().out)
    return put


def test_put_spreads_over_the_servers(
    servers: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each put starts its turn at a random server: 60 puts miss one of three servers with
    a probability under 1e-10."""
    monkeypatch.setenv("BEANSTALKD_ADDRESS", ",".join(names(servers)))
    where = [_put_in_process(["put", "spread", f"job {n}"], capsys) for n in range(60)]
    assert {put["server"] for put in where} == set(names(servers))
    counts = [ready(server, "spread") for server in servers]
    assert sum(counts) == 60
    assert all(counts), counts
    # Each id is the job's id on the server named.
    put = where[-1]
    with jackstalk.Client(clusterkit_address(servers, put["server"])) as client:
        job = client.peek(put["id"])
        assert job is not None
        assert job.body == "job 59"


def clusterkit_address(servers: list[Any], name: str) -> tuple[str, int]:
    address: tuple[str, int] = servers[names(servers).index(name)].address
    return address


def test_put_prints_server_slash_id_and_passes_over_a_stopped_server(
    servers: list[Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cli(servers, "put", "one", "hello", "--priority", "7")
    assert result.returncode == 0, result.stderr
    name, _, job_id = result.stdout.strip().rpartition("/")
    with jackstalk.Client(clusterkit_address(servers, name)) as client:
        assert client.stats_job(int(job_id))["pri"] == 7
    servers[0].kill()
    monkeypatch.setenv("BEANSTALKD_ADDRESS", ",".join(names(servers)))
    where = {_put_in_process(["put", "over", "x"], capsys)["server"] for _ in range(12)}
    assert names(servers)[0] not in where
    assert sum(ready(server, "over") for server in servers[1:]) == 12


def test_drain_empties_every_server(servers: list[Any]) -> None:
    fill(servers, "work", [2, 3, 1])
    with jackstalk.Client(servers[2].address, use="work") as client:
        client.put("later", delay=3600)
    result = cli(servers, "drain", "work", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "deleted": 6,
        "servers": dict(zip(names(servers), [2, 3, 1], strict=True)),
        "down": {},
    }
    assert [ready(server, "work") for server in servers] == [0, 0, 0]
    result = cli(servers, "drain", "work", "--all")
    assert (result.returncode, result.stdout) == (0, "deleted 1 job(s) from work\n")
    assert cli(servers, "drain", "work").returncode == 1


def test_drain_with_a_stopped_server_empties_the_others_and_says_so(
    servers: list[Any],
) -> None:
    fill(servers, "work", [2, 3, 1])
    servers[1].kill()
    stopped = names(servers)[1]
    result = cli(servers, "drain", "work")
    assert (result.returncode, result.stdout) == (3, "deleted 3 job(s) from work\n")
    assert re.fullmatch(
        rf"jackstalk: {re.escape(stopped)} is down: its jobs of work were not drained"
        r" \(cannot connect: .+\)\n",
        result.stderr,
    ), result.stderr
    assert (ready(servers[0], "work"), ready(servers[2], "work")) == (0, 0)


# ------------------------------------------------------------------ the page's sessions


PLACEHOLDERS = ("127.0.0.1:11300", "127.0.0.1:11301", "127.0.0.1:11302")
"""The addresses docs/cli.md's several-server sessions show, in the order of the servers."""


def _cluster_sessions() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of the ``console several-servers`` blocks of
    docs/cli.md (the one-server harness in test_cli.py reads only plain ``console``)."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console several-servers\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def _matches(expected: str, actual: str) -> bool:
    """Whitespace runs compared as one space (column widths follow the addresses' lengths),
    ``...`` standing for anything."""
    expected, actual = " ".join(expected.split()), " ".join(actual.split())
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def test_cli_page_several_server_sessions(servers: list[Any]) -> None:
    """Run with ``BEANSTALKD_ADDRESS`` naming the three servers, the page's addresses
    standing for the real ones."""
    steps = _cluster_sessions()
    assert len(steps) >= 5
    real = names(servers)

    def to_page(text: str) -> str:
        pairs = sorted(zip(real, PLACEHOLDERS, strict=True), key=lambda pair: -len(pair[0]))
        for name, placeholder in pairs:  # the longest first: no port is cut short
            text = text.replace(name, placeholder)
        return text

    for command, expected in steps:
        words = command.split(" ")
        assert words[0] == "jackstalk"
        args = [word.strip('"') for word in words[1:]]
        for index, word in enumerate(args):
            if word in PLACEHOLDERS:
                args[index] = real[PLACEHOLDERS.index(word)]
        result = cli(servers, *args)
        actual = to_page(result.stderr + result.stdout).splitlines()
        assert len(actual) == len(expected), (command, actual)
        for want, got in zip(expected, actual, strict=True):
            assert _matches(want, got), (command, want, got)
