"""Codec objects (``codec=`` with ``dumps``/``loads``), ``put(..., tube=)`` and
``put_many(..., tube=)`` in one batch, and ``priority=KEEP`` on a job's release and bury, on
all three clients against a real beanstalkd."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from conftest import ClientFactory

import jackstalk


class PackCodec:
    """A msgpack-like codec: ``dumps`` returns bytes (a 4-byte length, then JSON), and
    ``loads`` refuses anything whose length prefix does not match."""

    def dumps(self, obj: Any, /) -> bytes:
        data = json.dumps(obj).encode()
        return struct.pack(">I", len(data)) + data

    def loads(self, data: bytes, /) -> Any:
        if len(data) < 4 or struct.unpack(">I", data[:4])[0] != len(data) - 4:
            raise ValueError("bad length prefix")
        return json.loads(data[4:])


class TextCodec:
    """A codec whose ``dumps`` returns ``str``: the client encodes it."""

    def dumps(self, obj: Any, /) -> str:
        return "v:" + repr(obj)

    def loads(self, data: bytes, /) -> Any:
        text = data.decode("utf-8")
        if not text.startswith("v:"):
            raise KeyError("no v: prefix")  # any exception: the body does not decode
        return text[2:]


async def test_a_bytes_codec_round_trips_values(clients: ClientFactory) -> None:
    client = clients(codec=PackCodec())
    value = {"n": [1, 2.5, None], "text": "é"}
    job_id = await client.put(value)
    raw = clients(encoding=None)
    assert (await raw.peek(job_id)).body == PackCodec().dumps(value)
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (job_id, value)
    await job.delete()
    ids = await client.put_many([1, "two", [3]])
    assert [(await client.reserve(timeout=0)).body for _ in ids] == [1, "two", [3]]
    assert (await client.peek_ready()) is None


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", None])
async def test_a_str_codec_is_encoded_with_the_clients_encoding(
    clients: ClientFactory, encoding: str | None
) -> None:
    client = clients(codec=TextCodec(), encoding=encoding)
    job_id = await client.put("é")
    raw = clients(encoding=None)
    assert (await raw.peek(job_id)).body == "v:'é'".encode(encoding or "utf-8")
    if encoding != "latin-1":  # loads gets the raw bytes: this codec reads UTF-8 only
        assert (await client.reserve(timeout=0)).body == "'é'"


@pytest.mark.parametrize("codec", [PackCodec(), TextCodec()], ids=["bytes", "str"])
async def test_a_body_the_codec_refuses_raises_with_the_job_still_reserved(
    clients: ClientFactory, codec: Any
) -> None:
    raw = clients(encoding=None)
    job_id = await raw.put(b"\xffnot this codec's")
    client = clients(codec=codec)
    with pytest.raises(jackstalk.BodyDecodeError, match=f"job {job_id}") as caught:
        await client.reserve(timeout=0)
    job = caught.value.job
    assert (job.id, job.body) == (job_id, b"\xffnot this codec's")
    assert (await client.stats_job(job_id))["state"] == "reserved"
    await client.bury(job.id)
    assert (await client.stats_job(job_id))["state"] == "buried"
    with pytest.raises(jackstalk.BodyDecodeError):
        await client.peek(job_id)


async def test_a_value_the_codec_cannot_dump_is_refused_before_sending(
    clients: ClientFactory,
) -> None:
    client = clients(codec=PackCodec())
    with pytest.raises(TypeError, match="not serialisable by the codec"):
        await client.put({"when": object()})

    class Wrong:
        def dumps(self, obj: Any, /) -> Any:
            return 42

        def loads(self, data: bytes, /) -> Any:
            return data

    with pytest.raises(TypeError, match="returned int, not str or bytes"):
        await clients(codec=Wrong()).put("x")
    assert (await client.stats())["cmd-put"] == 0


@pytest.mark.parametrize(
    "codec", [object(), "yaml", b"json", json.dumps], ids=["object", "yaml", "bytes", "function"]
)
def test_a_codec_needs_dumps_and_loads(codec: Any) -> None:
    with pytest.raises(ValueError, match="codec must be"):
        jackstalk.Client(codec=codec)


def test_modules_with_dumps_and_loads_are_codecs() -> None:
    assert jackstalk.Client(codec=json).codec is json


# ------------------------------------------------------------------ put into a tube


def spy(client: Any) -> list[list[str]]:
    """Record each command write of ``client`` (a batch or one command) by command name."""
    writes: list[list[str]] = []
    one, many = client._execute, client._execute_many

    def execute(command: jackstalk.Command, /) -> Any:
        writes.append([type(command).__name__])
        return one(command)

    def execute_many(commands: list[jackstalk.Command], /) -> Any:
        writes.append([type(command).__name__ for command in commands])
        return many(commands)

    client._execute, client._execute_many = execute, execute_many
    return writes


async def test_put_into_a_tube_uses_it_in_the_same_batch(clients: ClientFactory) -> None:
    client = clients()
    await client.connect()
    writes = spy(client.client)
    job_id = await client.put("hello", tube="emails", priority=5)
    assert writes == [["Use", "Put"]]
    assert await client.using() == "emails"  # the given tube stays in use
    stats = await client.stats_job(job_id)
    assert (stats["tube"], stats["pri"]) == ("emails", 5)
    assert (await client.peek_ready()).body == "hello"  # peeks read the used tube
    await client.put("plain")  # a put without a tube: the used tube, one command
    assert writes[-1] == ["Put"]
    assert (await client.stats_tube("emails"))["current-jobs-ready"] == 2


async def test_put_many_into_a_tube_uses_it_in_the_same_batch(clients: ClientFactory) -> None:
    client = clients(use="other")
    await client.connect()
    writes = spy(client.client)
    ids = await client.put_many(["a", "b", "c"], tube="bulk")
    assert writes == [["Use", "Put", "Put", "Put"]]
    assert await client.using() == "bulk"
    assert [(await client.stats_job(i))["tube"] for i in ids] == ["bulk"] * 3
    assert await client.put_many([], tube="empty") == []  # the use alone
    assert await client.using() == "empty"


async def test_the_tube_put_into_is_restored_after_a_reconnect(clients: ClientFactory) -> None:
    client = clients()
    await client.put("first", tube="kept")
    await client.close()
    job_id = await client.put("second")
    assert (await client.stats_job(job_id))["tube"] == "kept"


async def test_put_into_a_tube_checks_the_name_before_sending(clients: ClientFactory) -> None:
    client = clients()
    with pytest.raises(jackstalk.InvalidTubeName):
        await client.put("x", tube="bad name")
    with pytest.raises(jackstalk.InvalidTubeName):
        await client.put_many(["x"], tube="")
    assert (await client.stats())["cmd-put"] == 0
    assert await client.using() == "default"


# ------------------------------------------------------------------ priority=KEEP


async def test_release_and_bury_keep_the_jobs_own_priority_when_asked(
    clients: ClientFactory,
) -> None:
    client = clients()
    job_id = await client.put("x", priority=7)
    job = await client.reserve(timeout=0)
    before = (await client.stats())["cmd-stats-job"]
    await job.release(priority=jackstalk.KEEP)
    assert (await client.stats())["cmd-stats-job"] == before + 1  # one round trip: stats-job
    assert (await client.stats_job(job_id))["pri"] == 7
    job = await client.reserve(timeout=0)
    await job.bury(priority=jackstalk.KEEP)
    stats = await client.stats_job(job_id)
    assert (stats["state"], stats["pri"]) == ("buried", 7)
    await client.kick_job(job_id)
    job = await client.reserve(timeout=0)
    await job.release()  # the default is unchanged: DEFAULT_PRIORITY, no stats-job
    assert (await client.stats_job(job_id))["pri"] == jackstalk.DEFAULT_PRIORITY


def test_keep_is_one_named_value() -> None:
    assert repr(jackstalk.KEEP) == "jackstalk.KEEP"
    assert jackstalk.KEEP is jackstalk.Keep.KEEP
    with pytest.raises(TypeError):
        jackstalk.Client().release(1, priority=jackstalk.KEEP)  # type: ignore[arg-type]
