"""The web console's refresh cost: one refresh of a real beanstalkd holding 1,000 tubes.

A refresh is what ``jackstalk web`` does every ``--interval``: ``stats``, ``list-tubes`` and
every known tube's ``stats-tube`` in one pipelined batch on the poller's one connection, then
the rates, the charts' history and the JSON snapshot the pages get. Filling the tubes is not
timed; the first refresh (which connects) is a warm-up. Prints the median, the fastest and
the slowest of ``--repeat`` refreshes; the target is a median under 100 ms.

Run by ``nox -s bench`` after the client benchmark; alone:
``python tests/bench/web_bench.py [--tubes 1000] [--repeat 15] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from jackstalk import AsyncClient
from jackstalk._app.web.poller import Poller
from jackstalk.testing import beanstalkd_available, run_beanstalkd

TARGET_MS = 100.0


async def _fill(address: Any, tubes: int) -> None:
    async with AsyncClient(address, encoding=None) as client:
        # Concurrent puts on one client are pipelined: filling takes a few round trips.
        await asyncio.gather(*(client.put(b"x", tube=f"tube-{n:05d}") for n in range(tubes)))


async def _measure(address: Any, tubes: int, repeat: int) -> list[float]:
    await _fill(address, tubes)
    poller = Poller([address], interval=1.0, timeout=60.0)
    try:
        await poller.refresh()  # connects: not timed
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            snapshot = await poller.refresh()
            times.append(time.perf_counter() - started)
            if len(snapshot.servers[0].tubes) < tubes:
                raise RuntimeError(f"a refresh saw {len(snapshot.servers[0].tubes)} tubes")
        return times
    finally:
        await poller.close()


def measure_web(tubes: int = 1000, repeat: int = 15) -> dict[str, Any]:
    """Time ``repeat`` refreshes of a fresh beanstalkd holding ``tubes`` tubes."""
    with run_beanstalkd() as server:
        times = asyncio.run(_measure(server.address, tubes, repeat))
    median = statistics.median(times) * 1000
    return {
        "tubes": tubes,
        "repeat": repeat,
        "median_ms": round(median, 2),
        "min_ms": round(min(times) * 1000, 2),
        "max_ms": round(max(times) * 1000, 2),
        "target_ms": TARGET_MS,
        "met": median < TARGET_MS,
    }


def text_web(result: dict[str, Any]) -> str:
    """The measurement as one line."""
    return (
        f"web console refresh, {result['tubes']} tubes, one beanstalkd: median"
        f" {result['median_ms']} ms (min {result['min_ms']}, max {result['max_ms']},"
        f" {result['repeat']} refreshes); target < {result['target_ms']:.0f} ms:"
        f" {'met' if result['met'] else 'MISSED'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tubes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if not beanstalkd_available():
        print("beanstalkd is not on PATH: install it (e.g. apt-get install beanstalkd)")
        return 2
    result = measure_web(args.tubes, args.repeat)
    print(text_web(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(result, file, indent=1)
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
