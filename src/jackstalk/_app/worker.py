"""The worker loop, written once as a procedure with no I/O, and its three drivers.

The procedure (:meth:`Worker._procedure`) is a generator: it yields :class:`Execute` (send
these commands pipelined, give me the replies) and :class:`Handle` (run the handler on this
job, give me the exception or None), and decides everything else: which tube's handler runs,
delete on success, release with exponential backoff or bury after too many attempts on
failure, bury on an undecodable body, and sending the delete of a finished job together with
the reserve of the next one in a single write. The drivers only run the steps: blocking
(:meth:`Worker.run`), asyncio (:meth:`Worker.run_asyncio`) and trio (:meth:`Worker.run_trio`).
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jackstalk._api.base import ClientBase
from jackstalk._api.errors import BodyDecodeError
from jackstalk._api.jobs import AsyncJob, Job
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol import yaml_subset as _yaml
from jackstalk._protocol.errors import InvalidArgument, NotFoundError

if TYPE_CHECKING:
    from jackstalk._api.async_methods import AsyncCommands
    from jackstalk._api.sync_methods import SyncCommands
    from jackstalk.transports.blocking import Client

__all__ = ["Worker"]

log = logging.getLogger("jackstalk.worker")

Handler = Callable[..., Any]


@dataclass(slots=True)  # (not frozen: a frozen dataclass is slower to build, every cycle)
class Execute:
    """Step: send ``commands`` in one write and return their reply events."""

    commands: list[c.Command]


@dataclass(slots=True)
class Handle:
    """Step: run ``handler(job)``; return the exception it raised, or None."""

    handler: Handler
    job: Job | AsyncJob


_SETTLING_REPLIES = (e.Deleted, e.Released, e.Buried, e.NotFound)
"""What the delete, release or bury of a finished job may get without anything amiss."""


class WorkerJob(Job):
    """The job a blocking handler receives: a :class:`Job` that notes when the handler
    settled it itself (deleted, released or buried), so the worker leaves it alone then."""

    __slots__ = ("_settled",)

    def __init__(self, id: int, body: Any, client: SyncCommands) -> None:  # noqa: A002
        self.id = id  # (what Job.__init__ does, without the super() call, every job)
        self.body = body
        self.client = client
        self._settled = False

    def delete(self) -> None:
        super().delete()
        self._settled = True

    def release(self, priority: int = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        super().release(priority, delay)
        self._settled = True

    def bury(self, priority: int = c.DEFAULT_PRIORITY) -> None:
        super().bury(priority)
        self._settled = True


class AsyncWorkerJob(AsyncJob):
    """The job an async handler receives; see :class:`WorkerJob`."""

    __slots__ = ("_settled",)

    def __init__(self, id: int, body: Any, client: AsyncCommands) -> None:  # noqa: A002
        self.id = id  # (what Job.__init__ does, without the super() call, every job)
        self.body = body
        self.client = client
        self._settled = False

    async def delete(self) -> None:
        await super().delete()
        self._settled = True

    async def release(self, priority: int = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        await super().release(priority, delay)
        self._settled = True

    async def bury(self, priority: int = c.DEFAULT_PRIORITY) -> None:
        await super().bury(priority)
        self._settled = True


class Worker:
    """Reserve jobs and run a handler on each, on any of the three clients.

    ``handlers`` maps tube names to handlers (the worker watches exactly those tubes), or is
    one handler for the tubes in ``watch``. A handler takes the job. When it returns, the job
    is deleted; when it raises, the job is released with a delay of
    ``min(backoff_cap, backoff_base * 2**releases)`` seconds, or buried once it has been
    reserved ``max_attempts`` times. A handler may settle the job itself with
    ``job.delete()``, ``job.release()`` or ``job.bury()``, and keep a long job alive with
    ``job.touch()``; async workers touch running jobs before their time-to-run ends by
    themselves. A body the client cannot decode is buried, never lost.

    ``concurrency`` (async only) runs that many handlers at once, each slot with its own
    connection. ``poll`` is how often (seconds) a waiting slot checks for shutdown;
    ``grace`` is how long shutdown waits for running handlers before releasing their jobs.
    Client options (``encoding``, ``parse_yaml`` ...) go in ``client_options``.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler] | Handler,
        *,
        address: tuple[str, int] | str | None = None,
        watch: str | Iterable[str] = "default",
        concurrency: int = 1,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 3600.0,
        poll: int = 1,
        grace: float = 30.0,
        **client_options: Any,
    ) -> None:
        if callable(handlers):
            tubes = [watch] if isinstance(watch, str) else list(watch)
            self._handlers: dict[str, Handler] = {}
            self._default: Handler | None = handlers
        else:
            tubes = list(handlers)
            self._handlers = dict(handlers)
            self._default = None
            for tube, handler in self._handlers.items():
                if not callable(handler):
                    raise InvalidArgument(f"the handler for tube {tube!r} is not callable")
        if not tubes:
            raise InvalidArgument("a worker needs at least one tube")
        self.tubes = [v.tube_name(tube) for tube in tubes]
        self.address = address
        self.concurrency = v.integer(concurrency, "concurrency", 1, 10_000)
        self.max_attempts = v.integer(max_attempts, "max_attempts", 1, 2**32 - 1)
        if not 0 <= backoff_base <= backoff_cap:
            raise InvalidArgument("backoff needs 0 <= backoff_base <= backoff_cap")
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.poll = v.integer(poll, "poll", 0, 3600)
        self.grace = grace
        self.client_options = client_options
        self._stopping = False
        self._wake: Callable[[], None] | None = None
        self.processed = 0
        """Jobs handled so far (succeeded or not)."""

    def stop(self) -> None:
        """Ask the worker to stop: it reserves no more jobs and returns once the running
        handlers finish (or the grace period ends)."""
        self._stopping = True
        if self._wake is not None:
            self._wake()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called (or a signal asked for it)."""
        return self._stopping

    def _client_kwargs(self) -> dict[str, Any]:
        return {"use": self.tubes[0], "watch": self.tubes, **self.client_options}

    # ------------------------------------------------------------------ the procedure

    def _backoff(self, releases: int) -> int:
        delay = self.backoff_base * (1 << min(releases, 64))
        return math.ceil(min(self.backoff_cap, delay))

    def _procedure(
        self, client: ClientBase, wrap: type[WorkerJob] | type[AsyncWorkerJob]
    ) -> Generator[Execute | Handle, Any, None]:
        """One slot's loop; see the module docstring."""
        settle: c.Command | None = None  # the last job's delete, release or bury, unsent
        reserve = c.ReserveWithTimeout(self.poll)
        # One step object of each kind, refilled for every job rather than built anew: a
        # driver is done with a step before it resumes the procedure.
        execute = Execute([reserve])
        handle: Handle | None = None
        while True:
            if self._stopping:
                if settle is not None:
                    execute.commands = [settle]
                    yield execute
                return
            execute.commands = [reserve] if settle is None else [settle, reserve]
            events: list[e.Event] = yield execute
            if settle is not None and not isinstance(events[0], _SETTLING_REPLIES):
                log.warning("%s of a finished job got %r", settle.word.decode(), events[0])
            settle = None
            reply = events[-1]
            if not isinstance(reply, e.Reserved):
                continue  # TIMED_OUT (check for shutdown) or DEADLINE_SOON (nothing held)
            try:
                job: WorkerJob | AsyncWorkerJob = client._job(reply.id, reply.body, wrap)
            except BodyDecodeError as error:
                log.error("burying job %d: %s", reply.id, error)
                settle = c.Bury(reply.id, c.DEFAULT_PRIORITY)
                continue
            handler = self._default
            if handler is None or len(self._handlers) > 1:
                # Only a worker with several handlers pays for asking which tube it is.
                execute.commands = [c.StatsJob(job.id)]
                (stats,) = yield execute
                handler = self._handler_for(client, stats)
            if handle is None:
                handle = Handle(handler, job)
            else:
                handle.handler = handler
                handle.job = job
            failure = yield handle
            self.processed += 1
            if job._settled:
                continue
            if failure is None:
                settle = c.Delete(job.id)
                continue
            log.warning("job %d failed: %r", job.id, failure)
            execute.commands = [c.StatsJob(job.id)]
            (stats,) = yield execute
            if not isinstance(stats, e.Ok):
                continue  # gone: its time-to-run ran out, or the handler deleted it
            info = _yaml.parse_stats(stats.data)
            priority = int(info.get("pri", c.DEFAULT_PRIORITY))
            if int(info.get("reserves", 1)) >= self.max_attempts:
                log.error("burying job %d after %s attempts", job.id, info.get("reserves"))
                settle = c.Bury(job.id, priority)
            else:
                delay = self._backoff(int(info.get("releases", 0)))
                settle = c.Release(job.id, priority, delay)

    def _handler_for(self, client: ClientBase, stats: e.Event) -> Handler:
        if not isinstance(stats, e.Ok):
            raise NotFoundError("the reserved job vanished before its tube could be read")
        tube = str(_yaml.parse_stats(stats.data).get("tube"))
        handler = self._handlers.get(tube, self._default)
        if handler is None:
            raise InvalidArgument(f"no handler for tube {tube!r}")
        return handler

    # ------------------------------------------------------------------ blocking driver

    def run(self, client: Client | None = None) -> int:
        """Work on a blocking client until :meth:`stop`, SIGINT or SIGTERM; return the number
        of jobs handled. A handler runs in this thread: keep long jobs alive with
        ``job.touch()``. Signal handlers are installed only in the main thread."""
        if client is None:
            from jackstalk.transports.blocking import Client

            client = Client(self.address, **self._client_kwargs())
        restore = self._install_signals()
        try:
            steps = self._procedure(client, WorkerJob)
            result: Any = None
            while True:
                try:
                    step = steps.send(result)
                except StopIteration:
                    break
                if isinstance(step, Execute):
                    result = client._execute_many(step.commands)
                else:
                    result = None
                    try:
                        step.handler(step.job)
                    except Exception as error:
                        result = error
        finally:
            restore()
            client.close()
        return self.processed

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(number: int, frame: object) -> None:
            if self._stopping:  # a second signal: stop now; open jobs go back to ready
                raise KeyboardInterrupt
            self.stop()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    # ------------------------------------------------------------------ async drivers

    async def _drive(
        self,
        client: Any,
        run_handler: Callable[[Handle], Awaitable[BaseException | None]],
    ) -> None:
        steps = self._procedure(client, AsyncWorkerJob)
        result: Any = None
        try:
            while True:
                try:
                    step = steps.send(result)
                except StopIteration:
                    return
                if isinstance(step, Execute):
                    result = await client._execute_many(step.commands)
                else:
                    result = await run_handler(step)
        finally:
            await client.close()

    async def run_asyncio(self) -> int:
        """Work with ``concurrency`` asyncio clients until :meth:`stop`, SIGINT or SIGTERM;
        return the number of jobs handled. Call :meth:`stop` from the event loop's thread."""
        import asyncio

        from jackstalk.transports.asyncio import AsyncClient

        async def run_handler(step: Handle) -> BaseException | None:
            keepalive = asyncio.create_task(self._keepalive(step.job, asyncio.sleep))
            try:
                await step.handler(step.job)
            except Exception as error:
                return error
            finally:
                keepalive.cancel()
            return None

        stopped = asyncio.Event()
        self._wake = stopped.set
        loop = asyncio.get_running_loop()
        signals = self._main_thread_signals()
        for number in signals:
            loop.add_signal_handler(number, self.stop)
        try:
            drivers = [
                asyncio.create_task(
                    self._drive(AsyncClient(self.address, **self._client_kwargs()), run_handler)
                )
                for _ in range(self.concurrency)
            ]
            finished: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*drivers))
            watchdog: asyncio.Future[Any] = asyncio.ensure_future(stopped.wait())
            await asyncio.wait([finished, watchdog], return_when=asyncio.FIRST_COMPLETED)
            watchdog.cancel()
            if not finished.done():
                # Shutdown asked for: running handlers get the grace period, then they are
                # cancelled; closing their connections gives their jobs back to the server.
                await asyncio.wait([finished], timeout=self.grace)
            if finished.done():
                finished.result()  # a failure outside the handlers (say, no server) is raised
            else:
                for task in drivers:
                    task.cancel()
                await asyncio.gather(*drivers, return_exceptions=True)
                finished.cancel()
        finally:
            self._wake = None
            for number in signals:
                loop.remove_signal_handler(number)
        return self.processed

    async def run_trio(self) -> int:
        """Work with ``concurrency`` trio clients until :meth:`stop`, SIGINT or SIGTERM;
        return the number of jobs handled. Call :meth:`stop` from trio's thread."""
        import trio

        from jackstalk.transports.trio import TrioClient

        async def run_handler(step: Handle) -> BaseException | None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keepalive, step.job, trio.sleep)
                try:
                    await step.handler(step.job)
                except Exception as error:
                    return error
                finally:
                    nursery.cancel_scope.cancel()
            return None

        stopped = trio.Event()
        self._wake = stopped.set
        work = trio.CancelScope()

        async def watchdog() -> None:
            await stopped.wait()
            # Running handlers get the grace period; then they are cancelled, and closing
            # their connections gives their jobs back to the server.
            await trio.sleep(self.grace)
            work.cancel()

        async def on_signals() -> None:
            with trio.open_signal_receiver(*self._main_thread_signals()) as received:
                async for _ in received:
                    self.stop()

        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(watchdog)
                if self._main_thread_signals():
                    outer.start_soon(on_signals)
                with work:
                    async with trio.open_nursery() as nursery:
                        for _ in range(self.concurrency):
                            client = TrioClient(self.address, **self._client_kwargs())
                            nursery.start_soon(self._drive, client, run_handler)
                outer.cancel_scope.cancel()
        finally:
            self._wake = None
        return self.processed

    @staticmethod
    def _main_thread_signals() -> tuple[signal.Signals, ...]:
        if threading.current_thread() is not threading.main_thread():
            return ()
        return (signal.SIGINT, signal.SIGTERM)

    async def _keepalive(self, job: Any, sleep: Callable[[float], Awaitable[Any]]) -> None:
        """Touch a running job shortly before its time-to-run ends, for as long as it runs.

        A handler that finishes within half a second never costs a command."""
        await sleep(0.5)
        while True:
            stats = await job.stats()
            left = float(stats.get("time-left", 0)) if isinstance(stats, dict) else 0.0
            ttr = float(stats.get("ttr", 1)) if isinstance(stats, dict) else 1.0
            if ttr <= 2:
                return  # inside the server's one-second margin from the start: nothing to do
            await sleep(max(0.5, left - 1.5))
            await job.touch()
