"""What only the blocking client has: its reply deadline (``timeout``), and ``with``.

Plain ``def`` tests; every client gets an explicit ``timeout`` so no test can hang.
"""

from __future__ import annotations

import socket

import pytest
from standin import LIMIT, Peer

import jackstalk
from jackstalk.testing import BeanstalkdServer


def test_reply_that_never_comes_times_out_and_closes() -> None:
    # A stand-in that accepts (through the kernel's backlog) and never answers.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(LIMIT)
        host, port = listener.getsockname()[:2]
        client = jackstalk.Client((host, port), timeout=0.2, connect_timeout=LIMIT)
        with pytest.raises(TimeoutError) as caught:
            client.stats()
        assert not isinstance(caught.value, jackstalk.JackstalkError)
        first, _ = listener.accept()
        with first:
            peer = Peer(first)
            assert peer.line() == b"stats"
            assert peer.wait_closed() == b""  # the client closed that connection
        # The next call opens a new connection (and times out again: nobody answers).
        with pytest.raises(TimeoutError):
            client.put("x")
        second, _ = listener.accept()
        with second:
            peer = Peer(second)
            assert peer.put() == b"x"
            assert peer.wait_closed() == b""
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
