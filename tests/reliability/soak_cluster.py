"""No job lost on several servers: three beanstalkd processes with binlogs, a fault proxy in
front of each, one server killed (SIGKILL) and restarted from its binlog again and again;
producers put through a blocking :class:`jackstalk.Cluster`, consumers reserve from all
servers through their own. At the end every job whose put returned must have been
processed at least once; each duplicate is explained by what happened to the first copy.

Run it with ``nox -s soak -- --cluster`` (``python tests/reliability/soak.py --cluster
--seconds 60``, or this file directly).

Why a job may be processed twice here (a duplicate), and never lost:

* **delete cut off**: the consumer processed the job, but its delete never reached the
  server (the proxy dropped, reset or stalled the connection); the server put the job back
  to ready when the connection closed, and another consumer took it;
* **server restarted from its binlog**: the job's server was killed between the reserve and
  the delete; a reserve is not written to the binlog, so the restarted server has it ready
  again;
* anything else (a delete that returned, yet the job came back) is counted as unexplained
  and fails the run.

Every call is bounded by the clients' ``timeout``; the drain at the end is bounded by
``--drain-limit``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))

from clusterkit import Server, servers
from faultkit import EXPECTED_FAILURES, FaultProxy
from soak import finish, plan_factory

import jackstalk
from jackstalk import Cluster

TUBE = "soak-cluster"
CALL_LIMIT = 5.0
"""Seconds any call of a worker's cluster may take before it raises TimeoutError."""
BACKLOG = 300
"""Jobs put and not yet processed before the producers wait for the consumers."""
WAKE_LIMIT = 0.5


@dataclass
class Handling:
    """One processing of a job: where it came from and what its delete did."""

    server: str
    job_id: int
    reserved_at: float
    outcome: str = "pending"
    """``deleted``, ``not-found``, ``cut`` (the delete raised a connection error) or
    ``killed`` (the consumer was killed before deleting)."""
    done_at: float = 0.0


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    confirmed: dict[str, tuple[str, int]] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    handlings: dict[str, list[Handling]] = field(default_factory=dict)
    processed: int = 0
    consumer_kills: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    room: threading.Condition = field(default_factory=threading.Condition)

    def backlog(self) -> int:
        with self.lock:
            return len(self.confirmed) + len(self.unknown) - len(self.handlings)

    def oops(self, where: str, error: BaseException) -> None:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        with self.lock:
            self.unexpected.append(f"{where}: {text}")

    def failed(self, error: BaseException) -> None:
        with self.lock:
            self.failures[type(error).__name__] += 1


@dataclass
class Killer:
    """Kills one server at a time (at random) and restarts it from its binlog."""

    servers: list[Server]
    names: list[str]
    every: float
    down_for: float
    rng: random.Random
    stop: threading.Event
    kills: int = 0
    windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per server: (killed at, restarted at)."""
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        while not self.stop.wait(self.every):  # the soak's pace, not a synchronisation
            index = self.rng.randrange(len(self.servers))
            server = self.servers[index]
            killed = time.monotonic()
            server.kill()
            self.kills += 1
            self.stop.wait(self.down_for)
            try:
                server.start()
            except OSError as error:
                self.errors.append(f"restart of {self.names[index]}: {error}")
                return
            self.windows.setdefault(self.names[index], []).append((killed, time.monotonic()))

    def killed_between(self, server: str, start: float, end: float) -> bool:
        return any(killed <= end and up >= start for killed, up in self.windows.get(server, []))


def produce(
    addresses: list[tuple[str, int]],
    names: list[str],
    ledger: Ledger,
    stop: threading.Event,
    name: str,
    seed: int,
) -> None:
    rng = random.Random(seed)
    serial = 0
    with Cluster(
        addresses, names=names, use=TUBE, timeout=CALL_LIMIT, backoff=0.2, max_backoff=1.0
    ) as cluster:
        while not stop.is_set():
            if ledger.backlog() >= BACKLOG:
                with ledger.room:
                    ledger.room.wait(WAKE_LIMIT)
                continue
            size = rng.randint(2, 6) if rng.random() < 0.2 else 1
            bodies = [f"{name}-{serial + index}" for index in range(size)]
            serial += size
            try:
                if size == 1:
                    ids = [cluster.put(bodies[0])]
                else:
                    ids = cluster.put_many(bodies)
            except EXPECTED_FAILURES as error:
                with ledger.lock:
                    ledger.unknown.update(bodies)
                    ledger.failures[type(error).__name__] += 1
                if "no server took the put" in str(error):
                    stop.wait(0.05)  # every server is down or backing off: the pace
            except Exception as error:
                with ledger.lock:
                    ledger.unknown.update(bodies)
                ledger.oops("put", error)
            else:
                with ledger.lock:
                    ledger.confirmed.update(
                        (b, (i.server, i.id)) for b, i in zip(bodies, ids, strict=True)
                    )


def consume(
    addresses: list[tuple[str, int]],
    names: list[str],
    ledger: Ledger,
    done: threading.Event,
    seed: int,
    kill_share: float,
) -> None:
    rng = random.Random(seed)

    def fresh() -> Cluster:
        return Cluster(
            addresses, names=names, watch=TUBE, timeout=CALL_LIMIT, backoff=0.2, max_backoff=1.0
        )

    cluster = fresh()
    try:
        while not done.is_set():
            try:
                job = cluster.reserve(timeout=1)
            except EXPECTED_FAILURES as error:
                ledger.failed(error)
                continue
            except Exception as error:
                ledger.oops("reserve", error)
                continue
            if job is None:
                continue
            if rng.random() < kill_share:
                # Killed mid-job: its connections close, the server hands the job out again.
                with ledger.lock:
                    ledger.consumer_kills += 1
                cluster.close()
                cluster = fresh()
                continue
            body = str(job.body)
            handling = Handling(job.server, job.id, time.monotonic())
            with ledger.lock:
                ledger.processed += 1
                ledger.handlings.setdefault(body, []).append(handling)
                expected = ledger.confirmed.get(body)
                if expected is not None and expected != (job.server, job.id):
                    ledger.unexpected.append(f"{body}: put as {expected}, reserved as {job}")
            with ledger.room:
                ledger.room.notify_all()
            try:
                job.delete()
            except jackstalk.NotFoundError:
                handling.outcome = "not-found"
            except EXPECTED_FAILURES as error:
                handling.outcome = "cut"
                ledger.failed(error)
            except Exception as error:
                handling.outcome = "error"
                ledger.oops("delete", error)
            else:
                handling.outcome = "deleted"
            handling.done_at = time.monotonic()
    finally:
        cluster.close()


@dataclass
class Report:
    seconds: float
    producers: int
    consumers: int
    seed: int
    puts_confirmed: int = 0
    puts_unknown: int = 0
    unknown_stored: int = 0
    processed: int = 0
    distinct_processed: int = 0
    duplicates: int = 0
    duplicate_causes: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    phantoms: int = 0
    left_on_servers: int = 0
    server_kills: int = 0
    consumer_kills: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    drained: bool = True
    stopped: bool = True
    wall: float = 0.0

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.phantoms == 0
            and self.left_on_servers == 0
            and not self.unexpected
            and self.duplicate_causes.get("unexplained", 0) == 0
            and self.drained
            and self.stopped
        )

    def lines(self) -> list[str]:
        faults = ", ".join(f"{name} {count}" for name, count in sorted(self.faults.items()))
        failures = ", ".join(f"{name} {count}" for name, count in sorted(self.failures.items()))
        causes = ", ".join(f"{n} {c}" for n, c in sorted(self.duplicate_causes.items()))
        lines = [
            f"cluster soak: {self.seconds:g} s of load ({self.wall:.1f} s wall), 3 servers with "
            f"binlogs, {self.producers} producers and {self.consumers} consumers (blocking "
            f"Cluster), seed {self.seed}",
            f"jobs: {self.puts_confirmed} puts confirmed, {self.puts_unknown} with an unknown "
            f"outcome ({self.unknown_stored} of those were stored, and processed)",
            f"processed: {self.processed} ({self.distinct_processed} distinct jobs), duplicates "
            f"{self.duplicates} ({causes or 'none'}), lost {self.lost}, left on the servers "
            f"{self.left_on_servers}, phantoms {self.phantoms}",
            f"server kills (SIGKILL, restarted from the binlog): {self.server_kills}; consumers "
            f"killed mid-job: {self.consumer_kills}",
            f"faults injected: {self.faults_injected} ({faults}) over {self.connections} "
            "connections",
            f"call failures seen by workers: {failures or 'none'}",
            f"unexpected errors: {len(self.unexpected)}",
        ]
        lines.extend(f"  {line}" for line in self.unexpected[:20])
        lines.append("result: " + ("OK" if self.ok else "FAILED"))
        return lines


def _left(watchers: dict[str, jackstalk.Client], servers: dict[str, Server]) -> int | None:
    """Jobs still in the soak tube over all servers (None: a server did not answer)."""
    total = 0
    for name, server in servers.items():
        try:
            client = watchers.get(name)
            if client is None:
                client = watchers[name] = jackstalk.Client(server.address, timeout=CALL_LIMIT)
            stats = client.stats_tube(TUBE)
        except jackstalk.NotFoundError:
            continue
        except (*EXPECTED_FAILURES, OSError):
            stale = watchers.pop(name, None)
            if stale is not None:
                stale.close()
            return None
        total += (
            stats["current-jobs-ready"]
            + stats["current-jobs-reserved"]
            + stats["current-jobs-delayed"]
            + stats["current-jobs-buried"]
        )
    return total


@contextmanager
def _started(count: int) -> Iterator[list[Server]]:
    with (
        tempfile.TemporaryDirectory(prefix="jackstalk-soak-") as root,
        servers(count, Path(root)) as started,
    ):
        yield started


def run_cluster_soak(
    *,
    seconds: float,
    producers: int = 2,
    consumers: int = 3,
    seed: int = 0,
    kill_share: float = 0.02,
    stall_share: float = 0.01,
    kill_every: float = 3.0,
    down_for: float = 1.0,
    drain_limit: float = 60.0,
) -> Report:
    report = Report(seconds=seconds, producers=producers, consumers=consumers, seed=seed)
    started = time.monotonic()
    rng = random.Random(seed)
    ledger = Ledger()
    with _started(3) as processes, ExitStack() as stack:
        names = [f"s{index}" for index in range(len(processes))]
        proxies = [
            stack.enter_context(
                FaultProxy(server.address, default=plan_factory(rng, stall_share), seed=seed + i)
            )
            for i, server in enumerate(processes)
        ]
        addresses = [proxy.address for proxy in proxies]
        stop_producing = threading.Event()
        stop_consuming = threading.Event()
        stop_killing = threading.Event()
        killer = Killer(processes, names, kill_every, down_for, random.Random(seed), stop_killing)
        killing = threading.Thread(target=killer.run, daemon=True)
        threads = [
            threading.Thread(
                target=produce,
                args=(addresses, names, ledger, stop_producing, f"p{i}", seed * 100 + i),
                daemon=True,
            )
            for i in range(producers)
        ]
        workers = [
            threading.Thread(
                target=consume,
                args=(addresses, names, ledger, stop_consuming, seed * 100 + 50 + i, kill_share),
                daemon=True,
            )
            for i in range(consumers)
        ]
        for thread in [killing, *threads, *workers]:
            thread.start()
        stop_producing.wait(seconds)  # the length of the run
        stop_producing.set()
        stop_killing.set()
        for thread in threads:
            thread.join(CALL_LIMIT * 4)
        killing.join(down_for + 30)
        for server in processes:
            if server.process is None:
                server.start()  # the killer was stopped while one was down
        by_name = dict(zip(names, processes, strict=True))
        watchers: dict[str, jackstalk.Client] = {}
        deadline = time.monotonic() + drain_limit
        report.drained = False
        while time.monotonic() < deadline:
            if _left(watchers, by_name) == 0:
                report.drained = True
                break
            stop_consuming.wait(0.2)  # a bounded poll of the servers' counts
        stop_consuming.set()
        for thread in threads + workers:
            thread.join(CALL_LIMIT * 4)
        report.stopped = not any(thread.is_alive() for thread in threads + workers)
        left = _left(watchers, by_name)
        report.left_on_servers = -1 if left is None else left
        for watcher in watchers.values():
            watcher.close()
        for proxy in proxies:
            for name, count in proxy.fired.items():
                report.faults[name] = report.faults.get(name, 0) + count
            report.connections += proxy.connections
        report.server_kills = killer.kills
        report.unexpected.extend(killer.errors)
    _account(report, ledger, killer)
    report.wall = time.monotonic() - started
    return report


def _account(report: Report, ledger: Ledger, killer: Killer) -> None:
    with ledger.lock:
        confirmed = set(ledger.confirmed)
        handled = set(ledger.handlings)
        report.puts_confirmed = len(confirmed)
        report.puts_unknown = len(ledger.unknown)
        report.unknown_stored = len(ledger.unknown & handled)
        report.processed = ledger.processed
        report.distinct_processed = len(handled)
        report.lost = len(confirmed - handled)
        report.phantoms = len(handled - confirmed - ledger.unknown)
        report.consumer_kills = ledger.consumer_kills
        report.failures = dict(ledger.failures)
        report.unexpected.extend(ledger.unexpected)
        causes: Counter[str] = Counter()
        for handlings in ledger.handlings.values():
            for earlier in handlings[:-1]:  # each copy but the last came back
                if earlier.outcome == "deleted":
                    causes["unexplained"] += 1  # its delete returned, yet it came back
                elif killer.killed_between(earlier.server, earlier.reserved_at, earlier.done_at):
                    causes["server restarted from its binlog after the reserve"] += 1
                elif earlier.outcome == "cut":
                    causes["delete cut off"] += 1
                elif earlier.outcome == "not-found":
                    causes["delete found no job"] += 1
                else:
                    causes["unexplained"] += 1
        report.duplicates = sum(causes.values())
        report.duplicate_causes = dict(causes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cluster", action="store_true", help="(accepted: this is the mode)")
    parser.add_argument("--seconds", type=float, default=300.0, help="load time (default 300)")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-share", type=float, default=0.02, help="consumers killed mid-job")
    parser.add_argument("--stall-share", type=float, default=0.01)
    parser.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills")
    parser.add_argument("--down-for", type=float, default=1.0, help="seconds a server is down")
    parser.add_argument("--drain-limit", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    report = run_cluster_soak(
        seconds=args.seconds,
        producers=args.producers,
        consumers=args.consumers,
        seed=args.seed,
        kill_share=args.kill_share,
        stall_share=args.stall_share,
        kill_every=args.kill_every,
        down_for=args.down_for,
        drain_limit=args.drain_limit,
    )
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
