"""The poller and the body rendering without a browser: one pipelined batch per server
however many tubes (counted as the client's writes), honest rates, the history, and how
bodies are shown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from webkit import name_of

import jackstalk
from jackstalk._app.cluster import server_name
from jackstalk._app.web.jobs import render_body
from jackstalk._app.web.poller import Poller, ServerSnapshot, Snapshot
from jackstalk.testing import BeanstalkdServer

TUBES = 1000


def _fill(address: Any, count: int) -> list[str]:
    names = [f"tube-{index:04d}" for index in range(count)]
    with jackstalk.Client(address, timeout=60) as client:
        for name in names:
            client.put(b"x", tube=name)
    return names


def _record_writes(poller: Poller, address: Any) -> list[bytes]:
    """From now on, every write of the poller's connection to ``address``, in order."""
    client = poller._clients[name_of(address)]
    writes: list[bytes] = []
    write = client._write

    def recorded(data: bytes) -> Any:
        writes.append(data)
        return write(data)

    client._write = recorded  # type: ignore[method-assign]
    return writes


def test_a_refresh_of_1000_known_tubes_is_one_batch(beanstalkd: BeanstalkdServer) -> None:
    names = _fill(beanstalkd.address, TUBES)

    async def main() -> tuple[list[bytes], Snapshot]:
        poller = Poller([beanstalkd.address], interval=1.0, timeout=60.0)
        try:
            await poller.refresh()  # connects
            writes = _record_writes(poller, beanstalkd.address)
            snapshot = await poller.refresh()
            return writes, snapshot
        finally:
            await poller.close()

    writes, snapshot = asyncio.run(main())
    (server,) = snapshot.servers
    assert server.up
    assert set(names) <= set(server.tubes)
    # The tubes are known from the first refresh: stats, list-tubes and every stats-tube
    # go out in one round trip, at most two writes (the first command goes out at once,
    # the client's fast lane; the rest queued behind it in one write).
    assert len(writes) <= 2, len(writes)
    wire = b"".join(writes)
    assert wire.count(b"stats-tube ") == len(server.tubes) >= TUBES
    assert wire.count(b"list-tubes\r\n") == 1


def test_tubes_that_appear_or_go_between_refreshes(beanstalkd: BeanstalkdServer) -> None:
    async def main() -> tuple[Snapshot, Snapshot, list[bytes]]:
        poller = Poller([beanstalkd.address], interval=1.0, timeout=30.0)
        try:
            async with jackstalk.AsyncClient(beanstalkd.address, encoding=None) as other:
                job = await other.put(b"x", tube="leaving")
                first = await poller.refresh()
                await other.delete(job)
                await other.use("default")  # nothing keeps "leaving" now: it goes away
                await other.put(b"y", tube="arriving")
                writes = _record_writes(poller, beanstalkd.address)
                second = await poller.refresh()
                return first, second, writes
        finally:
            await poller.close()

    first, second, writes = asyncio.run(main())
    assert "leaving" in first.servers[0].tubes
    assert "arriving" not in first.servers[0].tubes
    tubes = second.servers[0].tubes
    assert "arriving" in tubes
    assert "leaving" not in tubes  # asked for as a known tube: NOT_FOUND, left out
    assert tubes["arriving"]["current-jobs-ready"] == 1
    wire = b"".join(writes)
    # One batch with the known tubes (the one that left among them), one for the new.
    assert wire.count(b"stats-tube leaving\r\n") == 1
    assert wire.count(b"stats-tube arriving\r\n") == 1
    assert len(writes) <= 3, len(writes)


def test_rates_are_counter_differences(beanstalkd: BeanstalkdServer) -> None:
    ticks = iter([10.0, 12.0, 14.0, 16.0, 18.0, 20.0])

    async def main() -> list[Snapshot]:
        poller = Poller([beanstalkd.address], clock=lambda: next(ticks), interval=5.0)
        taken = []
        try:
            with jackstalk.Client(beanstalkd.address) as c:
                taken.append(await poller.refresh())
                for _ in range(4):
                    c.put(b"x", tube="rated")
                taken.append(await poller.refresh())
                c.delete(c.put(b"y", tube="rated"))
                c.delete(c.put(b"z", tube="rated"))
                taken.append(await poller.refresh())
                assert list(poller.history["rated"]) == [(2.0, 0.0), (1.0, 1.0)]
                assert "gone" not in poller.history
                c.use("gone")
                taken_before = await poller.refresh()
                assert "gone" in poller.history
                c.use("default")  # the tube is dropped once nothing uses it
                await poller.refresh()
                assert "gone" not in poller.history
                del taken_before
        finally:
            await poller.close()
        assert poller.history_points == 60
        return taken

    first, second, third = asyncio.run(main())
    assert first.servers[0].rates == {}
    tube = {row["name"]: row for row in second.json()["tubes"]}["rated"]
    assert tube["rate-puts"] == 2.0  # 4 jobs in 2 s (the fake clock's step)
    assert tube["rate-deletes"] == 0.0
    assert tube["rate-reserves"] is None
    assert second.servers[0].rates["puts"] == 2.0
    tube = {row["name"]: row for row in third.json()["tubes"]}["rated"]
    assert (tube["rate-puts"], tube["rate-deletes"]) == (1.0, 1.0)
    assert third.servers[0].rates["deletes"] == 1.0


def test_a_counter_that_went_down_counts_as_no_change() -> None:
    before = ServerSnapshot("s", True, stats={"cmd-put": 100}, taken=1.0)
    after = ServerSnapshot("s", True, stats={"cmd-put": 3}, taken=2.0)
    from jackstalk._app.web.poller import _delta

    assert _delta(after.stats, before.stats, "cmd-put") == 0


def test_server_names() -> None:
    assert server_name(("127.0.0.1", 11300)) == "127.0.0.1:11300"
    assert server_name(("::1", 11300)) == "[::1]:11300"
    assert server_name("/run/beanstalkd.sock") == "/run/beanstalkd.sock"


def test_unix_socket_server(beanstalkd_unix: BeanstalkdServer) -> None:
    async def main() -> Snapshot:
        poller = Poller([beanstalkd_unix.address])
        try:
            return await poller.refresh()
        finally:
            await poller.close()

    snapshot = asyncio.run(main())
    assert snapshot.servers[0].up
    assert snapshot.servers[0].name == beanstalkd_unix.address


@pytest.mark.parametrize(
    ("body", "kind", "text"),
    [
        (b"plain text", "text", "plain text"),
        (b"", "text", ""),
        (b"line\nand\ttab", "text", "line\nand\ttab"),
        ("caf\u00e9 \u2603".encode(), "text", "caf\u00e9 \u2603"),
        (b'{"a":1}', "json", '{\n  "a": 1\n}'),
        (b"[1,2]", "json", "[\n  1,\n  2\n]"),
        (b"{not json", "text", "{not json"),
        (b"42", "text", "42"),
        (b"\x00\x01", "hex", "00000000  00 01"),
        (b"\xff\xfe", "hex", "00000000  ff fe"),
        (b"bell\x07", "hex", "00000000  62 65 6c 6c 07"),
    ],
)
def test_body_rendering(body: bytes, kind: str, text: str) -> None:
    shown = render_body(body)
    assert (shown.kind, shown.text, shown.size, shown.cut) == (kind, text, len(body), False)


def test_long_bodies_are_cut() -> None:
    text = render_body(b"a" * 5000)
    assert (text.kind, len(text.text), text.size, text.cut) == ("text", 4096, 5000, True)
    # A multi-byte character split by the cut is let go, not shown as hex.
    split = render_body(b"a" * 4095 + "\u00e9".encode() * 10)
    assert (split.kind, split.text, split.cut) == ("text", "a" * 4095, True)
    json_cut = render_body(b'{"a": "' + b"b" * 5000 + b'"}')
    assert json_cut.kind == "text"  # cut JSON does not parse: shown as text
    binary = render_body(bytes(5000))
    assert binary.kind == "hex"
    assert binary.cut
    assert len(binary.text.splitlines()) == 256


def test_the_refresh_benchmark_runs(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "bench" / "web_bench.py"
    out = tmp_path / "web.json"
    done = subprocess.run(
        [sys.executable, str(script), "--tubes", "30", "--repeat", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "web console refresh, 30 tubes" in done.stdout, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["tubes"] == 30
    assert result["median_ms"] > 0
