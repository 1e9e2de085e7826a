"""The sans-IO hub as the listener drives it: how much it lets a connection read ahead, runs
bounded by a number of commands, one reply per run after a hang-up, and what a job costs.

No sockets and no clock: the time is a number passed in.
"""

from __future__ import annotations

import gc
import tracemalloc

from jackstalk._engine.hub import Hub

NOW = 1.0


def _put(body: bytes) -> bytes:
    return b"put 0 0 10 %d\r\n%b\r\n" % (len(body), body)


def test_a_put_body_being_received_does_not_count_as_read_ahead() -> None:
    # The listener stops reading at 64 KiB unrun; a body the server accepts must get in
    # whole all the same, so once its line has run only the bytes past it count.
    hub = Hub(NOW, max_job_size=1_000_000)
    conn = hub.connect()
    body = b"b" * 300_000
    hub.receive_data(conn, b"put 0 0 10 300000\r\n" + body[:100_000], NOW)
    assert hub.buffered(conn) > 65536  # not run yet: all of it counts
    assert hub.run(conn, NOW) == b""
    assert hub.buffered(conn) == 0
    hub.receive_data(conn, body[100_000:] + b"\r\nstats-job 1\r\nlist", NOW)
    assert hub.buffered(conn) == len(b"stats-job 1\r\nlist")
    out = hub.run(conn, NOW)
    assert out.startswith(b"INSERTED 1\r\nOK ")
    assert hub.buffered(conn) == len(b"list")


def test_a_body_over_the_limit_is_thrown_away_as_it_comes() -> None:
    hub = Hub(NOW, max_job_size=1000)
    conn = hub.connect()
    hub.receive_data(conn, b"put 0 0 10 5000000\r\n", NOW)
    for _ in range(50):
        hub.receive_data(conn, b"z" * 100_000, NOW)
        assert hub.run(conn, NOW) == b""
        assert hub.buffered(conn) == 0  # nothing of it is kept
    hub.receive_data(conn, b"\r\n" + _put(b"ok"), NOW)
    assert hub.run(conn, NOW) == b"JOB_TOO_BIG\r\nINSERTED 1\r\n"


def test_runs_bounded_by_commands_say_when_more_is_left() -> None:
    hub = Hub(NOW)
    conn = hub.connect()
    hub.receive_data(conn, _put(b"x") * 5 + b"list-tube-used\r\nlist", NOW)
    assert hub.run(conn, NOW, commands=2) == b"INSERTED 1\r\nINSERTED 2\r\n"
    assert hub.more(conn)
    assert hub.run(conn, NOW, commands=10).endswith(b"INSERTED 5\r\nUSING default\r\n")
    assert not hub.more(conn)  # the rest is a line still arriving
    hub.receive_data(conn, b"-tubes\r\nreserve\r\n", NOW)
    assert hub.run(conn, NOW).startswith(b"OK ")  # (the reserve takes job 1)
    hub.receive_data(conn, b"reserve\r\n" * 5, NOW)
    hub.run(conn, NOW)
    assert not hub.more(conn)  # the sixth reserve waits


def test_after_a_hang_up_one_reply_per_run() -> None:
    # The listener takes one reply at a time once the client's end is seen, so that it
    # stops at the first write that fails, as beanstalkd does.
    hub = Hub(NOW)
    conn = hub.connect()
    hub.receive_data(conn, b"reserve\r\n" + _put(b"a") + _put(b"b"), NOW)
    assert hub.run(conn, NOW) == b""
    assert hub.waiting(conn)
    hub.receive_data(conn, b"", NOW)
    assert hub.run(conn, NOW, 1) == b"TIMED_OUT\r\n"
    assert hub.more(conn)
    assert hub.run(conn, NOW, 1) == b"INSERTED 1\r\n"
    hub.disconnect(conn, NOW)  # that write failed
    assert hub.engine.job_state(1) == "ready"
    assert hub.engine.job_state(2) is None


def test_a_put_line_before_the_end_of_stream_uses_up_its_job_id() -> None:
    # beanstalkd makes the job (and counts the put) when the line parses.
    hub = Hub(NOW)
    conn = hub.connect()
    hub.receive_data(conn, b"put 0 0 10 5\r\nab", NOW)
    hub.receive_data(conn, b"", NOW)
    assert hub.run(conn, NOW) == b""
    assert hub.closing(conn)
    other = hub.connect()
    hub.receive_data(other, _put(b"x"), NOW)
    assert hub.run(other, NOW) == b"INSERTED 2\r\n"
    assert b"\ncmd-put: 2\n" in hub.engine.stats()


def test_a_job_takes_little_memory() -> None:
    # About 280 bytes a 10-byte job here (beanstalkd's own are ~220): the job, its heap
    # key, its body, its id and its place in the job table. It was ~450.
    hub = Hub(NOW)
    conn = hub.connect()
    batch = _put(b"0123456789") * 1000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            hub.receive_data(conn, batch, NOW)
            hub.run(conn, NOW, 2**30)
        gc.collect()
        per_job = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    finally:
        tracemalloc.stop()
    assert per_job < 340, per_job
