"""The Cluster: its overhead against a plain client, and put rates on 1, 2 and 3 servers.

*Overhead*: ``jackstalk.Cluster`` over one server against ``jackstalk.Client`` on one
server, paired in each repetition (each on a fresh beanstalkd, the order alternating): puts
one command at a time, and ``put_many`` in batches of :data:`CHUNK`. Targets: at least
0.95x one at a time, 0.9x put_many.

*Scaling*: ``put_many`` rates over 1, 2 and 3 fresh servers, from one producer process (one
Cluster: a batch goes to one server at a time, so the servers take turns) and from one
producer process per server (each with its own Cluster over all of them). The processes'
CPU times (the producers' own, and each beanstalkd's from /proc) give the CPU per job of
the client and of the server, from which a model says what N servers on N machines would
give.
*Workers*: ``jackstalk.Worker(addresses=...)`` (its blocking ``run()``) works off jobs
pre-filled on 1, 2 and 3 fresh servers (filling is not timed); the rate is jobs handled and
deleted per second.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from wire import PRI, SMALL, TTR

import jackstalk
from jackstalk.testing import BeanstalkdServer, run_beanstalkd

CHUNK = 500
"""Jobs per put_many call."""
SERVERS = (1, 2, 3)
SCALE = 5
"""Jobs per producer in the scaling runs, in batches of the main run (enough CPU time for
the processes' clocks, which tick every 10 ms)."""
TARGETS = {"one at a time": 0.95, "put_many": 0.9}
BODY = b"x" * SMALL
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """A process's CPU seconds (user + system) so far, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@contextmanager
def _servers(count: int) -> Iterator[list[BeanstalkdServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(run_beanstalkd()) for _ in range(count)]


def _addresses(servers: list[BeanstalkdServer]) -> list[Any]:
    return [server.address for server in servers]


def _puts(client: Any, n: int) -> None:
    put = client.put
    for _ in range(n):
        put(BODY, PRI, 0, TTR)


def _put_many(client: Any, n: int) -> None:
    bodies = [BODY] * CHUNK
    for start in range(0, n, CHUNK):
        client.put_many(bodies[: min(CHUNK, n - start)], PRI, 0, TTR)


def _timed(make: Callable[[Any], Any], work: Callable[[Any, int], None], n: int) -> float:
    """Rate of ``work`` on a fresh server through the client ``make`` builds (connecting
    is not timed); the server's count of puts is checked."""
    with run_beanstalkd() as server:
        client = make(server.address)
        with client:
            client.stats()  # connects (the Cluster to its server), one round trip each
            began = time.perf_counter()
            work(client, n)
            seconds = time.perf_counter() - began
        with jackstalk.Client(server.address) as observer:
            puts = observer.stats()["cmd-put"]
        if puts != n:
            raise AssertionError(f"the server saw {puts} puts, not {n}")
    return n / seconds


def _plain(address: Any) -> Any:
    return jackstalk.Client(address, encoding=None)


def _cluster(address: Any) -> Any:
    return jackstalk.Cluster([address], encoding=None)


def measure_overhead(ops: int, batch: int, repeat: int) -> list[dict[str, Any]]:
    """Cluster over one server against Client, paired per repetition."""
    rows = []
    for case, work, n in (("one at a time", _puts, ops), ("put_many", _put_many, batch)):
        plain: list[float] = []
        cluster: list[float] = []
        ratios: list[float] = []
        for rep in range(repeat):
            order = [(_plain, plain), (_cluster, cluster)]
            if rep % 2:
                order.reverse()
            rates = {}
            for make, into in order:
                rate = _timed(make, work, n)
                into.append(rate)
                rates[make] = rate
            ratios.append(rates[_cluster] / rates[_plain])
        ratio = statistics.median(ratios)
        rows.append(
            {
                "case": case,
                "jobs": n,
                "client": statistics.median(plain),
                "cluster": statistics.median(cluster),
                "ratio": ratio,
                "low": min(ratios),
                "high": max(ratios),
                "at_least": TARGETS[case],
                "met": ratio >= TARGETS[case],
            }
        )
    return rows


def _producer(addresses: list[Any], jobs: int, start: Any, out: Any) -> None:
    """One producer process: ``jobs`` puts by put_many through its own Cluster."""
    with jackstalk.Cluster(addresses, encoding=None) as cluster:
        cluster.stats()  # connects to every server
        start.wait(30)
        cpu = time.process_time()
        began = time.perf_counter()
        _put_many(cluster, jobs)
        out.put((began, time.perf_counter(), time.process_time() - cpu))


def _scaled(servers: int, producers: int, jobs: int) -> dict[str, Any]:
    """``producers`` processes put ``jobs`` each over ``servers`` fresh servers."""
    context = multiprocessing.get_context("fork")
    with _servers(servers) as running:
        addresses = _addresses(running)
        start = context.Event()
        out = context.Queue()
        processes = [
            context.Process(target=_producer, args=(addresses, jobs, start, out))
            for _ in range(producers)
        ]
        for process in processes:
            process.start()
        server_cpu = [_cpu_of(server.process.pid) for server in running]
        start.set()
        results = [out.get(timeout=120) for _ in processes]
        server_cpu = [
            _cpu_of(server.process.pid) - before
            for server, before in zip(running, server_cpu, strict=True)
        ]
        for process in processes:
            process.join(30)
        with ExitStack() as stack:
            seen = sum(
                stack.enter_context(jackstalk.Client(address)).stats()["cmd-put"]
                for address in addresses
            )
    total = jobs * producers
    if seen != total:
        raise AssertionError(f"the servers saw {seen} puts, not {total}")
    seconds = max(end for _, end, _ in results) - min(began for began, _, _ in results)
    return {
        "rate": total / seconds,
        "client_cpu_us": sum(cpu for _, _, cpu in results) / total * 1e6,
        "server_cpu_us": sum(server_cpu) / total * 1e6,
    }


def measure_scaling(jobs: int, repeat: int) -> list[dict[str, Any]]:
    """put_many rates over 1, 2 and 3 servers: one producer, and one per server."""
    rows = []
    for servers in SERVERS:
        for producers in sorted({1, servers}):
            runs = [_scaled(servers, producers, jobs) for _ in range(repeat)]
            rows.append(
                {
                    "servers": servers,
                    "producers": producers,
                    "jobs": jobs * producers,
                    "rate": statistics.median(run["rate"] for run in runs),
                    "low": min(run["rate"] for run in runs),
                    "high": max(run["rate"] for run in runs),
                    "client_cpu_us": statistics.median(run["client_cpu_us"] for run in runs),
                    "server_cpu_us": statistics.median(run["server_cpu_us"] for run in runs),
                }
            )
    return rows


WORKER_LIMIT = 120.0
"""Seconds a worker run may take before it counts as hung (a bound, not a wait)."""


def _worker_rate(servers: int, jobs: int) -> float:
    """A Worker over ``servers`` fresh servers, each pre-filled with ``jobs`` jobs: the
    rate at which it handles and deletes them all."""
    with _servers(servers) as running:
        addresses = _addresses(running)
        for address in addresses:
            with jackstalk.Client(address, encoding=None) as client:
                _put_many(client, jobs)
        total = jobs * servers
        handled = 0

        def handle(job: Any) -> None:
            nonlocal handled
            handled += 1
            if handled == total:
                worker.stop()

        worker = jackstalk.Worker(handle, addresses=addresses, watch="default", encoding=None)
        seconds = 0.0

        def run() -> None:
            nonlocal seconds
            began = time.perf_counter()
            worker.run()
            seconds = time.perf_counter() - began

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(WORKER_LIMIT)
        if thread.is_alive():
            worker.stop()
            raise AssertionError(f"the worker handled {handled} of {total} jobs, then hung")
        with ExitStack() as stack:
            deleted = sum(
                stack.enter_context(jackstalk.Client(address)).stats()["cmd-delete"]
                for address in addresses
            )
    if deleted != total:
        raise AssertionError(f"the servers saw {deleted} deletes, not {total}")
    return total / seconds


def measure_workers(jobs: int, repeat: int) -> list[dict[str, Any]]:
    """A Worker's rate over 1, 2 and 3 servers."""
    rows = []
    for servers in SERVERS:
        rates = [_worker_rate(servers, jobs) for _ in range(repeat)]
        rows.append(
            {
                "servers": servers,
                "jobs": jobs * servers,
                "rate": statistics.median(rates),
                "low": min(rates),
                "high": max(rates),
            }
        )
    return rows


def _model(scaling: list[dict[str, Any]]) -> dict[str, Any] | None:
    """CPU per job (pooled over the scaling runs) and what N machines give;
    None when the run was too short for the CPU clocks (10 ms ticks) to see it."""
    jobs = sum(row["jobs"] for row in scaling)  # pooled over every run: the clocks are coarse
    server_us = sum(row["server_cpu_us"] * row["jobs"] for row in scaling) / jobs
    client_us = sum(row["client_cpu_us"] * row["jobs"] for row in scaling) / jobs
    if server_us <= 0 or client_us <= 0:
        return None
    per_server = 1e6 / server_us
    return {
        "server_cpu_us": server_us,
        "client_cpu_us": client_us,
        "one_producer_ceiling": 1e6 / client_us,
        "per_server": per_server,
        "machines": [
            {"servers": n, "rate": n * per_server, "client_cores": n * per_server * client_us / 1e6}
            for n in (1, 2, 3, 5, 10)
        ],
    }


def measure_cluster(
    ops: int, batch: int, repeat: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    for make in (_plain, _cluster):  # warm up (imports, caches), not measured
        _timed(make, _puts, min(ops, 200))
    overhead = measure_overhead(ops, batch, repeat)
    for row in overhead:
        log(f"  cluster overhead {row['case']:13} {row['ratio']:.2f}x")
    scaling = measure_scaling(batch * SCALE, repeat)
    for row in scaling:
        log(
            f"  cluster {row['servers']} servers, {row['producers']} producers:"
            f" {row['rate']:>10,.0f} puts/s"
        )
    workers = measure_workers(ops, repeat)
    for row in workers:
        log(f"  cluster worker on {row['servers']} servers: {row['rate']:>10,.0f} jobs/s")
    return {
        "repeat": repeat,
        "chunk": CHUNK,
        "workers": workers,
        "cpus": len(os.sched_getaffinity(0)),
        "overhead": overhead,
        "scaling": scaling,
        "model": _model(scaling),
    }


def _limits(result: dict[str, Any]) -> list[str]:
    """What limits the scaling on this machine, in words, from the figures."""
    model = result["model"]
    cpus = result["cpus"]
    if model is None:
        return [f"{cpus} CPU(s); the run was too short to measure CPU per job."]
    return [
        f"This machine has {cpus} CPU(s) for every server and every producer together: one"
        f" job costs about {model['server_cpu_us']:.1f} µs of server CPU and"
        f" {model['client_cpu_us']:.1f} µs of client CPU, so the whole pipeline needs"
        f" ~{model['server_cpu_us'] + model['client_cpu_us']:.1f} µs of CPU per job; more"
        " servers on the same cores add no CPU, only take turns on it.",
        "One producer (one Cluster, one thread) sends each put_many batch to one server and"
        " waits for its replies, so its servers take turns and more servers do not make it"
        f" faster: its own CPU alone would allow about {model['one_producer_ceiling']:,.0f}"
        " puts/s, and it also waits for each batch's server.",
        "Several producers can keep several servers busy at once, but here they compete with"
        " the servers for the same cores.",
        "A Worker runs its handlers in one thread and takes one job at a time from one"
        " server, so more servers do not make one worker faster either; run a worker process"
        " per core (or per machine) to scale.",
    ]


def text_cluster(result: dict[str, Any]) -> str:
    lines = ["", "Cluster (blocking) against Client, one server (paired ratio):"]
    for row in result["overhead"]:
        state = "met" if row["met"] else "MISSED"
        lines.append(
            f"  {row['case']:13} client {row['client']:>10,.0f}/s  cluster"
            f" {row['cluster']:>10,.0f}/s  {row['ratio']:.2f}x ({row['low']:.2f}-{row['high']:.2f})"
            f"  target >= {row['at_least']}x {state}"
        )
    lines.append("put_many on several servers:")
    lines += [
        f"  {row['servers']} servers, {row['producers']} producers {row['rate']:>10,.0f} puts/s"
        f"  (server CPU {row['server_cpu_us']:.1f} µs/job, client CPU"
        f" {row['client_cpu_us']:.1f} µs/job)"
        for row in result["scaling"]
    ]
    lines.append("Worker(addresses=...), jobs pre-filled on every server:")
    lines += [
        f"  {row['servers']} servers {row['rate']:>10,.0f} jobs/s"
        f" ({row['low']:,.0f}-{row['high']:,.0f})"
        for row in result["workers"]
    ]
    model = result["model"]
    if model is None:
        return "\n".join([*lines, "  (too short to measure CPU per job: no model)"])
    lines.append(
        "  model, N servers on N machines: "
        + ", ".join(
            f"N={m['servers']} {m['rate']:,.0f}/s ({m['client_cores']:.1f} client cores)"
            for m in model["machines"]
        )
    )
    return "\n".join(lines)


def markdown_cluster(result: dict[str, Any]) -> list[str]:
    """The section of docs/performance.md."""
    out = [
        "## Several servers: the Cluster",
        "",
        "The blocking `jackstalk.Cluster` over one server against `jackstalk.Client`: the same"
        f" puts of 100 B, one command at a time and by `put_many` in batches of {result['chunk']},"
        " each on a fresh beanstalkd, paired in each repetition (the order alternating);"
        f" median of {result['repeat']} repetitions.",
        "",
        "| case | jobs | Client /s | Cluster /s | ratio | range | target | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {row['case']} | {row['jobs']:,} | {row['client']:,.0f} | {row['cluster']:,.0f}"
        f" | {row['ratio']:.2f}x | {row['low']:.2f}-{row['high']:.2f}x"
        f" | ≥ {row['at_least']}x | {'met' if row['met'] else '**missed**'} |"
        for row in result["overhead"]
    ]
    out += [
        "",
        "`put_many` over 1, 2 and 3 fresh servers on this machine: one producer process (one"
        " Cluster), and one producer process per server (each with its own Cluster over all"
        " of them). CPU per job from the processes' CPU times (producers: their own; servers:"
        " /proc).",
        "",
        "| servers | producers | jobs | puts/s | range | server CPU µs/job | client CPU µs/job |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["scaling"]:
        out.append(
            f"| {row['servers']} | {row['producers']} | {row['jobs']:,} | {row['rate']:,.0f}"
            f" | {row['low']:,.0f}-{row['high']:,.0f} | {row['server_cpu_us']:.1f}"
            f" | {row['client_cpu_us']:.1f} |"
        )
    out += [
        "",
        "`jackstalk.Worker(handler, addresses=...)` (blocking `run()`, one connection per"
        " server) working off jobs pre-filled on every server (filling not timed):",
        "",
        "| servers | jobs | jobs/s | range |",
        "|---|---|---|---|",
    ]
    out += [
        f"| {row['servers']} | {row['jobs']:,} | {row['rate']:,.0f}"
        f" | {row['low']:,.0f}-{row['high']:,.0f} |"
        for row in result["workers"]
    ]
    out += ["", "What limits the scaling here:", ""]
    out += [f"- {line}" for line in _limits(result)]
    model = result["model"]
    if model is None:
        return [*out, ""]
    out += [
        "",
        f"A model of N servers on N machines, from the CPU times above: each server takes"
        f" about 1 / {model['server_cpu_us']:.1f} µs = {model['per_server']:,.0f} puts/s"
        f" when its CPU is the limit, and each job costs the producers"
        f" {model['client_cpu_us']:.1f} µs of CPU, so N servers give N x that if the"
        " producers have the cores below (one producer process is one core at most).",
        "",
        "| servers (machines) | puts/s | producer cores needed |",
        "|---|---|---|",
    ]
    out += [
        f"| {m['servers']} | {m['rate']:,.0f} | {m['client_cores']:.1f} |"
        for m in model["machines"]
    ]
    out.append("")
    return out
