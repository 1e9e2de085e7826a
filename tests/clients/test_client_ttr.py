"""Time-to-run on a real beanstalkd: DEADLINE_SOON and expiry, on all three clients.

No sleeping: each wait is a reserve whose reply the server sends when the time comes.
"""

from __future__ import annotations

import pytest
from conftest import ClientView

import jackstalk


async def test_deadline_soon_then_expiry(client: ClientView) -> None:
    job_id = await client.put("slow work", ttr=2)
    job = await client.reserve()
    assert job.id == job_id
    # Nothing else is ready, so this reserve waits until the held job is within the 1 s
    # safety margin of its deadline (about 1 s from now), and the server says so.
    with pytest.raises(jackstalk.DeadlineSoonError):
        await client.reserve(timeout=10)
    # The job is still ours until its time runs out.
    assert (await client.stats_job(job_id))["state"] == "reserved"
    # Inside the margin every reserve gets DEADLINE_SOON at once; once the ttr has run out
    # the server puts the job back in ready, and the next reserve gets it again.
    # (Reserving again from this connection, rather than waiting on another one, matters:
    # beanstalkd 1.12 sometimes misses the expiry of a job whose holder stays idle.)
    deadline_soon = 0
    while True:
        try:
            again = await client.reserve(timeout=10)
        except jackstalk.DeadlineSoonError:
            deadline_soon += 1
            continue
        break
    assert deadline_soon > 0
    assert (again.id, again.body) == (job_id, "slow work")
    stats = await again.stats()
    assert (stats["state"], stats["reserves"], stats["timeouts"]) == ("reserved", 2, 1)
    assert (await client.stats())["job-timeouts"] == 1
    await again.delete()


async def test_touch_and_release_before_the_deadline(client: ClientView) -> None:
    job_id = await client.put("touched", ttr=5)
    job = await client.reserve(timeout=0)
    await job.touch()
    await client.touch(job_id)
    assert (await job.stats())["state"] == "reserved"
    await job.release(delay=0)
    again = await client.reserve(timeout=0)
    assert again.id == job_id
    assert (await again.stats())["releases"] == 1
