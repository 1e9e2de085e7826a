"""Every time rule of protocol-notes §4 (and the delays and pauses of §3), on the engine with
a fake clock: nothing here sleeps, and each deadline is checked just before and at its
instant."""

from __future__ import annotations

import pytest

from jackstalk._engine.engine import Engine
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol.server_connection import Rejected
from jackstalk._protocol.yaml_subset import parse_stats

Reply = e.Event | e.Closed | None


class Sim:
    """An engine and a fake clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.engine = Engine(self.now)

    def conn(self, *setup: c.Command) -> int:
        conn = self.engine.connect()
        for command in setup:
            self.send(conn, command)
        return conn

    def send(self, conn: int, command: c.Command | Rejected) -> Reply:
        return self.engine.handle(conn, command, self.now)

    def at(self, offset: float) -> list[tuple[int, e.Event]]:
        """Move the clock to start + ``offset`` and return what time produced."""
        self.now = 1000.0 + offset
        return self.engine.tick(self.now)

    def put(self, conn: int, body: bytes = b"x", **options: int) -> int:
        reply = self.send(conn, c.Put(body, **options))
        assert isinstance(reply, e.Inserted)
        return reply.id

    def job(self, conn: int, job_id: int) -> dict[str, object]:
        reply = self.send(conn, c.StatsJob(job_id))
        assert isinstance(reply, e.Ok)
        return dict(parse_stats(reply.data))

    def tube(self, conn: int, name: str = "default") -> dict[str, object]:
        reply = self.send(conn, c.StatsTube(name))
        assert isinstance(reply, e.Ok)
        return dict(parse_stats(reply.data))

    def stats(self, conn: int) -> dict[str, object]:
        reply = self.send(conn, c.Stats())
        assert isinstance(reply, e.Ok)
        return dict(parse_stats(reply.data))


@pytest.fixture
def sim() -> Sim:
    return Sim()


# ------------------------------------------------------------------ delays


def test_delayed_job_becomes_ready_exactly_when_its_delay_ends(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, delay=5)
    assert sim.job(a, job)["state"] == "delayed"
    # beanstalkd prints whole seconds, truncated, at least a moment after the put: 4.
    assert sim.job(a, job)["time-left"] == 4
    assert sim.engine.next_deadline() == 1005.0
    assert sim.at(2.5) == []
    assert sim.job(a, job)["time-left"] == 2
    assert sim.send(a, c.PeekReady()) == e.NotFound()
    assert sim.send(a, c.ReserveWithTimeout(0)) == e.TimedOut()
    assert sim.at(4.999) == []
    assert sim.job(a, job)["state"] == "delayed"
    assert sim.at(5) == []
    assert sim.job(a, job)["state"] == "ready"
    assert sim.job(a, job)["delay"] == 5  # the delay asked for stays in the stats
    assert sim.send(a, c.PeekReady()) == e.Found(job, b"x")


def test_peek_delayed_shows_the_soonest_and_kick_takes_soonest_first(sim: Sim) -> None:
    a = sim.conn()
    late = sim.put(a, b"late", delay=50)
    soon = sim.put(a, b"soon", delay=10)
    also_soon = sim.put(a, b"also", delay=10)
    assert sim.send(a, c.PeekDelayed()) == e.Found(soon, b"soon")
    assert sim.send(a, c.Kick(1)) == e.Kicked(1)
    assert sim.job(a, soon)["state"] == "ready"
    assert sim.job(a, soon)["kicks"] == 1
    assert sim.send(a, c.PeekDelayed()) == e.Found(also_soon, b"also")
    assert sim.send(a, c.KickJob(late)) == e.Kicked()
    assert sim.send(a, c.KickJob(late)) == e.NotFound()  # ready now: nothing to kick
    assert sim.stats(a)["current-jobs-delayed"] == 1


def test_waiting_reserve_is_served_when_a_delay_ends(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    job = sim.put(a, delay=3)
    assert sim.send(b, c.Reserve()) is None
    assert sim.engine.waiting(b)
    assert sim.at(2.9) == []
    assert sim.at(3) == [(b, e.Reserved(job, b"x"))]
    assert sim.job(a, job)["time-left"] == 119


def test_release_with_delay(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=60)
    sim.send(a, c.Reserve())
    assert sim.send(a, c.Release(job, 7, 4)) == e.Released()
    stats = sim.job(a, job)
    assert (stats["state"], stats["pri"], stats["delay"], stats["releases"]) == (
        "delayed",
        7,
        4,
        1,
    )
    sim.at(4)
    assert sim.job(a, job)["state"] == "ready"
    assert sim.job(a, job)["ttr"] == 60  # release keeps the time-to-run


# ------------------------------------------------------------------ time-to-run


def test_ttr_expiry_returns_the_job_to_ready(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    job = sim.put(a, ttr=10)
    assert sim.send(b, c.Reserve()) == e.Reserved(job, b"x")
    assert sim.job(a, job)["time-left"] == 9
    assert sim.engine.next_deadline() == 1010.0
    sim.at(9.99)
    assert sim.job(a, job)["state"] == "reserved"
    assert sim.at(10) == []  # silent: no reply to anybody
    stats = sim.job(a, job)
    assert (stats["state"], stats["timeouts"], stats["reserves"]) == ("ready", 1, 1)
    assert sim.stats(a)["job-timeouts"] == 1
    # The old holder lost it: release, bury and touch are refused ...
    assert sim.send(b, c.Release(job, 1, 0)) == e.NotFound()
    assert sim.send(b, c.Bury(job, 1)) == e.NotFound()
    assert sim.send(b, c.Touch(job)) == e.NotFound()
    # ... but delete still works, since the job is ready now.
    assert sim.send(b, c.Delete(job)) == e.Deleted()


def test_ttr_expiry_serves_a_waiting_reserve(sim: Sim) -> None:
    a, b, w = sim.conn(), sim.conn(), sim.conn()
    job = sim.put(a, ttr=5)
    sim.send(b, c.Reserve())
    assert sim.send(w, c.ReserveWithTimeout(100)) is None
    assert sim.at(5) == [(w, e.Reserved(job, b"x"))]
    assert sim.job(a, job)["reserves"] == 2


def test_ttr_zero_is_one_second(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=0)
    assert sim.job(a, job)["ttr"] == 1
    sim.send(a, c.Reserve())
    sim.at(0.999)
    assert sim.job(a, job)["state"] == "reserved"
    sim.at(1)
    assert sim.job(a, job)["state"] == "ready"


def test_touch_restarts_the_ttr_from_now(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=10)
    sim.send(a, c.Reserve())
    sim.at(8)
    assert sim.send(a, c.Touch(job)) == e.Touched()
    assert sim.job(a, job)["time-left"] == 9  # reset to ttr (10), not 2 + 10
    sim.at(17.9)
    assert sim.job(a, job)["state"] == "reserved"
    sim.at(18)
    assert sim.job(a, job)["state"] == "ready"


def test_only_the_holder_may_touch_release_or_bury(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    job = sim.put(a)
    sim.send(a, c.Reserve())
    for command in (c.Touch(job), c.Release(job, 1, 0), c.Bury(job, 1), c.Delete(job)):
        assert sim.send(b, command) == e.NotFound()
    assert sim.send(a, c.Bury(job, 3)) == e.Buried()
    stats = sim.job(a, job)
    assert (stats["state"], stats["pri"], stats["buries"], stats["time-left"]) == (
        "buried",
        3,
        1,
        0,
    )


# ------------------------------------------------------------------ DEADLINE_SOON


def test_reserve_inside_the_margin_gets_deadline_soon_at_once(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=5)
    sim.send(a, c.Reserve())
    sim.at(3.9)
    assert sim.send(a, c.ReserveWithTimeout(0)) == e.TimedOut()  # 1.1 s left: not yet
    sim.at(4)
    for command in (c.Reserve(), c.ReserveWithTimeout(0), c.ReserveWithTimeout(5)):
        assert sim.send(a, command) == e.DeadlineSoon()  # beats TIMED_OUT, again and again
    assert sim.job(a, job)["state"] == "reserved"  # the job stays reserved
    assert sim.stats(a)["cmd-reserve-with-timeout"] == 3


def test_deadline_soon_yields_to_a_ready_job(sim: Sim) -> None:
    a = sim.conn()
    first = sim.put(a, ttr=1)
    second = sim.put(a, ttr=1)
    assert sim.send(a, c.Reserve()) == e.Reserved(first, b"x")
    # ttr 1: inside the margin from the start, but a ready job is simply handed out.
    assert sim.send(a, c.Reserve()) == e.Reserved(second, b"x")
    assert sim.send(a, c.Reserve()) == e.DeadlineSoon()


def test_waiting_reserve_gets_deadline_soon_one_second_before_the_deadline(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=3)
    sim.send(a, c.Reserve())
    assert sim.send(a, c.Reserve()) is None
    assert sim.engine.next_deadline() == 1002.0
    assert sim.at(1.999) == []
    assert sim.at(2) == [(a, e.DeadlineSoon())]
    assert not sim.engine.waiting(a)
    assert sim.job(a, job)["state"] == "reserved"
    assert sim.at(3) == []
    assert sim.job(a, job)["state"] == "ready"


def test_deadline_soon_beats_a_longer_reserve_timeout(sim: Sim) -> None:
    a = sim.conn()
    sim.put(a, ttr=10)
    sim.send(a, c.Reserve())
    assert sim.send(a, c.ReserveWithTimeout(60)) is None
    assert sim.at(9) == [(a, e.DeadlineSoon())]


def test_a_shorter_reserve_timeout_comes_first(sim: Sim) -> None:
    a = sim.conn()
    sim.put(a, ttr=10)
    sim.send(a, c.Reserve())
    assert sim.send(a, c.ReserveWithTimeout(4)) is None
    assert sim.at(4) == [(a, e.TimedOut())]


def test_deadline_soon_while_ready_jobs_sit_in_a_paused_tube(sim: Sim) -> None:
    # A ready job in a watched tube spares the immediate DEADLINE_SOON, but the tube is
    # paused, so the reserve waits and is told DEADLINE_SOON at once all the same.
    a = sim.conn()
    sim.put(a, ttr=1)
    sim.send(a, c.Reserve())
    sim.put(a)
    sim.send(a, c.PauseTube("default", 60))
    assert sim.send(a, c.Reserve()) == e.DeadlineSoon()


def test_jumping_past_the_deadline_does_not_hand_the_job_back_to_its_holder(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, ttr=10)
    sim.send(a, c.Reserve())
    assert sim.send(a, c.Reserve()) is None
    # Time moves on in one jump: the margin came first, so the reserve ended then.
    assert sim.at(30) == [(a, e.DeadlineSoon())]
    assert sim.job(a, job)["state"] == "ready"


# ------------------------------------------------------------------ reserve timeouts


def test_reserve_with_timeout_zero_answers_at_once(sim: Sim) -> None:
    a = sim.conn()
    assert sim.send(a, c.ReserveWithTimeout(0)) == e.TimedOut()
    job = sim.put(a)
    assert sim.send(a, c.ReserveWithTimeout(0)) == e.Reserved(job, b"x")


def test_reserve_with_timeout_runs_out_exactly_on_time(sim: Sim) -> None:
    a = sim.conn()
    assert sim.send(a, c.ReserveWithTimeout(2)) is None
    assert sim.stats(sim.conn())["current-waiting"] == 1
    assert sim.engine.next_deadline() == 1002.0
    assert sim.at(1.999) == []
    assert sim.at(2) == [(a, e.TimedOut())]
    assert sim.engine.next_deadline() is None
    assert sim.tube(sim.conn())["current-waiting"] == 0


def test_negative_timeout_waits_for_ever(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    command = c._rebuild(c.ReserveWithTimeout, (-1,))  # what the parser makes of "-5"
    assert sim.send(a, command) is None
    assert sim.engine.next_deadline() is None
    assert sim.at(10**9) == []
    job = sim.put(b)
    assert sim.at(10**9) == [(a, e.Reserved(job, b"x"))]


def test_waiting_reserve_is_served_by_a_put_from_another_connection(sim: Sim) -> None:
    a, b = sim.conn(c.Watch("jobs"), c.Ignore("default")), sim.conn(c.Use("jobs"))
    assert sim.send(a, c.ReserveWithTimeout(10)) is None
    assert sim.tube(b, "jobs")["current-waiting"] == 1
    job = sim.put(b)
    assert sim.at(0) == [(a, e.Reserved(job, b"x"))]
    assert sim.at(10) == []  # the timeout of a served reserve is forgotten


def test_hang_up_while_waiting_is_timed_out(sim: Sim) -> None:
    a = sim.conn()
    sim.send(a, c.Reserve())
    assert sim.engine.cancel(a, sim.now) == e.TimedOut()
    assert sim.engine.cancel(a, sim.now) is None


def test_several_waiters_served_in_beanstalkd_order(sim: Sim) -> None:
    waiters = [sim.conn() for _ in range(4)]
    for w in waiters:
        assert sim.send(w, c.Reserve()) is None
    producer = sim.conn()
    got = []
    for i in range(4):
        sim.put(producer, b"%d" % i)
        ((conn, reply),) = sim.at(0)
        assert isinstance(reply, e.Reserved)
        got.append(waiters.index(conn))
    assert got == [0, 1, 3, 2]


def test_the_most_urgent_job_across_tubes_is_served_first(sim: Sim) -> None:
    w = sim.conn(c.Watch("a"), c.Watch("b"))
    p = sim.conn(c.Use("a"))
    sim.send(p, c.PauseTube("a", 10))
    sim.send(p, c.PauseTube("default", 10))
    low = sim.put(p, b"low", priority=9)
    sim.send(p, c.Use("b"))
    sim.send(p, c.PauseTube("b", 10))
    high = sim.put(p, b"high", priority=1)
    assert sim.send(w, c.Reserve()) is None
    assert sim.at(10) == [(w, e.Reserved(high, b"high"))]
    assert sim.send(w, c.Reserve()) == e.Reserved(low, b"low")


# ------------------------------------------------------------------ pause


def test_pause_holds_reserves_until_it_ends(sim: Sim) -> None:
    a, w = sim.conn(), sim.conn()
    job = sim.put(a)
    assert sim.send(a, c.PauseTube("default", 2)) == e.Paused()
    assert sim.send(w, c.ReserveWithTimeout(0)) == e.TimedOut()
    stats = sim.tube(a)
    assert (stats["pause"], stats["pause-time-left"], stats["cmd-pause-tube"]) == (2, 1, 1)
    assert sim.send(w, c.Reserve()) is None
    # peek and reserve-job ignore the pause.
    assert sim.send(a, c.PeekReady()) == e.Found(job, b"x")
    sim.at(1.5)
    assert sim.tube(a)["pause-time-left"] == 0
    assert sim.at(1.999) == []
    assert sim.at(2) == [(w, e.Reserved(job, b"x"))]
    stats = sim.tube(a)
    assert (stats["pause"], stats["pause-time-left"]) == (0, 0)


def test_pause_zero_unpauses(sim: Sim) -> None:
    a, w = sim.conn(), sim.conn()
    sim.send(a, c.PauseTube("default", 100))
    job = sim.put(a)
    assert sim.send(w, c.Reserve()) is None
    assert sim.send(a, c.PauseTube("default", 0)) == e.Paused()
    assert sim.tube(a)["pause"] == 0
    assert sim.at(0.001) == [(w, e.Reserved(job, b"x"))]


def test_pause_zero_is_over_before_the_next_command(sim: Sim) -> None:
    # beanstalkd's next look at the tube is always more than its 1 ns pause later, even
    # for a command in the same read; found by the differential test.
    a, w = sim.conn(), sim.conn()
    assert sim.send(a, c.PauseTube("default", 0)) == e.Paused()
    job = sim.put(a)
    assert sim.send(w, c.ReserveWithTimeout(0)) == e.Reserved(job, b"x")
    assert sim.tube(a)["cmd-pause-tube"] == 1


def test_reserve_job_ignores_the_pause(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a)
    sim.send(a, c.PauseTube("default", 100))
    assert sim.send(a, c.ReserveJob(job)) == e.Reserved(job, b"x")


def test_pause_vanishes_with_its_tube(sim: Sim) -> None:
    a = sim.conn(c.Use("brief"))
    assert sim.send(a, c.PauseTube("brief", 100)) == e.Paused()
    sim.send(a, c.Use("default"))  # nobody uses or watches it and it has no job: gone
    assert sim.send(a, c.PauseTube("brief", 100)) == e.NotFound()
    sim.send(a, c.Use("brief"))
    assert sim.tube(a, "brief")["pause"] == 0
    assert sim.engine.next_deadline() is None


# ------------------------------------------------------------------ connections


def test_disconnect_returns_held_jobs_to_ready_unchanged(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    job = sim.put(a, priority=42, ttr=30)
    sim.send(b, c.Reserve())
    sim.at(5)
    sim.engine.disconnect(b, sim.now)
    stats = sim.job(a, job)
    assert (stats["state"], stats["pri"], stats["releases"], stats["timeouts"]) == (
        "ready",
        42,
        0,
        0,
    )
    assert sim.engine.next_deadline() is None


def test_quit_closes_and_releases(sim: Sim) -> None:
    a, b = sim.conn(), sim.conn()
    job = sim.put(a)
    sim.send(b, c.Reserve())
    assert sim.send(b, c.Quit()) == e.Closed()
    assert sim.job(a, job)["state"] == "ready"
    with pytest.raises(KeyError):
        sim.send(b, c.Stats())


def test_time_passes_in_order_when_the_clock_jumps(sim: Sim) -> None:
    # The reserve's timeout (4 s) comes before the delay ends (6 s): a server running all
    # along would have answered TIMED_OUT, so the jump must too.
    a, w = sim.conn(), sim.conn()
    sim.put(a, delay=6)
    sim.send(w, c.ReserveWithTimeout(4))
    assert sim.at(100) == [(w, e.TimedOut())]


def test_age_and_uptime(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a)
    sim.at(61.5)
    assert sim.job(a, job)["age"] == 61
    assert sim.stats(a)["uptime"] == 61


def test_clock_going_back_is_treated_as_standing_still(sim: Sim) -> None:
    a = sim.conn()
    job = sim.put(a, delay=10)
    sim.at(5)
    sim.now = 990.0
    assert sim.job(a, job)["time-left"] == 4
