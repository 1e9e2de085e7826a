"""jackstalk.Cluster on three real beanstalkd processes: puts spread and keyed, a server
killed and restarted from its binlog without losing a job, a frozen server, and reserves
that wait without busy polling."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import Server, reserves, servers

import jackstalk
from jackstalk._app.cluster import rendezvous, server_name

OPTIONS: dict[str, Any] = {
    "timeout": 2.0,
    "connect_timeout": 1.0,
    "backoff": 0.2,
    "max_backoff": 0.5,
}


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[Server]]:
    with servers(3, tmp_path) as started:
        yield started


def _ready(server: Server) -> int:
    with jackstalk.Client(server.address) as client:
        count: int = client.stats()["current-jobs-ready"]
        return count


def test_puts_spread_evenly(three: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in three], **OPTIONS) as cluster:
        placed = Counter(cluster.put(f"job {n}").server for n in range(300))
        assert sorted(placed.values()) == [100, 100, 100]
        assert [_ready(server) for server in three] == [100, 100, 100]
        batch = cluster.put_many(["a", "b", "c"])
        assert len({ref.server for ref in batch}) == 1  # one batch, one server
        stats = cluster.stats()
        assert stats.total["current-jobs-ready"] == 303
        assert stats.total["max-job-size"] == 65535
        assert sorted(stats.total["pid"]) == sorted(s.process.pid for s in three if s.process)
        assert stats.down == {}
        assert set(stats.servers) == set(cluster.servers)


def test_keyed_puts_stay_and_move_only_with_their_server(three: list[Server]) -> None:
    addresses = [s.address for s in three]
    keys = [f"customer-{n}" for n in range(300)]
    with jackstalk.Cluster(addresses, **OPTIONS) as cluster:
        first = {key: cluster.put("one", key=key).server for key in keys}
        again = {key: cluster.put("two", key=key).server for key in keys}
        assert first == again
        assert min(Counter(first.values()).values()) > 50  # every server takes a share
        removed = cluster.servers[2]
    with jackstalk.Cluster(addresses[:2], **OPTIONS) as smaller:
        after = {key: smaller.put("three", key=key).server for key in keys}
    moved = {key for key in keys if after[key] != first[key]}
    assert moved == {key for key in keys if first[key] == removed}


def test_rendezvous_is_stable() -> None:
    names = ["a", "b", "c"]
    assert rendezvous("key", names) == rendezvous(b"key", list(reversed(names)))
    assert sorted(rendezvous("key", names)) == names


def test_jobs_name_their_server(three: list[Server]) -> None:
    names = ["red", "green", "blue"]
    with jackstalk.Cluster([s.address for s in three], names=names, **OPTIONS) as cluster:
        cluster.use("jobs")
        cluster.watch("jobs")
        refs = [cluster.put("x") for _ in range(3)]
        jobs = [cluster.reserve(timeout=2) for _ in range(3)]
        assert sorted(str(job) for job in jobs) == sorted(f"{name}/1" for name in names)
        assert {job.ref for job in jobs if job is not None} == set(refs)
        assert len({job for job in jobs}) == 3  # same id, different servers: different jobs
        for job in jobs:
            assert job is not None
            job.touch()
            job.release(priority=5)
        assert cluster.stats_tube("jobs").total["current-jobs-ready"] == 3
        peeked = cluster.peek(refs[0])
        assert peeked is not None
        assert peeked.ref == refs[0]
        job = cluster.reserve(timeout=2)
        assert job is not None
        job.bury()
        assert cluster.kick(10) == 1
        for _ in range(3):
            job = cluster.reserve(timeout=2)
            assert job is not None
            job.delete()
        assert cluster.reserve(timeout=0) is None
        assert "jobs" in cluster.tubes()
        with pytest.raises(jackstalk.NotFoundError):
            cluster.stats_tube("no-such-tube")
    # Closing the cluster closed the connection that held the job: no silent success.
    with jackstalk.Cluster([s.address for s in three], **OPTIONS) as cluster:
        cluster.put("held")
        held = cluster.reserve(timeout=2)
        assert held is not None
    with pytest.raises(jackstalk.JobLostError) as caught:
        held.delete()
    assert caught.value.server == held.server
    assert isinstance(caught.value, jackstalk.ConnectionClosedError)


def test_a_killed_server_loses_nothing_that_was_stored(three: list[Server]) -> None:
    victim = three[1]
    with jackstalk.Cluster([s.address for s in three], **OPTIONS) as cluster:
        dead = server_name(victim.address)
        stored = {cluster.put(f"before {n}") for n in range(60)}
        held = None
        for _ in range(10):  # a job of the victim, held reserved when it dies
            job = cluster.reserve(timeout=2)
            assert job is not None
            if job.server == dead:
                held = job
                break
            job.release()
        assert held is not None

        victim.kill()
        failed: list[str] = []
        for n in range(60):
            try:
                stored.add(cluster.put(f"after {n}"))
            except (jackstalk.ConnectionClosedError, TimeoutError) as error:
                failed.append(str(error))
        # Only a put sent into the dead connection (unknown outcome) raises, naming it.
        assert len(failed) <= 1
        assert all(dead in message for message in failed)
        assert {ref.server for ref in stored if ref.id > 20} != {dead}
        with pytest.raises(jackstalk.JobLostError):
            held.delete()
        with pytest.raises(jackstalk.JobLostError):
            held.touch()
        assert dead in cluster.stats().down

        victim.start()  # from its binlog: the held job is ready again
        seen: set[jackstalk.ClusterJobId] = set()
        for _ in range(400):  # bounded: each round waits at most about a second
            if stored <= seen:
                break
            job = cluster.reserve(timeout=1)
            if job is not None:
                seen.add(job.ref)
                job.delete()
        assert stored - seen == set()  # lost = 0
        assert seen == stored  # and nothing was stored that a put did not return
        assert cluster.stats().down == {}


def test_a_frozen_server_raises_an_unknown_outcome_and_the_others_go_on(
    three: list[Server],
) -> None:
    options = {**OPTIONS, "timeout": 0.5}
    frozen = three[2]
    with jackstalk.Cluster([s.address for s in three], **options) as cluster:
        name = server_name(frozen.address)
        for n in range(3):  # every server connected
            cluster.put(f"warm {n}")
        with frozen.frozen():
            outcomes = []
            for n in range(9):
                try:
                    outcomes.append(cluster.put(f"cold {n}").server)
                except TimeoutError as error:
                    outcomes.append(str(error))
            unknown = [outcome for outcome in outcomes if outcome.startswith(f"{name}: ")]
            assert len(unknown) == 1  # the one put sent to it, naming it
            assert name not in outcomes  # the others went elsewhere
            assert name in cluster.stats().down


def test_reserve_finds_jobs_on_every_server_without_busy_polling() -> None:
    with servers(3, None) as started:
        lonely = started[2]
        with jackstalk.Cluster([s.address for s in started], **OPTIONS) as cluster:
            started[0].kill()  # a dead server never holds up the others
            assert cluster.reserve(timeout=2) is None
            before = reserves(started[1:])
            assert cluster.reserve(timeout=3) is None
            # Idle: a few commands per server per second at most, not a busy loop.
            assert all(count <= 8 for count in _delta(before, reserves(started[1:])))
            with jackstalk.Client(lonely.address) as client:
                job_id = client.put("only here")
            job = cluster.reserve(timeout=5)
            assert job is not None
            assert job.id == job_id
            assert job.server == server_name(lonely.address)
            job.delete()


def _delta(before: list[int], after: list[int]) -> list[int]:
    return [b - a for a, b in zip(before, after, strict=True)]


def test_arguments_are_checked() -> None:
    with pytest.raises(jackstalk.InvalidArgument):
        jackstalk.Cluster([])
    with pytest.raises(jackstalk.InvalidArgument):
        jackstalk.Cluster([("127.0.0.1", 1), ("127.0.0.1", 1)])
    with pytest.raises(jackstalk.InvalidArgument):
        jackstalk.Cluster([("127.0.0.1", 1)], names=["a", "b"])
    with pytest.raises(jackstalk.InvalidArgument):
        jackstalk.Cluster([("127.0.0.1", 1)], parse_yaml=False)
    cluster = jackstalk.Cluster(["/run/beanstalkd.sock", ("::1", 11300)])
    assert cluster.servers == ["/run/beanstalkd.sock", "[::1]:11300"]


def test_put_into_a_tube_in_one_call(three: list[Server]) -> None:
    with jackstalk.Cluster([s.address for s in three], **OPTIONS) as cluster:
        refs = [cluster.put(f"mail {n}", tube="mail") for n in range(6)]
        batch = cluster.put_many(["x", "y"], tube="bulk")
        stats = cluster.stats_tube("mail")
        assert stats.total["current-jobs-ready"] == 6
        assert cluster.stats_tube("bulk").total["current-jobs-ready"] == 2
        assert len({ref.server for ref in refs}) == 3  # still spread
        for server in three:  # the tube named last is the one in use, on every server
            with jackstalk.Client(server.address) as client:
                users = client.stats_tube("bulk")["current-using"]
                assert users == 1
        assert {ref.server for ref in batch} <= set(cluster.servers)
        cluster.watch("mail")
        job = cluster.reserve(timeout=0)
        assert job is not None
        assert job.body.startswith("mail ")
        job.delete()


def test_a_restarted_server_takes_its_turn_again(three: list[Server]) -> None:
    victim = three[2]
    dead = server_name(victim.address)
    options = {**OPTIONS, "backoff": 0.001, "max_backoff": 0.001}
    with jackstalk.Cluster([s.address for s in three], **options) as cluster:
        assert len({cluster.put(b"warm").server for _ in range(3)}) == 3  # all connected
        victim.kill()
        refs: list[jackstalk.ClusterJobId] = []
        for _ in range(6):  # a put into the dead connection may have an unknown outcome
            try:
                refs.append(cluster.put(b"while down"))
            except (jackstalk.ConnectionClosedError, TimeoutError):
                pass
        assert dead not in {ref.server for ref in refs}
        victim.start()
        # Once its backoff is over, the server is tried again in its turn; its first put
        # there clears its failure, and the turns go on over all three.
        for _ in range(10_000):
            if cluster.put(b"again").server == dead:
                break
        else:
            pytest.fail("the restarted server never took a put")
        assert cluster.down() == {}
        turns = Counter(cluster.put(b"even").server for _ in range(30))
        assert turns == Counter({server_name(s.address): 10 for s in three})
