"""K tasks share one client: pipelined puts from many tasks on one asyncio or trio client.

For K = 1, 4, 16, 64 and 256 tasks, each putting its share of the jobs through the same
client, the put rate is measured on a fresh beanstalkd, paired with raw-pipelined (a plain
socket writing windows of puts while it reads the replies of the window before) in the same
repetition. Two placements: beanstalkd and the client pinned to one CPU, and each on a CPU of
its own. At K = 64 the latency of each put (from the call to its result) is recorded, and a
last check submits 100,000 puts without awaiting them, recording the most commands and
job-body bytes the client held at once (its bounds: MAX_COMMANDS and MAX_BYTES).
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kits import trio
from wire import TTR, _raw_connect, _raw_pipelined_puts

import jackstalk
from jackstalk._api.async_transport import MAX_BYTES, MAX_COMMANDS
from jackstalk.testing import run_beanstalkd

TASKS = (1, 4, 16, 64, 256)
LATENCY_TASKS = 64
KINDS = ("asyncio", "trio")
PLACEMENTS = {"one CPU": (0, 0), "two CPUs": (0, 1)}
"""Where the server and the client run: (server's CPU, client's CPU)."""
PRIORITY = 1024
BODY = b"x" * 100
TARGETS = {"asyncio": 0.7, "trio": 0.6}
"""The least ratio to raw-pipelined at K = 64."""


@contextmanager
def _placed(server_pid: int, placement: tuple[int, int]) -> Iterator[None]:
    """Pin the server and this process to their CPUs for the block (where possible)."""
    cpus = os.sched_getaffinity(0)
    server_cpu, client_cpu = placement
    if not {server_cpu, client_cpu} <= cpus:
        yield
        return
    os.sched_setaffinity(server_pid, {server_cpu})
    os.sched_setaffinity(0, {client_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def _worker(client: Any, share: int, latencies: list[float] | None) -> Callable[[], Any]:
    """One task's loop: ``share`` puts, each awaited, timed when ``latencies`` is given."""

    async def worker() -> None:
        put = client.put
        clock = time.perf_counter
        for _ in range(share):
            started = clock()
            await put(BODY, PRIORITY, 0, TTR)
            if latencies is not None:
                latencies.append(clock() - started)

    return worker


async def _asyncio_puts(
    address: Any, tasks: int, total: int, latencies: list[float] | None
) -> float:
    client = jackstalk.AsyncClient(address, encoding=None)
    await client.connect()
    share = total // tasks
    worker = _worker(client, share, latencies)
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    seconds = time.perf_counter() - began
    await client.close()
    return share * tasks / seconds


async def _trio_puts(address: Any, tasks: int, total: int, latencies: list[float] | None) -> float:
    assert trio is not None
    client = jackstalk.TrioClient(address, encoding=None)
    await client.connect()
    share = total // tasks
    worker = _worker(client, share, latencies)
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)
    seconds = time.perf_counter() - began
    await client.close()
    return share * tasks / seconds


def _client_rate(
    kind: str, address: Any, tasks: int, total: int, latencies: list[float] | None
) -> float:
    if kind == "asyncio":
        return asyncio.run(_asyncio_puts(address, tasks, total, latencies))
    assert trio is not None
    rate: float = trio.run(_trio_puts, address, tasks, total, latencies)
    return rate


def _rate_of(
    kind: str, tasks: int, total: int, latencies: list[float] | None, address: Any
) -> float:
    """:func:`_client_rate` with the address last, for :func:`functools.partial`."""
    return _client_rate(kind, address, tasks, total, latencies)


def _raw_rate(address: Any, total: int) -> float:
    sock = _raw_connect(address)
    began = time.perf_counter()
    _raw_pipelined_puts(sock, BODY, total)
    seconds = time.perf_counter() - began
    sock.close()
    return total / seconds


def _measure(run: Callable[[Any], float], placement: tuple[int, int]) -> float:
    with run_beanstalkd() as server, _placed(server.process.pid, placement):
        return run(server.address)


async def _outstanding(address: Any, total: int) -> dict[str, int]:
    """Start ``total`` puts at once on one asyncio client; the most it held at a time."""
    async with jackstalk.AsyncClient(address, encoding=None) as client:
        most = {"commands": 0, "bytes": 0}

        async def put() -> None:
            most["commands"] = max(most["commands"], client._count)
            most["bytes"] = max(most["bytes"], client._bytes)
            await client.put(BODY, PRIORITY, 0, TTR)
            most["commands"] = max(most["commands"], client._count)

        await asyncio.gather(*(put() for _ in range(total)))
    return most


def outstanding_check(total: int) -> dict[str, Any]:
    """Submit ``total`` puts without awaiting them: what the client held at most."""
    with run_beanstalkd() as server:
        most = asyncio.run(_outstanding(server.address, total))
    return {
        "puts": total,
        "most_commands": most["commands"],
        "most_bytes": most["bytes"],
        "bound_commands": MAX_COMMANDS,
        "bound_bytes": MAX_BYTES,
    }


def measure_sharing(
    total: int, repeat: int, log: Callable[[str], None], tasks: tuple[int, ...] = TASKS
) -> dict[str, Any]:
    """Rates (and their pairs with raw-pipelined) for every placement, kind and K."""
    kinds = [kind for kind in KINDS if kind != "trio" or trio is not None]
    rows: list[dict[str, Any]] = []
    latency: dict[str, dict[str, float]] = {}
    for name, placement in PLACEMENTS.items():
        for kind in kinds:
            for count in tasks:
                rates: list[float] = []
                pairs: list[float] = []
                lat: list[float] = []
                for _ in range(repeat):
                    record = lat if count == LATENCY_TASKS and name == "two CPUs" else None
                    rate = _measure(
                        functools.partial(_rate_of, kind, count, total, record), placement
                    )
                    raw = _measure(lambda address: _raw_rate(address, total), placement)
                    rates.append(rate)
                    pairs.append(rate / raw)
                if lat:
                    ordered = sorted(lat)
                    latency[kind] = {
                        "median_us": statistics.median(ordered) * 1e6,
                        "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
                    }
                row = {
                    "placement": name,
                    "kind": kind,
                    "tasks": count,
                    "rate": statistics.median(rates),
                    "ratio": statistics.median(pairs),
                    "low": min(pairs),
                    "high": max(pairs),
                }
                rows.append(row)
                log(
                    f"  sharing {name:8} {kind:7} K={count:<3} {row['rate']:>10,.0f} puts/s"
                    f"  x raw-pipelined {row['ratio']:.2f}"
                )
    verdicts = [
        {
            "kind": row["kind"],
            "placement": row["placement"],
            "ratio": row["ratio"],
            "at_least": TARGETS[row["kind"]],
            "met": row["ratio"] >= TARGETS[row["kind"]],
        }
        for row in rows
        if row["tasks"] == LATENCY_TASKS
    ]
    return {
        "total": total,
        "repeat": repeat,
        "rows": rows,
        "latency": latency,
        "targets": verdicts,
        "outstanding": outstanding_check(100_000 if total >= 1000 else 2_000),
    }


def text_sharing(result: dict[str, Any]) -> str:
    """The console summary."""
    lines = ["", "K tasks share one client (puts/s, x raw-pipelined):"]
    lines += [
        f"  {row['placement']:8} {row['kind']:7} K={row['tasks']:<3}"
        f" {row['rate']:>10,.0f}  {row['ratio']:.2f}x ({row['low']:.2f}-{row['high']:.2f})"
        for row in result["rows"]
    ]
    for kind, figures in result["latency"].items():
        lines.append(
            f"  latency at K={LATENCY_TASKS} ({kind}): median {figures['median_us']:.0f} µs,"
            f" p99 {figures['p99_us']:.0f} µs"
        )
    for verdict in result["targets"]:
        state = "met" if verdict["met"] else "MISSED"
        lines.append(
            f"  target {verdict['kind']} K={LATENCY_TASKS} ({verdict['placement']})"
            f" >= {verdict['at_least']}x: {verdict['ratio']:.2f}x {state}"
        )
    held = result["outstanding"]
    lines.append(
        f"  {held['puts']:,} puts submitted at once: at most {held['most_commands']:,} commands"
        f" and {held['most_bytes']:,} body bytes held (bounds {held['bound_commands']:,},"
        f" {held['bound_bytes']:,})"
    )
    return "\n".join(lines)


def markdown_sharing(result: dict[str, Any], one_at_a_time: dict[str, float]) -> list[str]:
    """The section of docs/performance.md; ``one_at_a_time`` holds each kind's rate for
    put 100 B one at a time in the main run, beside K = 1."""
    out = [
        "## K tasks share one client",
        "",
        f"K tasks put {result['total']:,} jobs of 100 B in all through one client, each"
        " awaiting its own puts one after the other; the client pipelines them on its one",
        "connection. Paired with raw-pipelined in the same repetition, on the same placement;"
        f" median of {result['repeat']} repetitions, range of the paired ratio beside it.",
        "*one CPU*: beanstalkd and the client pinned to the same CPU; *two CPUs*: each on its own.",
        "",
        "| placement | client | K | median puts/s | x raw-pipelined | range |",
        "|---|---|---|---|---|---|",
    ]
    out += [
        f"| {row['placement']} | {row['kind']} | {row['tasks']} | {row['rate']:,.0f} |"
        f" {row['ratio']:.2f}x | {row['low']:.2f}-{row['high']:.2f}x |"
        for row in result["rows"]
    ]
    out.append("")
    for kind, rate in one_at_a_time.items():
        out.append(
            f"- One at a time (scenario 6, put 100 B) the {kind} client made {rate:,.0f}"
            " puts/s in this run: compare K = 1 above."
        )
    for kind, figures in result["latency"].items():
        out.append(
            f"- Latency of one put at K = {LATENCY_TASKS} ({kind}, two CPUs): median"
            f" {figures['median_us']:.0f} µs, p99 {figures['p99_us']:.0f} µs."
        )
    held = result["outstanding"]
    out.append(
        f"- {held['puts']:,} puts started at once without awaiting: the client held at most"
        f" {held['most_commands']:,} commands and {held['most_bytes']:,} bytes of bodies"
        f" (its bounds: {held['bound_commands']:,} commands, {held['bound_bytes']:,} bytes);"
        " the other callers waited for room."
    )
    out += ["", "| target | placement | ratio | verdict |", "|---|---|---|---|"]
    for verdict in result["targets"]:
        out.append(
            f"| {verdict['kind']}, K = {LATENCY_TASKS}, ≥ {verdict['at_least']}x raw-pipelined"
            f" | {verdict['placement']} | {verdict['ratio']:.2f}x |"
            f" {'met' if verdict['met'] else '**missed**'} |"
        )
    out.append("")
    return out
