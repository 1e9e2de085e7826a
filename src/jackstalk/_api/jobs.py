"""Jobs as the clients hand them out, and the client each acts through; no I/O.

A job's shortcuts (``job.delete()`` ...) call the client that reserved it. That client is
typed here by the few methods a job uses (:class:`SyncJobClient`, :class:`AsyncJobClient`),
so this module needs nothing from the modules that define the clients.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal, Protocol, TypeAlias

from jackstalk._api.stats import JobStats
from jackstalk._protocol import commands as c

__all__ = [
    "KEEP",
    "AsyncJob",
    "AsyncJobClient",
    "BaseJob",
    "Job",
    "JobRef",
    "Keep",
    "SyncJobClient",
    "id_of",
]


class Keep(enum.Enum):
    """The type of ``KEEP``: ``job.release(priority=KEEP)`` and ``job.bury(priority=KEEP)``
    keep the job's own priority, at the cost of one ``stats-job`` round trip (beanstalkd's
    RESERVED reply carries no priority, so the client does not know it otherwise)."""

    KEEP = "KEEP"

    def __repr__(self) -> str:
        return "jackstalk.KEEP"


KEEP: Final = Keep.KEEP
"""``job.release(priority=KEEP)``, ``job.bury(priority=KEEP)``: keep the job's own priority.

beanstalkd's RESERVED reply carries no priority, so the client does not know it: KEEP costs
one ``stats-job`` round trip before the release or bury (only when asked for). Without it
the job gets the priority given, by default :data:`DEFAULT_PRIORITY`.
"""

Priority: TypeAlias = "int | Literal[Keep.KEEP]"
"""A priority a job's shortcuts take: a number, or :data:`KEEP`."""


class BaseJob:
    """A job as the server handed it out: its ``id`` and its ``body``.

    ``body`` is ``str`` when the client has an encoding and ``bytes`` when ``encoding=None``.
    """

    __slots__ = ("body", "id")

    def __init__(self, id: int, body: Any) -> None:  # noqa: A002 - the protocol's name
        self.id = id
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id}, body={self.body!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseJob):
            return NotImplemented
        return self.id == other.id and self.body == other.body

    def __hash__(self) -> int:
        return hash(self.id)


JobRef: TypeAlias = "int | BaseJob"
"""A job, or its id."""


def id_of(job: JobRef) -> int:
    """The id of a job given as a job or as its id."""
    return job.id if isinstance(job, BaseJob) else job


class SyncJobClient(Protocol):
    """What a :class:`Job` needs of its blocking client."""

    def delete(self, job: JobRef) -> None: ...
    def release(self, job: JobRef, priority: int = ..., delay: int = ...) -> None: ...
    def bury(self, job: JobRef, priority: int = ...) -> None: ...
    def touch(self, job: JobRef) -> None: ...
    def kick_job(self, job: JobRef) -> None: ...
    def stats_job(self, job: JobRef) -> JobStats: ...


class AsyncJobClient(Protocol):
    """What an :class:`AsyncJob` needs of its async client."""

    async def delete(self, job: JobRef) -> None: ...
    async def release(self, job: JobRef, priority: int = ..., delay: int = ...) -> None: ...
    async def bury(self, job: JobRef, priority: int = ...) -> None: ...
    async def touch(self, job: JobRef) -> None: ...
    async def kick_job(self, job: JobRef) -> None: ...
    async def stats_job(self, job: JobRef) -> JobStats: ...


class Job(BaseJob):
    """A job from a blocking :class:`~jackstalk.Client`, with shortcuts acting on it."""

    __slots__ = ("client",)

    def __init__(self, id: int, body: Any, client: SyncJobClient) -> None:  # noqa: A002
        self.id = id  # (not through super(): jobs are built on the hot path)
        self.body = body
        self.client = client

    def delete(self) -> None:
        """Delete this job."""
        self.client.delete(self.id)

    def release(self, priority: Priority = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        """Release this job back to its tube (``priority=KEEP``: with its own priority,
        read with one extra ``stats-job`` round trip)."""
        if priority is Keep.KEEP:
            priority = self.client.stats_job(self.id)["pri"]
        self.client.release(self.id, priority, delay)

    def bury(self, priority: Priority = c.DEFAULT_PRIORITY) -> None:
        """Bury this job (``priority=KEEP``: with its own priority, read with one extra
        ``stats-job`` round trip)."""
        if priority is Keep.KEEP:
            priority = self.client.stats_job(self.id)["pri"]
        self.client.bury(self.id, priority)

    def touch(self) -> None:
        """Restart this job's time-to-run."""
        self.client.touch(self.id)

    def kick(self) -> None:
        """Move this buried or delayed job to ready."""
        self.client.kick_job(self.id)

    def stats(self) -> JobStats:
        """This job's statistics."""
        return self.client.stats_job(self.id)


class AsyncJob(BaseJob):
    """A job from an async client (:class:`~jackstalk.AsyncClient`, ``TrioClient``)."""

    __slots__ = ("client",)

    def __init__(self, id: int, body: Any, client: AsyncJobClient) -> None:  # noqa: A002
        self.id = id  # (not through super(): jobs are built on the hot path)
        self.body = body
        self.client = client

    async def delete(self) -> None:
        """Delete this job."""
        await self.client.delete(self.id)

    async def release(self, priority: Priority = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        """Release this job back to its tube (``priority=KEEP``: with its own priority,
        read with one extra ``stats-job`` round trip)."""
        if priority is Keep.KEEP:
            priority = (await self.client.stats_job(self.id))["pri"]
        await self.client.release(self.id, priority, delay)

    async def bury(self, priority: Priority = c.DEFAULT_PRIORITY) -> None:
        """Bury this job (``priority=KEEP``: with its own priority, read with one extra
        ``stats-job`` round trip)."""
        if priority is Keep.KEEP:
            priority = (await self.client.stats_job(self.id))["pri"]
        await self.client.bury(self.id, priority)

    async def touch(self) -> None:
        """Restart this job's time-to-run."""
        await self.client.touch(self.id)

    async def kick(self) -> None:
        """Move this buried or delayed job to ready."""
        await self.client.kick_job(self.id)

    async def stats(self) -> JobStats:
        """This job's statistics."""
        return await self.client.stats_job(self.id)
