"""Several beanstalkd servers as one queue: puts spread over them, reserves from all of them.

beanstalkd has no replication, so a :class:`Cluster` is a client-side spread over
independent servers: each job lives on exactly one server, and the job it hands out names
that server (``job.server``). The rules that keep it honest:

* a put goes to another server only when nothing of it was sent (the connection was
  refused or timed out, the server is marked down, or it answered ``DRAINING``); a put
  whose bytes went out but whose reply never came has an unknown outcome and raises,
  naming the server, and is never sent again anywhere;
* a server that fails is skipped, then tried again after a capped exponential backoff;
* each server's connection is used once: after it breaks, a fresh client (a new
  connection) takes its place, so a job reserved on the old connection cannot be deleted,
  released, buried or touched through the new one by mistake (that raises
  :class:`JobLostError`).

A Cluster is for one thread (as a worker loop uses it); give each thread its own.

What every kind of cluster shares (the blocking one here, the asyncio and trio ones in
``async_cluster`` and ``trio_cluster``) is written once in :class:`Spread`: the servers and
their backoff, placement, what a failed put or job command means, the jobs' identity and
the stats' aggregate. The kinds add only their I/O.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar, overload

from jackstalk._api.base import Address
from jackstalk._api.errors import BodyDecodeError
from jackstalk._api.jobs import AsyncJob, BaseJob, Job, JobRef, id_of
from jackstalk._protocol import commands as c
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import (
    ArgumentTypeError,
    ConnectionClosedError,
    DrainingError,
    InvalidArgument,
    NotFoundError,
    NotIgnoredError,
    ProtocolError,
)
from jackstalk.transports.blocking import Client

__all__ = ["Cluster", "ClusterJob", "ClusterJobId", "ClusterStats", "JobLostError"]

_WAIT = 1
"""Seconds one idle wait (``reserve-with-timeout``) lasts on one server before the next
round of ``reserve-with-timeout 0`` over all of them: a job on any live server is found
within about this long, and an idle server sees about one command per second."""

_LISTED = frozenset(
    {
        "pid",
        "version",
        "hostname",
        "id",
        "os",
        "platform",
        "uptime",
        "draining",
        "binlog-oldest-index",
        "binlog-current-index",
        "binlog-max-size",
    }
)
"""Server stats that mean nothing summed: the aggregate lists them, one per live server."""

_LARGEST = frozenset({"max-job-size", "pause", "pause-time-left"})
"""Stats the aggregate takes the largest of."""


class JobLostError(ConnectionClosedError):
    """The connection that reserved a job is gone, so the job can no longer be deleted,
    released, buried or touched: the server put it back to ready when the connection
    closed (another worker will get it), or it went down with the server.

    ``server`` names the job's server and ``job_id`` is its id there.
    """

    def __init__(self, message: str, server: str, job_id: int) -> None:
        super().__init__(message)
        self.server = server
        self.job_id = job_id


class _NotSent(ConnectionClosedError):
    """Connecting failed, or the connection is already gone: nothing of the command was
    sent, so a put may safely go to another server."""


class _OneConnection(Client):
    """A client that opens its connection once and never silently reconnects: a job it
    reserved can only be acted on through the connection that holds it. After a failure,
    the cluster replaces the whole client."""

    _opened = False

    def _open(self) -> None:
        if self._opened:
            raise _NotSent(f"the connection to {self.address} is gone")
        self._opened = True
        try:
            super()._open()
        except Exception as error:
            raise _NotSent(f"cannot connect: {error}") from error


class ClusterJobId(NamedTuple):
    """Where a put job lives: its server's name and its id there (printed ``server/id``).

    Ids are per server, so only both together name a job.
    """

    server: str
    id: int

    def __str__(self) -> str:
        return f"{self.server}/{self.id}"


class ServerJob(BaseJob):
    """A job's identity in a cluster: its server and its id there. Equal only to the same
    id on the same server; printed ``server/id``."""

    __slots__ = ()
    server: str

    @property
    def ref(self) -> ClusterJobId:
        """This job's server and id."""
        return ClusterJobId(self.server, self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(server={self.server!r}, id={self.id}, body={self.body!r})"

    def __str__(self) -> str:
        return f"{self.server}/{self.id}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServerJob):
            return self.server == other.server and self.id == other.id
        if isinstance(other, BaseJob):
            return False  # a job of a plain client: no server to compare
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.server, self.id))


class ClusterJob(ServerJob, Job):
    """A job from a :class:`Cluster`: ``server`` names the server it lives on, and its
    shortcuts (``delete``, ``release``, ``bury``, ``touch`` ...) go to that server, over the
    connection that reserved it. Equal only to the same id on the same server; printed
    ``server/id``."""

    __slots__ = ("server",)

    def __init__(self, id: int, body: Any, client: _JobLink, server: str) -> None:  # noqa: A002
        Job.__init__(self, id, body, client)
        self.server = server


class AsyncClusterJob(ServerJob, AsyncJob):
    """A job from an :class:`AsyncCluster` or a :class:`TrioCluster`: as a
    :class:`ClusterJob`, with shortcuts to await."""

    __slots__ = ("server",)

    def __init__(self, id: int, body: Any, client: Any, server: str) -> None:  # noqa: A002
        AsyncJob.__init__(self, id, body, client)
        self.server = server


@dataclass
class ClusterStats:
    """Statistics of every server: ``total`` is the aggregate of the live ones (counters
    summed, ``max-job-size`` the largest, ``pid``, ``version``, ``hostname`` and the like
    as lists), ``servers`` each live server's own document, ``down`` each server that did
    not answer, with the reason."""

    total: dict[str, Any]
    servers: dict[str, dict[str, Any]]
    down: dict[str, str]


C = TypeVar("C")
"""The client type of a cluster's kind."""


@dataclass(eq=False)
class Member(Generic[C]):
    """One server: its name, its current client, and when to try it again after failures
    (``reservers``: the async clusters' connections for reserving)."""

    name: str
    address: tuple[str, int] | str
    client: C | None = None
    connected: bool = False
    failures: int = 0
    retry_at: float = 0.0
    reason: str = ""
    reservers: list[C] = field(default_factory=list)


_Member = Member[_OneConnection]


class _JobLink:
    """What a :class:`ClusterJob` acts through: the connection that reserved it (or, for a
    peeked job, any connection to its server)."""

    def __init__(self, cluster: Cluster, member: _Member, client: _OneConnection | None) -> None:
        self._cluster = cluster
        self._member = member
        self._client = client

    def _call(self, what: str, ref: JobRef, *args: Any) -> Any:
        member = self._member
        job = id_of(ref)
        if self._client is None:  # peeked: not held by a connection
            return self._cluster._on(member, lambda client: getattr(client, what)(job, *args))
        try:
            return getattr(self._client, what)(job, *args)
        except Exception as error:
            lost = job_lost(error, member, job, what)
            if lost is None:
                raise
            if member.client is self._client:
                self._cluster._fail(member, error)
            raise lost from error

    def delete(self, job: JobRef) -> None:
        self._call("delete", job)

    def release(self, job: JobRef, priority: int = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        self._call("release", job, priority, delay)

    def bury(self, job: JobRef, priority: int = c.DEFAULT_PRIORITY) -> None:
        self._call("bury", job, priority)

    def touch(self, job: JobRef) -> None:
        self._call("touch", job)

    def kick_job(self, job: JobRef) -> None:
        self._call("kick_job", job)

    def stats_job(self, job: JobRef) -> Any:
        return self._call("stats_job", job)


_PAST = {"delete": "deleted", "release": "released", "bury": "buried", "touch": "touched"}


def job_lost(error: Exception, member: Member[Any], job: int, what: str) -> JobLostError | None:
    """What ``error`` from ``what`` on a held job means: the :class:`JobLostError` to raise
    when the connection that reserved it is gone (the caller marks the server down), or
    ``None`` (the error, now naming the server, stands)."""
    if isinstance(error, _NotSent):
        return JobLostError(
            f"{member.name}/{job}: the connection that reserved it is gone, so it was"
            f" not {_PAST.get(what, what)}: the server put it back to ready, or it went"
            " down with the server",
            member.name,
            job,
        )
    if isinstance(error, OSError | ProtocolError):
        return JobLostError(
            f"{member.name}/{job}: the connection broke during {what}: its outcome is"
            " unknown, and the job is back to ready or gone with the server",
            member.name,
            job,
        )
    name_error(error, member)
    return None


def server_name(address: Address) -> str:
    """A server's name from its address as written: ``host:port`` (``[host]:port`` for
    IPv6), or the Unix socket's path."""
    if isinstance(address, tuple):
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return os.fspath(address)


def rendezvous(key: str | bytes, names: Iterable[str]) -> list[str]:
    """``names`` in the order a key prefers them (highest random weight first).

    The weight is a stable hash (BLAKE2b) of the key and the name, so every process agrees,
    and removing a server moves only the keys that preferred it.
    """
    data = key.encode("utf-8") if isinstance(key, str) else bytes(key)

    def weight(name: str) -> bytes:
        return hashlib.blake2b(data + b"\x00" + name.encode("utf-8"), digest_size=8).digest()

    return sorted(names, key=weight, reverse=True)


class Spread(Generic[C]):
    """What every kind of cluster shares, without I/O: the servers (:class:`Member`), their
    backoff, placement, what a failed put means, and the stats' aggregate. A kind supplies
    :meth:`_new_client` and the I/O."""

    _members: list[Member[C]]

    def __init__(
        self,
        addresses: Sequence[Address],
        *,
        names: Sequence[str] | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        **client_options: Any,
    ) -> None:
        addresses = list(addresses)
        if not addresses:
            raise InvalidArgument(f"a {type(self).__name__} needs at least one address")
        if names is None:
            names = [server_name(address) for address in addresses]
        else:
            names = list(names)
            if len(names) != len(addresses):
                raise InvalidArgument("names needs one name per address")
            given: list[object] = list(names)  # checked as what may arrive at run time
            if not all(isinstance(name, str) and name for name in given):
                raise ArgumentTypeError("server names must be non-empty strings")
        if len(set(names)) != len(names):
            raise InvalidArgument(f"server names must differ: {names}")
        if client_options.get("parse_yaml", True) is not True:
            raise InvalidArgument(f"a {type(self).__name__} adds up stats: parse_yaml must be True")
        self.backoff = _positive(backoff, "backoff")
        self.max_backoff = max(self.backoff, _positive(max_backoff, "max_backoff"))
        watch = client_options.pop("watch", "default")
        self._use: str = v.tube_name(client_options.pop("use", "default"))
        tubes = [watch] if isinstance(watch, str) else list(watch)
        if not tubes:
            raise InvalidArgument("watch needs at least one tube")
        self._watch = list(dict.fromkeys(v.tube_name(tube) for tube in tubes))
        self._options = client_options
        self._members = []
        for name, address in zip(names, addresses, strict=True):
            client = self._new_client(address)  # checks the address and options: no I/O
            self._members.append(Member(name, _address_of(client), client))
        self._by_name = {member.name: member for member in self._members}
        self._failing = 0
        """How many servers failed since their last success (and may be waiting out a
        backoff): while none did, every server is up, and a put skips the clock."""
        start = random.randrange(len(self._members))
        self._put_turn = start  # round robin from a random start
        self._reserve_turn = start
        self._wait_turn = start

    # ------------------------------------------------------------------ servers

    @property
    def servers(self) -> list[str]:
        """The servers' names, in the order given."""
        return [member.name for member in self._members]

    def down(self) -> dict[str, str]:
        """The servers now skipped after a failure, with the failure."""
        now = time.monotonic()
        return {m.name: m.reason for m in self._members if m.retry_at > now}

    def _new_client(self, address: Address) -> C:
        """A client of the kind for ``address``, with the cluster's tubes and options."""
        raise NotImplementedError

    def _up(self) -> list[Member[C]]:
        """The servers not waiting out a backoff (those whose backoff ended included)."""
        now = time.monotonic()
        return [member for member in self._members if member.retry_at <= now]

    def _mark_down(self, member: Member[C], error: BaseException) -> None:
        """Record ``member``'s failure: skip it for the (capped, doubling) backoff."""
        member.connected = False
        member.reason = f"{type(error).__name__}: {error}"
        wait = min(self.max_backoff, self.backoff * 2 ** min(member.failures, 30))
        if not member.failures:
            self._failing += 1
        member.failures += 1
        member.retry_at = time.monotonic() + wait

    def _ok(self, member: Member[C]) -> None:
        if member.failures:
            member.failures = 0
            member.reason = ""
            self._failing -= 1

    def _placement(self, key: str | bytes | None) -> list[Member[C]]:
        """The servers a put tries, in order: the next in the round robin over the live
        ones, then the others; for a key, its rendezvous order over all servers."""
        if key is not None:
            if not isinstance(key, str | bytes):
                raise ArgumentTypeError(f"key must be str or bytes, not {type(key).__name__}")
            order = rendezvous(key, self._by_name)
            return [self._by_name[name] for name in order]
        up = self._up() if self._failing else self._members
        if not up:
            return []
        turn = self._put_turn % len(up)
        self._put_turn += 1
        return up[turn:] + up[:turn] if turn else up

    def _put_failed(
        self, member: Member[C], error: Exception, skipped: list[str]
    ) -> tuple[bool, Exception | None]:
        """What a put's ``error`` on ``member`` means: whether to mark the server down, and
        the error to raise (``None``: nothing was sent, so the next server may take it; the
        reason is added to ``skipped``)."""
        if isinstance(error, _NotSent):
            skipped.append(f"{member.name} ({error})")
            return True, None
        if isinstance(error, DrainingError):
            skipped.append(f"{member.name} (draining)")
            return True, None
        if isinstance(error, OSError | ProtocolError):
            return True, _unknown(error, member)
        name_error(error, member)
        return False, error

    @staticmethod
    def _raise_failure(error: Exception, failure: Exception | None) -> None:
        """Raise the ``failure`` :meth:`_put_failed` gave for ``error`` (nothing when the
        put was not sent, and the next server may take it)."""
        if failure is error:
            raise error
        if failure is not None:
            raise failure from error

    def _taken_by_none(self, skipped: list[str]) -> ConnectionClosedError:
        return ConnectionClosedError(
            "no server took the put (nothing was sent): " + ("; ".join(skipped) or "none is up")
        )

    def _peek_member(self, job: ClusterJobId | ServerJob) -> Member[C]:
        member = self._by_name.get(job.server)
        if member is None:
            raise InvalidArgument(f"no server named {job.server!r} in this cluster")
        return member

    def _stats_of(
        self, servers: dict[str, dict[str, Any]], down: dict[str, str], tube: str | None
    ) -> ClusterStats:
        """The stats of the servers that answered and of those that are down, aggregated
        (``tube``: a tube's stats, which no live server having raises)."""
        result = ClusterStats(_aggregate(servers.values()), servers, down)
        if tube is not None:
            if not servers and not down:
                raise NotFoundError(f"no server has the tube {tube!r}")
            result.total["name"] = tube
        return result

    def _unwatch(self, tube: str) -> str:
        """Check that ``tube`` may be ignored and forget it; return its name."""
        tube = v.tube_name(tube)
        if self._watch == [tube]:
            raise NotIgnoredError(f"{tube!r} is the last watched tube")
        if tube in self._watch:
            self._watch.remove(tube)
        return tube

    def _towatch(self, tube: str) -> str:
        tube = v.tube_name(tube)
        if tube not in self._watch:
            self._watch.append(tube)
        return tube

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.servers!r})"


class Cluster(Spread[_OneConnection]):
    """A blocking client of several beanstalkd servers, spreading puts and reserving from
    all of them.

    ``addresses``: one per server, in any form :class:`Client` takes. ``names``: a name per
    server (default: its address as written); jobs carry it as ``job.server`` and keyed
    puts hash it, so give names when addresses may change. ``backoff``/``max_backoff``: a
    failed server is skipped for ``backoff`` seconds, doubling per failure up to
    ``max_backoff``, then tried again. Every other option (``use``, ``watch``, ``timeout``,
    ``connect_timeout``, ``encoding`` ...) is given to each server's :class:`Client`.
    """

    def _new_client(self, address: Address) -> _OneConnection:
        return _OneConnection(address, use=self._use, watch=self._watch, **self._options)

    def _client(self, member: _Member) -> _OneConnection:
        """The member's connected client, connecting a fresh one if needed; raises
        :class:`_NotSent` (and marks it down) when that fails."""
        client = member.client
        if client is None:
            client = member.client = self._new_client(member.address)
            member.connected = False
        if not member.connected:
            try:
                client.connect()
            except Exception as error:
                self._fail(member, error)
                if isinstance(error, _NotSent):
                    raise
                raise _NotSent(f"cannot connect: {error}") from error
            member.connected = True
        return client

    def _fail(self, member: _Member, error: BaseException) -> None:
        """Mark ``member`` down: drop its client and skip it for the backoff."""
        client = member.client
        member.client = None
        if client is not None:
            client.close()
        self._mark_down(member, error)

    def _broken(self, member: _Member, error: BaseException) -> None:
        """Mark ``member`` down after ``error``, unless connecting already did."""
        if member.client is not None:
            self._fail(member, error)

    def _on(self, member: _Member, call: Any) -> Any:
        """Run ``call(client)`` on ``member``; a broken connection marks it down and raises
        the error with the server named."""
        try:
            result = call(self._client(member))
        except (OSError, ProtocolError) as error:
            self._broken(member, error)
            name_error(error, member)
            raise
        except Exception as error:
            name_error(error, member)
            raise
        self._ok(member)
        return result

    # ------------------------------------------------------------------ putting

    def _put_somewhere(
        self, key: str | bytes | None, put: Any, skipped: list[str] | None = None
    ) -> tuple[_Member, Any]:
        """Run ``put(client)`` on the first server that takes it: a server that fails
        before anything was sent hands over to the next; after bytes were sent, raise.
        ``skipped``: servers already passed over, named in the error if none takes it."""
        if skipped is None:
            skipped = []
        # (While no server is failing, none waits out a backoff: the clock is not read.)
        now = time.monotonic() if self._failing else math.inf
        for member in self._placement(key):
            if member.retry_at > now:
                skipped.append(f"{member.name} (down: {member.reason})")
                continue
            try:
                client = member.client
                if client is None or not member.connected:
                    client = self._client(member)
                result = put(client)
            except Exception as error:
                self._settle_put_error(member, error, skipped)
                continue
            if member.failures:
                self._ok(member)
            return member, result
        raise self._taken_by_none(skipped)

    def _settle_put_error(self, member: _Member, error: Exception, skipped: list[str]) -> None:
        """A put on ``member`` failed with ``error``: mark the server down where the error
        says so, and raise unless nothing was sent (then ``skipped`` names the server, and
        the next one may take the put)."""
        down, failure = self._put_failed(member, error, skipped)
        if down:
            self._broken(member, error)
        self._raise_failure(error, failure)

    def put(
        self,
        body: Any,
        priority: int = c.DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = c.DEFAULT_TTR,
        *,
        key: str | bytes | None = None,
        tube: str | None = None,
    ) -> ClusterJobId:
        """Put a job into the used tube of one server and return where it went.

        Without ``key``, servers take turns; with one, the key's server takes it (jobs with
        one key stay on one server). A server that cannot be reached is passed over; a put
        sent whose reply did not come raises (:class:`TimeoutError`,
        :class:`ConnectionClosedError`, naming the server) and is not sent again.
        ``tube``: put into this tube, which is the cluster's tube in use afterwards. When it
        is not the tube in use already, every live server is told first (a ``use`` round trip
        each; a server that is down gets it when it comes back); when it is, nothing more is
        sent, so a producer naming the same tube on every put pays nothing for it.
        """
        if tube is not None:
            self._use_for_put(tube)
        skipped: list[str] = []
        if key is None and not self._failing:
            # The commonest case written out: no server failing, the next in turn connected.
            members = self._members
            member = members[self._put_turn % len(members)]
            client = member.client
            if client is not None and member.connected:
                self._put_turn += 1
                try:
                    return ClusterJobId(member.name, client.put(body, priority, delay, ttr))
                except Exception as error:
                    self._settle_put_error(member, error, skipped)  # (raises if it was sent)
        member, job_id = self._put_somewhere(
            key, lambda client: client.put(body, priority, delay, ttr), skipped
        )
        return ClusterJobId(member.name, job_id)

    def put_many(
        self,
        bodies: Iterable[Any],
        priority: int = c.DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = c.DEFAULT_TTR,
        *,
        key: str | bytes | None = None,
        tube: str | None = None,
    ) -> list[ClusterJobId]:
        """Put many jobs in one pipelined batch on one server (the next in turn, or the
        key's) and return where they went, in order. Fails over like :meth:`put`; ``tube``
        as there."""
        bodies = list(bodies)
        self._use_for_put(tube)
        member, job_ids = self._put_somewhere(
            key, lambda client: client.put_many(bodies, priority, delay, ttr)
        )
        return [ClusterJobId(member.name, job_id) for job_id in job_ids]

    # ------------------------------------------------------------------ tubes

    def _use_for_put(self, tube: str | None) -> None:
        """Make ``tube`` (a put's ``tube=``) the tube in use, when it is not already."""
        if tube is not None and v.tube_name(tube) != self._use:
            self.use(tube)

    def use(self, tube: str) -> str:
        """Use ``tube`` for later puts and peeks, on every server (those down get it when
        they come back); return its name."""
        tube = v.tube_name(tube)
        self._use = tube
        self._each(lambda client: client.use(tube))
        return tube

    def watch(self, tube: str) -> int:
        """Watch ``tube`` too, on every server; return how many tubes are watched."""
        tube = self._towatch(tube)
        self._each(lambda client: client.watch(tube))
        return len(self._watch)

    def ignore(self, tube: str) -> int:
        """Stop watching ``tube`` on every server; return how many tubes are still
        watched. Raises :class:`NotIgnoredError` for the last watched tube."""
        tube = self._unwatch(tube)
        self._each(lambda client: client.ignore(tube))
        return len(self._watch)

    def _each(self, call: Any) -> dict[str, Any]:
        """``call(client)`` on every live server; one that fails is marked down (and gets
        the cluster's tube state when it comes back). Returns the results by name."""
        results: dict[str, Any] = {}
        for member in self._up():
            try:
                results[member.name] = self._on(member, call)
            except (OSError, ProtocolError):
                continue
        return results

    def tubes(self) -> list[str]:
        """Every tube that exists on some live server."""
        found: dict[str, None] = {}
        for names in self._each(lambda client: client.tubes()).values():
            found.update(dict.fromkeys(names))
        return list(found)

    def kick(self, bound: int = 1) -> int:
        """Move up to ``bound`` jobs of the used tube to ready, over the live servers in
        turn; return how many moved."""
        left = v.u32(bound, "bound")
        moved = 0
        for member in self._up():
            if left == 0:
                break
            try:
                count: int = self._on(member, lambda client, left=left: client.kick(left))
            except (OSError, ProtocolError):
                continue
            moved += count
            left -= count
        return moved

    # ------------------------------------------------------------------ reserving

    def _job(self, member: _Member, job: Job, held_by: _OneConnection | None) -> ClusterJob:
        """The cluster's job for ``job`` of ``member``: held by the connection that
        reserved it, or (``None``) peeked."""
        return ClusterJob(job.id, job.body, _JobLink(self, member, held_by), member.name)

    def _reserve_on(self, member: _Member, wait: float) -> ClusterJob | None:
        """One reserve on ``member``; a failed server is marked down and yields ``None``
        (a reserve cut short leaves its job ready on the server: nothing is hidden)."""
        try:
            client = self._client(member)
        except _NotSent:
            return None
        try:
            job = client.reserve(timeout=wait)
        except BodyDecodeError as error:
            raw: Any = error.job
            raise BodyDecodeError(
                f"{member.name}: {error}", self._job(member, raw, client)
            ) from None
        except (OSError, ProtocolError) as error:
            self._broken(member, error)
            return None
        except Exception as error:
            name_error(error, member)
            raise
        self._ok(member)
        return None if job is None else self._job(member, job, client)

    @overload
    def reserve(self, timeout: None = None) -> ClusterJob: ...
    @overload
    def reserve(self, timeout: float) -> ClusterJob | None: ...
    def reserve(self, timeout: float | None = None) -> ClusterJob | None:
        """Reserve the first job ready on any live server: a :class:`ClusterJob`, or ``None``
        if ``timeout`` seconds passed (``None``: wait as long as it takes).

        It asks each live server for a ready job (``reserve-with-timeout 0``), then waits up
        to a second on one of them, a different one each round: no busy polling, a job on
        any server is found within about a second, and a dead or empty server never holds
        up the others.
        """
        deadline = deadline_of(timeout)
        self._reserve_turn += 1
        while True:
            for member in rotated(self._up(), self._reserve_turn):
                job = self._reserve_on(member, 0)
                if job is not None:
                    return job
            now = time.monotonic()
            left = math.inf if deadline is None else deadline - now
            if left <= 0:
                return None
            up = self._up()
            if not up:
                # Every server is down: wait for the first backoff to end (or the deadline).
                retry = min(member.retry_at for member in self._members)
                time.sleep(max(0.0, min(retry - now, left)))
                continue
            self._wait_turn += 1
            member = up[self._wait_turn % len(up)]
            job = self._reserve_on(member, min(_WAIT, left))
            if job is not None:
                return job

    # ------------------------------------------------------------------ looking

    def _first(self, call: Any) -> ClusterJob | None:
        for member in self._up():
            try:
                job = self._on(member, call)
            except (OSError, ProtocolError):
                continue
            if job is not None:
                return self._job(member, job, None)
        return None

    def peek(self, job: ClusterJobId | ClusterJob) -> ClusterJob | None:
        """Look at a job on its server without reserving it; ``None`` if there is none."""
        member = self._peek_member(job)
        found: Job | None = self._on(member, lambda client: client.peek(job.id))
        return None if found is None else self._job(member, found, None)

    def peek_ready(self) -> ClusterJob | None:
        """A ready job of the used tube on the first live server that has one, or ``None``
        (priorities order jobs only within one server)."""
        return self._first(lambda client: client.peek_ready())

    def peek_delayed(self) -> ClusterJob | None:
        """A delayed job of the used tube on the first live server that has one, or
        ``None``."""
        return self._first(lambda client: client.peek_delayed())

    def peek_buried(self) -> ClusterJob | None:
        """A buried job of the used tube on the first live server that has one, or
        ``None``."""
        return self._first(lambda client: client.peek_buried())

    # ------------------------------------------------------------------ stats

    def _gather(self, call: Any, tube: str | None) -> ClusterStats:
        servers: dict[str, dict[str, Any]] = {}
        down: dict[str, str] = {}
        now = time.monotonic()
        for member in self._members:
            if member.retry_at > now:
                down[member.name] = member.reason
                continue
            try:
                servers[member.name] = self._on(member, call)
            except NotFoundError:
                if tube is None:
                    raise
            except (OSError, ProtocolError):
                down[member.name] = member.reason
        return self._stats_of(servers, down, tube)

    def stats(self) -> ClusterStats:
        """Every server's statistics, their aggregate, and the servers that are down."""
        return self._gather(lambda client: client.stats(), None)

    def stats_tube(self, tube: str) -> ClusterStats:
        """One tube's statistics summed over the live servers (a server without the tube
        counts as zero); raises :class:`NotFoundError` if no live server has it."""
        tube = v.tube_name(tube)
        return self._gather(lambda client: client.stats_tube(tube), tube)

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close every connection; jobs reserved through them go back to ready."""
        for member in self._members:
            if member.client is not None:
                member.client.close()
            member.connected = False
            member.client = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def deadline_of(timeout: float | None) -> float | None:
    """A reserve's deadline (``time.monotonic``) for its checked ``timeout``."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ArgumentTypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not 0 <= timeout <= v.RESERVE_TIMEOUT_MAX:
        raise InvalidArgument(f"timeout must be between 0 and {v.RESERVE_TIMEOUT_MAX}")
    return time.monotonic() + timeout


def _address_of(client: object) -> tuple[str, int] | str:
    address: tuple[str, int] | str = getattr(client, "address")  # noqa: B009 - any kind's
    return address


def rotated(items: list[Member[C]], turn: int) -> Iterator[Member[C]]:
    if items:
        start = turn % len(items)
        yield from items[start:]
        yield from items[:start]


def _aggregate(documents: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counters summed, the largest of ``_LARGEST``, lists of the rest (see ``_LISTED``)."""
    total: dict[str, Any] = {}
    for document in documents:
        for name, value in document.items():
            if name in _LISTED or isinstance(value, str | bool) or value is None:
                total.setdefault(name, []).append(value)
            elif name in _LARGEST:
                total[name] = max(total.get(name, value), value)
            else:
                total[name] = total.get(name, 0) + value
    return total


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentTypeError(f"{what} must be a number of seconds, not {type(value).__name__}")
    if not 0 < value < math.inf:
        raise InvalidArgument(f"{what} must be above 0 seconds, got {value}")
    return float(value)


def name_error(error: BaseException, member: Member[Any]) -> None:
    """Say which server an error came from (as a note, shown with the traceback)."""
    error.add_note(f"server: {member.name}")


def _unknown(error: BaseException, member: Member[Any]) -> Exception:
    """The error for a put whose bytes were sent but whose reply did not come: its kind
    kept (:class:`TimeoutError`, :class:`ConnectionClosedError`), the server named."""
    message = (
        f"{member.name}: the put was sent but its reply did not come ({error}): it may or may"
        " not be stored there, and it was not sent anywhere else"
    )
    unknown: Exception
    if isinstance(error, TimeoutError):
        unknown = TimeoutError(message)
    elif isinstance(error, ProtocolError):
        unknown = ProtocolError(message)
    else:
        unknown = ConnectionClosedError(message)
    name_error(unknown, member)
    return unknown
