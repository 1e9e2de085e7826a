"""jackstalk.Cluster's less travelled paths on real beanstalkd processes: a draining server
passed over, every server down, a job whose server died under each of its methods, a body
that does not decode, the peeks and kick, tube edge cases, the jobs' identity and printing,
stats with a server down, and the arguments a cluster refuses."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from clusterkit import Server, servers

import jackstalk
from jackstalk._app.cluster import ClusterJob, rendezvous, server_name

OPTIONS: dict[str, Any] = {
    "timeout": 2.0,
    "connect_timeout": 1.0,
    "backoff": 0.2,
    "max_backoff": 0.5,
}

SLOW: dict[str, Any] = {**OPTIONS, "backoff": 60.0, "max_backoff": 60.0}
"""A failed server stays down for the whole test."""


@pytest.fixture
def two() -> Iterator[list[Server]]:
    with servers(2, None) as started:
        yield started


def _drain(server: Server) -> None:
    """Put ``server`` in drain mode (SIGUSR1) and return once it says so."""
    assert server.process is not None
    with jackstalk.Client(server.address) as client:
        # An answer first: beanstalkd handles SIGUSR1 once it serves (before, it would die).
        assert client.stats()["draining"] is False
        os.kill(server.process.pid, signal.SIGUSR1)
        for _ in range(10_000):
            if client.stats()["draining"] is True:
                return
    raise AssertionError("the server never entered drain mode")


def _stat(server: Server, name: str) -> Any:
    with jackstalk.Client(server.address) as client:
        return dict(client.stats())[name]


def _key_for(name: str, names: list[str]) -> str:
    """A put key whose first choice is the server ``name``."""
    for n in range(10_000):
        key = f"key-{n}"
        if rendezvous(key, names)[0] == name:
            return key
    raise AssertionError(f"no key prefers {name}")


def test_a_draining_server_is_passed_over_and_all_draining_refuses(
    two: list[Server],
) -> None:
    draining, open_ = two
    with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
        name = server_name(draining.address)
        _drain(draining)
        placed = {cluster.put(f"job {n}").server for n in range(6)}
        assert placed == {server_name(open_.address)}
        assert name in cluster.down()
        assert "DrainingError" in cluster.down()[name]
        assert _stat(draining, "current-jobs-ready") == 0
        # A keyed put whose server is down goes to the next in the key's order.
        key = _key_for(name, cluster.servers)
        assert cluster.put("keyed", key=key).server == server_name(open_.address)
    with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
        _drain(open_)
        with pytest.raises(jackstalk.ConnectionClosedError) as caught:
            cluster.put("nowhere")
        assert str(caught.value).count("(draining)") == 2
        assert not isinstance(caught.value, jackstalk.JobLostError)
        # Both are down now: an unkeyed put has no server to try, a keyed one names them.
        with pytest.raises(jackstalk.ConnectionClosedError, match="none is up"):
            cluster.put("nowhere")
        with pytest.raises(jackstalk.ConnectionClosedError) as keyed:
            cluster.put_many(["a", "b"], key="k")
        assert str(keyed.value).count("(down: DrainingError") == 2
    assert _stat(open_, "current-jobs-ready") == 7


def test_every_server_down(two: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in two], **OPTIONS) as cluster:
        for server in two:
            server.kill()
        with pytest.raises(jackstalk.ConnectionClosedError, match="no server took the put"):
            cluster.put("x")
        assert set(cluster.down()) == set(cluster.servers)
        # Nothing is up: the reserve waits out the backoffs (trying again) until its end.
        assert cluster.reserve(timeout=0.3) is None
        stats = cluster.stats()
        assert stats.servers == {}
        assert set(stats.down) == set(cluster.servers)
        assert stats.total == {}
    with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
        # Up as far as the cluster knows, but refusing: each call marks them down.
        assert cluster.peek_ready() is None
        assert cluster.down() != {}
    for call in ("tubes", "kick", "peek_buried", "stats", "stats_tube", "use", "watch"):
        with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
            assert cluster.down() == {}
            if call == "tubes":
                assert cluster.tubes() == []
            elif call == "kick":
                assert cluster.kick(5) == 0
            elif call == "peek_buried":
                assert cluster.peek_buried() is None
            elif call == "stats":
                stats = cluster.stats()
                assert set(stats.down) == set(cluster.servers)
                assert all("cannot connect" in reason for reason in stats.down.values())
            elif call == "stats_tube":
                stats = cluster.stats_tube("default")
                assert stats.servers == {}
                assert stats.total == {"name": "default"}
            elif call == "use":
                assert cluster.use("elsewhere") == "elsewhere"
            else:
                assert cluster.watch("more") == 2
            assert set(cluster.down()) == set(cluster.servers)


def test_stats_and_commands_with_one_server_down(two: list[Server]) -> None:
    dead, alive = two
    with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
        cluster.use("work")
        for n in range(4):
            cluster.put(f"job {n}")
        dead.kill()
        stats = cluster.stats_tube("work")
        assert list(stats.servers) == [server_name(alive.address)]
        assert list(stats.down) == [server_name(dead.address)]
        assert stats.total["current-jobs-ready"] == 2
        assert "work" in cluster.tubes()
        assert cluster.watch("work") == 2
        assert cluster.ignore("default") == 1
        peeked = cluster.peek_ready()
        assert peeked is not None
        assert peeked.server == server_name(alive.address)
        job = cluster.reserve(timeout=2)
        assert job is not None
        assert job.server == server_name(alive.address)
        job.bury()
        assert cluster.kick(3) == 1
        with pytest.raises(jackstalk.ConnectionClosedError) as caught:
            cluster.peek(jackstalk.ClusterJobId(server_name(dead.address), 1))
        assert f"server: {server_name(dead.address)}" in caught.value.__notes__


def test_peeks_kick_and_job_commands(two: list[Server]) -> None:
    names = ["a", "b"]
    with jackstalk.Cluster([s.address for s in two], names=names, **OPTIONS) as cluster:
        assert cluster.peek_ready() is None
        assert cluster.peek_delayed() is None
        assert cluster.peek_buried() is None
        assert cluster.kick(10) == 0
        delayed = cluster.put("later", delay=3600)
        found = cluster.peek_delayed()
        assert found is not None
        assert found.ref == delayed
        assert found.body == "later"
        assert found.stats()["state"] == "delayed"
        found.kick()  # a peeked job acts through any connection to its server
        assert found.stats()["state"] == "ready"
        found.delete()
        assert cluster.peek(delayed) is None
        assert cluster.peek_ready() is None

        for n in range(4):  # two on each server
            cluster.put(f"job {n}")
        held = [cluster.reserve(timeout=2) for _ in range(4)]
        assert all(job is not None for job in held)
        assert {job.server for job in held if job is not None} == {"a", "b"}
        for job in held:
            assert job is not None
            assert job.stats()["state"] == "reserved"
            job.bury(priority=7)
        buried = cluster.peek_buried()
        assert buried is not None
        assert buried.stats()["state"] == "buried"
        assert cluster.kick(1) == 1  # the bound is reached on the first server
        assert cluster.kick(10) == 3
        assert cluster.peek_buried() is None
        first = cluster.reserve(timeout=2)
        assert first is not None
        assert first.stats()["state"] == "reserved"
        with pytest.raises(jackstalk.NotFoundError) as caught:
            first.kick()  # a reserved job is neither buried nor delayed
        assert f"server: {first.server}" in caught.value.__notes__
        first.delete()
        with pytest.raises(jackstalk.NotFoundError):
            first.delete()  # the error stands: the connection is fine
        assert cluster.down() == {}


@pytest.mark.parametrize("method", ["delete", "release", "bury", "touch", "kick", "stats"])
def test_every_method_of_a_job_whose_server_died_raises_job_lost(
    two: list[Server], method: str
) -> None:
    with jackstalk.Cluster([s.address for s in two], **SLOW) as cluster:
        cluster.put("one")
        cluster.put("two")
        job = cluster.reserve(timeout=2)
        assert job is not None
        victim = next(s for s in two if server_name(s.address) == job.server)
        other = next(s for s in two if s is not victim)
        victim.kill()
        with pytest.raises(jackstalk.JobLostError) as broke:
            getattr(job, method)()
        assert broke.value.server == job.server
        assert broke.value.job_id == job.id
        assert "outcome is unknown" in str(broke.value)
        assert job.server in cluster.down()
        # Again on the same job: its connection is gone for good, nothing is sent.
        with pytest.raises(jackstalk.JobLostError, match="the connection that reserved it"):
            getattr(job, method)()
        # The other server's job is untouched.
        survivor = cluster.reserve(timeout=2)
        assert survivor is not None
        assert survivor.server == server_name(other.address)
        survivor.delete()


def test_a_job_lost_after_its_server_was_replaced(two: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in two], **OPTIONS) as cluster:
        cluster.put("held")
        job = cluster.reserve(timeout=2)
        assert job is not None
        # Another call on its server breaks first and replaces the server's client.
        victim = next(s for s in two if server_name(s.address) == job.server)
        victim.kill()
        with pytest.raises(jackstalk.ConnectionClosedError):
            cluster.peek(job.ref)
        with pytest.raises(jackstalk.JobLostError):
            job.release()


def test_a_body_that_does_not_decode(two: list[Server]) -> None:
    target = two[0]
    with jackstalk.Client(target.address, encoding=None) as raw:
        job_id = raw.put(b"\xff\xfe not utf-8")
    with jackstalk.Cluster([s.address for s in two], **OPTIONS) as cluster:
        with pytest.raises(jackstalk.BodyDecodeError) as caught:
            cluster.reserve(timeout=2)
        name = server_name(target.address)
        assert str(caught.value).startswith(f"{name}: ")
        job = caught.value.job
        assert isinstance(job, ClusterJob)
        assert job.server == name
        assert job.id == job_id
        assert job.body == b"\xff\xfe not utf-8"
        job.bury()  # still reserved: it can be buried
    assert _stat(target, "current-jobs-buried") == 1


def test_job_identity_and_printing(two: list[Server]) -> None:
    names = ["left", "right"]
    with jackstalk.Cluster([s.address for s in two], names=names, **OPTIONS) as cluster:
        assert repr(cluster) == "Cluster(['left', 'right'])"
        refs = [cluster.put("same") for _ in range(2)]
        assert {str(ref) for ref in refs} == {"left/1", "right/1"}
        jobs = [cluster.reserve(timeout=2) for _ in range(2)]
        left = next(job for job in jobs if job is not None and job.server == "left")
        right = next(job for job in jobs if job is not None and job.server == "right")
        assert repr(left) == "ClusterJob(server='left', id=1, body='same')"
        assert str(right) == "right/1"
        assert left.id == right.id
        assert left != right  # same id, other server
        peeked = cluster.peek(left.ref)
        assert peeked is not None
        assert peeked == left
        assert hash(peeked) == hash(left)
        with jackstalk.Client(two[0].address) as client:
            plain = client.peek(1)
            assert plain is not None
            assert plain.id == left.id
        assert left != plain  # a plain client's job has no server to compare
        assert plain != left
        assert left != 1
        assert left != ("left", 1)
        with pytest.raises(jackstalk.InvalidArgument, match="no server named 'elsewhere'"):
            cluster.peek(jackstalk.ClusterJobId("elsewhere", 1))


def test_tube_edge_cases(two: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in two], **OPTIONS) as cluster:
        with pytest.raises(jackstalk.NotIgnoredError):
            cluster.ignore("default")
        assert cluster.watch("default") == 1  # already watched: nothing new
        assert cluster.ignore("never-watched") == 1
        assert cluster.watch("other") == 2
        assert cluster.ignore("default") == 1
        with pytest.raises(jackstalk.NotIgnoredError):
            cluster.ignore("other")
        with pytest.raises(jackstalk.InvalidArgument):
            cluster.watch("bad name!")
        cluster.put("in other", tube="other")
        job = cluster.reserve(timeout=2)
        assert job is not None
        assert job.body == "in other"
        job.delete()


def test_a_put_whose_reply_does_not_come(two: list[Server]) -> None:
    """A put_many sent to a frozen server: its outcome is unknown, nothing goes elsewhere."""
    frozen = two[0]
    name = server_name(frozen.address)
    with jackstalk.Cluster([s.address for s in two], **{**SLOW, "timeout": 0.5}) as cluster:
        key = _key_for(name, cluster.servers)
        cluster.put("warm", key=key)  # connected
        with frozen.frozen(), pytest.raises(TimeoutError) as caught:
            cluster.put_many(["a", "b", "c"], key=key)
        assert str(caught.value).startswith(f"{name}: the put was sent")
        assert f"server: {name}" in caught.value.__notes__
        assert name in cluster.down()
    assert _stat(two[1], "current-jobs-ready") == 0


def test_a_put_answered_out_of_turn() -> None:
    """A server that answers a put with nonsense: a protocol error, outcome unknown."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        address = listener.getsockname()

        def serve() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.settimeout(10)
                connection.recv(65536)
                connection.sendall(b"NONSENSE\r\n")
                connection.recv(65536)  # until the client hangs up

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with jackstalk.Cluster([address], **SLOW) as cluster:
                with pytest.raises(jackstalk.ProtocolError) as caught:
                    cluster.put("x")
                assert "the put was sent but its reply did not come" in str(caught.value)
                assert server_name(address) in cluster.down()
        finally:
            thread.join(10)


def test_a_put_refused_by_the_client_is_not_an_outage(two: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in two], **OPTIONS) as cluster:
        with pytest.raises(jackstalk.InvalidArgument) as caught:
            cluster.put("x", priority=-1)
        assert any(note.startswith("server: ") for note in caught.value.__notes__)
        assert cluster.down() == {}


def test_arguments_are_checked() -> None:
    address = ("127.0.0.1", 1)
    with pytest.raises(jackstalk.InvalidArgument, match="at least one address"):
        jackstalk.Cluster([])
    with pytest.raises(jackstalk.InvalidArgument, match="one name per address"):
        jackstalk.Cluster([address], names=["a", "b"])
    with pytest.raises(jackstalk.ArgumentTypeError):
        jackstalk.Cluster([address, address], names=["a", ""])
    with pytest.raises(jackstalk.InvalidArgument, match="must differ"):
        jackstalk.Cluster([address, address])
    with pytest.raises(jackstalk.InvalidArgument, match="parse_yaml"):
        jackstalk.Cluster([address], parse_yaml=False)
    with pytest.raises(jackstalk.ArgumentTypeError):
        jackstalk.Cluster([address], backoff=True)
    with pytest.raises(jackstalk.ArgumentTypeError):
        jackstalk.Cluster([address], backoff="1")  # type: ignore[arg-type]
    with pytest.raises(jackstalk.InvalidArgument, match="above 0"):
        jackstalk.Cluster([address], max_backoff=0)
    with pytest.raises(jackstalk.InvalidArgument, match="above 0"):
        jackstalk.Cluster([address], backoff=float("inf"))
    with pytest.raises(jackstalk.InvalidArgument, match="at least one tube"):
        jackstalk.Cluster([address], watch=[])
    cluster = jackstalk.Cluster([address], backoff=5, max_backoff=1)
    assert cluster.max_backoff == 5.0  # never below the first backoff
    assert jackstalk.Cluster([address], watch=["a", "b", "a"]).watch("b") == 2
    # Checked before anything is sent (port 1 is never contacted).
    with pytest.raises(jackstalk.ArgumentTypeError, match="key must be str or bytes"):
        cluster.put("x", key=1)  # type: ignore[arg-type]
    with pytest.raises(jackstalk.ArgumentTypeError, match="timeout must be a number"):
        cluster.reserve(timeout="1")  # type: ignore[call-overload]
    with pytest.raises(jackstalk.ArgumentTypeError, match="timeout must be a number"):
        cluster.reserve(timeout=True)
    with pytest.raises(jackstalk.InvalidArgument, match="timeout must be between"):
        cluster.reserve(timeout=-1)
    with pytest.raises(jackstalk.InvalidArgument):
        cluster.kick(-1)
    assert cluster.down() == {}
    assert server_name("/tmp/beanstalkd.sock") == "/tmp/beanstalkd.sock"
    assert server_name(("::1", 11300)) == "[::1]:11300"


def _until_waiting(server: Server) -> None:
    """Return once a reserve waits on ``server`` (bounded)."""
    for _ in range(100_000):
        if _stat(server, "current-waiting") >= 1:
            return
    raise AssertionError("no reserve waited on the server")


def test_a_job_put_while_the_reserve_waits_and_a_server_killed_while_it_waits() -> None:
    with servers(1, None) as (server,), jackstalk.Cluster([server.address], **OPTIONS) as cluster:

        def put_once_waiting() -> None:
            _until_waiting(server)
            with jackstalk.Client(server.address) as client:
                client.put("came while waiting")

        thread = threading.Thread(target=put_once_waiting)
        thread.start()
        try:
            job = cluster.reserve(timeout=30)
        finally:
            thread.join(30)
        assert job is not None
        assert job.body == "came while waiting"
        job.delete()

        def kill_once_waiting() -> None:
            _until_waiting(server)
            server.kill()

        killer = threading.Thread(target=kill_once_waiting)
        killer.start()
        try:
            assert cluster.reserve(timeout=1.5) is None
        finally:
            killer.join(30)
        assert server_name(server.address) in cluster.down()
