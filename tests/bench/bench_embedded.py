"""The embedded server's speed beside the real beanstalkd's: put + reserve + delete.

Run::

    python tests/bench/bench_embedded.py [--ops 5000] [--repeat 5]

One round trip is ``put``, ``reserve-with-timeout 0`` and ``delete`` with jackstalk's
blocking client (``jackstalk.Client``), one command at a time, on a fresh server of each
kind (the embedded one in a background thread of this process, as
``jackstalk.testing.embedded_server`` runs it). The two are measured in turn, repetition
after repetition, and the median is printed. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import jackstalk
from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd

Address = tuple[str, int] | str


@contextmanager
def embedded() -> Iterator[Address]:
    with embedded_server() as server:
        yield server.address


@contextmanager
def real() -> Iterator[Address]:
    with run_beanstalkd() as server:
        yield server.address


def round_trips(address: Address, ops: int) -> float:
    """Put, reserve and delete ``ops`` jobs; return round trips per second."""
    with jackstalk.Client(address, encoding=None) as client:
        for _ in range(100):  # warm up: connection, caches
            client.delete(client.put(b"warm-up"))
        start = time.perf_counter()
        for _ in range(ops):
            client.put(b"job body")
            job = client.reserve(timeout=0)
            assert job is not None
            job.delete()
        elapsed = time.perf_counter() - start
        stats = client.stats()
        assert stats["total-jobs"] == ops + 100
        assert stats["current-jobs-ready"] == 0
    return ops / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--ops", type=int, default=5000, help="round trips per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="measurements per server")
    args = parser.parse_args(argv)
    servers: dict[str, Callable[[], AbstractContextManager[Address]]] = {"embedded": embedded}
    if beanstalkd_available():
        servers["beanstalkd 1.12"] = real
    else:
        print("beanstalkd is not on PATH: measuring the embedded server only", file=sys.stderr)
    results: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(args.repeat):
        for name, start in servers.items():
            with start() as address:
                results[name].append(round_trips(address, args.ops))
    print(f"put + reserve + delete round trips per second ({args.ops} x {args.repeat}, median)")
    for name, rates in results.items():
        line = f"  {name:<16} {statistics.median(rates):>9,.0f}/s"
        line += f"   (min {min(rates):,.0f}, max {max(rates):,.0f})"
        print(line)
    if len(results) == 2:
        embedded_rate, real_rate = (statistics.median(r) for r in results.values())
        print(f"  embedded / real: {embedded_rate / real_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
