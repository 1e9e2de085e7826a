"""Several beanstalkd servers as one queue, for asyncio (:class:`AsyncCluster`); the logic
both async clusters share (:class:`AsyncSpread`), with trio's in ``trio_cluster``.

The contract is the blocking :class:`Cluster`'s (placement, failover, backoff, job identity
and stats come from the same :class:`Spread`), with two differences that concurrency buys:

* each server has one connection for commands (puts, stats, peeks, tubes) and its own
  connections for reserving, so a put never waits behind a reserve;
* a reserve asks each live server for a ready job (``reserve-with-timeout 0``) in turn, then
  waits on every live server at once and takes the first job that comes: no polling at all.
  The waits that lose are cancelled, which closes their connections (held no job), so a
  job the server reserved for one of them goes back to ready at once, with its priority.
  A job that came while another was handed out is given back the same way. Jobs are only
  ever held by a reserving connection that waits on nothing, so closing one never loses a
  job that was handed out.

A library supplies its connection class, a sleep, and how to race the waits
(:meth:`AsyncSpread._race`); everything else is here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Self, overload

from jackstalk._api.async_transport import AsyncTransport
from jackstalk._api.base import Address
from jackstalk._api.errors import BodyDecodeError
from jackstalk._api.jobs import AsyncJob, JobRef, id_of
from jackstalk._app.cluster import (
    AsyncClusterJob,
    ClusterJobId,
    ClusterStats,
    Member,
    Spread,
    _NotSent,
    deadline_of,
    job_lost,
    name_error,
    rotated,
)
from jackstalk._protocol import commands as c
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import NotFoundError, ProtocolError
from jackstalk.transports.asyncio import AsyncClient

__all__ = ["AsyncCluster", "AsyncSpread", "OneConnection"]

_ROUND = 10.0
"""Longest wait (seconds) of one round of waits on every live server: a server whose
backoff ends rejoins the waits by the next round (sooner: a round ends when a backoff does)."""

_ERRORS = (OSError, ProtocolError)
"""What marks a server down: its connection failed, or it spoke out of turn."""


class OneConnection(AsyncTransport):
    """A mixin for an async client that opens its connection once and never silently
    reconnects, so a job it reserved can only be acted on through the connection that holds
    it. ``held``: jobs reserved through it and not yet deleted, released or buried;
    ``busy``: a reserve of the cluster's waits on it."""

    _opened = False
    held = 0
    busy = False

    async def _open(self) -> None:
        if self._opened:
            raise _NotSent(f"the connection to {self.address} is gone")
        self._opened = True
        try:
            await super()._open()
        except Exception as error:
            raise _NotSent(f"cannot connect: {error}") from error


class _AsyncOne(OneConnection, AsyncClient):
    """The asyncio client, connected once."""


class _JobLink:
    """What an :class:`AsyncClusterJob` acts through: the connection that reserved it (or,
    for a peeked job, the server's command connection)."""

    def __init__(
        self, cluster: AsyncSpread, member: Member[OneConnection], client: OneConnection | None
    ) -> None:
        self._cluster = cluster
        self._member = member
        self._client = client
        self._settled = client is None

    def _settle(self) -> None:
        """The job is no longer held (deleted, released, buried or lost)."""
        if not self._settled:
            self._settled = True
            assert self._client is not None
            self._client.held -= 1

    async def _call(self, what: str, ref: JobRef, *args: Any) -> Any:
        member = self._member
        job = id_of(ref)
        client = self._client
        if client is None:  # peeked: not held by a connection
            return await self._cluster._on(member, lambda c: getattr(c, what)(job, *args))
        try:
            result = await getattr(client, what)(job, *args)
        except Exception as error:
            lost = job_lost(error, member, job, what)
            if lost is None:
                if what in _SETTLING and isinstance(error, NotFoundError):
                    self._settle()  # (its time ran out: the server took it back)
                raise
            self._settle()
            await self._cluster._drop(member, client)
            raise lost from error
        if what in _SETTLING:
            self._settle()
        return result

    async def delete(self, job: JobRef) -> None:
        await self._call("delete", job)

    async def release(
        self, job: JobRef, priority: int = c.DEFAULT_PRIORITY, delay: int = 0
    ) -> None:
        await self._call("release", job, priority, delay)

    async def bury(self, job: JobRef, priority: int = c.DEFAULT_PRIORITY) -> None:
        await self._call("bury", job, priority)

    async def touch(self, job: JobRef) -> None:
        await self._call("touch", job)

    async def kick_job(self, job: JobRef) -> None:
        await self._call("kick_job", job)

    async def stats_job(self, job: JobRef) -> Any:
        return await self._call("stats_job", job)


_SETTLING = frozenset({"delete", "release", "bury"})


class AsyncSpread(Spread[OneConnection]):
    """An async client of several beanstalkd servers (see the module docstring); a library
    supplies :meth:`_new_client`, :meth:`_sleep` and :meth:`_race`."""

    # ------------------------------------------------------------------ the library's part

    async def _sleep(self, seconds: float) -> None:
        raise NotImplementedError

    async def _race(
        self, calls: list[Callable[[], Awaitable[AsyncClusterJob | None]]]
    ) -> tuple[list[AsyncClusterJob], list[Exception]]:
        """Run ``calls`` at once until one returns a job or raises, then cancel the others;
        return the jobs they returned (first come first) and what they raised. Cancelled
        itself, it gives back every job that came (:meth:`_give_back`) before it goes on."""
        raise NotImplementedError

    # ------------------------------------------------------------------ connections

    async def _client(self, member: Member[OneConnection]) -> OneConnection:
        """The member's connected command client, connecting a fresh one if needed;
        raises :class:`_NotSent` (and marks it down) when that fails."""
        client = member.client
        if client is None:
            client = member.client = self._new_client(member.address)
            member.connected = False
        if not member.connected:
            try:
                await client.connect()
            except Exception as error:
                await self._fail(member, error)
                if isinstance(error, _NotSent):
                    raise
                raise _NotSent(f"cannot connect: {error}") from error
            member.connected = True
        return client

    async def _reserver(self, member: Member[OneConnection]) -> OneConnection:
        """A connection of the member's that holds no job and waits on nothing, connected
        (a new one if there is none); raises :class:`_NotSent` (and marks it down)."""
        for client in member.reservers:
            if not client.held and not client.busy:
                return client
        client = self._new_client(member.address)
        try:
            await client.connect()
        except Exception as error:
            await client.close()
            await self._fail(member, error)
            if isinstance(error, _NotSent):
                raise
            raise _NotSent(f"cannot connect: {error}") from error
        member.reservers.append(client)
        return client

    async def _drop(self, member: Member[OneConnection], client: OneConnection) -> None:
        """Close a reserving connection and forget it (jobs it held go back to ready)."""
        if client in member.reservers:
            member.reservers.remove(client)
        await client.close()  # (no checkpoint: it also runs in a cancelled task)

    async def _fail(self, member: Member[OneConnection], error: BaseException) -> None:
        """Mark ``member`` down: drop its command client and its idle reserving ones (those
        holding jobs stay: their jobs answer for themselves), skip it for the backoff."""
        client = member.client
        member.client = None
        if client is not None:
            await client.close()
        for reserver in list(member.reservers):
            if not reserver.held and not reserver.busy:
                await self._drop(member, reserver)
        self._mark_down(member, error)

    async def _on(self, member: Member[OneConnection], call: Any) -> Any:
        """Await ``call(client)`` on ``member``'s command client; a broken connection
        marks it down and raises the error with the server named."""
        try:
            result = await call(await self._client(member))
        except _ERRORS as error:
            if member.client is not None:
                await self._fail(member, error)
            name_error(error, member)
            raise
        except Exception as error:
            name_error(error, member)
            raise
        self._ok(member)
        return result

    # ------------------------------------------------------------------ putting

    async def _put_somewhere(
        self, key: str | bytes | None, put: Callable[[OneConnection], Awaitable[Any]]
    ) -> tuple[Member[OneConnection], Any]:
        skipped: list[str] = []
        # (While no server is failing, none waits out a backoff: the clock is not read.)
        now = time.monotonic() if self._failing else math.inf
        for member in self._placement(key):
            if member.retry_at > now:
                skipped.append(f"{member.name} (down: {member.reason})")
                continue
            try:
                result = await put(await self._client(member))
            except Exception as error:
                down, failure = self._put_failed(member, error, skipped)
                if down and member.client is not None:
                    await self._fail(member, error)
                self._raise_failure(error, failure)
                continue
            except BaseException as error:
                # Cancelled (a deadline of the caller's) while the put was on its way: its
                # outcome is unknown, and the server answered too slowly: skip it a while.
                if member.client is not None:
                    await self._fail(member, error)
                name_error(error, member)
                raise
            if member.failures:
                self._ok(member)
            return member, result
        raise self._taken_by_none(skipped)

    async def put(
        self,
        body: Any,
        priority: int = c.DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = c.DEFAULT_TTR,
        *,
        key: str | bytes | None = None,
        tube: str | None = None,
    ) -> ClusterJobId:
        """Put a job into the used tube of one server and return where it went (see
        :meth:`Cluster.put`, ``tube`` included). Cancelled after it was sent (a deadline),
        the put's outcome is unknown: the server is skipped for its backoff and the
        cancellation goes on."""
        await self._use_for_put(tube)
        member, job_id = await self._put_somewhere(
            key, lambda client: client.put(body, priority, delay, ttr)
        )
        return ClusterJobId(member.name, job_id)

    async def put_many(
        self,
        bodies: Iterable[Any],
        priority: int = c.DEFAULT_PRIORITY,
        delay: int = 0,
        ttr: int = c.DEFAULT_TTR,
        *,
        key: str | bytes | None = None,
        tube: str | None = None,
    ) -> list[ClusterJobId]:
        """Put many jobs in one pipelined batch on one server (see :meth:`Cluster.put_many`)."""
        bodies = list(bodies)
        await self._use_for_put(tube)
        member, job_ids = await self._put_somewhere(
            key, lambda client: client.put_many(bodies, priority, delay, ttr)
        )
        return [ClusterJobId(member.name, job_id) for job_id in job_ids]

    # ------------------------------------------------------------------ tubes

    async def _each(self, call: Any, reservers: bool = False) -> dict[str, Any]:
        """``call(client)`` on every live server (and on its reserving connections too);
        one that fails is marked down. Returns the command clients' results by name."""
        results: dict[str, Any] = {}
        for member in self._up():
            try:
                results[member.name] = await self._on(member, call)
            except _ERRORS:
                continue
            if reservers:
                for client in list(member.reservers):
                    if client.busy:
                        continue  # (a concurrent reserve: it gets the tubes when it reconnects)
                    try:
                        await call(client)
                    except _ERRORS:
                        await self._drop(member, client)
        return results

    async def _use_for_put(self, tube: str | None) -> None:
        """Make ``tube`` (a put's ``tube=``) the tube in use, when it is not already."""
        if tube is not None and v.tube_name(tube) != self._use:
            await self.use(tube)

    async def use(self, tube: str) -> str:
        """Use ``tube`` for later puts and peeks, on every server; return its name."""
        tube = v.tube_name(tube)
        self._use = tube
        await self._each(lambda client: client.use(tube))
        return tube

    async def watch(self, tube: str) -> int:
        """Watch ``tube`` too, on every server; return how many tubes are watched."""
        tube = self._towatch(tube)
        await self._each(lambda client: client.watch(tube), reservers=True)
        return len(self._watch)

    async def ignore(self, tube: str) -> int:
        """Stop watching ``tube`` on every server; return how many are still watched."""
        tube = self._unwatch(tube)
        await self._each(lambda client: client.ignore(tube), reservers=True)
        return len(self._watch)

    async def tubes(self) -> list[str]:
        """Every tube that exists on some live server."""
        found: dict[str, None] = {}
        for names in (await self._each(lambda client: client.tubes())).values():
            found.update(dict.fromkeys(names))
        return list(found)

    async def kick(self, bound: int = 1) -> int:
        """Move up to ``bound`` jobs of the used tube to ready, over the live servers in
        turn; return how many moved."""
        left = v.u32(bound, "bound")
        moved = 0
        for member in self._up():
            if left == 0:
                break
            try:
                count: int = await self._on(member, lambda client, left=left: client.kick(left))
            except _ERRORS:
                continue
            moved += count
            left -= count
        return moved

    # ------------------------------------------------------------------ reserving

    def _job(
        self, member: Member[OneConnection], job: AsyncJob, held_by: OneConnection | None
    ) -> AsyncClusterJob:
        if held_by is not None:
            held_by.held += 1
        return AsyncClusterJob(job.id, job.body, _JobLink(self, member, held_by), member.name)

    async def _give_back(self, job: AsyncClusterJob) -> None:
        """Close the connection holding ``job`` (it holds no other): the server puts the
        job back to ready at once, with its priority."""
        link = job.client
        assert isinstance(link, _JobLink) and link._client is not None
        link._settle()
        await self._drop(link._member, link._client)

    async def _reserve_on(
        self, member: Member[OneConnection], wait: float
    ) -> AsyncClusterJob | None:
        """One reserve on a reserving connection of ``member``; a failed server is marked
        down and yields ``None``. Cut off, the connection is closed (as the clients do), so
        no job stays reserved for a reserve that is gone."""
        try:
            client = await self._reserver(member)
        except _NotSent:
            return None
        client.busy = True
        try:
            job = await client.reserve(timeout=wait)
        except BodyDecodeError as error:
            raw: Any = error.job
            raise BodyDecodeError(
                f"{member.name}: {error}", self._job(member, raw, client)
            ) from None
        except _ERRORS as error:
            await self._drop(member, client)
            await self._fail(member, error)
            return None
        except BaseException as error:
            await self._drop(member, client)
            if isinstance(error, Exception):
                name_error(error, member)
            raise
        finally:
            client.busy = False
        self._ok(member)
        return None if job is None else self._job(member, job, client)

    @overload
    async def reserve(self, timeout: None = None) -> AsyncClusterJob: ...  # noqa: ASYNC109
    @overload
    async def reserve(self, timeout: float) -> AsyncClusterJob | None: ...  # noqa: ASYNC109
    async def reserve(self, timeout: float | None = None) -> AsyncClusterJob | None:  # noqa: ASYNC109
        """Reserve the first job ready on any live server, or ``None`` if ``timeout``
        seconds passed (``None``: wait as long as it takes).

        It asks each live server for a ready job in turn, then waits on all of them at once
        (one ``reserve-with-timeout`` each) and takes the first that comes; the other waits
        are cut off, and a job that came meanwhile goes back to ready at once. Cancelled, it
        leaves no job reserved.
        """
        deadline = deadline_of(timeout)
        self._reserve_turn += 1
        waited: set[str] = set()  # the servers the last round of waits covered
        while True:
            for member in rotated(self._up(), self._reserve_turn):
                if member.name in waited:
                    continue
                job = await self._reserve_on(member, 0)
                if job is not None:
                    return job
            now = time.monotonic()
            left = math.inf if deadline is None else deadline - now
            if left <= 0:
                return None
            up = self._up()
            retry = [m.retry_at - now for m in self._members if m.retry_at > now]
            if not up:
                await self._sleep(min([*retry, left]))
                continue
            wait = min([*retry, left, _ROUND])
            calls = [_bind(self._reserve_on, member, wait) for member in up]
            waited = {member.name for member in up}
            jobs, errors = await self._race(calls)
            for extra in jobs[1:]:
                await self._give_back(extra)
            if jobs:
                if errors:
                    await self._give_back(jobs[0])
                    raise errors[0]
                return jobs[0]
            if errors:
                raise errors[0]

    # ------------------------------------------------------------------ looking

    async def _first(self, call: Any) -> AsyncClusterJob | None:
        for member in self._up():
            try:
                job = await self._on(member, call)
            except _ERRORS:
                continue
            if job is not None:
                return self._job(member, job, None)
        return None

    async def peek(self, job: ClusterJobId | AsyncClusterJob) -> AsyncClusterJob | None:
        """Look at a job on its server without reserving it; ``None`` if there is none."""
        member = self._peek_member(job)
        found: AsyncJob | None = await self._on(member, lambda client: client.peek(job.id))
        return None if found is None else self._job(member, found, None)

    async def peek_ready(self) -> AsyncClusterJob | None:
        """A ready job of the used tube on the first live server that has one, or ``None``."""
        return await self._first(lambda client: client.peek_ready())

    async def peek_delayed(self) -> AsyncClusterJob | None:
        """A delayed job of the used tube on the first live server that has one, or ``None``."""
        return await self._first(lambda client: client.peek_delayed())

    async def peek_buried(self) -> AsyncClusterJob | None:
        """A buried job of the used tube on the first live server that has one, or ``None``."""
        return await self._first(lambda client: client.peek_buried())

    # ------------------------------------------------------------------ stats

    async def _gather(self, call: Any, tube: str | None) -> ClusterStats:
        servers: dict[str, dict[str, Any]] = {}
        down: dict[str, str] = {}
        now = time.monotonic()
        for member in self._members:
            if member.retry_at > now:
                down[member.name] = member.reason
                continue
            try:
                servers[member.name] = await self._on(member, call)
            except NotFoundError:
                if tube is None:
                    raise
            except _ERRORS:
                down[member.name] = member.reason
        return self._stats_of(servers, down, tube)

    async def stats(self) -> ClusterStats:
        """Every server's statistics, their aggregate, and the servers that are down."""
        return await self._gather(lambda client: client.stats(), None)

    async def stats_tube(self, tube: str) -> ClusterStats:
        """One tube's statistics summed over the live servers (see :meth:`Cluster.stats_tube`)."""
        tube = v.tube_name(tube)
        return await self._gather(lambda client: client.stats_tube(tube), tube)

    # ------------------------------------------------------------------ closing

    async def close(self) -> None:
        """Close every connection; jobs reserved through them go back to ready."""
        for member in self._members:
            if member.client is not None:
                await member.client.close()
            member.connected = False
            member.client = None
            for client in list(member.reservers):
                await self._drop(member, client)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _bind(
    reserve_on: Callable[[Member[OneConnection], float], Awaitable[AsyncClusterJob | None]],
    member: Member[OneConnection],
    wait: float,
) -> Callable[[], Awaitable[AsyncClusterJob | None]]:
    return lambda: reserve_on(member, wait)


class AsyncCluster(AsyncSpread):
    """An asyncio client of several beanstalkd servers: :class:`Cluster`'s methods, awaited.

    Options as :class:`Cluster`'s, given to each server's :class:`AsyncClient` (which has no
    ``timeout``: use ``asyncio.timeout()``). Puts and reserves may run in different tasks.
    """

    def _new_client(self, address: Address) -> OneConnection:
        return _AsyncOne(address, use=self._use, watch=self._watch, **self._options)

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _race(
        self, calls: list[Callable[[], Awaitable[AsyncClusterJob | None]]]
    ) -> tuple[list[AsyncClusterJob], list[Exception]]:
        jobs: list[AsyncClusterJob] = []
        errors: list[Exception] = []
        tasks: list[asyncio.Task[None]] = []

        def stop() -> None:
            current = asyncio.current_task()
            for task in tasks:
                if task is not current:
                    task.cancel()

        async def run(call: Callable[[], Awaitable[AsyncClusterJob | None]]) -> None:
            try:
                job = await call()
            except Exception as error:
                errors.append(error)
                stop()
                return
            if job is not None:
                jobs.append(job)
                stop()

        tasks.extend(asyncio.ensure_future(run(call)) for call in calls)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            for job in jobs:
                await self._give_back(job)
            raise
        return jobs, errors
