"""Faults between the client and a real beanstalkd: every write split into single bytes,
delays, connections dropped or reset at every byte offset in either direction, stalls.

Invariants, on all three clients: a call either gives the right result or raises
``ConnectionClosedError`` (``TimeoutError`` for a stall), never a wrong result and never a
hang; the next call reconnects and restores the used tube and the watch list; a put whose
``INSERTED`` was not seen is reported as failed and stored at most once (the tube's
``total-jobs`` grows by 0 or 1, never 2); no job stays reserved by a connection that failed.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import pytest
from faultkit import (
    CLEAN,
    EXPECTED_FAILURES,
    Cut,
    Direction,
    Driver,
    FaultProxy,
    Plan,
    apoll,
    observer,
    random_plan,
    tube_jobs,
)

import jackstalk
from jackstalk.testing import BeanstalkdServer

TUBE = "faults"
WATCH = ("faults", "other")


class Rig:
    """A client of the test's kind behind a fault proxy, and an observer on the server."""

    def __init__(
        self, kind: str, proxy: FaultProxy, watcher: jackstalk.Client, *, limit: float = 10.0
    ) -> None:
        self.kind = kind
        self.proxy = proxy
        self.watcher = watcher
        self.driver = Driver(kind, proxy.address, use=TUBE, watch=list(WATCH), limit=limit)
        self.serial = 0
        self.outcomes: dict[bool, int] = {True: 0, False: 0}
        self.failure: BaseException | None = None
        """What the last failed operation raised."""

    def body(self) -> str:
        self.serial += 1
        return f"body-{self.serial:05d}"

    def total(self) -> int:
        return tube_jobs(self.watcher, TUBE)["total"]

    async def settled(self) -> None:
        """Wait until no job of the tube is reserved: a connection that failed holds none
        once the server has seen it go."""
        await apoll(
            self.kind,
            lambda: tube_jobs(self.watcher, TUBE)["reserved"] == 0,
            what="the failed connection's jobs went back to ready",
        )

    def clean(self) -> list[str]:
        """Delete every job of the tube; return their bodies (checked for duplicates)."""
        bodies: list[str] = []
        for _ in range(1000):
            job = self.watcher.reserve(timeout=0)
            if job is None:
                break
            bodies.append(job.body)
            job.delete()
        assert len(bodies) == len(set(bodies)), f"a job was stored twice: {sorted(bodies)}"
        counts = tube_jobs(self.watcher, TUBE)
        assert [counts[state] for state in ("ready", "reserved", "delayed", "buried")] == [0] * 4
        return bodies

    async def recovered(self) -> None:
        """The next calls (over a clean connection) work, with the tube state restored."""
        self.proxy.plan(CLEAN)
        assert await self.driver.using() == TUBE
        assert sorted(await self.driver.watching()) == sorted(WATCH)

    async def attempt(self, op: Op, plan: Plan) -> bool:
        """Run ``op`` on a fresh connection with ``plan``; check recovery; clean up."""
        await self.driver.aclose()
        self.proxy.plan(plan)
        try:
            ok = await op(self)
        except AssertionError as error:
            raise AssertionError(f"{op.__name__} with {plan}: {error}") from error
        self.outcomes[ok] += 1
        if ok:
            # The connection may still carry a cut further on; a failed one is gone already
            # and the next call reconnects by itself.
            await self.driver.aclose()
        await self.settled()
        await self.recovered()
        self.clean()
        return ok


Op = Callable[[Rig], Awaitable[bool]]
"""One operation through the faulty connection: True if it succeeded, False if it raised
an allowed error; an AssertionError for anything else."""


async def put(rig: Rig) -> bool:
    before = rig.total()
    body = rig.body()
    try:
        job_id = await rig.driver.put(body)
    except EXPECTED_FAILURES as error:
        rig.failure = error
        assert rig.total() - before in (0, 1)
        return False
    assert rig.total() - before == 1
    job = rig.watcher.peek(job_id)
    assert job is not None
    assert job.body == body
    return True


async def put_many(rig: Rig) -> bool:
    before = rig.total()
    bodies = [rig.body() for _ in range(3)]
    try:
        ids = await rig.driver.put_many(bodies)
    except EXPECTED_FAILURES as error:
        rig.failure = error
        assert 0 <= rig.total() - before <= 3
        # Only bodies of this batch, each once (clean() checks the duplicates).
        assert set(rig.clean()) <= set(bodies)
        return False
    assert rig.total() - before == 3
    jobs = [rig.watcher.peek(job_id) for job_id in ids]
    assert [job.body if job else None for job in jobs] == bodies
    return True


async def reserve_and_delete(rig: Rig) -> bool:
    body = rig.body()
    job_id = rig.watcher.put(body)
    try:
        job = await rig.driver.reserve(timeout=0)
    except EXPECTED_FAILURES as error:
        rig.failure = error
        await rig.settled()
        assert tube_jobs(rig.watcher, TUBE)["ready"] == 1  # back, not lost
        return False
    assert job is not None
    assert (job.id, job.body) == (job_id, body)
    assert rig.watcher.stats_job(job_id)["state"] == "reserved"
    try:
        await rig.driver.delete(job_id)
    except EXPECTED_FAILURES as error:
        rig.failure = error
        await rig.settled()
        return False  # deleted, or back in ready: never reserved by a dead connection
    assert rig.watcher.peek(job_id) is None
    return True


async def stats(rig: Rig) -> bool:
    try:
        result = await rig.driver.stats()
    except EXPECTED_FAILURES as error:
        rig.failure = error
        return False
    assert isinstance(result, dict)
    assert result["version"] == "1.12"
    assert result["current-jobs-reserved"] == 0
    return True


OPS: dict[str, Op] = {
    "put": put,
    "put_many": put_many,
    "reserve": reserve_and_delete,
    "stats": stats,
}

# Every offset up to 100 bytes (the tube restore plus one command and its reply), then a
# stride through the longer exchanges (a stats reply is about 950 bytes).
OFFSETS = [*range(100), *range(100, 1100, 41)]


@contextmanager
def rig_for(
    kind: str,
    server: BeanstalkdServer,
    *,
    default: Plan | Callable[[], Plan] = CLEAN,
    limit: float = 10.0,
) -> Iterator[Rig]:
    address = server.address
    assert isinstance(address, tuple)
    with FaultProxy(address, default=default) as proxy, observer(address) as watcher:
        watcher.use(TUBE)
        watcher.watch(TUBE)  # keeps the tube (and its total-jobs count) alive
        watcher.ignore("default")
        yield Rig(kind, proxy, watcher, limit=limit)


@pytest.mark.parametrize("name", sorted(OPS))
async def test_cut_at_every_byte_offset(
    transport: str, beanstalkd: BeanstalkdServer, name: str
) -> None:
    op = OPS[name]
    with rig_for(transport, beanstalkd) as rig:
        try:
            for direction in ("up", "down"):
                for cut in ("drop", "reset"):
                    for offset in OFFSETS:
                        plan = Plan(cut=cut, direction=direction, offset=offset)
                        await rig.attempt(op, plan)
        finally:
            await rig.driver.aclose()
        # Every cut kind happened, and some attempts failed while others went through.
        for kind in ("drop-up", "drop-down", "reset-up", "reset-down"):
            assert rig.proxy.fired[kind] > 0, rig.proxy.fired
        assert rig.outcomes[False] > 0, rig.outcomes
        assert rig.outcomes[True] > 0, rig.outcomes


async def test_random_faults(transport: str, beanstalkd: BeanstalkdServer) -> None:
    rng = random.Random(f"random-faults-{transport}")
    with rig_for(transport, beanstalkd) as rig:
        try:
            for _ in range(150):
                plan = random_plan(rng, max_offset=150, max_delay=0.003)
                await rig.attempt(OPS[rng.choice(sorted(OPS))], plan)
        finally:
            await rig.driver.aclose()
        assert rig.proxy.fired["split"] > 0, rig.proxy.fired
        assert rig.proxy.fired["delay"] > 0, rig.proxy.fired
        assert rig.outcomes[False] > 0, rig.outcomes
        assert rig.outcomes[True] > 0, rig.outcomes


async def test_whole_api_through_single_byte_writes(
    transport: str, beanstalkd: BeanstalkdServer
) -> None:
    """Every reply and every command arrives one byte per TCP segment, some delayed."""
    rng = random.Random(f"split-{transport}")

    def split() -> Plan:
        return Plan(split=True, delay=0.001 if rng.random() < 0.3 else 0.0)

    with rig_for(transport, beanstalkd, default=split) as rig:
        drv = rig.driver
        try:
            job_id = await drv.put("one", priority=5, ttr=30)
            ids = await drv.put_many([b"two", "three"])
            assert await drv.peek_ready() is not None
            job = await drv.reserve(timeout=0)
            assert (job.id, job.body) == (job_id, "one")
            assert (await drv.stats_job(job_id))["state"] == "reserved"
            await drv.release(job_id, 7, 0)
            job = await drv.reserve(timeout=0)
            assert job.id == job_id
            await drv.bury(job_id)
            assert (await drv.peek_buried()).id == job_id
            assert await drv.kick(10) == 1
            assert (await drv.stats_tube(TUBE))["current-jobs-ready"] == 3
            for expected in (job_id, *ids):
                job = await drv.reserve(timeout=1)
                assert job.id == expected
                await drv.touch(job.id)
                await drv.delete(job.id)
            assert await drv.reserve(timeout=0) is None
            assert set(await drv.tubes()) >= {"default", TUBE}
            assert (await drv.stats())["current-jobs-reserved"] == 0
            await rig.recovered()
        finally:
            await drv.aclose()
        assert rig.proxy.fired["split"] >= 1


@pytest.mark.parametrize("direction", ["up", "down"])
async def test_stall_times_out_and_recovers(
    transport: str, beanstalkd: BeanstalkdServer, direction: Direction
) -> None:
    """A connection that stops carrying bytes one way: the call raises ``TimeoutError``
    (the blocking client's own timeout; ``asyncio.timeout``/``trio.fail_after``), the
    connection is dropped, and the next call works on a new one."""
    limit = 0.5
    with rig_for(transport, beanstalkd, limit=limit) as rig:
        try:
            # At 0 the restore never gets through; later, the restore has (55 bytes up, 50
            # down) and the command (up) or its reply (down) is cut short.
            middle = 70 if direction == "up" else 55
            for offset, op in ((0, put), (middle, reserve_and_delete)):
                before = rig.proxy.fired[f"stall-{direction}"]
                ok = await rig.attempt(op, Plan(cut="stall", direction=direction, offset=offset))
                assert not ok
                assert isinstance(rig.failure, TimeoutError), rig.failure
                assert rig.proxy.fired[f"stall-{direction}"] == before + 1
        finally:
            await rig.driver.aclose()


async def test_stalled_call_raises_timeout_error(
    transport: str, beanstalkd: BeanstalkdServer
) -> None:
    """The stall surfaces as ``TimeoutError`` itself, not as a closed connection."""
    with rig_for(transport, beanstalkd, limit=0.3) as rig:
        try:
            rig.proxy.plan(Plan(cut="stall", direction="down", offset=0))
            with pytest.raises(TimeoutError):
                await rig.driver.stats()
            await rig.recovered()
        finally:
            await rig.driver.aclose()


def test_plans_describe_themselves() -> None:
    cut: Cut = "reset"
    assert str(Plan(split=True, delay=0.002, cut=cut, direction="down", offset=9)) == (
        "split+delay<=2ms+reset-down@9"
    )
    assert str(CLEAN) == "clean"
