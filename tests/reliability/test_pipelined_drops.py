"""Connections dropped under a pipeline: many tasks share one async client through the fault
proxy, which cuts connections after a random number of bytes. Each put either returns its
id or raises (its outcome unknown); nothing is sent twice behind a caller's back; every
confirmed job is stored exactly once; puts not yet written when a connection died go out
on the next one."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
import trio
from faultkit import EXPECTED_FAILURES, FaultProxy, Plan, observer, random_plan, tube_jobs

import jackstalk
from jackstalk.testing import BeanstalkdServer

TASKS = 48
PUTS = 12


async def _gather(kind: str, count: int, job: Any) -> None:
    if kind == "asyncio":
        await asyncio.gather(*(job(index) for index in range(count)))
    else:
        async with trio.open_nursery() as nursery:
            for index in range(count):
                nursery.start_soon(job, index)


@pytest.mark.parametrize("kind", ["asyncio", "trio"])
@pytest.mark.parametrize("seed", range(4))
def test_tasks_sharing_a_client_through_dropped_connections(
    beanstalkd: BeanstalkdServer, kind: str, seed: int
) -> None:
    assert isinstance(beanstalkd.address, tuple)
    rng = random.Random(seed)
    tube = f"drops-{seed}"

    def plan() -> Plan:
        return random_plan(rng, max_offset=4000, fault_share=1.0)

    confirmed: dict[str, int] = {}
    failed: list[str] = []

    async def main(address: tuple[str, int]) -> None:
        cls = jackstalk.AsyncClient if kind == "asyncio" else jackstalk.TrioClient
        client = cls(address, use=tube)

        async def producer(index: int) -> None:
            for n in range(PUTS):
                body = f"d{seed}-{index}-{n}"
                try:
                    confirmed[body] = await client.put(body)
                except EXPECTED_FAILURES:
                    failed.append(body)  # stored once or not at all

        try:
            await _gather(kind, TASKS, producer)
        finally:
            await client.close()

    with observer(beanstalkd.address) as watcher:
        watcher.watch(tube)  # the tube outlives the producers, for the count below
        with FaultProxy(beanstalkd.address, default=plan, seed=seed) as proxy:
            if kind == "asyncio":
                asyncio.run(main(proxy.address))
            else:
                trio.run(main, proxy.address)
        assert len(confirmed) + len(failed) == TASKS * PUTS
        stored: list[str] = []
        watcher.ignore("default")
        while (job := watcher.reserve(timeout=0)) is not None:
            stored.append(job.body)
            job.delete()
        assert len(stored) == len(set(stored))  # nothing was sent twice
        assert set(confirmed) <= set(stored)  # every confirmed put is there
        assert set(stored) <= set(confirmed) | set(failed)
        assert tube_jobs(watcher, tube)["total"] == len(stored)
        assert proxy.faults > 0, "the proxy cut nothing: the test proved nothing"
