"""Bodies, encodings, and how stats and lists come back (``parse_yaml``), on all three
clients against a real beanstalkd."""

from __future__ import annotations

import pytest
import yaml
from conftest import ClientFactory, ClientView, resolve

import jackstalk

BINARY = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x00", id="nul"),
    pytest.param(b"\r\n", id="crlf"),
    pytest.param(b"a\r\nput 0 0 1 1\r\nb\r\n", id="embedded-command"),
    pytest.param(b"\r", id="cr"),
    pytest.param(b"\n\n", id="lf"),
    pytest.param(bytes(range(256)), id="all-256"),
    pytest.param(bytes(range(255, -1, -1)) * 4, id="all-256-reversed"),
]


@pytest.mark.parametrize("body", BINARY)
async def test_binary_bodies_round_trip(clients: ClientFactory, body: bytes) -> None:
    client = clients(encoding=None)
    job_id = await client.put(body)
    peeked = await client.peek(job_id)
    assert peeked.body == body
    assert type(peeked.body) is bytes
    assert (await client.peek_ready()).body == body
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (job_id, body)
    await job.bury()
    assert (await client.peek_buried()).body == body
    assert (await client.reserve_job(job_id)).body == body
    # The connection is in step after the body, whatever bytes it held.
    assert await client.using() == "default"


async def test_binary_bodies_in_one_batch(clients: ClientFactory) -> None:
    client = clients(encoding=None)
    bodies = [bytes([i]) * (i % 7) + b"\r\n\x00" for i in range(256)]
    ids = await client.put_many(bodies)
    for body in bodies:
        job = await client.reserve(timeout=0)
        assert job.body == body
        await job.delete()
    assert len(ids) == 256


async def test_zero_length_bodies(client: ClientView) -> None:
    empty_str = await client.put("")
    empty_bytes = await client.put(b"")
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (empty_str, "")
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (empty_bytes, "")


async def test_utf8_is_the_default(client: ClientView, clients: ClientFactory) -> None:
    text = "héllo wörld ✓ 🐍"
    job_id = await client.put(text)
    job = await client.peek(job_id)
    assert job.body == text
    assert type(job.body) is str
    binary = clients(encoding=None)
    assert (await binary.peek(job_id)).body == text.encode("utf-8")
    # bytes bodies are sent as they are, and read back decoded.
    job_id = await client.put("ok ✓".encode())
    assert (await client.peek(job_id)).body == "ok ✓"


async def test_encoding_none_returns_bytes_and_refuses_str(clients: ClientFactory) -> None:
    client = clients(encoding=None)
    with pytest.raises(TypeError):
        await client.put("text")
    with pytest.raises(jackstalk.ArgumentTypeError):
        await client.put_many([b"fine", "text"])
    job_id = await client.put(bytearray(b"from a bytearray"))
    job = await client.reserve(timeout=0)
    assert (job.id, job.body) == (job_id, b"from a bytearray")
    assert type(job.body) is bytes
    # Nothing of the refused calls reached the server.
    assert (await client.stats())["cmd-put"] == 1


async def test_latin1(clients: ClientFactory) -> None:
    latin = clients(encoding="latin-1")
    binary = clients(encoding=None)
    job_id = await latin.put("café")
    assert (await binary.peek(job_id)).body == b"caf\xe9"
    assert (await latin.peek(job_id)).body == "café"
    all_bytes = await binary.put(bytes(range(256)))
    assert (await latin.peek(all_bytes)).body == bytes(range(256)).decode("latin-1")
    with pytest.raises(UnicodeEncodeError):
        await latin.put("no € in latin-1")


async def test_undecodable_body_raises_with_the_job(
    client: ClientView, clients: ClientFactory
) -> None:
    binary = clients(encoding=None)
    bad = b"caf\xe9 \xff"
    job_id = await binary.put(bad)
    with pytest.raises(jackstalk.BodyDecodeError) as caught:
        await client.peek(job_id)
    assert caught.value.job.body == bad
    with pytest.raises(jackstalk.BodyDecodeError) as caught:
        await client.reserve(timeout=0)
    error = caught.value
    assert isinstance(error, UnicodeError)
    job = error.job
    assert (job.id, job.body) == (job_id, bad)
    assert type(job.body) is bytes
    # It is still reserved by this client, which can bury it: nothing is lost.
    assert (await client.stats_job(job_id))["state"] == "reserved"
    assert isinstance(job, jackstalk.Job | jackstalk.AsyncJob)  # of the client's kind
    await resolve(job.bury())  # resolve awaits an AsyncJob's coroutine
    assert (await binary.peek_buried()).body == bad
    assert (await client.stats_job(job_id))["state"] == "buried"


async def test_parse_yaml_true_types_values(client: ClientView) -> None:
    await client.put("x")
    stats = await client.stats()
    assert isinstance(stats, dict)
    assert type(stats["current-jobs-ready"]) is int
    assert type(stats["pid"]) is int
    assert type(stats["rusage-utime"]) is float
    assert type(stats["rusage-stime"]) is float
    assert stats["draining"] is False
    assert stats["version"] == "1.12"
    assert type(stats["id"]) is str
    assert type(stats["hostname"]) is str
    assert type(stats["os"]) is str
    assert stats["os"]  # 1.12's "#1 SMP ..." is text, not a YAML comment
    assert type(stats["platform"]) is str


@pytest.mark.parametrize("name", ["123", "true", "null", "1.10", "0x1F", "on", "no"])
async def test_tube_names_stay_strings(client: ClientView, name: str) -> None:
    assert await client.use(name) == name
    assert await client.using() == name
    assert await client.watch(name) == 2
    job_id = await client.put("in an odd tube")
    assert (await client.stats_tube(name))["name"] == name
    assert (await client.stats_job(job_id))["tube"] == name
    assert name in await client.tubes()
    assert await client.watching() == ["default", name]
    for listed in [*(await client.tubes()), *(await client.watching())]:
        assert type(listed) is str


async def test_parse_yaml_false_returns_text(clients: ClientFactory) -> None:
    client = clients(parse_yaml=False)
    job_id = await client.put("x")
    stats = await client.stats()
    assert isinstance(stats, str)
    assert stats.startswith("---\n")
    assert "\ncurrent-jobs-ready: 1\n" in stats
    tube = await client.stats_tube("default")
    assert tube.startswith("---\nname: default\n")
    job = await client.stats_job(job_id)
    assert f"\nid: {job_id}\n" in job
    assert await client.tubes() == "---\n- default\n"
    assert await client.watching() == "---\n- default\n"


async def test_parse_yaml_callable(clients: ClientFactory) -> None:
    seen: list[str] = []

    def loader(text: str) -> object:
        seen.append(text)
        return yaml.safe_load(text)

    client = clients(parse_yaml=loader)
    await client.use("123")
    job_id = await client.put("x")
    stats = await client.stats()
    assert stats["current-jobs-ready"] == 1
    assert stats["draining"] is False
    # A generic YAML loader gets beanstalkd's non-YAML wrong, as the design notes say:
    assert stats["os"] is None  # "#1 SMP ..." read as a comment
    assert (await client.stats_tube("123"))["name"] == 123
    assert (await client.stats_job(job_id))["tube"] == 123
    assert await client.tubes() == ["default", 123]
    assert len(seen) == 4
    assert all(text.startswith("---\n") for text in seen)


async def test_json_codec_round_trips_values(clients: ClientFactory) -> None:
    client = clients(codec="json")
    value = {"to": "ada@example.org", "n": [1, 2.5, None, True], "text": "é"}
    job_id = await client.put(value)
    job = await client.reserve(timeout=0)
    assert job.id == job_id
    assert job.body == value
    raw = clients(encoding=None)
    peeked = await raw.peek(job_id)
    assert peeked.body == '{"to":"ada@example.org","n":[1,2.5,null,true],"text":"é"}'.encode()
    await job.delete()
    ids = await client.put_many([1, "two", [3]])
    assert ids == [job_id + 1, job_id + 2, job_id + 3]
    values = [(await client.reserve(timeout=0)).body for _ in ids]
    assert values == [1, "two", [3]]


async def test_json_codec_refuses_unserialisable_values_before_sending(
    clients: ClientFactory,
) -> None:
    client = clients(codec="json")
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        await client.put({"when": object()})
    assert (await client.stats())["cmd-put"] == 0


async def test_json_codec_body_that_is_not_json_can_still_be_buried(
    clients: ClientFactory,
) -> None:
    raw = clients(encoding=None)
    job_id = await raw.put(b"{not json")
    client = clients(codec="json")
    with pytest.raises(jackstalk.BodyDecodeError) as caught:
        await client.reserve(timeout=0)
    job = caught.value.job
    assert (job.id, job.body) == (job_id, b"{not json")
    await client.bury(job.id)
    assert (await client.stats_job(job_id))["state"] == "buried"


def test_codec_must_be_json_or_none() -> None:
    with pytest.raises(ValueError, match="codec"):
        jackstalk.Client(codec="yaml")  # type: ignore[arg-type]
