"""Core-only micro benchmark (no socket): replies parsed and commands serialised per second.

Run: ``python tests/bench/bench_core.py [--json FILE]``. Not part of the test suite; it shows
regressions of the sans-IO core without network noise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import jackstalk
from jackstalk._protocol import events as e

STATS_BODY = (
    b"---\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 0\ncurrent-jobs-reserved: 1\n"
    b"current-jobs-delayed: 1\ncurrent-jobs-buried: 1\ncmd-put: 3\ncmd-peek: 0\n"
    b"cmd-peek-ready: 0\ncmd-peek-delayed: 0\ncmd-peek-buried: 0\ncmd-reserve: 2\n"
    b"cmd-reserve-with-timeout: 0\ncmd-delete: 0\ncmd-release: 0\ncmd-use: 1\ncmd-watch: 3\n"
    b"cmd-ignore: 0\ncmd-bury: 1\ncmd-kick: 0\ncmd-touch: 0\ncmd-stats: 1\ncmd-stats-job: 0\n"
    b"cmd-stats-tube: 0\ncmd-list-tubes: 0\ncmd-list-tube-used: 0\ncmd-list-tubes-watched: 0\n"
    b"cmd-pause-tube: 1\njob-timeouts: 0\ntotal-jobs: 3\nmax-job-size: 65535\n"
    b"current-tubes: 4\ncurrent-connections: 2\ncurrent-producers: 1\ncurrent-workers: 1\n"
    b'current-waiting: 0\ntotal-connections: 2\npid: 9090\nversion: "1.12"\n'
    b"rusage-utime: 0.000000\nrusage-stime: 0.003132\nuptime: 4\nbinlog-oldest-index: 0\n"
    b"binlog-current-index: 0\nbinlog-records-migrated: 0\nbinlog-records-written: 0\n"
    b"binlog-max-size: 10485760\ndraining: false\nid: 16d1363b6eda206f\nhostname: vm\n"
    b"os: #1 SMP PREEMPT_DYNAMIC @0\nplatform: x86_64\n"
)

BATCH = 1000


def _parse_rate(
    command: jackstalk.Command, reply: bytes, then: Callable[[object], object]
) -> float:
    """Replies per second, each fed as a transport's read would deliver it (the cost of
    ``send`` for the pending command is included, as a real round trip pays it)."""
    conn = jackstalk.Connection()
    send, receive, next_event = conn.send, conn.receive_data, conn.next_event
    start = time.perf_counter()
    for _ in range(BATCH):
        send(command)
        receive(reply)
        then(next_event())
    return BATCH / (time.perf_counter() - start)


def _serialise_rate(make: Callable[[], jackstalk.Command]) -> float:
    """Commands per second: build (with validation) and encode."""
    conn = jackstalk.Connection()
    start = time.perf_counter()
    for _ in range(BATCH):
        conn.send(make())
    elapsed = time.perf_counter() - start
    return BATCH / elapsed


def _stats_then(event: object) -> object:
    assert isinstance(event, e.Ok)
    return jackstalk.parse_stats(event.data)


def _identity(event: object) -> object:
    return event


def cases() -> dict[str, Callable[[], float]]:
    """Every measurement, by name."""
    small, large = b"x" * 100, b"x" * 16384
    return {
        "parse RESERVED 100 B": lambda: _parse_rate(
            jackstalk.Reserve(), b"RESERVED 12345 100\r\n" + small + b"\r\n", _identity
        ),
        "parse RESERVED 16 KiB": lambda: _parse_rate(
            jackstalk.Reserve(), b"RESERVED 12345 16384\r\n" + large + b"\r\n", _identity
        ),
        "parse INSERTED": lambda: _parse_rate(
            jackstalk.Put(small), b"INSERTED 12345\r\n", _identity
        ),
        "parse stats (+YAML)": lambda: _parse_rate(
            jackstalk.Stats(), b"OK %d\r\n%b\r\n" % (len(STATS_BODY), STATS_BODY), _stats_then
        ),
        "serialise put 100 B": lambda: _serialise_rate(lambda: jackstalk.Put(small, 10, 0, 60)),
        "serialise put 16 KiB": lambda: _serialise_rate(lambda: jackstalk.Put(large, 10, 0, 60)),
        "serialise reserve": lambda: _serialise_rate(jackstalk.Reserve),
        "serialise delete": lambda: _serialise_rate(lambda: jackstalk.Delete(12345)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    print(f"{'case':<26}{'median/s':>14}{'min/s':>14}{'max/s':>14}")
    for name, measure in cases().items():
        measure()  # warm up
        rates = [measure() for _ in range(args.repeat)]
        median = statistics.median(rates)
        results[name] = {"median": median, "min": min(rates), "max": max(rates)}
        print(f"{name:<26}{median:>14,.0f}{min(rates):>14,.0f}{max(rates):>14,.0f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
