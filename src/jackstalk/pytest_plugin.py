"""A pytest plugin: a private beanstalkd for tests, and clients of it.

Installed with jackstalk and registered through the ``pytest11`` entry point, it does
nothing until a test asks for one of its fixtures: it only adds them and two options.

Fixtures:

* ``beanstalkd_address``: the ``(host, port)`` of a fresh server on a free loopback port,
  for the test alone (or for the whole session, see ``--beanstalkd-scope``);
* ``beanstalkd_backend``: which server that is, ``"real"`` or ``"embedded"``;
* ``beanstalkd_client``: a connected blocking :class:`jackstalk.Client` of that server,
  closed after the test;
* ``beanstalkd_async_client`` and ``beanstalkd_trio_client``: factories of asyncio and trio
  clients of that server. Clients belong to an event loop, and the test runs its own (with
  ``asyncio.run``/``trio.run``, or an async test under an async plugin), so the fixture hands
  out a factory: ``async with beanstalkd_async_client() as client:`` inside that loop. No
  async pytest plugin is needed.

Options (each also an ini setting of the same name, which the command line overrides):

* ``--beanstalkd-backend``: ``auto`` (the default: the real ``beanstalkd`` when it is on
  ``PATH``, else jackstalk's embedded server), ``real`` (the test fails if it is missing),
  or ``embedded`` (jackstalk's in-memory server, in a background thread);
* ``--beanstalkd-scope``: ``function`` (the default: a fresh server per test) or
  ``session`` (one server for the whole run, started on first use: faster, but tests then
  share it, and see each other's jobs and tubes).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from jackstalk.transports.asyncio import AsyncClient
    from jackstalk.transports.blocking import Client
    from jackstalk.transports.trio import TrioClient

__all__ = [
    "AsyncClientFactory",
    "TrioClientFactory",
    "beanstalkd_address",
    "beanstalkd_async_client",
    "beanstalkd_backend",
    "beanstalkd_client",
    "beanstalkd_trio_client",
    "pytest_addoption",
    "pytest_configure",
]

BACKENDS = ("auto", "real", "embedded")
SCOPES = ("function", "session")

Backend = Literal["real", "embedded"]
Address = tuple[str, int] | str


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--beanstalkd-backend`` and ``--beanstalkd-scope``, and their ini settings."""
    group = parser.getgroup("jackstalk", "beanstalkd servers for tests (jackstalk)")
    group.addoption(
        "--beanstalkd-backend",
        choices=BACKENDS,
        default=None,
        help="server behind the beanstalkd fixtures: the real beanstalkd, jackstalk's"
        " embedded one, or auto (real when on PATH, else embedded). Default: the"
        " beanstalkd_backend ini setting, else auto.",
    )
    group.addoption(
        "--beanstalkd-scope",
        choices=SCOPES,
        default=None,
        help="a fresh server per test (function) or one for the whole run (session)."
        " Default: the beanstalkd_scope ini setting, else function.",
    )
    parser.addini(
        "beanstalkd_backend", "auto, real or embedded (see --beanstalkd-backend)", default="auto"
    )
    parser.addini(
        "beanstalkd_scope", "function or session (see --beanstalkd-scope)", default="function"
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check the ini settings now, so that a wrong one is a usage error before any test."""
    _setting(config, "beanstalkd_backend", BACKENDS)
    _setting(config, "beanstalkd_scope", SCOPES)


def _setting(config: pytest.Config, name: str, choices: tuple[str, ...]) -> str:
    """A setting from the command line, else from the ini file; a wrong one is a usage
    error, as a wrong choice on the command line is."""
    value = config.getoption(name)
    if value is None:
        value = config.getini(name)
    value = str(value).strip()
    if value not in choices:
        raise pytest.UsageError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _backend(config: pytest.Config) -> Backend:
    from jackstalk.testing import beanstalkd_available

    backend = _setting(config, "beanstalkd_backend", BACKENDS)
    if backend == "auto":
        return "real" if beanstalkd_available() else "embedded"
    return "real" if backend == "real" else "embedded"


def _address_scope(fixture_name: str, config: pytest.Config) -> Literal["function", "session"]:
    """The scope of ``beanstalkd_address``, from ``--beanstalkd-scope``."""
    return "session" if _setting(config, "beanstalkd_scope", SCOPES) == "session" else "function"


@contextmanager
def _server(backend: Backend) -> Iterator[Address]:
    """Run a server of ``backend`` on a free loopback port; yield its address."""
    from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd

    if backend == "real":
        if not beanstalkd_available():
            pytest.fail("--beanstalkd-backend=real, but beanstalkd is not on PATH")
        with run_beanstalkd() as server:
            yield server.address
    else:
        with embedded_server() as embedded:
            yield embedded.address


@pytest.fixture(scope="session")
def beanstalkd_backend(pytestconfig: pytest.Config) -> Backend:
    """Which server the fixtures start: ``"real"`` (the beanstalkd binary) or
    ``"embedded"`` (jackstalk's, in a thread of the test process)."""
    return _backend(pytestconfig)


@pytest.fixture(scope=_address_scope)
def beanstalkd_address(beanstalkd_backend: Backend) -> Iterator[Address]:
    """The address of a fresh beanstalkd that lives as long as the test (or the session,
    with ``--beanstalkd-scope=session``)."""
    with _server(beanstalkd_backend) as address:
        yield address


@pytest.fixture
def beanstalkd_client(beanstalkd_address: Address) -> Iterator[Client]:
    """A blocking client of the test's server, connected, closed after the test."""
    from jackstalk.transports.blocking import Client

    with Client(beanstalkd_address) as client:
        yield client


class AsyncClientFactory:
    """Makes asyncio clients of the test's server, to use in the test's own event loop.

    ``factory(**options)`` is a new, unconnected :class:`jackstalk.AsyncClient` (options as
    the client takes them); ``async with factory() as client:`` connects and closes it in
    that loop. Close every client inside its loop: after the loop ends it cannot be.
    """

    def __init__(self, address: Address, backend: Backend) -> None:
        self.address = address
        self.backend = backend

    def __call__(self, **options: Any) -> AsyncClient:
        from jackstalk.transports.asyncio import AsyncClient

        return AsyncClient(self.address, **options)


class TrioClientFactory:
    """Makes trio clients of the test's server, to use inside ``trio.run``; see
    :class:`AsyncClientFactory`."""

    def __init__(self, address: Address, backend: Backend) -> None:
        self.address = address
        self.backend = backend

    def __call__(self, **options: Any) -> TrioClient:
        from jackstalk.transports.trio import TrioClient

        return TrioClient(self.address, **options)


@pytest.fixture
def beanstalkd_async_client(
    beanstalkd_address: Address, beanstalkd_backend: Backend
) -> AsyncClientFactory:
    """A factory of asyncio clients of the test's server: ``async with
    beanstalkd_async_client() as client:`` inside the test's ``asyncio.run``."""
    return AsyncClientFactory(beanstalkd_address, beanstalkd_backend)


@pytest.fixture
def beanstalkd_trio_client(
    beanstalkd_address: Address, beanstalkd_backend: Backend
) -> TrioClientFactory:
    """A factory of trio clients of the test's server: ``async with
    beanstalkd_trio_client() as client:`` inside the test's ``trio.run``. Skips the test
    when trio is not installed."""
    pytest.importorskip("trio")
    return TrioClientFactory(beanstalkd_address, beanstalkd_backend)
