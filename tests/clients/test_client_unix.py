"""A subset of the client suite over a Unix socket, on all three clients.

This module's ``address`` fixture points the ``client``/``clients`` fixtures at a real
beanstalkd listening on a Unix socket instead of TCP.
"""

from __future__ import annotations

import pathlib

import pytest
from conftest import ClientFactory, ClientView

import jackstalk
from jackstalk.testing import BeanstalkdServer


@pytest.fixture
def address(beanstalkd_unix: BeanstalkdServer) -> str:
    assert isinstance(beanstalkd_unix.address, str)
    return beanstalkd_unix.address


async def test_unix_round_trip(client: ClientView, clients: ClientFactory) -> None:
    job_id = await client.put("over unix", priority=1)
    binary = clients(encoding=None)
    assert (await binary.peek(job_id)).body == b"over unix"
    job = await client.reserve()
    assert (job.id, job.body) == (job_id, "over unix")
    await job.bury()
    assert await client.kick(1) == 1
    job = await client.reserve(timeout=1.5)
    await job.delete()
    assert await client.reserve(timeout=0) is None
    assert (await client.stats())["cmd-delete"] == 1


async def test_unix_binary_and_batch(clients: ClientFactory) -> None:
    client = clients(encoding=None)
    ids = await client.put_many([bytes(range(256)), b"", b"\r\n"] * 100)
    assert len(ids) == 300
    assert (await client.peek(ids[0])).body == bytes(range(256))
    assert (await client.stats())["current-jobs-ready"] == 300


async def test_unix_errors(client: ClientView) -> None:
    with pytest.raises(jackstalk.NotFoundError):
        await client.delete(1)
    with pytest.raises(jackstalk.NotIgnoredError):
        await client.ignore("default")
    assert await client.using() == "default"


async def test_unix_reconnect_restores_tubes(client: ClientView) -> None:
    await client.use("u")
    await client.watch("w")
    await client.ignore("default")
    await client.close()
    assert await client.using() == "u"
    assert await client.watching() == ["w"]
    assert (await client.stats())["total-connections"] == 2


async def test_unix_path_like_address(clients: ClientFactory, address: str) -> None:
    client = clients(pathlib.Path(address))  # type: ignore[arg-type]  # os.PathLike is accepted
    assert await client.using() == "default"
