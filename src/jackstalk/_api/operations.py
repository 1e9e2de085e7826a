"""The operations behind every client method, written once.

Each takes the client first; the rest of its signature and its docstring become the method's
on all three clients. An operation checks and converts arguments (raising before the
transport sees anything), builds the core command, and names the conversion (in
``replies``) that turns the reply event into the result or an exception. No I/O happens here.

The clients do not call these functions: ``generate.py`` writes each one out as a method,
blocking and async, into ``sync_methods.py`` and ``async_methods.py`` (``nox -s generate``
after a change; the test suite fails while those are stale).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias, TypeVar, overload

from jackstalk._api import replies as r
from jackstalk._api.base import ClientBase
from jackstalk._api.jobs import BaseJob, JobRef, id_of
from jackstalk._api.stats import JobStats, ServerStats, TubeStats
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import ArgumentTypeError, InvalidArgument

T = TypeVar("T")
Call: TypeAlias = tuple[c.Command, Callable[[Any, e.Event], T]]
Batch: TypeAlias = tuple[list[c.Command], Callable[[Any, list[e.Event]], T]]
"""What an operation returns: the command(s) to run, and how the reply becomes the result.

An operation may return a ``Call`` on one path and a ``Batch`` on another (annotated
``Call[T] | Batch[T]``); the conversion's reply parameter (an event, or a list of events)
says which each ``return`` is. ``@overload`` stubs of an operation are written out as
overloads of its method.
"""


# ---------------------------------------------------------------------------- operations
# Each takes the client first; the rest of its signature and its docstring become the
# method's. Argument errors raise here, before the transport sees the command.


# Commands without fields, built once: commands are immutable values, so one instance
# serves every call (and costs no construction per call).
_LIST_TUBE_USED = c.ListTubeUsed()
_LIST_TUBES_WATCHED = c.ListTubesWatched()
_LIST_TUBES = c.ListTubes()
_RESERVE = c.Reserve()
_PEEK_READY = c.PeekReady()
_PEEK_DELAYED = c.PeekDelayed()
_PEEK_BURIED = c.PeekBuried()
_STATS = c.Stats()


def put(
    client: ClientBase,
    body: Any,
    priority: int = c.DEFAULT_PRIORITY,
    delay: int = 0,
    ttr: int = c.DEFAULT_TTR,
    tube: str | None = None,
) -> Call[int] | Batch[int]:
    """Put a job into the used tube (or ``tube``) and return its id.

    ``body``: ``str`` (encoded with the client's encoding) or ``bytes``; with a ``codec``,
    any value it serialises.
    ``priority``: 0 (most urgent) to 2**32-1. ``delay``: seconds before it can be reserved.
    ``ttr``: seconds a worker may hold it before the server gives it to another worker.
    ``tube``: use this tube first, in the same write as the put (one round trip); it stays
    the used tube afterwards, for later puts and peeks, and after a reconnect.
    """
    if type(body) is not bytes or client.codec is not None or len(body) > client.max_job_size:
        # (_encode returns plain bytes within the limit unchanged: skip the call for them)
        body = client._encode(body)
    if tube is None:
        return c.Put(body, priority, delay, ttr), r.inserted
    return [c.Use(tube), c.Put(body, priority, delay, ttr)], r.inserted_into


def put_many(
    client: ClientBase,
    bodies: Iterable[Any],
    priority: int = c.DEFAULT_PRIORITY,
    delay: int = 0,
    ttr: int = c.DEFAULT_TTR,
    tube: str | None = None,
) -> Batch[list[int]]:
    """Put many jobs in one pipelined batch and return their ids, in order.

    Every body is checked before the first byte is sent. If the server refuses some,
    :class:`BatchError` is raised after all replies are read; its ``results`` holds each
    job's id or error. ``tube``: use this tube first, in the same batch; it stays the used
    tube afterwards.
    """
    # Checked here too, so an empty batch refuses them as well (each Put checks them again).
    priority = v.u32(priority, "priority")
    delay = v.u32(delay, "delay")
    ttr = v.u32(ttr, "ttr")
    commands: list[c.Command] = [
        c.Put(client._encode(body), priority, delay, ttr) for body in bodies
    ]
    if tube is None:
        return commands, r.put_many_results
    commands.insert(0, c.Use(tube))
    return commands, r.put_many_into


def use(client: ClientBase, tube: str) -> Call[str]:
    """Use ``tube`` for later puts and peeks; return its name."""
    return c.Use(tube), r.using


def using(client: ClientBase) -> Call[str]:
    """The tube in use, as the server reports it."""
    return _LIST_TUBE_USED, r.using


def watch(client: ClientBase, tube: str) -> Call[int]:
    """Add ``tube`` to the watch list; return how many tubes are watched."""
    return c.Watch(tube), r.watching


def ignore(client: ClientBase, tube: str) -> Call[int]:
    """Drop ``tube`` from the watch list; return how many tubes are still watched.

    Raises :class:`NotIgnoredError` for the last watched tube.
    """
    return c.Ignore(tube), r.watching


def watching(client: ClientBase) -> Call[list[str]]:
    """The watched tubes, as the server reports them."""
    return _LIST_TUBES_WATCHED, r.tube_list


def tubes(client: ClientBase) -> Call[list[str]]:
    """Every tube that exists on the server."""
    return _LIST_TUBES, r.tube_list


@overload
def reserve(client: ClientBase, timeout: None = None) -> Call[BaseJob]: ...
@overload
def reserve(client: ClientBase, timeout: float) -> Call[BaseJob | None]: ...
def reserve(client: ClientBase, timeout: float | None = None) -> Call[BaseJob | None]:
    """Reserve a job from a watched tube: a ``Job``, or ``None`` if ``timeout`` ran out.

    ``timeout=None`` waits as long as it takes (no socket timeout applies) and always
    returns a job; ``0`` only takes a job that is ready now. Fractions of a second are
    rounded up: the protocol counts whole seconds. Raises :class:`DeadlineSoonError` when a
    job this connection holds is about to run out of time.

    A timeout returns ``None`` and never raises :class:`TimedOutError`: greenstalk's
    ``except TimedOutError`` around a reserve never fires here; test ``if job is None``.
    """
    if timeout is None:
        return _RESERVE, r.reserved
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ArgumentTypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not 0 <= timeout <= v.RESERVE_TIMEOUT_MAX:  # also refuses NaN
        raise InvalidArgument(f"timeout must be between 0 and {v.RESERVE_TIMEOUT_MAX}")
    return c.ReserveWithTimeout(math.ceil(timeout)), r.reserved


def reserve_job(client: ClientBase, job: JobRef) -> Call[BaseJob]:
    """Reserve one particular job (ready, delayed or buried) by id; beanstalkd 1.12+."""
    return c.ReserveJob(id_of(job)), r.reserved_job


def delete(client: ClientBase, job: JobRef) -> Call[None]:
    """Delete a job: one this connection reserved, or any ready, delayed or buried one."""
    return c.Delete(id_of(job)), r.done


def release(
    client: ClientBase,
    job: JobRef,
    priority: int = c.DEFAULT_PRIORITY,
    delay: int = 0,
) -> Call[None]:
    """Release a reserved job back to its tube with ``priority``, after ``delay`` seconds.

    Raises :class:`BuriedError` if the server had to bury it instead.
    """
    return c.Release(id_of(job), priority, delay), r.done


def bury(client: ClientBase, job: JobRef, priority: int = c.DEFAULT_PRIORITY) -> Call[None]:
    """Bury a reserved job: it waits in its tube's buried list until kicked."""
    return c.Bury(id_of(job), priority), r.buried


def touch(client: ClientBase, job: JobRef) -> Call[None]:
    """Restart the time-to-run of a job this connection reserved."""
    return c.Touch(id_of(job)), r.done


def kick(client: ClientBase, bound: int = 1) -> Call[int]:
    """Move up to ``bound`` jobs of the used tube to ready (buried ones if there are any,
    else delayed ones); return how many moved."""
    return c.Kick(bound), r.kicked


def kick_job(client: ClientBase, job: JobRef) -> Call[None]:
    """Move one buried or delayed job to ready."""
    return c.KickJob(id_of(job)), r.done


def peek(client: ClientBase, job: JobRef) -> Call[BaseJob | None]:
    """Look at a job by id without reserving it; ``None`` if there is no such job."""
    return c.Peek(id_of(job)), r.found


def peek_ready(client: ClientBase) -> Call[BaseJob | None]:
    """The next ready job of the used tube, or ``None``."""
    return _PEEK_READY, r.found


def peek_delayed(client: ClientBase) -> Call[BaseJob | None]:
    """The delayed job of the used tube that becomes ready first, or ``None``."""
    return _PEEK_DELAYED, r.found


def peek_buried(client: ClientBase) -> Call[BaseJob | None]:
    """The oldest buried job of the used tube, or ``None``."""
    return _PEEK_BURIED, r.found


def stats(client: ClientBase) -> Call[ServerStats]:
    """Server statistics, typed by field (a :class:`ServerStats`; see ``parse_yaml``)."""
    return _STATS, r.stats


def stats_tube(client: ClientBase, tube: str) -> Call[TubeStats]:
    """Statistics of one tube (a :class:`TubeStats`); raises :class:`NotFoundError` if it
    does not exist."""
    return c.StatsTube(tube), r.stats


def stats_job(client: ClientBase, job: JobRef) -> Call[JobStats]:
    """Statistics of one job (a :class:`JobStats`); raises :class:`NotFoundError` if it
    does not exist."""
    return c.StatsJob(id_of(job)), r.stats


def pause_tube(client: ClientBase, tube: str, delay: int) -> Call[None]:
    """Hold back reserves from ``tube`` for ``delay`` seconds."""
    return c.PauseTube(tube, delay), r.done


OPERATIONS: tuple[Callable[..., Any], ...] = (
    put,
    put_many,
    use,
    using,
    watch,
    ignore,
    watching,
    tubes,
    reserve,
    reserve_job,
    delete,
    release,
    bury,
    touch,
    kick,
    kick_job,
    peek,
    peek_ready,
    peek_delayed,
    peek_buried,
    stats,
    stats_tube,
    stats_job,
    pause_tube,
)
"""Every operation a client offers as a method of the same name."""
