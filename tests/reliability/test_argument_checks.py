"""Every argument a user can pass, of the wrong type or out of range, raises ValueError or
TypeError before a byte is sent: hypothesis over every client method, every job method and
every constructor option of the three clients, with tube-name injection attempts (CR, LF,
space, NUL, 201 bytes) among the bad values.

The clients point at a stand-in listener that must see no connection at all (so not a
byte). A completeness check fails when a method or option appears that this file does not
cover.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jackstalk
from jackstalk._api import operations as _ops

U32 = 2**32 - 1
U64 = 2**64 - 1
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---------------------------------------------------------------------------- values

# The tube grammar, written out independently of the library's regular expression.
_TUBE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()"
_TUBE = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()\-]{0,199}")

INJECTIONS = [
    "jobs\r\nput 0 0 0 1",
    "jobs\r",
    "jobs\n",
    "jobs tube",
    " jobs",
    "jobs\x00",
    "\x00",
    "a" * 201,
    "",
    "-jobs",
    "jobs\r\nquit",
    "tübe",
    "jobs\t",
]

not_a_number = st.sampled_from([None, "1", b"1", 1.5, [], {}, object(), True, False])
"""Not an integer (bools are refused on purpose: likely mistakes)."""

valid_tubes = st.from_regex(_TUBE, fullmatch=True)
bad_tube_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=210).filter(
    lambda text: _TUBE.fullmatch(text) is None
)
bad_tubes = st.one_of(
    st.sampled_from(INJECTIONS),
    bad_tube_text,
    st.sampled_from([None, b"jobs", 12, ["jobs"], object()]),
)


def bad_ints(low: int, high: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
        not_a_number,
        st.floats(allow_nan=True),
    )


bad_u32 = bad_ints(0, U32)
bad_ids = bad_ints(1, U64)
bad_timeouts = st.one_of(
    st.floats(max_value=-1e-9),
    st.floats(min_value=2**31, allow_infinity=True),
    st.just(math.nan),
    st.sampled_from(["1", b"1", [], True, False, object()]),
)
bad_bodies = st.one_of(
    st.sampled_from([None, 12, 1.5, ["x"], {"x": 1}, object(), ("x",)]),
    st.integers(65536, 70000).map(lambda size: b"x" * size),  # over max_job_size
)


def _bad_job_refs(client: Any) -> st.SearchStrategy[Any]:
    job_type = jackstalk.Job if isinstance(client, jackstalk.Client) else jackstalk.AsyncJob
    return st.one_of(bad_ids, bad_ids.map(lambda job_id: job_type(job_id, "x", client)))


VALID: dict[str, st.SearchStrategy[Any]] = {
    "body": st.one_of(st.text(max_size=8), st.binary(max_size=8)),
    "bodies": st.lists(st.binary(max_size=8), max_size=3),
    "priority": st.integers(0, U32),
    "delay": st.integers(0, U32),
    "ttr": st.integers(0, U32),
    "bound": st.integers(0, U32),
    "job": st.integers(1, U64),
    "tube": valid_tubes,
    "timeout": st.one_of(st.none(), st.floats(0, 100)),
}


def invalid(name: str, client: Any) -> st.SearchStrategy[Any]:
    """Values of parameter ``name`` that must be refused."""
    if name == "body":
        return bad_bodies
    if name == "bodies":
        # A bad body anywhere in the batch, or no iterable at all.
        return st.one_of(
            st.tuples(st.lists(VALID["body"], max_size=3), bad_bodies, st.lists(VALID["body"])).map(
                lambda parts: [*parts[0], parts[1], *parts[2]]
            ),
            st.sampled_from([None, 12, 1.5]),
        )
    if name in ("priority", "delay", "ttr", "bound"):
        return bad_u32
    if name == "job":
        return _bad_job_refs(client)
    if name == "tube":
        return bad_tubes
    if name == "timeout":
        return bad_timeouts
    raise AssertionError(f"no strategy for parameter {name!r}: add one")


# ---------------------------------------------------------------------------- the clients

KINDS: dict[str, type[Any]] = {
    "blocking": jackstalk.Client,
    "asyncio": jackstalk.AsyncClient,
    "trio": jackstalk.TrioClient,
}


@contextmanager
def no_connection_allowed() -> Iterator[tuple[str, int]]:
    """A listener that must never see a connection (so never a byte)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        host, port = listener.getsockname()[:2]
        yield host, port
        listener.setblocking(False)
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        with sock:
            sock.settimeout(1.0)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                data = b""
        raise AssertionError(f"a client connected before refusing an argument; sent {data!r}")


class Runner:
    """Runs one call of any client kind to completion, in that kind's event loop."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.loop = asyncio.Runner() if kind == "asyncio" else None

    def __call__(self, call: Callable[[], Any]) -> Any:
        if self.kind == "blocking":
            return call()
        if self.loop is not None:

            async def run_asyncio() -> Any:
                return await call()

            return self.loop.run(run_asyncio())

        async def run_trio() -> Any:
            return await call()

        return trio.run(run_trio)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


@pytest.fixture
def runner(transport: str) -> Iterator[Runner]:
    run = Runner(transport)
    yield run
    run.close()


def refused(run: Runner, call: Callable[[], Any]) -> None:
    """``call`` raises ValueError or TypeError (and nothing else)."""
    with pytest.raises((ValueError, TypeError)):
        run(call)


METHODS = {op.__name__: list(inspect.signature(op).parameters)[1:] for op in _ops.OPERATIONS}
NONE_ALLOWED = {
    op.__name__: {p.name for p in inspect.signature(op).parameters.values() if p.default is None}
    for op in _ops.OPERATIONS
}
"""Parameters whose default is None (``put(tube=None)``): None is valid for them."""
WITH_ARGUMENTS = sorted(name for name, params in METHODS.items() if params)


@st.composite
def bad_calls(draw: st.DrawFn, method: str, client: Any) -> dict[str, Any]:
    """Keyword arguments for ``method``: at least one bad, the others valid or left out."""
    params = METHODS[method]
    bad = draw(st.sampled_from(params))
    refused = invalid(bad, client)
    if bad in NONE_ALLOWED[method]:
        refused = refused.filter(lambda value: value is not None)
    kwargs: dict[str, Any] = {bad: draw(refused)}
    for name in params:
        if name != bad and (params.index(name) == 0 or draw(st.booleans())):
            kwargs[name] = draw(VALID[name] if draw(st.booleans()) else invalid(name, client))
    return kwargs


@pytest.mark.parametrize("method", WITH_ARGUMENTS)
def test_bad_method_arguments(transport: str, runner: Runner, method: str) -> None:
    with no_connection_allowed() as address:
        client = KINDS[transport](address)

        @SETTINGS
        @given(st.data())
        def check(data: st.DataObject) -> None:
            kwargs = data.draw(bad_calls(method, client))
            refused(runner, lambda: getattr(client, method)(**kwargs))

        check()


def test_body_type_and_encoding_rules(transport: str, runner: Runner) -> None:
    with no_connection_allowed() as address:
        raw = KINDS[transport](address, encoding=None)
        ascii_client = KINDS[transport](address, encoding="ascii")
        refused(runner, lambda: raw.put("str needs an encoding"))
        refused(runner, lambda: raw.put_many([b"ok", "str"]))
        refused(runner, lambda: ascii_client.put("tübe"))  # UnicodeEncodeError
        small = KINDS[transport](address, max_job_size=4)
        refused(runner, lambda: small.put(b"12345"))
        refused(runner, lambda: small.put_many([b"1234", b"12345"]))


@pytest.mark.parametrize("name", INJECTIONS)
def test_tube_name_injection(transport: str, runner: Runner, name: str) -> None:
    with no_connection_allowed() as address:
        client = KINDS[transport](address)
        for method in ("use", "watch", "ignore", "stats_tube"):
            refused(runner, partial(getattr(client, method), name))
        refused(runner, lambda: client.pause_tube(name, 10))
        for option in ("use", "watch"):
            with pytest.raises(ValueError):  # noqa: PT011 - InvalidTubeName is a ValueError
                KINDS[transport](address, **{option: name})
        with pytest.raises(ValueError):  # noqa: PT011
            KINDS[transport](address, watch=["ok", name])


@pytest.mark.parametrize("method", ["release", "bury"])
def test_bad_job_method_arguments(transport: str, runner: Runner, method: str) -> None:
    with no_connection_allowed() as address:
        client = KINDS[transport](address)
        job_type = jackstalk.Job if transport == "blocking" else jackstalk.AsyncJob
        job = job_type(1, "x", client)
        params = list(inspect.signature(getattr(job, method)).parameters)
        assert params == (["priority", "delay"] if method == "release" else ["priority"])

        @SETTINGS
        @given(st.sampled_from(params), bad_u32)
        def check(name: str, value: Any) -> None:
            refused(runner, lambda: getattr(job, method)(**{name: value}))

        check()

        @SETTINGS
        @given(bad_ids)
        def bad_id(job_id: Any) -> None:
            broken = job_type(job_id, "x", client)
            for name in ("delete", "release", "bury", "touch", "kick", "stats"):
                refused(runner, getattr(broken, name))

        bad_id()


# ---------------------------------------------------------------------------- constructors

bad_seconds = st.one_of(
    st.floats(max_value=0),
    st.just(math.nan),
    st.just(math.inf),
    st.sampled_from(["5", b"5", [], True, False, object()]),
)

OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "address": st.one_of(
        st.sampled_from([12, 1.5, b"/run/beanstalkd.sock", ["127.0.0.1", 11300], object()]),
        st.tuples(st.just("127.0.0.1"), bad_ints(0, 65535)),
        st.tuples(st.sampled_from([None, 127, b"127.0.0.1"]), st.integers(0, 65535)),
        st.sampled_from([(), ("127.0.0.1",), ("127.0.0.1", 1, 2)]),
    ),
    "encoding": st.one_of(
        st.sampled_from(["no-such-codec", "rot13", "base64", "hex", "", 8, b"utf-8", object()]),
    ),
    "use": bad_tubes,
    "watch": st.one_of(
        bad_tubes.filter(lambda tube: tube is not None and not isinstance(tube, (bytes, list))),
        st.lists(bad_tubes, min_size=1, max_size=3).map(lambda tubes: ["ok", *tubes]),
        st.sampled_from([[], (), 12, None, [b"jobs"]]),
    ),
    "parse_yaml": st.sampled_from([None, 1, 0, "yes", b"", []]),
    "max_job_size": bad_ints(0, 2**30),
    "timeout": bad_seconds,
    "connect_timeout": bad_seconds,
    # An ssl.SSLContext or None; ssl with a Unix socket path is refused in test_tls.py.
    "ssl": st.sampled_from([True, False, 1, "tls", b"", ssl, ssl.PROTOCOL_TLS_CLIENT, object()]),
    # "json" or None.
    "codec": st.sampled_from(["yaml", "JSON", "", b"json", 1, True, ["json"], object()]),
}


def test_time_limits_at_their_edges_are_accepted() -> None:
    with no_connection_allowed() as address:
        for value in (None, 1e-6, 0.5, 30, 2**31 - 1):
            client = jackstalk.Client(address, timeout=value, connect_timeout=value)
            assert (client.timeout, client.connect_timeout) == (value, value)


def test_every_option_and_method_is_covered() -> None:
    for cls in KINDS.values():
        options = list(inspect.signature(cls).parameters)
        missing = set(options) - set(OPTIONS)
        assert not missing, f"{cls.__name__} options without a strategy: {missing}"
    for params in METHODS.values():
        for name in params:
            assert name in VALID, f"parameter {name!r} has no strategy"
    client_methods = {
        name
        for name in dir(jackstalk.Client)
        if not name.startswith("_") and callable(getattr(jackstalk.Client, name))
    }
    assert client_methods - set(METHODS) == {"close", "connect"}


@pytest.mark.parametrize("option", list(OPTIONS))
def test_bad_constructor_options(transport: str, option: str) -> None:
    cls = KINDS[transport]
    with no_connection_allowed() as address:
        if option not in inspect.signature(cls).parameters:
            # The async clients take deadlines from their event loop, not as options.
            with pytest.raises(TypeError):
                cls(address, **{option: 5.0})
            return

        @SETTINGS
        @given(OPTIONS[option])
        def check(value: Any) -> None:
            kwargs: dict[str, Any] = {option: value}
            if option != "address":
                kwargs["address"] = address
            with pytest.raises((ValueError, TypeError)):
                cls(**kwargs)

        check()
