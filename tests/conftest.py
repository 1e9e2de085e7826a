"""Shared fixtures: a private real beanstalkd per test, clients of all three kinds, and a
plugin-free runner for ``async def`` tests (asyncio or trio, chosen per test).

Rules for every test here: loopback addresses only, servers started by the fixtures on free
ports, no sleeping for synchronisation, and an absolute time limit around all network I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

import jackstalk
from jackstalk.testing import BeanstalkdServer, beanstalkd_available, run_beanstalkd

TRANSPORTS = ("blocking", "asyncio", "trio")
TEST_TIME_LIMIT = 60.0


# --------------------------------------------------------------------- servers


def _require_beanstalkd() -> None:
    if not beanstalkd_available():
        if os.environ.get("CI"):
            pytest.fail("beanstalkd is not installed, and CI must run the real-server tests")
        pytest.skip("beanstalkd is not on PATH (install it to run the real-server tests)")


@pytest.fixture
def beanstalkd() -> Iterator[BeanstalkdServer]:
    """A fresh real beanstalkd on a free loopback port."""
    _require_beanstalkd()
    with run_beanstalkd() as server:
        yield server


@pytest.fixture
def beanstalkd_unix(tmp_path: Any) -> Iterator[BeanstalkdServer]:
    """A fresh real beanstalkd on a Unix socket."""
    _require_beanstalkd()
    with run_beanstalkd(unix_path=str(tmp_path / "beanstalkd.sock")) as server:
        yield server


@pytest.fixture(params=["real", "embedded"])
def address(request: pytest.FixtureRequest) -> Iterator[tuple[str, int] | str]:
    """The address of the server the client tests run against: the real beanstalkd, and
    jackstalk's embedded server (each test runs on both)."""
    if request.param == "real":
        _require_beanstalkd()
        with run_beanstalkd() as server:
            yield server.address
    else:
        from jackstalk.testing import embedded_server

        with embedded_server() as embedded:
            yield embedded.address


# --------------------------------------------------------------------- clients


async def resolve(value: Any) -> Any:
    """Await ``value`` if it is awaitable: lets one test body drive all three clients."""
    if inspect.isawaitable(value):
        return await value
    return value


class JobView:
    """A job from any client, whose methods are all awaited alike."""

    def __init__(self, job: jackstalk.BaseJob) -> None:
        self.job = job
        self.id = job.id
        self.body = job.body

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.job, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await resolve(method(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"JobView({self.job!r})"


class ClientView:
    """Any of the three clients behind one awaitable API, for tests written once."""

    def __init__(self, client: Any, kind: str) -> None:
        self.client = client
        self.kind = kind

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = await resolve(method(*args, **kwargs))
            if isinstance(result, jackstalk.BaseJob):
                return JobView(result)
            return result

        return call


def make_client(kind: str, address: tuple[str, int] | str, **options: Any) -> Any:
    """A client of ``kind`` ("blocking", "asyncio" or "trio"), not yet connected."""
    if kind == "blocking":
        options.setdefault("timeout", TEST_TIME_LIMIT)
        return jackstalk.Client(address, **options)
    if kind == "asyncio":
        return jackstalk.AsyncClient(address, **options)
    return jackstalk.TrioClient(address, **options)


class ClientFactory:
    """Makes clients of the test's kind; the runner closes them inside the event loop."""

    def __init__(self, kind: str, address: tuple[str, int] | str) -> None:
        self.kind = kind
        self.address = address
        self.made: list[ClientView] = []

    def __call__(self, address: tuple[str, int] | str | None = None, **options: Any) -> ClientView:
        view = ClientView(make_client(self.kind, address or self.address, **options), self.kind)
        self.made.append(view)
        return view

    async def close_all(self) -> None:
        for view in self.made:
            await resolve(view.client.close())


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Which client kind the test runs with."""
    return str(request.param)


@pytest.fixture
def clients(transport: str, address: tuple[str, int] | str) -> ClientFactory:
    """A factory for more clients of the test's kind, on the test's server."""
    return ClientFactory(transport, address)


@pytest.fixture
def client(clients: ClientFactory) -> ClientView:
    """A client of the test's kind on a fresh server."""
    return clients()


# --------------------------------------------------------------------- async runner


def _backend(funcargs: dict[str, Any]) -> str:
    kind = funcargs.get("transport") or funcargs.get("async_backend")
    return "trio" if kind == "trio" else "asyncio"


@pytest.fixture(params=["asyncio", "trio"])
def async_backend(request: pytest.FixtureRequest) -> str:
    """For async tests that do not use a client: run under each event loop."""
    return str(request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests under asyncio or trio (trio for trio clients), with a time
    limit, closing the test's clients inside the loop afterwards."""
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    factories = [value for value in funcargs.values() if isinstance(value, ClientFactory)]

    async def body() -> None:
        try:
            await function(**kwargs)
        finally:
            for factory in factories:
                await factory.close_all()

    if _backend(funcargs) == "trio":

        async def trio_main() -> None:
            with trio.fail_after(TEST_TIME_LIMIT):
                await body()

        trio.run(trio_main)
    else:

        async def asyncio_main() -> None:
            async with asyncio.timeout(TEST_TIME_LIMIT):
                await body()

        asyncio.run(asyncio_main())
    return True
