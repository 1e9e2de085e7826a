"""No job lost: producers and consumers of every client kind, through the fault proxy, with
consumers killed mid-job at random; then every job whose put succeeded must have been
processed at least once and deleted, and nothing may be left on the server.

Run it long with ``nox -s soak`` (``python tests/reliability/soak.py --seconds 300``); the
test suite runs a few seconds of it per client kind (``test_no_job_lost.py``).

Each client kind works on its own tube, in its own thread: blocking workers one thread
each, asyncio workers as tasks of one loop, trio workers as tasks of one run. Every call
is bounded (the blocking client's ``timeout``, ``asyncio.timeout``, ``trio.fail_after``),
so a stalled connection costs a worker a few seconds, never the run. Producers wait while
their tube's backlog is full; consumers wake them as they finish jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultkit import (
    EXPECTED_FAILURES,
    KINDS,
    Driver,
    FaultProxy,
    Plan,
    observer,
    tube_jobs,
)

import jackstalk
from jackstalk.testing import run_beanstalkd

Job = Callable[[], Coroutine[Any, Any, None]]

CALL_LIMIT = 2.0
"""Seconds a worker's call may take: past that it counts as hung and raises TimeoutError."""

BACKLOG = 200
"""Jobs a kind's producers may have outstanding before they wait for its consumers."""

WAKE_LIMIT = 0.5
"""Most seconds a waiting producer waits before it looks at the stop flag again."""


def tube_of(kind: str) -> str:
    return f"soak-{kind}"


# ---------------------------------------------------------------------------- faults


def plan_factory(rng: random.Random, stall_share: float) -> Callable[[], Plan]:
    """Plans for the soak's connections: about half clean; the rest split, delayed, or cut
    (dropped, reset or stalled) somewhere in their first few kilobytes, so a faulty
    connection carries a few dozen jobs before it breaks."""

    def plan() -> Plan:
        roll = rng.random()
        split = rng.random() < 0.1
        delay = 0.002 if rng.random() < 0.1 else 0.0
        if roll < 0.45:
            return Plan(split=split, delay=delay)
        if roll < 0.45 + stall_share:
            cut: Any = "stall"
        else:
            cut = rng.choice(("drop", "reset"))
        return Plan(
            split=split,
            delay=delay,
            cut=cut,
            direction=rng.choice(("up", "down")),
            offset=rng.randrange(4000),
        )

    return plan


# ---------------------------------------------------------------------------- the ledger


@dataclass
class Ledger:
    """What the workers of one kind saw, kept under a lock."""

    kind: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    confirmed: dict[str, int] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    handled: Counter[str] = field(default_factory=Counter)
    handled_ids: dict[str, int] = field(default_factory=dict)
    mismatched: list[str] = field(default_factory=list)
    kills: int = 0
    peak_backlog: int = 0
    deletes: int = 0
    deletes_not_found: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    pulse: threading.Event = field(default_factory=threading.Event)
    """Set by consumers after each reserve: something may have changed on the server."""

    def put_ok(self, bodies: Sequence[str], ids: Sequence[int]) -> None:
        with self.lock:
            self.confirmed.update(zip(bodies, ids, strict=True))
            backlog = len(self.confirmed) + len(self.unknown) - len(self.handled)
            self.peak_backlog = max(self.peak_backlog, backlog)

    def put_failed(self, bodies: Sequence[str], error: BaseException) -> None:
        with self.lock:
            self.unknown.update(bodies)
            self.failures[type(error).__name__] += 1

    def failed(self, error: BaseException) -> None:
        with self.lock:
            self.failures[type(error).__name__] += 1

    def handle(self, body: str, job_id: int) -> None:
        with self.lock:
            self.handled[body] += 1
            known = self.handled_ids.setdefault(body, job_id)
            if known != job_id or self.confirmed.get(body, job_id) != job_id:
                self.mismatched.append(f"{body}: ids {known}, {job_id}")

    def killed(self) -> None:
        with self.lock:
            self.kills += 1

    def deleted(self, found: bool) -> None:
        with self.lock:
            if found:
                self.deletes += 1
            else:
                self.deletes_not_found += 1

    def oops(self, where: str, error: BaseException) -> None:
        text = "".join(traceback.format_exception_only(type(error), error)).strip()
        with self.lock:
            self.unexpected.append(f"{self.kind} {where}: {text}")

    def backlog(self) -> int:
        with self.lock:
            return len(self.confirmed) + len(self.unknown) - len(self.handled)


# ---------------------------------------------------------------------------- the workers


class Room:
    """Where a kind's producers wait for its consumers: each kind has its own flavour."""

    def __init__(self, kind: str, ledger: Ledger, stop: threading.Event) -> None:
        self.kind = kind
        self.ledger = ledger
        self.stop = stop
        self.cond = threading.Condition()
        self.event: asyncio.Event | None = None
        self.lot: trio.lowlevel.ParkingLot | None = None

    def full(self) -> bool:
        return self.ledger.backlog() >= BACKLOG and not self.stop.is_set()

    async def wait(self) -> bool:
        """Wait until there is room; True if there is. Gives up after :data:`WAKE_LIMIT`
        (False), so that the producer looks at the stop flag again."""
        if not self.full():
            return True
        if self.kind == "blocking":
            with self.cond:
                self.cond.wait_for(lambda: not self.full(), WAKE_LIMIT)
        elif self.kind == "asyncio":
            if self.event is None:
                self.event = asyncio.Event()
            try:
                async with asyncio.timeout(WAKE_LIMIT):
                    while self.full():  # each wake-up may come before there is room
                        self.event.clear()
                        await self.event.wait()
            except TimeoutError:
                pass
        else:
            if self.lot is None:
                self.lot = trio.lowlevel.ParkingLot()
            with trio.move_on_after(WAKE_LIMIT):
                while self.full():
                    await self.lot.park()
        return not self.full()

    def made(self) -> None:
        """A job was finished: wake the waiting producers (from the crew's own thread)."""
        if self.kind == "blocking":
            with self.cond:
                self.cond.notify_all()
        elif self.kind == "asyncio":
            if self.event is not None:
                self.event.set()
        elif self.lot is not None:
            self.lot.unpark_all()


async def produce(
    driver: Driver, name: str, ledger: Ledger, room: Room, stop: threading.Event, seed: str
) -> None:
    rng = random.Random(seed)
    serial = 0
    while not stop.is_set():
        if not await room.wait():
            continue
        if stop.is_set():
            break
        size = rng.randint(2, 6) if rng.random() < 0.2 else 1
        bodies = [f"{name}-{serial + index}" for index in range(size)]
        serial += size
        try:
            if size == 1:
                ids = [await driver.put(bodies[0])]
            else:
                ids = await driver.put_many(bodies)
        except EXPECTED_FAILURES as error:
            ledger.put_failed(bodies, error)
        except Exception as error:
            ledger.put_failed(bodies, error)
            ledger.oops("put", error)
        else:
            ledger.put_ok(bodies, ids)


async def consume(
    driver: Driver,
    ledger: Ledger,
    room: Room,
    done: threading.Event,
    seed: str,
    kill_share: float,
) -> None:
    rng = random.Random(seed)
    while not done.is_set():
        try:
            job = await driver.reserve(timeout=1)
        except EXPECTED_FAILURES as error:
            ledger.failed(error)
            continue
        except Exception as error:
            ledger.oops("reserve", error)
            continue
        finally:
            ledger.pulse.set()  # the drain looks at the server again
        if job is None:
            continue
        if rng.random() < kill_share:
            # Killed mid-job: the connection closes with the job reserved, so the server
            # hands it out again.
            ledger.killed()
            await driver.aclose()
            continue
        ledger.handle(job.body, job.id)
        room.made()
        try:
            await driver.delete(job.id)
        except jackstalk.NotFoundError:
            # Released when an earlier connection broke, and taken by another consumer.
            ledger.deleted(found=False)
        except EXPECTED_FAILURES as error:
            ledger.failed(error)
        except Exception as error:
            ledger.oops("delete", error)
        else:
            ledger.deleted(found=True)


@dataclass
class Crew:
    """The workers of one client kind, and the thread that runs them."""

    kind: str
    address: tuple[str, int]
    producers: int
    consumers: int
    seed: int
    kill_share: float
    stop_producing: threading.Event
    stop_consuming: threading.Event
    ledger: Ledger = field(init=False)
    room: Room = field(init=False)
    threads: list[threading.Thread] = field(default_factory=list)
    producers_done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.ledger = Ledger(self.kind)
        self.room = Room(self.kind, self.ledger, self.stop_producing)

    def driver(self) -> Driver:
        tube = tube_of(self.kind)
        options: dict[str, Any] = {"connect_timeout": CALL_LIMIT} if self.kind == "blocking" else {}
        return Driver(self.kind, self.address, use=tube, watch=tube, limit=CALL_LIMIT, **options)

    def jobs(self) -> list[Job]:
        """One coroutine function per worker; producers first."""
        ledger, room = self.ledger, self.room
        work: list[Job] = []
        for index in range(self.producers):
            name = f"{self.kind}-p{index}"
            seed = f"{self.seed}/{name}"
            work.append(self._worker(produce, name, ledger, room, self.stop_producing, seed))
        for index in range(self.consumers):
            seed = f"{self.seed}/{self.kind}-c{index}"
            args = (ledger, room, self.stop_consuming, seed, self.kill_share)
            work.append(self._worker(consume, *args))
        return work

    def _worker(self, role: Callable[..., Awaitable[None]], *args: Any) -> Job:
        async def run() -> None:
            driver = self.driver()
            try:
                await role(driver, *args)
            except BaseException as error:  # reported, not raised
                self.ledger.oops(role.__name__, error)
            finally:
                try:
                    await driver.aclose()
                except Exception as error:
                    self.ledger.oops("close", error)

        return run

    def start(self) -> None:
        jobs = self.jobs()
        producers = jobs[: self.producers]
        consumers = jobs[self.producers :]
        if self.kind == "blocking":
            remaining = [len(producers)]
            lock = threading.Lock()

            def run(job: Job, producer: bool) -> None:
                asyncio.run(job())
                if producer:
                    with lock:
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            self.producers_done.set()

            for job in producers:
                self.threads.append(threading.Thread(target=run, args=(job, True)))
            for job in consumers:
                self.threads.append(threading.Thread(target=run, args=(job, False)))
        elif self.kind == "asyncio":

            async def main_asyncio() -> None:
                async def producers_then_flag() -> None:
                    await asyncio.gather(*(job() for job in producers))
                    self.producers_done.set()

                await asyncio.gather(producers_then_flag(), *(job() for job in consumers))

            self.threads.append(threading.Thread(target=asyncio.run, args=(main_asyncio(),)))
        else:

            async def main_trio() -> None:
                async def producers_then_flag() -> None:
                    async with trio.open_nursery() as inner:
                        for job in producers:
                            inner.start_soon(job)
                    self.producers_done.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(producers_then_flag)
                    for job in consumers:
                        nursery.start_soon(job)

            self.threads.append(threading.Thread(target=trio.run, args=(main_trio,)))
        for thread in self.threads:
            thread.daemon = True
            thread.start()

    def join(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)


# ---------------------------------------------------------------------------- the run


@dataclass
class Report:
    """The soak's figures; ``ok`` when nothing was lost, left or unexpected."""

    seconds: float
    kinds: list[str]
    producers: int
    consumers: int
    seed: int
    puts_confirmed: int = 0
    puts_unknown: int = 0
    unknown_stored: int = 0
    processed: int = 0
    distinct_processed: int = 0
    duplicates: int = 0
    lost: int = 0
    phantoms: int = 0
    mismatched: int = 0
    left_on_server: int = 0
    kills: int = 0
    deletes: int = 0
    deletes_not_found: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    peak_backlog: int = 0
    """The most jobs any kind had put and not yet processed (producers wait at BACKLOG)."""
    drained: bool = True
    stopped: bool = True
    per_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.phantoms == 0
            and self.mismatched == 0
            and self.left_on_server == 0
            and not self.unexpected
            and self.drained
            and self.stopped
        )

    def lines(self) -> list[str]:
        faults = ", ".join(f"{name} {count}" for name, count in sorted(self.faults.items()))
        failures = ", ".join(f"{name} {count}" for name, count in sorted(self.failures.items()))
        lines = [
            f"soak: {self.seconds:g} s of load ({self.wall:.1f} s wall), kinds "
            f"{'+'.join(self.kinds)}, {self.producers} producers and {self.consumers} "
            f"consumers per kind, seed {self.seed}",
            f"jobs: {self.puts_confirmed} puts confirmed, {self.puts_unknown} with an unknown "
            f"outcome ({self.unknown_stored} of those were stored, and processed)",
            f"processed: {self.processed} ({self.distinct_processed} distinct jobs), "
            f"duplicates {self.duplicates}, lost {self.lost}, left on the server "
            f"{self.left_on_server}, phantoms {self.phantoms}, id mismatches {self.mismatched}",
            f"consumers killed mid-job: {self.kills}; deletes {self.deletes} "
            f"(+{self.deletes_not_found} NOT_FOUND after a release); peak backlog "
            f"{self.peak_backlog}",
            f"faults injected: {self.faults_injected} ({faults}) over {self.connections} "
            "connections",
            f"call failures seen by workers: {failures or 'none'}",
            f"unexpected errors: {len(self.unexpected)}",
        ]
        lines.extend(f"  {line}" for line in self.unexpected[:20])
        for kind, figures in sorted(self.per_kind.items()):
            lines.append(
                f"  {kind}: "
                + ", ".join(f"{name} {value}" for name, value in sorted(figures.items()))
            )
        lines.append("result: " + ("OK" if self.ok else "FAILED"))
        return lines


@contextmanager
def _server(address: tuple[str, int] | None) -> Iterator[tuple[str, int]]:
    if address is not None:
        yield address
        return
    with run_beanstalkd() as server:
        assert isinstance(server.address, tuple)
        yield server.address


def run_soak(
    *,
    seconds: float,
    kinds: Sequence[str] = KINDS,
    producers: int = 2,
    consumers: int = 3,
    seed: int = 0,
    kill_share: float = 0.05,
    stall_share: float = 0.02,
    address: tuple[str, int] | None = None,
    drain_limit: float = 60.0,
) -> Report:
    """Run the soak for ``seconds`` (plus the drain) and return its figures.

    ``address``: a beanstalkd to use (its soak tubes must be empty); by default a private
    one is started.
    """
    report = Report(
        seconds=seconds, kinds=list(kinds), producers=producers, consumers=consumers, seed=seed
    )
    started = time.monotonic()
    rng = random.Random(seed)
    with _server(address) as upstream, observer(upstream) as watcher:
        for kind in kinds:
            watcher.watch(tube_of(kind))  # keeps the tubes, and their counts, alive
        proxy = FaultProxy(upstream, default=plan_factory(rng, stall_share), seed=seed)
        stop_producing = threading.Event()
        stop_consuming = threading.Event()
        pulse = threading.Event()
        crews = [
            Crew(
                kind,
                proxy.address,
                producers,
                consumers,
                seed,
                kill_share,
                stop_producing,
                stop_consuming,
            )
            for kind in kinds
        ]
        with proxy:
            for crew in crews:
                crew.ledger.pulse = pulse
                crew.start()
            # The length of the run (load time), not a synchronisation.
            stop_producing.wait(seconds)
            stop_producing.set()  # waiting producers see it within WAKE_LIMIT
            report.drained = _drain(watcher, crews, pulse, drain_limit)
            stop_consuming.set()
            report.stopped = all(crew.join(drain_limit) for crew in crews)
            report.faults = dict(proxy.fired)
            report.connections = proxy.connections
        for crew in crews:
            counts = tube_jobs(watcher, tube_of(crew.kind))
            left = counts["ready"] + counts["reserved"] + counts["delayed"] + counts["buried"]
            _account(report, crew.ledger, left, counts["total"])
    report.wall = time.monotonic() - started
    return report


def _drain(
    watcher: jackstalk.Client, crews: list[Crew], pulse: threading.Event, limit: float
) -> bool:
    """Wait until the producers have stopped and the consumers have emptied every tube.

    The server is asked again each time a consumer reports a reserve (``pulse``);
    ``limit`` bounds the whole wait."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pulse.clear()
        if all(crew.producers_done.is_set() for crew in crews):
            counts = [tube_jobs(watcher, tube_of(crew.kind)) for crew in crews]
            if all(count["ready"] + count["reserved"] + count["delayed"] == 0 for count in counts):
                return True
        pulse.wait(max(0.0, deadline - time.monotonic()))
    return False


def _account(report: Report, ledger: Ledger, left: int, total: int) -> None:
    with ledger.lock:
        confirmed = set(ledger.confirmed)
        attempted = confirmed | ledger.unknown
        handled = ledger.handled
        lost = len(confirmed - set(handled))
        duplicates = sum(count - 1 for count in handled.values() if count > 1)
        figures = {
            "puts_confirmed": len(confirmed),
            "puts_unknown": len(ledger.unknown),
            "unknown_stored": len(ledger.unknown & set(handled)),
            "processed": sum(handled.values()),
            "distinct_processed": len(handled),
            "duplicates": duplicates,
            "lost": lost,
            "phantoms": len(set(handled) - attempted),
            "mismatched": len(ledger.mismatched),
            "left_on_server": left,
            "kills": ledger.kills,
            "deletes": ledger.deletes,
            "deletes_not_found": ledger.deletes_not_found,
        }
        report.peak_backlog = max(report.peak_backlog, ledger.peak_backlog)
        # The server's count of jobs ever put into the tube: confirmed ones, and those of
        # unknown outcome that were stored; a silently repeated put would show here.
        if total != len(confirmed) + figures["unknown_stored"]:
            ledger.unexpected.append(
                f"{ledger.kind}: the server stored {total} jobs; the clients confirmed "
                f"{len(confirmed)} and {figures['unknown_stored']} unconfirmed ones turned up"
            )
        for name, count in ledger.failures.items():
            report.failures[name] = report.failures.get(name, 0) + count
        report.unexpected.extend(ledger.unexpected)
    for name, value in figures.items():
        setattr(report, name, getattr(report, name) + value)
    report.per_kind[ledger.kind] = figures


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--cluster" in argv:  # three servers, one killed and restarted: soak_cluster.py
        from soak_cluster import main as cluster_main

        return cluster_main(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="load time (default 300)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="client kinds, comma-separated")
    parser.add_argument("--producers", type=int, default=2, help="producers per kind")
    parser.add_argument("--consumers", type=int, default=3, help="consumers per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-share", type=float, default=0.05)
    parser.add_argument("--stall-share", type=float, default=0.02)
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {sorted(unknown)}")
    report = run_soak(
        seconds=args.seconds,
        kinds=kinds,
        producers=args.producers,
        consumers=args.consumers,
        seed=args.seed,
        kill_share=args.kill_share,
        stall_share=args.stall_share,
    )
    return finish(report, args.json)


def finish(report: Any, json_path: Path | None) -> int:
    """Print ``report`` (a soak's :class:`Report`, or the cluster soak's), write it as JSON
    too when asked, and give the exit status: 0 when nothing was lost or left behind."""
    for line in report.lines():
        print(line)
    if json_path is not None:
        data = asdict(report)
        data["faults_injected"] = report.faults_injected
        data["ok"] = report.ok
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
