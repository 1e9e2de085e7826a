"""A pytest plugin: the ``beanstalkd_address`` fixture, a fresh beanstalkd for each test.

Installed with jackstalk and registered through the ``pytest11`` entry point, it does
nothing until a test asks for the fixture: it only adds the fixture and one option.

``--beanstalkd-backend`` chooses the server:

* ``auto`` (the default): the real ``beanstalkd`` when it is on ``PATH``, else jackstalk's
  embedded server;
* ``real``: the real one (the test fails if it is missing);
* ``embedded``: jackstalk's in-memory server, in a background thread.

The fixture yields ``(host, port)`` on a free loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["beanstalkd_address", "pytest_addoption"]

BACKENDS = ("auto", "real", "embedded")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--beanstalkd-backend``."""
    group = parser.getgroup("jackstalk", "beanstalkd servers for tests (jackstalk)")
    group.addoption(
        "--beanstalkd-backend",
        choices=BACKENDS,
        default="auto",
        help="server behind the beanstalkd_address fixture: the real beanstalkd, jackstalk's"
        " embedded one, or auto (real when on PATH, else embedded). Default: auto.",
    )


def _backend(config: pytest.Config) -> str:
    from jackstalk.testing import beanstalkd_available

    backend = str(config.getoption("beanstalkd_backend"))
    if backend == "auto":
        return "real" if beanstalkd_available() else "embedded"
    return backend


@pytest.fixture
def beanstalkd_address(request: pytest.FixtureRequest) -> Iterator[tuple[str, int] | str]:
    """The address of a fresh beanstalkd that lives as long as the test."""
    from jackstalk.testing import beanstalkd_available, embedded_server, run_beanstalkd

    if _backend(request.config) == "real":
        if not beanstalkd_available():
            pytest.fail("--beanstalkd-backend=real, but beanstalkd is not on PATH")
        with run_beanstalkd() as server:
            yield server.address
    else:
        with embedded_server() as embedded:
            yield embedded.address
