"""What only the blocking client has: its reply deadline (``timeout``), and ``with``.

Plain ``def`` tests; every client gets an explicit ``timeout`` so no test can hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

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


def _dripping(reply: bytes, pace: float) -> Callable[[Peer], bytes]:
    """A script that reads one command and sends ``reply`` one byte at a time, ``pace``
    seconds apart (a hostile or broken server), until the client closes; it returns what
    it sent by then."""

    def script(peer: Peer) -> bytes:
        peer.command()
        sent = b""
        for byte in reply:
            peer.sock.settimeout(pace)  # the pace: the client may close meanwhile
            try:
                if peer.sock.recv(1) == b"":
                    return sent
            except TimeoutError:
                pass
            except OSError:
                return sent
            peer.send(bytes([byte]))
            sent += bytes([byte])
        peer.sock.settimeout(LIMIT)
        peer.closes()
        return sent

    return script


@pytest.mark.parametrize(
    ("call", "reply"),
    [
        (lambda client: client.put("x"), b"INSERTED 77\r\n"),
        (lambda client: client.stats(), b"OK 10\r\nid: 1\nx: 2\r\n"),
        (lambda client: client.reserve(timeout=0), b"RESERVED 5 3\r\nabc\r\n"),
        (lambda client: client.put_many(["x"]), b"INSERTED 77\r\n"),
    ],
    ids=["put", "stats", "reserve", "put_many"],
)
def test_a_dripping_reply_times_out_as_a_whole(
    call: Callable[[jackstalk.Client], object], reply: bytes
) -> None:
    # Each byte comes well within the timeout, the whole reply long after it: the timeout
    # bounds the whole reply, so the call raises instead of waiting for the last byte.
    with StandIn(_dripping(reply, pace=0.3)) as standin:
        client = jackstalk.Client(standin.address, timeout=1.0, connect_timeout=LIMIT)
        with pytest.raises(TimeoutError):
            call(client)
        client.close()
    sent = standin.results[0]
    assert isinstance(sent, bytes)
    assert sent != reply  # the client gave up before the reply was whole
