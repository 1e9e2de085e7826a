"""An in-memory beanstalkd: tubes, jobs and connections, with the clock passed in.

The engine knows nothing of sockets, threads or the real time. A transport tells it about
connections and hands it each parsed command with the current time::

    conn = engine.connect()
    reply = engine.handle(conn, command_or_rejected, now)   # None: the reserve waits
    for conn, reply in engine.tick(now): ...                # replies that came from time
    engine.next_deadline()                                  # when tick() has work next
    engine.disconnect(conn)

It follows beanstalkd 1.12 (protocol-notes §3-§5): the same replies, the same orders
(ready jobs by priority then id, buried jobs first in first out, delayed jobs by deadline,
waiting reservers and list entries removed by moving the last one into the hole), and the
same statistics, down to which lines are counted. Whenever time moves on, the events it
passes (delays ending, pauses ending, time-to-run running out, the one-second
``DEADLINE_SOON`` margin, reserve timeouts) are played in time order, each at its own
instant, as a server that had been running all along would have played them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol.server_connection import Rejected
from jackstalk._protocol.yaml_subset import format_dict, format_list

__all__ = ["DEADLINE_MARGIN", "Engine", "ProcessInfo"]

DEADLINE_MARGIN = 1.0
"""Seconds before a reserved job's deadline when its holder is told ``DEADLINE_SOON``."""

URGENT = 1024
"""Jobs with a priority below this count as urgent in the statistics."""

VERSION = "1.12"
BINLOG_MAX_SIZE = 10485760

_READY, _RESERVED, _BURIED, _DELAYED = "ready", "reserved", "buried", "delayed"
_INVALID = "invalid"  # a put whose body is still arriving

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessInfo:
    """The process-specific fields of ``stats``, which the engine cannot know by itself."""

    pid: int = 0
    hostname: str = ""
    os: str = ""
    platform: str = ""
    rusage: Callable[[], tuple[float, float]] = field(default=lambda: (0.0, 0.0))
    """Returns (user, system) CPU seconds."""


class _Heap(Generic[T]):
    """A binary heap whose entries can be removed in O(1) (lazily, skipped when met)."""

    __slots__ = ("_count", "_items", "size")

    def __init__(self) -> None:
        self._items: list[list[object]] = []
        self._count = itertools.count()
        self.size = 0

    def push(self, key: tuple[float, int], item: T) -> list[object]:
        entry: list[object] = [key, next(self._count), item]
        heapq.heappush(self._items, entry)
        self.size += 1
        return entry

    def remove(self, entry: list[object]) -> None:
        entry[2] = None
        self.size -= 1
        if len(self._items) > 2 * self.size + 64:
            self._items = [x for x in self._items if x[2] is not None]
            heapq.heapify(self._items)

    def _clean(self) -> None:
        items = self._items
        while items and items[0][2] is None:
            heapq.heappop(items)

    def peek(self) -> T | None:
        self._clean()
        return self._items[0][2] if self._items else None  # type: ignore[return-value]

    def peek_key(self) -> tuple[float, int] | None:
        self._clean()
        return self._items[0][0] if self._items else None  # type: ignore[return-value]

    def pop(self) -> T | None:
        self._clean()
        if not self._items:
            return None
        self.size -= 1
        return heapq.heappop(self._items)[2]  # type: ignore[return-value]


_Key = tuple[float, int] | tuple[float, int, int]
"""A job's ``(priority, id)`` while ready, ``(deadline, order, id)`` while delayed (``order``
counts the delays begun: see :meth:`Engine._enqueue`), ``(deadline, id)`` while reserved."""


class _JobTable:
    """The jobs by id, in 64 dicts by the id's low bits.

    A dict grows by copying itself whole: one of 175,000 jobs takes ~7 ms, one of 350,000
    twice that, every client waiting meanwhile. A shard is a 64th of that.
    """

    __slots__ = ("_shards",)

    _MASK = 63

    def __init__(self) -> None:
        self._shards: list[dict[int, _Job]] = [{} for _ in range(self._MASK + 1)]

    def get(self, job_id: int) -> _Job | None:
        return self._shards[job_id & self._MASK].get(job_id)

    def add(self, job: _Job) -> None:
        self._shards[job.id & self._MASK][job.id] = job

    def remove(self, job: _Job) -> None:
        del self._shards[job.id & self._MASK][job.id]


class _JobHeap:
    """Jobs in key order, as beanstalkd's ready and delayed heaps hold them.

    The entries are the jobs' own keys (``job.key``): bare tuples of numbers, which the
    garbage collector stops tracking, the job being found by its id. An entry that is no
    longer its job's key is stale and dropped when it comes to the top, so a job leaves the
    heap in O(1). A delayed job's key sits in its tube's heap and in the engine's heap of
    every delayed job.
    """

    __slots__ = ("_items", "_jobs", "size")

    def __init__(self, jobs: _JobTable) -> None:
        self._items: list[_Key] = []
        self._jobs = jobs  # the engine's jobs by id
        self.size = 0

    def add(self, key: _Key) -> None:
        """Add a job's key (the job's ``key`` already)."""
        heapq.heappush(self._items, key)
        self.size += 1

    def discard(self, key: _Key) -> None:
        """Forget the key of a job that has just left (and has another ``key`` now)."""
        self.size -= 1
        items = self._items
        if items[0] is key:
            heapq.heappop(items)
        elif len(items) > 2 * self.size + 64:
            jobs = self._jobs
            live = [x for x in items if (job := jobs.get(x[-1])) is not None and job.key is x]
            heapq.heapify(live)
            self._items = live

    def peek(self) -> _Job | None:
        """The first job, or None."""
        items = self._items
        jobs = self._jobs
        while items:
            key = items[0]
            job = jobs.get(key[-1])
            if job is not None and job.key is key:
                return job
            heapq.heappop(items)
        return None

    def peek_key(self) -> _Key | None:
        """The first job's key, or None."""
        job = self.peek()
        return None if job is None else job.key


def _left(seconds: float) -> int:
    """Whole seconds left, as beanstalkd prints them: a command runs at least a moment after
    the one before, so even a deadline exactly ``n`` seconds away has ``n - 1`` left."""
    return max(math.ceil(seconds) - 1, 0)


def _swap_remove(items: list[T], index: int) -> None:
    """Remove ``items[index]`` by moving the last item into its place (beanstalkd's sets)."""
    last = items.pop()
    if index < len(items):
        items[index] = last


class _Waiters:
    """A tube's waiting connections: beanstalkd's set, taken in its own rotating order."""

    __slots__ = ("items", "last")

    def __init__(self) -> None:
        self.items: list[_Conn] = []
        self.last = 0

    def take(self) -> _Conn:
        self.last %= len(self.items)
        conn = self.items[self.last]
        _swap_remove(self.items, self.last)
        self.last += 1
        return conn

    def remove(self, conn: _Conn) -> None:
        _swap_remove(self.items, self.items.index(conn))


class _Tube:
    __slots__ = (
        "buried",
        "cmd_delete",
        "cmd_pause",
        "delayed",
        "index",
        "name",
        "pause",
        "ready",
        "refs",
        "reserved",
        "total_jobs",
        "unpause_at",
        "urgent",
        "using",
        "waiting",
        "watching",
    )

    def __init__(self, name: str, index: int, jobs: _JobTable) -> None:
        self.name = name
        self.index = index  # position in the engine's tube list
        self.refs = 0  # jobs, users and watchers: the tube is freed when none is left
        self.ready = _JobHeap(jobs)
        self.delayed = _JobHeap(jobs)
        self.buried: dict[int, _Job] = {}  # insertion order: oldest buried first
        self.waiting = _Waiters()
        self.urgent = 0
        self.reserved = 0
        self.total_jobs = 0
        self.using = 0
        self.watching = 0
        self.cmd_delete = 0
        self.cmd_pause = 0
        self.pause = 0.0  # seconds asked for; 0 when not paused
        self.unpause_at = 0.0


_NO_COUNTS = (0, 0, 0, 0, 0)
_RESERVES, _TIMEOUTS, _RELEASES, _BURIES, _KICKS = range(5)


class _Job:
    """One job. Kept small: a server may hold millions (beanstalkd's own job is ~200 bytes).

    ``key`` is ``(priority, id)`` while it is ready, ``(deadline, order, id)`` while delayed
    (the time it becomes ready) and ``(deadline, id)`` while reserved (the end of its time
    to run); the heaps hold these very tuples. ``counts`` has its reserves, timeouts,
    releases, buries and kicks in one tuple (shared while all are 0). The connection
    holding a reserved job is the one whose ``jobs`` has it.
    """

    __slots__ = (
        "body",
        "counts",
        "created",
        "delay",
        "id",
        "key",
        "priority",
        "state",
        "ttr",
        "tube",
    )

    def __init__(
        self, job_id: int, priority: int, delay: int, ttr: int, body: bytes, tube: _Tube, now: float
    ) -> None:
        self.id = job_id
        self.priority = priority
        self.delay = delay
        self.ttr = ttr if ttr > 0 else 1
        self.body = body
        self.tube = tube
        self.created = now
        self.state = _INVALID
        self.key: _Key | None = None
        self.counts: tuple[int, ...] = _NO_COUNTS

    @property
    def deadline(self) -> float:
        """When a delayed job becomes ready, or a reserved job's time to run ends."""
        key = self.key
        assert key is not None
        return key[0]

    def bump(self, which: int) -> None:
        """Add one to a counter (``_RESERVES`` ... ``_KICKS``)."""
        counts = self.counts
        self.counts = (*counts[:which], counts[which] + 1, *counts[which + 1 :])


class _Conn:
    __slots__ = (
        "closed",
        "id",
        "incoming",
        "jobs",
        "producer",
        "tick_entry",
        "use",
        "wait_until",
        "waiting",
        "watch",
        "worker",
    )

    def __init__(self, conn_id: int, tube: _Tube) -> None:
        self.id = conn_id
        self.use = tube
        self.watch: list[_Tube] = [tube]
        self.jobs: dict[int, _Job] = {}  # reserved jobs, in the order they were reserved
        self.producer = False
        self.worker = False
        self.waiting = False
        self.wait_until: float | None = None  # None: wait for ever
        self.tick_entry: list[object] | None = None
        self.closed = False
        self.incoming: _Job | None = None  # a put whose body is still arriving

    def soonest(self) -> _Job | None:
        """The held job whose time-to-run ends first (the first reserved among equals)."""
        best: _Job | None = None
        for job in self.jobs.values():
            if best is None or job.deadline < best.deadline:
                best = job
        return best

    def tick_at(self) -> float | None:
        """When this connection next has something to do by itself, if ever."""
        at: float | None = None
        soonest = self.soonest()
        if soonest is not None:
            at = soonest.deadline - (DEADLINE_MARGIN if self.waiting else 0.0)
        if self.waiting and self.wait_until is not None:
            at = self.wait_until if at is None else min(at, self.wait_until)
        return at


# Commands with a counter in ``stats``, in the order ``stats`` prints them.
_COUNTED: tuple[tuple[type[c.Command], str], ...] = (
    (c.Put, "cmd-put"),
    (c.Peek, "cmd-peek"),
    (c.PeekReady, "cmd-peek-ready"),
    (c.PeekDelayed, "cmd-peek-delayed"),
    (c.PeekBuried, "cmd-peek-buried"),
    (c.Reserve, "cmd-reserve"),
    (c.ReserveWithTimeout, "cmd-reserve-with-timeout"),
    (c.Delete, "cmd-delete"),
    (c.Release, "cmd-release"),
    (c.Use, "cmd-use"),
    (c.Watch, "cmd-watch"),
    (c.Ignore, "cmd-ignore"),
    (c.Bury, "cmd-bury"),
    (c.Kick, "cmd-kick"),
    (c.Touch, "cmd-touch"),
    (c.Stats, "cmd-stats"),
    (c.StatsJob, "cmd-stats-job"),
    (c.StatsTube, "cmd-stats-tube"),
    (c.ListTubes, "cmd-list-tubes"),
    (c.ListTubeUsed, "cmd-list-tube-used"),
    (c.ListTubesWatched, "cmd-list-tubes-watched"),
    (c.PauseTube, "cmd-pause-tube"),
)


class Engine:
    """beanstalkd's state and rules, driven by a transport that passes the time in.

    ``now`` is in seconds on any clock that never goes back (``time.monotonic()`` for a
    real server, a plain number in tests). ``max_job_size`` is only reported in ``stats``:
    the parser (:class:`~jackstalk.ServerConnection`) enforces it. ``process`` fills in
    the process-specific ``stats`` fields; ``instance_id`` is the 16 hex digit ``id``.
    """

    def __init__(
        self,
        now: float = 0.0,
        *,
        max_job_size: int = 65535,
        process: ProcessInfo | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.max_job_size = max_job_size
        self.process = process or ProcessInfo()
        self.instance_id = instance_id if instance_id is not None else os.urandom(8).hex()
        self.draining = False
        self._started = now
        self._now = now
        self._tube_list: list[_Tube] = []
        self._tubes: dict[str, _Tube] = {}
        self._jobs = _JobTable()
        self._conns: dict[int, _Conn] = {}
        self._conn_ids = itertools.count(1)
        self._next_job_id = 1
        self._delayed = _JobHeap(self._jobs)  # every delayed job, by (deadline, id)
        self._paused: set[_Tube] = set()
        self._ticks: _Heap[_Conn] = _Heap()  # connections by when they next act
        self._hungry: set[_Tube] = set()  # tubes with waiting connections
        self._cmd: dict[type[c.Command], int] = dict.fromkeys((k for k, _ in _COUNTED), 0)
        self._ready = 0
        self._urgent = 0
        self._reserved = 0
        self._buried = 0
        self._total_jobs = 0
        self._timeouts = 0
        self._delays = 0  # delays begun so far (orders equal deadlines)
        self._waiting = 0
        self._producers = 0
        self._workers = 0
        self._total_conns = 0
        self._outbox: list[tuple[int, e.Event]] = []
        self._current: _Conn | None = None
        self._current_reply: e.Event | None = None
        default = self._tube("default")
        default.refs += 1  # the default tube is never freed

    # ------------------------------------------------------------------ public API

    def connect(self) -> int:
        """A new client connection: uses and watches ``default``. Returns its id."""
        default = self._tubes["default"]
        conn = _Conn(next(self._conn_ids), default)
        default.using += 1
        default.watching += 1
        default.refs += 2
        self._conns[conn.id] = conn
        self._total_conns += 1
        return conn.id

    def disconnect(self, conn_id: int, now: float | None = None) -> None:
        """The connection is gone: its jobs go back to ready, its tubes may be freed.

        Replies this causes for other connections (a waiting reserve served one of the
        returned jobs) come out of the next :meth:`tick`.
        """
        if now is not None:
            self._advance(now)
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        conn.closed = True
        if conn.incoming is not None:
            self._drop_incoming(conn)
        if conn.producer:
            self._producers -= 1
        if conn.worker:
            self._workers -= 1
        self._stop_waiting(conn)
        for job in list(conn.jobs.values()):
            self._unreserve(conn, job)
            self._enqueue(job, 0)
        while conn.watch:  # beanstalkd empties the set by removing its first item
            tube = conn.watch[0]
            _swap_remove(conn.watch, 0)
            tube.watching -= 1
            self._unref(tube)
        conn.use.using -= 1
        self._unref(conn.use)

    def handle(
        self, conn_id: int, command: c.Command | Rejected, now: float
    ) -> e.Event | e.Closed | None:
        """Run one command (or answer one rejected line) for ``conn_id``.

        Returns the reply, or ``None`` when a reserve waits (its reply comes later from
        :meth:`tick`), or :class:`~jackstalk.Closed` for ``quit``: the connection is then
        gone and the transport closes it. Replies that this command causes for other
        connections come out of the next :meth:`tick`.
        """
        self._advance(now)
        conn = self._conns.get(conn_id)
        if conn is None:
            raise KeyError(f"no connection {conn_id}")
        if conn.waiting:
            raise RuntimeError(f"connection {conn_id} is waiting for a reserve")
        self._current = conn
        self._current_reply = None
        try:
            if isinstance(command, Rejected):
                reply: e.Event | e.Closed | None = self._rejected(conn, command)
            else:
                handler = _HANDLERS.get(type(command))
                if handler is None:
                    raise TypeError(f"not a command: {command!r}")
                reply = handler(self, conn, command)
            if reply is None and self.waiting(conn_id):
                # Something due right now (a timeout of 0, the deadline margin) answers it.
                self._advance(now)
                reply = self._reply_so_far()
        finally:
            self._current = None
            self._current_reply = None
        return reply

    def begin_put(
        self, conn_id: int, priority: int, delay: int, ttr: int, size: int, now: float
    ) -> None:
        """A put line parsed and its body is still on its way.

        beanstalkd counts the put and creates the job (its id, its age) at this point; the
        job shows in ``stats-job`` as ``invalid`` until the body is complete. The
        :class:`~jackstalk.Put` (or ``EXPECTED_CRLF``) that follows completes it.
        """
        self._advance(now)
        conn = self._conns[conn_id]
        if conn.incoming is not None:
            raise RuntimeError(f"connection {conn_id} is already receiving a job")
        self._count(c.Put)
        self._set_producer(conn)
        job = _Job(self._new_id(), priority, delay, ttr, bytes(size), conn.use, now)
        conn.use.refs += 1
        self._jobs.add(job)
        conn.incoming = job

    def count(self, conn_id: int, command: type[c.Command]) -> None:
        """Count a command line in ``stats`` ahead of its reply.

        For a put whose body is too big: beanstalkd counts it when the line parses and
        answers ``JOB_TOO_BIG`` once the body has been read and thrown away. (The
        :class:`~jackstalk.Rejected` that comes then must not be counted again.)
        """
        if conn_id in self._conns:
            self._count(command)

    def job_state(self, job_id: int) -> str | None:
        """The job's state (``ready``, ``delayed``, ``reserved``, ``buried``, or ``invalid``
        while its body arrives), or None when there is no such job."""
        job = self._jobs.get(job_id)
        return None if job is None else job.state

    def cancel(self, conn_id: int, now: float) -> e.Event | None:
        """The client hung up (or half-closed) while its reserve waits: ``TIMED_OUT``.

        beanstalkd answers a waiting reserve that way as soon as it sees the hang-up.
        Returns ``None`` when the connection is not waiting.
        """
        self._advance(now)
        conn = self._conns.get(conn_id)
        if conn is None or not conn.waiting:
            return None
        self._stop_waiting(conn)
        return e.TimedOut()

    def waiting(self, conn_id: int) -> bool:
        """True while the connection's reserve waits for a job."""
        conn = self._conns.get(conn_id)
        return conn is not None and conn.waiting

    def tick(self, now: float) -> list[tuple[int, e.Event]]:
        """Let time pass up to ``now``; return the replies owed since the last call."""
        self._advance(now)
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do (``None``: not until a command)."""
        if self._outbox:
            return self._now
        return self._next_time()

    def tubes(self) -> list[str]:
        """The names of the tubes that exist, in ``list-tubes`` order."""
        return [tube.name for tube in self._tube_list]

    def drain(self) -> None:
        """Refuse new jobs from now on (``DRAINING``), as beanstalkd does after SIGUSR1."""
        self.draining = True

    # ------------------------------------------------------------------ time

    def _next_time(self) -> float | None:
        """When the next timed event is due (delay end, pause end, connection tick)."""
        at: float | None = None
        key = self._delayed.peek_key()
        if key is not None:
            at = key[0]
        if self._paused:
            pause = min(t.unpause_at for t in self._paused)
            if at is None or pause < at:
                at = pause
        key = self._ticks.peek_key()
        if key is not None and (at is None or key[0] < at):
            at = key[0]
        return at

    def _advance(self, now: float) -> None:
        """Play every timed event up to ``now``, in time order."""
        if now < self._now:
            now = self._now  # the clock must not go back; treat it as standing still
        while True:
            at = self._next_time()
            if at is None or at > now:
                break
            if at > self._now:
                self._now = at
            self._tick_once(self._now)
        self._now = now

    def _tick_once(self, now: float) -> None:
        # Jobs whose delay is over, soonest first (the heap's order).
        due: list[_Job] = []
        while True:
            job = self._delayed.peek()
            if job is None or job.deadline > now:
                break
            due.append(job)
            self._take_delayed(job)
        for job in due:
            self._enqueue(job, 0)
        # Pauses that are over, in tube list order.
        ended = sorted((t for t in self._paused if t.unpause_at <= now), key=lambda t: t.index)
        for tube in ended:
            self._unpause(tube)
            self._process_queue()
        # Connections: time-to-run over, deadline margin reached, reserve timed out.
        while True:
            key = self._ticks.peek_key()
            if key is None or key[0] > now:
                break
            conn = self._ticks.pop()
            assert conn is not None
            conn.tick_entry = None
            self._conn_timeout(conn, now)
            self._schedule(conn)

    def _conn_timeout(self, conn: _Conn, now: float) -> None:
        soon = conn.waiting and self._deadline_soon(conn, now)
        if soon:
            # Stop waiting first, so that a job whose time ran out is not handed straight
            # back to the client being told its time runs out.
            self._stop_waiting(conn)
        while True:
            job = conn.soonest()
            if job is None or job.deadline > now:
                break
            self._timeouts += 1
            job.bump(_TIMEOUTS)
            self._unreserve(conn, job)
            self._enqueue(job, 0)
        if soon:
            self._deliver(conn, e.DeadlineSoon())
        elif conn.waiting and conn.wait_until is not None and conn.wait_until <= now:
            self._stop_waiting(conn)
            self._deliver(conn, e.TimedOut())

    def _schedule(self, conn: _Conn) -> None:
        if conn.tick_entry is not None:
            self._ticks.remove(conn.tick_entry)
            conn.tick_entry = None
        at = None if conn.closed else conn.tick_at()
        if at is not None:
            conn.tick_entry = self._ticks.push((at, conn.id), conn)

    def _deadline_soon(self, conn: _Conn, now: float) -> bool:
        job = conn.soonest()
        return job is not None and now >= job.deadline - DEADLINE_MARGIN

    # ------------------------------------------------------------------ tubes

    def _tube(self, name: str) -> _Tube:
        tube = self._tubes.get(name)
        if tube is None:
            tube = _Tube(name, len(self._tube_list), self._jobs)
            self._tubes[name] = tube
            self._tube_list.append(tube)
        return tube

    def _unref(self, tube: _Tube) -> None:
        tube.refs -= 1
        if tube.refs > 0:
            return
        del self._tubes[tube.name]
        self._paused.discard(tube)
        self._hungry.discard(tube)
        tubes = self._tube_list
        index = tube.index
        _swap_remove(tubes, index)
        if index < len(tubes):
            tubes[index].index = index

    def _unpause(self, tube: _Tube) -> None:
        tube.pause = 0.0
        self._paused.discard(tube)

    # ------------------------------------------------------------------ job states

    def _reply_so_far(self) -> e.Event | None:
        """The reply that time or another job delivered to the command's own connection."""
        return self._current_reply

    def _deliver(self, conn: _Conn, reply: e.Event) -> None:
        if conn is self._current:
            self._current_reply = reply
        else:
            self._outbox.append((conn.id, reply))

    def _enqueue(self, job: _Job, delay: int) -> None:
        """Put a job in its tube's ready or delayed heap, then serve waiting reserves."""
        tube = job.tube
        if delay:
            # beanstalkd's clock (in nanoseconds) moves between any two commands, so of two
            # equal delays the one begun first ends first; here commands run together may
            # share one ``now``, and a float deadline far away cannot tell a microsecond:
            # the count of delays begun keeps beanstalkd's order.
            job.state = _DELAYED
            self._delays += 1
            delayed: _Key = (self._now + delay, self._delays, job.id)
            job.key = delayed
            tube.delayed.add(delayed)
            self._delayed.add(delayed)
        else:
            job.state = _READY
            ready: _Key = (job.priority, job.id)
            job.key = ready
            tube.ready.add(ready)
            self._ready += 1
            if job.priority < URGENT:
                self._urgent += 1
                tube.urgent += 1
        self._process_queue()

    def _take_ready(self, job: _Job) -> None:
        tube = job.tube
        key = job.key
        assert key is not None
        job.key = None
        tube.ready.discard(key)
        self._ready -= 1
        if job.priority < URGENT:
            self._urgent -= 1
            tube.urgent -= 1

    def _take_delayed(self, job: _Job) -> None:
        key = job.key
        assert key is not None
        job.key = None
        job.tube.delayed.discard(key)
        self._delayed.discard(key)

    def _take_buried(self, job: _Job) -> None:
        del job.tube.buried[job.id]
        self._buried -= 1

    def _bury(self, job: _Job) -> None:
        job.tube.buried[job.id] = job
        self._buried += 1
        job.state = _BURIED
        job.key = None
        job.bump(_BURIES)

    def _reserve(self, conn: _Conn, job: _Job) -> e.Event:
        job.tube.reserved += 1
        self._reserved += 1
        job.bump(_RESERVES)
        job.key = (self._now + job.ttr, job.id)
        job.state = _RESERVED
        conn.jobs[job.id] = job
        conn.wait_until = None
        self._schedule(conn)
        return e.Reserved(job.id, job.body)

    def _unreserve(self, conn: _Conn, job: _Job) -> None:
        del conn.jobs[job.id]
        job.tube.reserved -= 1
        self._reserved -= 1
        self._schedule(conn)

    def _free(self, job: _Job) -> None:
        self._jobs.remove(job)
        job.state = ""
        self._unref(job.tube)

    def _held_by(self, conn: _Conn, job_id: int) -> _Job | None:
        return conn.jobs.get(job_id)

    # ------------------------------------------------------------------ waiting reserves

    def _start_waiting(self, conn: _Conn, timeout: int) -> None:
        conn.waiting = True
        conn.wait_until = None if timeout < 0 else self._now + timeout
        self._waiting += 1
        for tube in conn.watch:
            tube.waiting.items.append(conn)
            self._hungry.add(tube)
        self._schedule(conn)

    def _stop_waiting(self, conn: _Conn) -> None:
        if not conn.waiting:
            return
        conn.waiting = False
        self._waiting -= 1
        for tube in conn.watch:
            items = tube.waiting.items
            if conn in items:  # not there any more when it was just taken from this tube
                tube.waiting.remove(conn)
            if not items:
                self._hungry.discard(tube)
        self._schedule(conn)

    def _process_queue(self) -> None:
        """Hand ready jobs to waiting reserves: the most urgent job first, across tubes."""
        now = self._now
        while self._hungry:
            best: _Job | None = None
            for tube in self._hungry:
                if tube.pause:
                    if tube.unpause_at > now:
                        continue
                    self._unpause(tube)
                if not tube.ready.size:
                    continue
                job = tube.ready.peek()
                assert job is not None
                if best is None or (job.priority, job.id) < (best.priority, best.id):
                    best = job
            if best is None:
                return
            self._take_ready(best)
            conn = best.tube.waiting.take()
            self._stop_waiting(conn)
            self._deliver(conn, self._reserve(conn, best))

    # ------------------------------------------------------------------ commands

    def _count(self, command: type[c.Command]) -> None:
        if command in self._cmd:
            self._cmd[command] += 1

    def _rejected(self, conn: _Conn, rejected: Rejected) -> e.Event:
        if isinstance(rejected.reply, e.ExpectedCrlf) and conn.incoming is not None:
            self._drop_incoming(conn)  # counted when its line parsed
        elif rejected.counted and rejected.command is not None:
            self._count(rejected.command)
            if isinstance(rejected.reply, e.ExpectedCrlf):
                # The line was good: beanstalkd made the job (using up an id) and marked
                # the connection a producer before it found the body's end missing.
                self._set_producer(conn)
                self._new_id()
        return rejected.reply

    def _new_id(self) -> int:
        job_id = self._next_job_id
        self._next_job_id += 1
        return job_id

    def _drop_incoming(self, conn: _Conn) -> None:
        job = conn.incoming
        assert job is not None
        conn.incoming = None
        self._free(job)

    def _set_producer(self, conn: _Conn) -> None:
        if not conn.producer:
            conn.producer = True
            self._producers += 1

    def _set_worker(self, conn: _Conn) -> None:
        if not conn.worker:
            conn.worker = True
            self._workers += 1

    def _put(self, conn: _Conn, cmd: c.Put) -> e.Event:
        job = conn.incoming
        if job is not None:  # its line came earlier (begin_put)
            conn.incoming = None
            job.body = cmd.body
        else:
            self._count(c.Put)
            self._set_producer(conn)
            job = _Job(
                self._new_id(), cmd.priority, cmd.delay, cmd.ttr, cmd.body, conn.use, self._now
            )
            conn.use.refs += 1
            self._jobs.add(job)
        if self.draining:
            self._free(job)
            return e.Draining()
        tube = job.tube
        job_id = job.id
        self._enqueue(job, job.delay)
        self._total_jobs += 1
        tube.total_jobs += 1
        return e.Inserted(job_id)

    def _reserve_cmd(self, conn: _Conn, cmd: c.Reserve | c.ReserveWithTimeout) -> e.Event | None:
        timeout = -1
        if isinstance(cmd, c.ReserveWithTimeout):
            timeout = cmd.timeout
        self._count(type(cmd))
        self._set_worker(conn)
        if self._deadline_soon(conn, self._now) and not any(t.ready.size for t in conn.watch):
            return e.DeadlineSoon()
        self._start_waiting(conn, timeout)
        self._process_queue()
        return self._reply_so_far()

    def _reserve_job(self, conn: _Conn, cmd: c.ReserveJob) -> e.Event:
        job = self._jobs.get(cmd.id)
        if job is None or job.state in (_RESERVED, _INVALID):
            return e.NotFound()
        if job.state == _READY:
            self._take_ready(job)
        elif job.state == _BURIED:
            self._take_buried(job)
        else:
            self._take_delayed(job)
        self._set_worker(conn)
        return self._reserve(conn, job)

    def _delete(self, conn: _Conn, cmd: c.Delete) -> e.Event:
        self._count(c.Delete)
        job = self._jobs.get(cmd.id)
        if job is None:
            return e.NotFound()
        if job.state == _RESERVED:
            if conn.jobs.get(job.id) is not job:
                return e.NotFound()
            self._unreserve(conn, job)
        elif job.state == _READY:
            self._take_ready(job)
        elif job.state == _BURIED:
            self._take_buried(job)
        elif job.state == _DELAYED:
            self._take_delayed(job)
        else:  # its body is still arriving
            return e.NotFound()
        job.tube.cmd_delete += 1
        self._free(job)
        return e.Deleted()

    def _release(self, conn: _Conn, cmd: c.Release) -> e.Event:
        self._count(c.Release)
        job = self._held_by(conn, cmd.id)
        if job is None:
            return e.NotFound()
        self._unreserve(conn, job)
        job.priority = cmd.priority
        job.delay = cmd.delay
        job.bump(_RELEASES)
        self._enqueue(job, cmd.delay)
        return e.Released()

    def _bury_cmd(self, conn: _Conn, cmd: c.Bury) -> e.Event:
        self._count(c.Bury)
        job = self._held_by(conn, cmd.id)
        if job is None:
            return e.NotFound()
        self._unreserve(conn, job)
        job.priority = cmd.priority
        self._bury(job)
        return e.Buried()

    def _touch(self, conn: _Conn, cmd: c.Touch) -> e.Event:
        self._count(c.Touch)
        job = self._held_by(conn, cmd.id)
        if job is None:
            return e.NotFound()
        job.key = (self._now + job.ttr, job.id)
        self._schedule(conn)
        return e.Touched()

    def _kick_one(self, job: _Job) -> None:
        if job.state == _BURIED:
            self._take_buried(job)
        else:
            self._take_delayed(job)
        job.bump(_KICKS)
        self._enqueue(job, 0)

    def _kick(self, conn: _Conn, cmd: c.Kick) -> e.Event:
        self._count(c.Kick)
        tube = conn.use
        kicked = 0
        if tube.buried:
            while kicked < cmd.bound and tube.buried:
                self._kick_one(next(iter(tube.buried.values())))
                kicked += 1
        else:
            while kicked < cmd.bound and tube.delayed.size:
                job = tube.delayed.peek()
                assert job is not None
                self._kick_one(job)
                kicked += 1
        return e.Kicked(kicked)

    def _kick_job(self, conn: _Conn, cmd: c.KickJob) -> e.Event:
        job = self._jobs.get(cmd.id)
        if job is None or job.state not in (_BURIED, _DELAYED):
            return e.NotFound()
        self._kick_one(job)
        return e.Kicked()

    def _found(self, job: _Job | None) -> e.Event:
        return e.NotFound() if job is None else e.Found(job.id, job.body)

    def _peek(self, conn: _Conn, cmd: c.Peek) -> e.Event:
        self._count(c.Peek)
        return self._found(self._jobs.get(cmd.id))

    def _peek_ready(self, conn: _Conn, cmd: c.PeekReady) -> e.Event:
        self._count(c.PeekReady)
        return self._found(conn.use.ready.peek())

    def _peek_delayed(self, conn: _Conn, cmd: c.PeekDelayed) -> e.Event:
        self._count(c.PeekDelayed)
        return self._found(conn.use.delayed.peek())

    def _peek_buried(self, conn: _Conn, cmd: c.PeekBuried) -> e.Event:
        self._count(c.PeekBuried)
        buried = conn.use.buried
        return self._found(next(iter(buried.values())) if buried else None)

    def _use(self, conn: _Conn, cmd: c.Use) -> e.Event:
        self._count(c.Use)
        tube = self._tube(cmd.tube)  # created (and listed) before the old one may go
        tube.refs += 1
        tube.using += 1
        old = conn.use
        old.using -= 1
        conn.use = tube
        self._unref(old)
        return e.Using(tube.name)

    def _watch(self, conn: _Conn, cmd: c.Watch) -> e.Event:
        self._count(c.Watch)
        tube = self._tube(cmd.tube)
        if tube not in conn.watch:
            conn.watch.append(tube)
            tube.watching += 1
            tube.refs += 1
        return e.Watching(len(conn.watch))

    def _ignore(self, conn: _Conn, cmd: c.Ignore) -> e.Event:
        self._count(c.Ignore)
        for index, tube in enumerate(conn.watch):
            if tube.name == cmd.tube:
                if len(conn.watch) < 2:
                    return e.NotIgnored()
                _swap_remove(conn.watch, index)
                tube.watching -= 1
                self._unref(tube)
                break
        return e.Watching(len(conn.watch))

    def _list_tubes(self, conn: _Conn, cmd: c.ListTubes) -> e.Event:
        self._count(c.ListTubes)
        return e.Ok(format_list(t.name for t in self._tube_list))

    def _list_tube_used(self, conn: _Conn, cmd: c.ListTubeUsed) -> e.Event:
        self._count(c.ListTubeUsed)
        return e.Using(conn.use.name)

    def _list_tubes_watched(self, conn: _Conn, cmd: c.ListTubesWatched) -> e.Event:
        self._count(c.ListTubesWatched)
        return e.Ok(format_list(t.name for t in conn.watch))

    def _pause_tube(self, conn: _Conn, cmd: c.PauseTube) -> e.Event:
        self._count(c.PauseTube)
        tube = self._tubes.get(cmd.tube)
        if tube is None:
            return e.NotFound()
        # beanstalkd pauses for at least a nanosecond, which in effect unpauses: its next
        # look at the tube is later than that. Here the clock may not move between two
        # commands, so such a pause is over at once (the next look at the tube ends it).
        tube.pause = float(cmd.delay) if cmd.delay else 1e-9
        tube.unpause_at = self._now + cmd.delay
        tube.cmd_pause += 1
        self._paused.add(tube)
        return e.Paused()

    def _quit(self, conn: _Conn, cmd: c.Quit) -> e.Closed:
        self.disconnect(conn.id)
        return e.Closed()

    # ------------------------------------------------------------------ statistics

    def _stats(self, conn: _Conn, cmd: c.Stats) -> e.Event:
        self._count(c.Stats)
        return e.Ok(self.stats())

    def _stats_tube(self, conn: _Conn, cmd: c.StatsTube) -> e.Event:
        self._count(c.StatsTube)
        tube = self._tubes.get(cmd.tube)
        if tube is None:
            return e.NotFound()
        left = _left(tube.unpause_at - self._now) if tube.pause else 0
        return e.Ok(
            format_dict(
                [
                    ("name", tube.name),
                    ("current-jobs-urgent", tube.urgent),
                    ("current-jobs-ready", tube.ready.size),
                    ("current-jobs-reserved", tube.reserved),
                    ("current-jobs-delayed", tube.delayed.size),
                    ("current-jobs-buried", len(tube.buried)),
                    ("total-jobs", tube.total_jobs),
                    ("current-using", tube.using),
                    ("current-watching", tube.watching),
                    ("current-waiting", len(tube.waiting.items)),
                    ("cmd-delete", tube.cmd_delete),
                    ("cmd-pause-tube", tube.cmd_pause),
                    ("pause", int(tube.pause)),
                    ("pause-time-left", left),
                ]
            )
        )

    def _stats_job(self, conn: _Conn, cmd: c.StatsJob) -> e.Event:
        self._count(c.StatsJob)
        job = self._jobs.get(cmd.id)
        if job is None:
            return e.NotFound()
        now = self._now
        counts = job.counts
        left = _left(job.deadline - now) if job.state in (_RESERVED, _DELAYED) else 0
        return e.Ok(
            format_dict(
                [
                    ("id", job.id),
                    ("tube", job.tube.name),
                    ("state", job.state),
                    ("pri", job.priority),
                    ("age", int(now - job.created)),
                    ("delay", job.delay),
                    ("ttr", job.ttr),
                    ("time-left", left),
                    ("file", 0),
                    ("reserves", counts[_RESERVES]),
                    ("timeouts", counts[_TIMEOUTS]),
                    ("releases", counts[_RELEASES]),
                    ("buries", counts[_BURIES]),
                    ("kicks", counts[_KICKS]),
                ]
            )
        )

    def stats(self) -> bytes:
        """The body of a ``stats`` reply, exactly as beanstalkd 1.12 lays it out."""
        user, system = self.process.rusage()
        info = self.process
        fields: list[tuple[str, int | float | bool | str]] = [
            ("current-jobs-urgent", self._urgent),
            ("current-jobs-ready", self._ready),
            ("current-jobs-reserved", self._reserved),
            ("current-jobs-delayed", self._delayed.size),
            ("current-jobs-buried", self._buried),
        ]
        fields += [(name, self._cmd[command]) for command, name in _COUNTED]
        fields += [
            ("job-timeouts", self._timeouts),
            ("total-jobs", self._total_jobs),
            ("max-job-size", self.max_job_size),
            ("current-tubes", len(self._tube_list)),
            ("current-connections", len(self._conns)),
            ("current-producers", self._producers),
            ("current-workers", self._workers),
            ("current-waiting", self._waiting),
            ("total-connections", self._total_conns),
            ("pid", info.pid),
            ("version", VERSION),
            ("rusage-utime", float(user)),
            ("rusage-stime", float(system)),
            ("uptime", int(self._now - self._started)),
            ("binlog-oldest-index", 0),
            ("binlog-current-index", 0),
            ("binlog-records-migrated", 0),
            ("binlog-records-written", 0),
            ("binlog-max-size", BINLOG_MAX_SIZE),
            ("draining", self.draining),
            ("id", self.instance_id),
            ("hostname", info.hostname),
            ("os", info.os),
            ("platform", info.platform),
        ]
        return format_dict(fields, quoted={"version"})


_Handler = Callable[[Engine, _Conn, c.Command], "e.Event | e.Closed | None"]
_HANDLERS: dict[type[c.Command], _Handler] = {
    c.Put: Engine._put,  # type: ignore[dict-item]
    c.Reserve: Engine._reserve_cmd,  # type: ignore[dict-item]
    c.ReserveWithTimeout: Engine._reserve_cmd,  # type: ignore[dict-item]
    c.ReserveJob: Engine._reserve_job,  # type: ignore[dict-item]
    c.Delete: Engine._delete,  # type: ignore[dict-item]
    c.Release: Engine._release,  # type: ignore[dict-item]
    c.Bury: Engine._bury_cmd,  # type: ignore[dict-item]
    c.Touch: Engine._touch,  # type: ignore[dict-item]
    c.Kick: Engine._kick,  # type: ignore[dict-item]
    c.KickJob: Engine._kick_job,  # type: ignore[dict-item]
    c.Peek: Engine._peek,  # type: ignore[dict-item]
    c.PeekReady: Engine._peek_ready,  # type: ignore[dict-item]
    c.PeekDelayed: Engine._peek_delayed,  # type: ignore[dict-item]
    c.PeekBuried: Engine._peek_buried,  # type: ignore[dict-item]
    c.Use: Engine._use,  # type: ignore[dict-item]
    c.Watch: Engine._watch,  # type: ignore[dict-item]
    c.Ignore: Engine._ignore,  # type: ignore[dict-item]
    c.ListTubes: Engine._list_tubes,  # type: ignore[dict-item]
    c.ListTubeUsed: Engine._list_tube_used,  # type: ignore[dict-item]
    c.ListTubesWatched: Engine._list_tubes_watched,  # type: ignore[dict-item]
    c.PauseTube: Engine._pause_tube,  # type: ignore[dict-item]
    c.Quit: Engine._quit,  # type: ignore[dict-item]
    c.Stats: Engine._stats,  # type: ignore[dict-item]
    c.StatsTube: Engine._stats_tube,  # type: ignore[dict-item]
    c.StatsJob: Engine._stats_job,  # type: ignore[dict-item]
}
