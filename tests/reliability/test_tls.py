"""TLS: all three clients take ``ssl=`` (an ``ssl.SSLContext``) and work through a real TLS
terminator (stunnel, started here) in front of a real beanstalkd.

A certificate that does not verify (an unknown CA, or another host's name) raises
``ssl.SSLCertVerificationError`` and no byte of any command reaches the server: stunnel only
connects to beanstalkd once a handshake has succeeded, and beanstalkd sees no connection.
A TLS connection cut at any byte (handshake included) raises ``ConnectionClosedError``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from faultkit import Cut, Driver, FaultProxy, Plan, observer, tube_jobs
from tlskit import Identity, Material, make_material, require_stunnel, stunnel

import jackstalk
from jackstalk.testing import BeanstalkdServer

TUBE = "secure"


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    """Throw-away CAs and server certificates, made once per run."""
    require_stunnel()
    return make_material(tmp_path_factory.mktemp("tls"))


@contextmanager
def tls_front(
    beanstalkd: BeanstalkdServer, identity: Identity, directory: Path
) -> Iterator[tuple[str, int]]:
    address = beanstalkd.address
    assert isinstance(address, tuple)
    with stunnel(address, identity, directory) as front:
        yield front


@pytest.fixture
def tls_address(
    beanstalkd: BeanstalkdServer, material: Material, tmp_path: Path
) -> Iterator[tuple[str, int]]:
    """stunnel with a good certificate in front of the test's beanstalkd."""
    with tls_front(beanstalkd, material.good, tmp_path) as front:
        yield front


async def test_round_trip_over_tls(
    transport: str, beanstalkd: BeanstalkdServer, material: Material, tls_address: tuple[str, int]
) -> None:
    driver = Driver(
        transport, tls_address, ssl=material.client_context(), use=TUBE, watch=[TUBE, "other"]
    )
    try:
        job_id = await driver.put("over tls")
        big = [bytes([index]) * 60_000 for index in range(6)]  # several TLS records each
        ids = await driver.put_many(big)
        job = await driver.reserve(timeout=0)
        assert (job.id, job.body) == (job_id, "over tls")
        await driver.delete(job_id)
        for index, expected in enumerate(ids):
            peeked = await driver.peek(expected)
            assert peeked.body == big[index].decode()
            await driver.delete(expected)
        assert (await driver.stats())["current-jobs-reserved"] == 0
        # Reconnecting restores the tubes over a new TLS connection.
        await driver.aclose()
        assert await driver.using() == TUBE
        assert sorted(await driver.watching()) == sorted([TUBE, "other"])
    finally:
        await driver.aclose()
    with observer(beanstalkd.address) as watcher:
        stats = watcher.stats()
        assert stats["cmd-put"] == 7
        assert stats["total-connections"] == 3  # two via stunnel, and this observer


@pytest.mark.parametrize("which", ["untrusted", "wrong_name"])
async def test_certificate_that_does_not_verify(
    transport: str,
    beanstalkd: BeanstalkdServer,
    material: Material,
    tmp_path: Path,
    which: str,
) -> None:
    identity = material.untrusted if which == "untrusted" else material.wrong_name
    with tls_front(beanstalkd, identity, tmp_path) as front:
        driver = Driver(transport, front, ssl=material.client_context(), use=TUBE)
        try:
            for _ in range(2):  # and never a plaintext fallback on the next call
                with pytest.raises(ssl.SSLCertVerificationError):
                    await driver.put("never sent")
            with pytest.raises(ssl.SSLCertVerificationError):
                await driver.connect()
        finally:
            await driver.aclose()
    with observer(beanstalkd.address) as watcher:
        stats = watcher.stats()
        # Not a byte of any command got through: beanstalkd saw this observer only.
        assert stats["total-connections"] == 1
        assert stats["cmd-put"] == stats["cmd-use"] == 0


async def test_plaintext_client_on_a_tls_port(transport: str, tls_address: tuple[str, int]) -> None:
    """Forgetting ``ssl=``: the TLS server's answer is not beanstalkd's; the call fails
    (a protocol error or a closed connection), within the call's time bound."""
    driver = Driver(transport, tls_address, limit=10)
    try:
        with pytest.raises((jackstalk.ProtocolError, jackstalk.ConnectionClosedError)):
            await driver.stats()
    finally:
        await driver.aclose()


async def test_tls_connection_cut_anywhere(
    transport: str, beanstalkd: BeanstalkdServer, material: Material, tls_address: tuple[str, int]
) -> None:
    """A fault proxy between the client and stunnel cuts the TLS stream at byte offsets
    through the handshake and a put: only ``ConnectionClosedError``, the put stored at most
    once, and the next call works."""
    context = material.client_context()
    with FaultProxy(tls_address) as proxy, observer(beanstalkd.address) as watcher:
        watcher.watch(TUBE)
        driver = Driver(transport, proxy.address, ssl=context, use=TUBE, limit=10)
        outcomes = {True: 0, False: 0}
        try:
            for direction in ("up", "down"):
                for offset in range(0, 1500, 23):
                    cut: Cut = "drop" if offset % 2 else "reset"
                    await driver.aclose()
                    proxy.plan(Plan(cut=cut, direction=direction, offset=offset))
                    before = tube_jobs(watcher, TUBE)["total"]
                    try:
                        job_id = await driver.put("cut")
                    except jackstalk.ConnectionClosedError:
                        assert tube_jobs(watcher, TUBE)["total"] - before in (0, 1)
                        outcomes[False] += 1
                    else:
                        assert tube_jobs(watcher, TUBE)["total"] - before == 1
                        assert watcher.peek(job_id) is not None
                        outcomes[True] += 1
                        await driver.aclose()
                    assert await driver.using() == TUBE  # a clean connection: works
        finally:
            await driver.aclose()
        assert outcomes[True] > 0
        assert outcomes[False] > 0


async def test_stalled_tls_handshake_times_out(
    transport: str, material: Material, tls_address: tuple[str, int]
) -> None:
    """A TLS server that never answers the handshake: ``TimeoutError`` (the blocking
    client's ``connect_timeout``; ``asyncio.timeout``/``trio.fail_after``), then the next
    call, on a connection that is not stalled, works."""
    with FaultProxy(tls_address) as proxy:
        options = {"connect_timeout": 0.5} if transport == "blocking" else {}
        context = material.client_context()
        driver = Driver(transport, proxy.address, ssl=context, limit=0.5, **options)
        try:
            proxy.plan(Plan(cut="stall", direction="down", offset=0))
            with pytest.raises(TimeoutError):
                await driver.put("never sent")
            assert proxy.fired["stall-down"] == 1
            assert await driver.using() == "default"
        finally:
            await driver.aclose()


def test_ssl_option_is_checked(material: Material) -> None:
    context = material.client_context()
    for cls in (jackstalk.Client, jackstalk.AsyncClient, jackstalk.TrioClient):
        with pytest.raises(TypeError):
            cls(("127.0.0.1", 11300), ssl=True)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="TCP"):
            cls("/run/beanstalkd.sock", ssl=context)
        assert cls(("127.0.0.1", 11300), ssl=context).ssl is context
        assert cls(("127.0.0.1", 11300)).ssl is None
