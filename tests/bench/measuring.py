"""Measuring: one timed run per fresh server, ``run_all`` taking the clients in turns, the
memory checks of put_many and a reserve loop, and the placement probe of client CPU."""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from kits import AsyncKit, Kit, SyncKit, Unavailable, trio
from scenarios import Row, Sample, Scenario, _size_name, _verify
from wire import (
    DELAY,
    LARGE,
    PRI,
    SMALL,
    TTR,
    Address,
    RawReader,
    _body,
    _put_line,
    _raw_connect,
    fill,
)

import jackstalk
from jackstalk.testing import run_beanstalkd

# ======================================================================== measuring


def _timed_sync(kit: SyncKit, kind: str, address: Address, body: bytes, n: int) -> Sample:
    client = kit.open(address)
    try:
        run = getattr(kit, kind.replace("-", "_"))
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        run(client, body, n)
        return Sample(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        kit.close(client)


def _timed_async(kit: AsyncKit, kind: str, address: Address, body: bytes, n: int) -> Sample:
    async def main() -> Sample:
        client = await kit.open(address)
        try:
            run: Callable[[Any, bytes, int], Awaitable[None]] = getattr(kit, kind.replace("-", "_"))
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            await run(client, body, n)
            return Sample(time.perf_counter() - wall, time.process_time() - cpu)
        finally:
            await kit.close(client)

    if kit.library == "trio":
        result: Sample = trio.run(main)
        return result
    return asyncio.run(main())


def measure(kit: Kit, scenario: Scenario, n: int) -> Sample:
    """One measurement on a fresh server."""
    body = _body(scenario.body)
    prefill = n if scenario.kind in ("reserve-delete", "worker") else 0
    with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
        address = server.address
        assert isinstance(address, tuple)
        if prefill:
            fill(address, body, prefill)
        if isinstance(kit, AsyncKit):
            sample = _timed_async(kit, scenario.kind, address, body, n)
        else:
            sample = _timed_sync(kit, scenario.kind, address, body, n)
        _verify(address, kit, scenario.kind, n, prefill)
    return sample


def run_all(
    selected: list[Scenario], repeat: int, warmup: bool, log: Callable[[str], None]
) -> tuple[dict[str, list[Row]], dict[str, dict[str, str]]]:
    """Measure every scenario, interleaving competitors within each repetition."""
    results: dict[str, list[Row]] = {}
    skipped: dict[str, dict[str, str]] = {}
    for scenario in selected:
        kits: list[Kit] = []
        skipped[scenario.key] = {}
        for kit in scenario.kits:
            try:
                kit.check()
            except Unavailable as why:
                skipped[scenario.key][kit.name] = str(why)
            else:
                kits.append(kit)
        rows = {kit.name: Row(kit.name) for kit in kits}
        log(f"{scenario.title} [{scenario.group}]: {', '.join(rows)}")
        if warmup:
            for kit in kits:
                measure(kit, scenario, min(scenario.ops, 200))
        for rep in range(repeat):
            shift = rep % max(len(kits), 1)
            for kit in kits[shift:] + kits[:shift]:  # rotate who goes first
                rows[kit.name].samples.append(measure(kit, scenario, scenario.ops))
        results[scenario.key] = list(rows.values())
    return results, skipped


# ======================================================================== memory


def _peak(action: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    try:
        kept = action()
        return tracemalloc.get_traced_memory()[1], kept
    finally:
        tracemalloc.stop()


def _floor_peak(jobs: int, size: int) -> int:
    """Peak traced memory of holding ``jobs`` bodies of ``size`` bytes and as many job ids,
    each in a list, and nothing else: the least a put_many that returns the ids, or a
    reserve loop that keeps the jobs, can hold."""

    def hold() -> object:
        bodies = [_body(size) for _ in range(jobs)]
        ids = [1000 + number for number in range(jobs)]  # (not the small ints Python shares)
        return bodies, ids

    return _peak(hold)[0]


def memory_checks(jobs: int, reserves: int) -> list[dict[str, Any]]:
    """Peak traced memory of put_many and a reserve loop, relative to the bodies held.

    The bodies are created after tracing starts, so the peak counts them too: a ratio of 1.0
    would mean no memory at all beyond the bodies themselves. ``floor_ratio`` is the same
    for holding the bodies and the ids alone (Python's own per-object cost).
    """
    out: list[dict[str, Any]] = []
    for size in (LARGE, SMALL):
        with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
            address = server.address
            assert isinstance(address, tuple)
            with jackstalk.Client(address, encoding=None) as client:
                client.put(b"warm-up")

                def put_many(client: Any = client, size: int = size) -> object:
                    bodies = [_body(size) for _ in range(jobs)]
                    client.put_many(bodies, PRI, DELAY, TTR)
                    return bodies

                peak, _ = _peak(put_many)
        held = jobs * size
        out.append(
            {
                "case": f"put_many {jobs:,} x {_size_name(size)}",
                "bodies_bytes": held,
                "peak_bytes": peak,
                "ratio": peak / held,
                "overhead_per_job": (peak - held) / jobs,
                "floor_ratio": _floor_peak(jobs, size) / held,
                "target": size == LARGE,
            }
        )
    with run_beanstalkd(max_job_size=max(65535, 2 * LARGE)) as server:
        address = server.address
        assert isinstance(address, tuple)
        body = _body(LARGE)
        fill(address, body, reserves + 1)
        with jackstalk.Client(address, encoding=None) as client:
            warm = client.reserve()  # warm-up, untraced
            assert warm is not None
            client.delete(warm)

            def reserve_loop(client: Any = client) -> object:
                jobs_held = []
                for _ in range(reserves):
                    job = client.reserve()
                    client.delete(job)
                    jobs_held.append(job)
                return jobs_held

            peak, _ = _peak(reserve_loop)
    held = reserves * LARGE
    out.append(
        {
            "case": f"reserve + delete loop keeping {reserves:,} x 16 KiB jobs",
            "bodies_bytes": held,
            "peak_bytes": peak,
            "ratio": peak / held,
            "overhead_per_job": (peak - held) / reserves,
            "floor_ratio": _floor_peak(reserves, LARGE) / held,
            "target": True,
        }
    )
    return out


# ======================================================================== placement
#
# One command at a time, client CPU costs wall time only where it lies on the round trip's
# path: before the send, or after the reply. Between the two the client would only wait for
# the server. The probe puts the same synthetic CPU work at each point of raw-sequential's
# put loop, so the table shows what a microsecond of client CPU costs at each point.

PLACES = ("none", "before the send", "between send and reply", "after the reply")


def _busy(rounds: int) -> int:
    """Plain CPU work in Python: no allocation, no system call."""
    total = 0
    for step in range(rounds):
        total += step
    return total


def _rounds_for(micros: float) -> tuple[int, float]:
    """The ``_busy`` rounds that take about ``micros`` of CPU here, and their measured cost."""
    rounds, calls = 100, 2000
    start = time.process_time()
    for _ in range(calls):
        _busy(rounds)
    per_round = (time.process_time() - start) / (calls * rounds) * 1e6
    rounds = max(1, round(micros / per_round))
    start = time.process_time()
    for _ in range(calls):
        _busy(rounds)
    return rounds, (time.process_time() - start) / calls * 1e6


def _placed_puts(place: int, rounds: int) -> Callable[[socket.socket, bytes, int], None]:
    before, between, after = (place == 1, place == 2, place == 3)

    def run(sock: socket.socket, body: bytes, n: int) -> None:
        line = _put_line(body)
        send, expect = sock.sendall, RawReader(sock).expect
        for _ in range(n):
            if before:
                _busy(rounds)
            send(line)
            if between:
                _busy(rounds)
            expect(b"INSERTED ")
            if after:
                _busy(rounds)

    return run


def placement_probe(n: int, repeat: int, micros: float = 2.0) -> dict[str, Any]:
    """Raw-sequential puts of 100 B with ``micros`` of client CPU work placed at each point
    of the round trip; the places take turns as the clients of a scenario do."""
    rounds, work = _rounds_for(micros)
    runs = [_placed_puts(place, rounds) for place in range(len(PLACES))]
    wall: list[list[float]] = [[] for _ in PLACES]
    body = _body(SMALL)
    for rep in range(repeat):
        for offset in range(len(PLACES)):
            place = (rep + offset) % len(PLACES)
            with run_beanstalkd() as server:
                address = server.address
                assert isinstance(address, tuple)
                sock = _raw_connect(address)
                try:
                    gc.collect()
                    start = time.perf_counter()
                    runs[place](sock, body, n)
                    wall[place].append((time.perf_counter() - start) / n * 1e6)
                finally:
                    sock.close()
    rows = []
    for place, name in enumerate(PLACES):
        added = [w - base for w, base in zip(wall[place], wall[0], strict=True)]
        rows.append(
            {
                "place": name,
                "us_per_op": statistics.median(wall[place]),
                "added_us": statistics.median(added) if place else 0.0,
                "added_per_work_us": statistics.median(added) / work if place else 0.0,
            }
        )
    return {"work_us": work, "rows": rows}
