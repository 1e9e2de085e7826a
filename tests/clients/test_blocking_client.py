"""What only the blocking client has: its reply deadline (``timeout``), and ``with``.

Plain ``def`` tests; every client gets an explicit ``timeout`` so no test can hang.
"""

from __future__ import annotations

import threading

import pytest
from standin import LIMIT, Peer, StandIn

import jackstalk
from jackstalk.testing import BeanstalkdServer


def test_reply_that_never_comes_times_out_and_closes() -> None:
    first_closed = threading.Event()

    def stats_unanswered(peer: Peer) -> None:
        assert peer.line() == b"stats"
        assert peer.wait_closed() == b""  # the client closed that connection
        first_closed.set()

    def put_unanswered(peer: Peer) -> None:
        assert peer.put() == b"x"
        assert peer.wait_closed() == b""

    with StandIn(stats_unanswered, put_unanswered) as standin:
        client = jackstalk.Client(standin.address, timeout=0.2, connect_timeout=LIMIT)
        with pytest.raises(TimeoutError) as caught:
            client.stats()
        assert not isinstance(caught.value, jackstalk.JackstalkError)
        assert first_closed.wait(LIMIT), "the first connection was not closed"
        # The next call opens a new connection (and times out again: nobody answers).
        with pytest.raises(TimeoutError):
            client.put("x")
        client.close()


def test_reserve_waits_beyond_the_reply_deadline(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, timeout=0.2) as client:
        # reserve(timeout=1) may take 1 s plus the 0.2 s margin: TIMED_OUT, not a TimeoutError.
        assert client.reserve(timeout=1) is None
        # A plain reserve has no deadline at all: it waits for the delayed job (1 s).
        job_id = client.put("in a second", delay=1)
        job = client.reserve()
        assert job is not None
        assert job.id == job_id
        # The short deadline is back for ordinary commands, and the connection is in step.
        assert client.using() == "default"
        job.delete()


def test_context_manager_connects_and_closes(beanstalkd: BeanstalkdServer) -> None:
    with jackstalk.Client(beanstalkd.address, timeout=LIMIT) as observer:
        with jackstalk.Client(beanstalkd.address, timeout=LIMIT) as client:
            assert observer.stats()["current-connections"] == 2  # connected on entry
            job_id = client.put("held")
            job = client.reserve(timeout=0)
            assert job is not None
            assert job.id == job_id
        # Leaving the block closed the connection, so the server gave the job back.
        again = observer.reserve(timeout=10)
        assert again is not None
        assert again.id == job_id
