"""The three clients offer one API: the same public methods, with equal signatures and
docstrings, blocking on ``Client`` and coroutine functions on the async clients; and the
same for their jobs. No server is needed."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

import jackstalk
from jackstalk._api import operations as _ops

CLIENTS: list[Callable[[], Any]] = [jackstalk.Client, jackstalk.AsyncClient, jackstalk.TrioClient]

# The list: every one of these is a method of every client.
METHODS = {
    "put", "put_many", "use", "using", "watch", "ignore", "watching", "tubes", "reserve",
    "reserve_job", "delete", "release", "bury", "touch", "kick", "kick_job", "peek",
    "peek_ready", "peek_delayed", "peek_buried", "stats", "stats_tube", "stats_job",
    "pause_tube", "close", "connect",
}  # fmt: skip
JOB_METHODS = {"delete", "release", "bury", "touch", "kick", "stats"}


def _public_methods(obj: object) -> dict[str, Any]:
    return {
        name: getattr(obj, name)
        for name in dir(obj)
        if not name.startswith("_") and callable(getattr(obj, name))
    }


def _same_kind(signature: inspect.Signature) -> inspect.Signature:
    """An async method's signature as the blocking one reads: each kind returns its own job
    class (``AsyncJob`` where the blocking client returns ``Job``); nothing else differs."""
    result = signature.return_annotation
    if isinstance(result, str):
        result = result.replace("AsyncJob", "Job")
    return signature.replace(return_annotation=result)


def test_clients_expose_the_same_methods() -> None:
    instances = [make() for make in CLIENTS]
    tables = [_public_methods(instance) for instance in instances]
    names = set(tables[0])
    assert names == METHODS
    for table in tables[1:]:
        assert set(table) == names
    for name in sorted(names):
        sync, *others = (table[name] for table in tables)
        assert not inspect.iscoroutinefunction(sync), name
        assert sync.__doc__, name
        for method in others:
            assert inspect.iscoroutinefunction(method), name
            assert _same_kind(inspect.signature(method)) == inspect.signature(sync), name
            assert method.__doc__ == sync.__doc__, name


def test_methods_carry_their_operations_signature() -> None:
    client = jackstalk.Client()
    for op in _ops.OPERATIONS:
        method = getattr(client, op.__name__)
        params = list(inspect.signature(op).parameters.values())[1:]  # without the client
        assert list(inspect.signature(method).parameters.values()) == params, op.__name__
        assert inspect.getdoc(method) == inspect.getdoc(op)  # (the method is indented deeper)
        assert method.__name__ == op.__name__
    signature = inspect.signature(client.reserve)
    assert signature.parameters["timeout"].default is None
    assert inspect.signature(client.kick).parameters["bound"].default == 1


def test_methods_on_the_class_are_documented_too() -> None:
    for cls in (jackstalk.Client, jackstalk.AsyncClient, jackstalk.TrioClient):
        for name in METHODS:
            assert getattr(cls, name).__doc__, (cls.__name__, name)


def test_bound_methods_act_on_their_own_instance() -> None:
    first, second = jackstalk.Client(use="one"), jackstalk.Client(use="two")
    assert first.put is not second.put


def test_jobs_expose_the_same_methods() -> None:
    job = jackstalk.Job(1, "x", jackstalk.Client())
    async_job = jackstalk.AsyncJob(1, "x", jackstalk.AsyncClient())
    methods = _public_methods(job)
    async_methods = _public_methods(async_job)
    assert set(methods) == set(async_methods) == JOB_METHODS
    for name in JOB_METHODS:
        assert not inspect.iscoroutinefunction(methods[name]), name
        assert inspect.iscoroutinefunction(async_methods[name]), name
        assert inspect.signature(methods[name]) == inspect.signature(async_methods[name]), name
        assert methods[name].__doc__ == async_methods[name].__doc__, name
    assert (job.id, job.body) == (async_job.id, async_job.body)
    assert job == async_job  # same id and body


@pytest.mark.parametrize("make", CLIENTS)
def test_options_are_shared(make: Callable[..., Any]) -> None:
    client = make(
        ("127.0.0.1", 1),
        encoding=None,
        use="u",
        watch=["a", "b"],
        parse_yaml=False,
        max_job_size=10,
    )
    assert client.address == ("127.0.0.1", 1)
    assert client.encoding is None
    assert client.parse_yaml is False
    assert client.max_job_size == 10
    with pytest.raises(LookupError):
        make(encoding="no-such-codec")
    with pytest.raises(jackstalk.InvalidTubeName):
        make(use="bad tube")
    with pytest.raises(ValueError, match="watch"):
        make(watch=[])
    with pytest.raises(TypeError):
        make(parse_yaml="yes")
    with pytest.raises(TypeError):
        make(12345)


def test_a_base_job_is_a_plain_value() -> None:
    # BaseJob is what library code may build or compare without a client.
    job = jackstalk.BaseJob(3, b"body")
    assert (job.id, job.body) == (3, b"body")
    assert repr(job) == "BaseJob(id=3, body=b'body')"
    assert job == jackstalk.BaseJob(3, b"body")
    assert job != jackstalk.BaseJob(3, b"other")
    assert job != (3, b"body")  # not a job: compared as unequal, not as an error
    assert hash(job) == hash(jackstalk.BaseJob(3, b"other"))  # by id
