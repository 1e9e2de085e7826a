"""Smoke test of the shared client suite machinery."""

from __future__ import annotations

from conftest import ClientView


async def test_put_reserve_delete(client: ClientView) -> None:
    job_id = await client.put("hello")
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    assert job.body == "hello"
    await job.delete()
    assert await client.peek(job_id) is None
