"""The worker loop, written once as a procedure with no I/O, and its three drivers.

The procedure (:meth:`Worker._procedure`) is a generator: it yields :class:`Execute` (send
these commands pipelined, give me the replies) and :class:`Handle` (run the handler on this
job, give me the exception or None), and decides everything else: which tube's handler runs,
delete on success, release with exponential backoff or bury after too many attempts on
failure, bury on an undecodable body, and sending the delete of a finished job together with
the reserve of the next one in a single write. The drivers only run the steps: blocking
(:meth:`Worker.run`), asyncio (:meth:`Worker.run_asyncio`) and trio (:meth:`Worker.run_trio`).

With several servers (``addresses=``), each server has its own connection (in each slot,
on the async drivers) and its own run of the procedure; the driver asks each live server
for a ready job (``reserve-with-timeout 0``), takes the jobs one server has for up to a
second (each finished job's settle pipelined with the next reserve on that server), and
when every server is empty waits: the blocking driver up to a second on one of them, a
different one each round; an async slot on every live server at once, taking the first
job that comes and cutting off the other waits (their connections close, so a job the
server reserved for one of them goes back to ready). That async part is written once
(:class:`_AsyncServersDriver`); asyncio and trio give it their connection class, sleep and
race. A server that fails is skipped for a capped, doubling backoff and connected again
afterwards; a job whose settle could not reach its server is logged as lost and not counted.

Shutdown is the drivers' part: the first SIGINT or SIGTERM (or :meth:`Worker.stop`) stops
reserving and gives running handlers ``grace`` seconds; then they are cancelled, which
closes their connections and so hands their jobs back to the server, and the run method
returns. A second signal cancels them at once, and the run method raises
``SystemExit(128 + signal number)``. Either is logged as one line, without a traceback.
"""

from __future__ import annotations

import inspect
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from jackstalk._api.base import Address, ClientBase
from jackstalk._api.errors import BodyDecodeError
from jackstalk._api.jobs import AsyncJob, Job, Priority
from jackstalk._app.cluster import _WAIT, Member, Spread, _OneConnection
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol import yaml_subset as _yaml
from jackstalk._protocol.errors import InvalidArgument, NotFoundError, ProtocolError

if TYPE_CHECKING:
    from jackstalk._api.async_methods import AsyncCommands
    from jackstalk._api.sync_methods import SyncCommands
    from jackstalk.transports.blocking import Client

__all__ = ["Worker"]

log = logging.getLogger("jackstalk.worker")

Handler = Callable[..., Any]
Hook = Callable[[Any, BaseException], Any]
"""``on_failure``/``on_bury``: called with the job and the exception; an async worker awaits
what it returns when that is awaitable."""


@dataclass(slots=True)  # (not frozen: a frozen dataclass is slower to build, every cycle)
class Execute:
    """Step: send ``commands`` in one write and return their reply events."""

    commands: list[c.Command]


@dataclass(slots=True)
class Handle:
    """Step: run ``handler(job)``; return the exception it raised, or None."""

    handler: Handler
    job: Job | AsyncJob


@dataclass(slots=True)
class Notify:
    """Step: call ``hook(job, error)`` (awaiting it in an async driver); return the exception
    it raised, or None."""

    hook: Hook
    job: Job | AsyncJob
    error: BaseException


class _Interrupted(BaseException):
    """Raised in the blocking worker's thread to cut a running handler short: by a second
    signal (``number`` is the signal), or when the grace period ends (``number`` is None).
    A BaseException, so that a handler's ``except Exception`` does not swallow it."""

    def __init__(self, number: int | None) -> None:
        super().__init__(number)
        self.number = number


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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

    def release(self, priority: Priority = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        super().release(priority, delay)
        self._settled = True

    def bury(self, priority: Priority = c.DEFAULT_PRIORITY) -> None:
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

    async def release(self, priority: Priority = c.DEFAULT_PRIORITY, delay: int = 0) -> None:
        await super().release(priority, delay)
        self._settled = True

    async def bury(self, priority: Priority = c.DEFAULT_PRIORITY) -> None:
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
    ``grace`` is how long shutdown waits for running handlers before cancelling them and
    releasing their jobs (on the blocking worker: when :meth:`run` runs in the main thread,
    the only one a running handler can be interrupted in). A second SIGINT or SIGTERM
    cancels them at once; the run method then raises ``SystemExit(128 + signal number)``.

    ``on_failure(job, error)`` is called each time a handler raises, before the job is
    released or buried; ``on_bury(job, error)`` each time the worker buries a job (after
    ``max_attempts``, with the handler's last exception, or for a body that does not decode,
    with the :class:`BodyDecodeError` and the body as bytes), once the server confirmed it.
    Both are for metrics and alerting: an async worker awaits what they return when it is
    awaitable, and an exception they raise is logged and otherwise ignored.
    Client options (``encoding``, ``parse_yaml`` ...) go in ``client_options``.

    ``addresses``, instead of ``address``: several beanstalkd servers, each with its own
    connection (per slot, on the async drivers). Jobs are taken from every live server; a
    server that fails is skipped for ``server_backoff`` seconds, doubling per failure up to
    ``server_backoff_cap``, then connected again. A job whose settle cannot reach its
    server (it died meanwhile) is logged, counted in :attr:`lost`, not in :attr:`processed`.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler] | Handler,
        *,
        address: tuple[str, int] | str | None = None,
        addresses: Sequence[tuple[str, int] | str] | None = None,
        server_backoff: float = 1.0,
        server_backoff_cap: float = 30.0,
        watch: str | Iterable[str] = "default",
        concurrency: int = 1,
        max_attempts: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 3600.0,
        poll: int = 1,
        grace: float = 30.0,
        on_failure: Hook | None = None,
        on_bury: Hook | None = None,
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
        if isinstance(address, list):
            raise InvalidArgument("several servers go in addresses=, not address=")
        if addresses is not None:
            if address is not None:
                raise InvalidArgument("give address= (one server) or addresses=, not both")
            if isinstance(addresses, str | bytes) or not isinstance(addresses, Sequence):
                raise InvalidArgument("addresses= takes a list of addresses")
            if not addresses:
                raise InvalidArgument("addresses= needs at least one address")
        self.address = address
        self.addresses: list[tuple[str, int] | str] | None = (
            None if addresses is None else list(addresses)
        )
        if not 0 < server_backoff <= server_backoff_cap < math.inf:
            raise InvalidArgument(
                "server backoff needs 0 < server_backoff <= server_backoff_cap (finite)"
            )
        self.server_backoff = float(server_backoff)
        self.server_backoff_cap = float(server_backoff_cap)
        self.concurrency = v.integer(concurrency, "concurrency", 1, 10_000)
        self.max_attempts = v.integer(max_attempts, "max_attempts", 1, 2**32 - 1)
        if not 0 <= backoff_base <= backoff_cap:
            raise InvalidArgument("backoff needs 0 <= backoff_base <= backoff_cap")
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.poll = v.integer(poll, "poll", 0, 3600)
        if not grace >= 0:
            raise InvalidArgument("grace must be a number of seconds, 0 or more")
        self.grace = grace
        for name, hook in (("on_failure", on_failure), ("on_bury", on_bury)):
            if hook is not None and not callable(hook):
                raise InvalidArgument(f"{name} must be callable or None")
        self.on_failure = on_failure
        self.on_bury = on_bury
        self.client_options = client_options
        self._stopping = False
        self._wake: Callable[[], None] | None = None
        self._force: Callable[[], None] | None = None
        self._forced: int | None = None  # the second signal, which cut the shutdown short
        self._busy = 0  # handlers running now
        self.processed = 0
        """Jobs handled so far (succeeded or not)."""
        self.lost = 0
        """Jobs handled whose delete, release or bury never reached their server, because
        the connection (or the server) went down first (several servers only)."""

    def stop(self) -> None:
        """Ask the worker to stop: it reserves no more jobs and returns once the running
        handlers finish, or once the grace period ends and they are cancelled."""
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
    ) -> Generator[Execute | Handle | Notify, Any, None]:
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
                bury = c.Bury(reply.id, c.DEFAULT_PRIORITY)
                if self.on_bury is None:
                    settle = bury  # sent with the next reserve
                else:
                    yield from self._bury_now(execute, bury, error.job, error)
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
            if failure is None:
                if not job._settled:
                    settle = c.Delete(job.id)
                continue
            log.warning("job %d failed: %r", job.id, failure, exc_info=failure)
            if self.on_failure is not None:
                yield from self._notify(self.on_failure, "on_failure", job, failure)
            if job._settled:
                continue
            execute.commands = [c.StatsJob(job.id)]
            (stats,) = yield execute
            if not isinstance(stats, e.Ok):
                continue  # gone: its time-to-run ran out, or the handler deleted it
            info = _yaml.parse_stats(stats.data)
            priority = int(info.get("pri", c.DEFAULT_PRIORITY))
            if int(info.get("reserves", 1)) >= self.max_attempts:
                log.error("burying job %d after %s attempts", job.id, info.get("reserves"))
                bury = c.Bury(job.id, priority)
                if self.on_bury is None:
                    settle = bury
                else:
                    yield from self._bury_now(execute, bury, job, failure)
            else:
                delay = self._backoff(int(info.get("releases", 0)))
                settle = c.Release(job.id, priority, delay)

    def _bury_now(
        self, execute: Execute, bury: c.Bury, job: Any, error: BaseException
    ) -> Generator[Execute | Notify, Any, None]:
        """Bury a job on its own (not with the next reserve), then call ``on_bury`` once the
        server confirmed it: buries are rare, and the hook should see the job buried."""
        execute.commands = [bury]
        (reply,) = yield execute
        if not isinstance(reply, e.Buried):
            log.warning("bury of job %d got %r", job.id, reply)
            return
        assert self.on_bury is not None
        yield from self._notify(self.on_bury, "on_bury", job, error)

    def _notify(
        self, hook: Hook, name: str, job: Any, error: BaseException
    ) -> Generator[Notify, Any, None]:
        """Have the driver call ``hook``; a hook that raises is logged, nothing more."""
        problem = yield Notify(hook, job, error)
        if problem is not None:
            log.error("%s hook failed for job %d", name, job.id, exc_info=problem)

    def _handler_for(self, client: ClientBase, stats: e.Event) -> Handler:
        if not isinstance(stats, e.Ok):
            raise NotFoundError("the reserved job vanished before its tube could be read")
        tube = str(_yaml.parse_stats(stats.data).get("tube"))
        handler = self._handlers.get(tube, self._default)
        if handler is None:
            raise InvalidArgument(f"no handler for tube {tube!r}")
        return handler

    # ------------------------------------------------------------------ shutdown

    def _signalled(self, number: int) -> None:
        """A SIGINT or SIGTERM reached an async driver (in its event loop, not in a raw
        signal handler): the first one stops the worker, a second one forces the stop."""
        name = _signal_name(number)
        if not self._stopping:
            log.info("%s: stopping; running handlers get %g s to finish", name, self.grace)
            self.stop()
            return
        if self._forced is None:
            self._forced = number
            self._log_forced(number)
            if self._force is not None:
                self._force()

    def _log_forced(self, number: int) -> None:
        log.warning(
            "second %s: stopping now; %d running handler(s) cancelled, their jobs go back"
            " to ready (exit status %d)",
            _signal_name(number),
            self._busy,
            128 + number,
        )

    def _log_grace_over(self) -> None:
        if self._busy:
            log.warning(
                "grace period of %g s over: %d running handler(s) cancelled, their jobs go"
                " back to ready",
                self.grace,
                self._busy,
            )

    def _finish(self) -> int:
        """The run methods' ending: the number of jobs handled, or, after a second signal,
        ``SystemExit(128 + signal number)`` (an exit status, and no traceback)."""
        if self._forced is not None:
            raise SystemExit(128 + self._forced)
        log.info("worker stopped after %d job(s)", self.processed)
        return self.processed

    # ------------------------------------------------------------------ blocking driver

    def run(self, client: Client | None = None) -> int:
        """Work on a blocking client until :meth:`stop`, SIGINT or SIGTERM; return the number
        of jobs handled. A handler runs in this thread: keep long jobs alive with
        ``job.touch()``. In the main thread, the first signal stops reserving, a handler
        still running after ``grace`` seconds is interrupted, and a second signal interrupts
        it at once and makes this raise ``SystemExit(128 + signal number)``; elsewhere no
        signal handler is installed and a running handler is never interrupted."""
        servers: _Servers | None = None
        if self.addresses is not None:
            if client is not None:
                raise InvalidArgument("a worker with addresses= makes its own clients")
            servers = _servers(self)
        elif client is None:
            from jackstalk.transports.blocking import Client

            client = Client(self.address, **self._client_kwargs())
        if servers is None:
            log.info("worker started: watching %s", ", ".join(self.tubes))
        else:
            log.info(
                "worker started: watching %s on %s",
                ", ".join(self.tubes),
                ", ".join(servers.servers),
            )
        quiet, restore = self._install_signals()
        interrupted: _Interrupted | None = None
        try:
            try:
                if servers is None:
                    assert client is not None
                    self._run_steps(client)
                else:
                    _ServersDriver(self, servers).run()
            finally:
                quiet()  # from here on, a signal is only noted
        except _Interrupted as caught:
            # A handler (or a wait) cut short: closing the connection hands its job back.
            quiet()
            interrupted = caught
        finally:
            restore()
            if servers is None:
                assert client is not None
                client.close()
            else:
                servers.close()
        if interrupted is not None and interrupted.number is None:
            self._log_grace_over()
        elif self._forced is not None:
            self._log_forced(self._forced)
        self._busy = 0
        return self._finish()

    def _run_steps(self, client: Client) -> None:
        """The blocking driver's loop: run the procedure's steps until it returns."""
        steps = self._procedure(client, WorkerJob)
        result: Any = None
        while True:
            try:
                step = steps.send(result)
            except StopIteration:
                return
            if isinstance(step, Execute):
                result = client._execute_many(step.commands)
            else:
                result = self._run_blocking(step)

    def _run_blocking(self, step: Handle | Notify) -> BaseException | None:
        """Run a handler or a hook in this thread; return the exception it raised."""
        if isinstance(step, Handle):
            self._busy = 1
            try:
                step.handler(step.job)
            except Exception as error:
                self._busy = 0
                return error
            self._busy = 0  # (not on an interruption: run() reports the handler it cut)
            return None
        try:
            step.hook(step.job, step.error)
        except Exception as error:
            return error
        return None

    def _install_signals(self) -> tuple[Callable[[], None], Callable[[], None]]:
        """In the main thread: SIGINT and SIGTERM handlers, and a watcher thread that
        interrupts a handler still running ``grace`` seconds after the stop.

        Returns ``quiet`` (from then on a signal is only noted, never raised) and
        ``restore`` (undo it all). The signal handler sets flags, raises, or calls
        :meth:`stop` the first time (whose event this thread only sets once stopping, so
        the handler never waits on a lock the code it interrupted holds)."""
        if threading.current_thread() is not threading.main_thread():
            return (lambda: None), (lambda: None)
        main = threading.main_thread().ident
        asked = threading.Event()  # stop() was called
        finished = threading.Event()  # run() is over
        grace_over = False
        loud = True

        def on_signal(number: int, frame: object) -> None:
            nonlocal grace_over
            if grace_over:  # the watcher's own signal
                grace_over = False
                if loud and self._busy:
                    raise _Interrupted(None)
                return  # between jobs: the loop ends by itself
            if not self._stopping:
                self.stop()
            elif self._forced is None:  # a second signal: stop now
                self._forced = number
                if loud:
                    raise _Interrupted(number)

        def watch() -> None:
            nonlocal grace_over
            asked.wait()
            if finished.wait(self.grace if math.isfinite(self.grace) else None):
                return
            grace_over = True
            # A signal to the main thread also ends a system call the handler waits in.
            if sys.platform == "win32":  # pragma: no cover
                import _thread

                _thread.interrupt_main(signal.SIGINT)
            else:
                assert main is not None
                signal.pthread_kill(main, signal.SIGINT)

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        watcher = threading.Thread(target=watch, name="jackstalk-worker-grace", daemon=True)
        if sys.platform == "win32":  # pragma: no cover
            watcher.start()
        else:
            # The watcher starts with SIGINT and SIGTERM blocked, so they always reach this
            # thread: one delivered to the watcher would not wake a handler blocked here.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
            try:
                watcher.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._wake = asked.set
        if self._stopping:
            asked.set()

        def quiet() -> None:
            nonlocal loud
            loud = False

        def restore() -> None:
            self._wake = None
            finished.set()
            asked.set()
            watcher.join()
            # (signal.signal runs a pending handler first: the watcher's, if it just fired.)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return quiet, restore

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
                elif isinstance(step, Handle):
                    result = await run_handler(step)
                else:
                    result = await self._call_hook(step)
        finally:
            await client.close()

    @staticmethod
    async def _call_hook(step: Notify) -> BaseException | None:
        try:
            outcome = step.hook(step.job, step.error)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as error:
            return error
        return None

    async def run_asyncio(self) -> int:
        """Work with ``concurrency`` asyncio clients until :meth:`stop`, SIGINT or SIGTERM;
        return the number of jobs handled, or raise ``SystemExit(128 + signal number)``
        after a second signal. Call :meth:`stop` from the event loop's thread."""
        import asyncio

        from jackstalk.transports.asyncio import AsyncClient

        async def run_handler(step: Handle) -> BaseException | None:
            keepalive = asyncio.create_task(self._keepalive(step.job, asyncio.sleep))
            self._busy += 1
            try:
                await step.handler(step.job)
            except Exception as error:
                return error
            finally:
                self._busy -= 1
                keepalive.cancel()
            return None

        stopped = asyncio.Event()
        forced = asyncio.Event()
        self._wake = stopped.set
        self._force = forced.set
        loop = asyncio.get_running_loop()
        signals = self._main_thread_signals()
        for number in signals:
            loop.add_signal_handler(number, self._signalled, number)
        log.info("worker started: watching %s, %d slot(s)", ", ".join(self.tubes), self.concurrency)
        drivers: list[asyncio.Task[None]] = []
        waiters: list[asyncio.Future[Any]] = []
        try:
            if self.addresses is None:
                drivers = [
                    asyncio.create_task(
                        self._drive(AsyncClient(self.address, **self._client_kwargs()), run_handler)
                    )
                    for _ in range(self.concurrency)
                ]
            else:
                from jackstalk._app.async_cluster import _AsyncOne

                drivers = [
                    asyncio.create_task(
                        _AsyncServersDriver(
                            self, _AsyncOne, run_handler, _race_asyncio, asyncio.sleep
                        ).run()
                    )
                    for _ in range(self.concurrency)
                ]
            stop_wait = asyncio.ensure_future(stopped.wait())
            force_wait = asyncio.ensure_future(forced.wait())
            all_done = asyncio.ensure_future(asyncio.wait(drivers))
            waiters = [stop_wait, force_wait, all_done]
            # A slot only returns once stopping: one that ends before is one that failed.
            await asyncio.wait([*drivers, stop_wait], return_when=asyncio.FIRST_COMPLETED)
            if stopped.is_set():
                # Running handlers get the grace period (a second signal ends it).
                await asyncio.wait(
                    [all_done, force_wait], timeout=self.grace, return_when=asyncio.FIRST_COMPLETED
                )
                if not all_done.done() and not forced.is_set():
                    self._log_grace_over()
        finally:
            # Whatever still runs is cancelled; closing its connection gives its job back.
            left = [task for task in drivers if not task.done()]
            for task in left:
                task.cancel()
            if left:
                await asyncio.wait(left)
            for waiter in waiters:
                waiter.cancel()
            self._wake = self._force = None
            for number in signals:
                loop.remove_signal_handler(number)
        failure: BaseException | None = None
        for task in drivers:
            if not task.cancelled():
                error = task.exception()  # (read for each: asyncio reports those never read)
                if failure is None:
                    failure = error
        if failure is not None and self._forced is None:
            raise failure  # a failure outside the handlers (say, no server)
        return self._finish()

    async def run_trio(self) -> int:
        """Work with ``concurrency`` trio clients until :meth:`stop`, SIGINT or SIGTERM;
        return the number of jobs handled, or raise ``SystemExit(128 + signal number)``
        after a second signal. Call :meth:`stop` from trio's thread."""
        import trio

        from jackstalk.transports.trio import TrioClient

        async def run_handler(step: Handle) -> BaseException | None:
            self._busy += 1
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._keepalive, step.job, trio.sleep)
                    try:
                        await step.handler(step.job)
                    except Exception as error:
                        return error
                    finally:
                        nursery.cancel_scope.cancel()
            finally:
                self._busy -= 1
            return None

        stopped = trio.Event()
        self._wake = stopped.set
        work = trio.CancelScope()
        self._force = work.cancel  # a second signal: cancel at once

        async def watchdog() -> None:
            await stopped.wait()
            # Running handlers get the grace period; then they are cancelled, and closing
            # their connections gives their jobs back to the server.
            await trio.sleep(self.grace)
            if self._forced is None:
                self._log_grace_over()
            work.cancel()

        async def on_signals() -> None:
            with trio.open_signal_receiver(*self._main_thread_signals()) as received:
                async for number in received:
                    self._signalled(number)

        log.info("worker started: watching %s, %d slot(s)", ", ".join(self.tubes), self.concurrency)
        try:
            async with trio.open_nursery() as outer:
                outer.start_soon(watchdog)
                if self._main_thread_signals():
                    outer.start_soon(on_signals)
                with work:
                    async with trio.open_nursery() as nursery:
                        for _ in range(self.concurrency):
                            if self.addresses is None:
                                client = TrioClient(self.address, **self._client_kwargs())
                                nursery.start_soon(self._drive, client, run_handler)
                            else:
                                from jackstalk._app.trio_cluster import _TrioOne

                                driver = _AsyncServersDriver(
                                    self, _TrioOne, run_handler, _race_trio, trio.sleep
                                )
                                nursery.start_soon(driver.run)
                outer.cancel_scope.cancel()
        finally:
            self._wake = self._force = None
        # (Raised here, outside the nurseries, so that it reaches the caller unwrapped.)
        return self._finish()

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


# ---------------------------------------------------------------------- several servers


class _Servers(Spread[_OneConnection]):
    """The worker's servers: the clusters' members and backoff, with the worker's client
    options (each connection opened once, never silently reconnected)."""

    def __init__(
        self,
        addresses: Sequence[Address],
        backoff: float,
        max_backoff: float,
        client_kwargs: dict[str, Any],
    ) -> None:
        self._client_kwargs = client_kwargs
        super().__init__(addresses, backoff=backoff, max_backoff=max_backoff)

    def _new_client(self, address: Address) -> _OneConnection:
        return _OneConnection(address, **self._client_kwargs)

    def close(self) -> None:
        """Close every connection; jobs reserved through them go back to ready."""
        for member in self._members:
            if member.client is not None:
                member.client.close()
            member.client = None
            member.connected = False


def _servers(worker: Worker) -> _Servers:
    assert worker.addresses is not None
    return _Servers(
        worker.addresses,
        worker.server_backoff,
        worker.server_backoff_cap,
        worker._client_kwargs(),
    )


@dataclass(eq=False)
class _Slot:
    """One server's run of the procedure: suspended at ``pending``, the step whose last
    command is the reserve (``None``: not connected, or the procedure returned)."""

    member: Member[_OneConnection]
    steps: Generator[Execute | Handle | Notify, Any, None] | None = None
    pending: Execute | None = None
    job: WorkerJob | None = None  # handled, its settle not yet confirmed by the server


_BROKEN = (OSError, ProtocolError)
"""What a server's connection failing looks like (refused, reset, closed, timed out, or
garbage on the wire)."""


class _ServersDriver:
    """The blocking driver over several servers; see the module docstring."""

    def __init__(self, worker: Worker, servers: _Servers) -> None:
        self.worker = worker
        self.servers = servers
        self.slots = [_Slot(member) for member in servers._members]
        self.sweep = c.ReserveWithTimeout(0)
        self.wait = c.ReserveWithTimeout(min(worker.poll, _WAIT))
        self.turn = 0
        self.wait_turn = 0

    def run(self) -> None:
        while not self._stopping():
            live = self._live()
            if not live:
                # Every server is down: wait for the first backoff to end, a second at most
                # at a time, so that a stop is noticed.
                retry = min(slot.member.retry_at for slot in self.slots)
                time.sleep(min(1.0, max(0.0, retry - time.monotonic())))
                continue
            self.turn += 1
            took = False
            for slot in rotated_slots(live, self.turn):
                if self._stopping():
                    break
                took = self._turn(slot, self.sweep) or took
            if took or self._stopping():
                continue
            live = [slot for slot in live if slot.pending is not None]
            if live:
                self.wait_turn += 1
                self._turn(live[self.wait_turn % len(live)], self.wait)
        for slot in self.slots:  # stopping: settle what is pending, reserve nothing
            if slot.pending is not None:
                self._flush(slot)

    def _stopping(self) -> bool:
        return self.worker._stopping

    def _live(self) -> list[_Slot]:
        """The servers to ask this round: connected ones, and those whose backoff is over
        (connected now; a failure marks them down again)."""
        now = time.monotonic()
        live = []
        for slot in self.slots:
            if slot.pending is None and slot.member.retry_at <= now:
                self._connect(slot)
            if slot.pending is not None:
                live.append(slot)
        return live

    def _connect(self, slot: _Slot) -> None:
        member = slot.member
        client = self.servers._new_client(member.address)
        try:
            client.connect()
        except Exception as error:
            client.close()
            self._mark_down(slot, error)
            return
        member.client = client
        member.connected = True
        if member.failures:
            log.info("server %s is back", member.name)
        slot.steps = self.worker._procedure(client, WorkerJob)
        try:
            self._advance(slot, None)
        except _BROKEN as error:
            self._down(slot, error)

    def _turn(self, slot: _Slot, reserve: c.ReserveWithTimeout) -> bool:
        """Ask ``slot``'s server for jobs, the first time with ``reserve``: handle those it
        has for up to a second (each settle pipelined with the next reserve there), then
        settle the last one on its own. Returns whether a job was handled."""
        started = time.monotonic()
        handled = False
        while slot.pending is not None:
            client = slot.member.client
            assert client is not None
            commands = slot.pending.commands
            enough = handled and (self.worker._stopping or time.monotonic() - started >= _WAIT)
            if enough:
                if len(commands) == 1:
                    return handled  # nothing to settle: the reserve waits for the next turn
                commands.pop()  # settle alone: reserve nothing more this turn
            else:
                commands[-1] = reserve
            try:
                events = client._execute_many(commands)
            except _BROKEN as error:
                self._down(slot, error)
                return handled
            slot.job = None  # its settle, if it had one, was answered
            self.servers._ok(slot.member)
            if enough:
                events.append(e.TimedOut())
            took = isinstance(events[-1], e.Reserved)
            try:
                self._advance(slot, events)
            except _BROKEN as error:
                self._down(slot, error)
                return handled or took
            if not took or enough:
                return handled or took
            handled = True
            reserve = self.sweep
        return handled

    def _flush(self, slot: _Slot) -> None:
        """Send ``slot``'s pending settle without its reserve; the procedure then ends."""
        assert slot.pending is not None and slot.member.client is not None
        commands = slot.pending.commands
        commands.pop()
        try:
            events = slot.member.client._execute_many(commands) if commands else []
            slot.job = None
            events.append(e.TimedOut())
            self._advance(slot, events)
        except _BROKEN as error:
            self._down(slot, error)

    def _advance(self, slot: _Slot, result: Any) -> None:
        """Resume the procedure with ``result`` and run its steps up to its next reserve
        (``slot.pending``), or to its end."""
        assert slot.steps is not None and slot.member.client is not None
        client = slot.member.client
        while True:
            try:
                step = slot.steps.send(result)
            except StopIteration:
                slot.pending = None
                slot.steps = None
                return
            if isinstance(step, Execute):
                if isinstance(step.commands[-1], c.ReserveWithTimeout):
                    slot.pending = step
                    return
                result = client._execute_many(step.commands)
            else:
                if isinstance(step, Handle):
                    assert isinstance(step.job, WorkerJob)
                    slot.job = step.job
                result = self.worker._run_blocking(step)

    def _down(self, slot: _Slot, error: BaseException) -> None:
        """``slot``'s server failed: count its unsettled job as lost, drop its connection
        and skip it for its backoff."""
        member = slot.member
        job = slot.job
        if job is not None and not job._settled:
            log.warning(
                "job %s/%d lost: its server failed before the job was settled (%s: %s)",
                member.name,
                job.id,
                type(error).__name__,
                error,
            )
            self.worker.lost += 1
            self.worker.processed -= 1
        slot.job = None
        slot.pending = None
        if slot.steps is not None:
            slot.steps.close()
            slot.steps = None
        if member.client is not None:
            member.client.close()
            member.client = None
        self._mark_down(slot, error)

    def _mark_down(self, slot: _Slot, error: BaseException) -> None:
        member = slot.member
        self.servers._mark_down(member, error)
        log.warning(
            "server %s down (%s); trying again in %.3g s",
            member.name,
            member.reason,
            max(0.0, member.retry_at - time.monotonic()),
        )


def rotated_slots(slots: list[S], turn: int) -> list[S]:
    start = turn % len(slots)
    return slots[start:] + slots[:start]


S = TypeVar("S")


# ------------------------------------------------------------- several servers, async


@dataclass(eq=False)
class _AsyncSlot:
    """One server's run of the procedure in one async slot: its own connection, suspended
    at ``pending`` (the step whose last command is the reserve; ``None``: not connected)."""

    member: Member[Any]
    client: Any = None
    steps: Generator[Execute | Handle | Notify, Any, None] | None = None
    pending: Execute | None = None
    job: AsyncWorkerJob | None = None  # handled, its settle not yet confirmed by the server


class _AsyncServers(Spread[Any]):
    """An async slot's servers: their names and backoff, and their connections (each opened
    once, never silently reconnected: the async clusters' connection class)."""

    def __init__(
        self,
        addresses: Sequence[Address],
        backoff: float,
        max_backoff: float,
        connection: Callable[..., Any],
        client_kwargs: dict[str, Any],
    ) -> None:
        self._connection = connection
        self._client_kwargs = client_kwargs
        super().__init__(addresses, backoff=backoff, max_backoff=max_backoff)

    def _new_client(self, address: Address) -> Any:
        return self._connection(address, **self._client_kwargs)


Race = Callable[[list[Callable[[], Awaitable[bool]]]], Awaitable[None]]
"""Run the calls at once until one returns True, then cancel the others."""


class _AsyncServersDriver:
    """One async slot over several servers, for asyncio and trio alike (a library gives its
    connection class, race and sleep). As the blocking driver: a round of
    ``reserve-with-timeout 0`` over the live servers, the jobs a server has taken for up to a
    second (each settle pipelined with the next reserve there); then, when all are empty, a
    wait on every live server at once, as the async clusters do. The first job that comes is
    taken; the other waits are cut off and their connections closed, so a job the server
    reserved for one of them goes back to ready at once (such a server is connected again
    next round, without backoff)."""

    def __init__(
        self,
        worker: Worker,
        connection: Callable[..., Any],
        run_handler: Callable[[Handle], Awaitable[BaseException | None]],
        race: Race,
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        assert worker.addresses is not None
        self.worker = worker
        self.servers = _AsyncServers(
            worker.addresses,
            worker.server_backoff,
            worker.server_backoff_cap,
            connection,
            worker._client_kwargs(),
        )
        self.run_handler = run_handler
        self.race = race
        self.sleep = sleep
        self.slots = [_AsyncSlot(member) for member in self.servers._members]
        self.sweep = c.ReserveWithTimeout(0)
        self.wait = c.ReserveWithTimeout(min(worker.poll, _WAIT))
        self.turn = 0
        self.won: list[tuple[_AsyncSlot, list[e.Event]]] = []

    async def run(self) -> None:
        try:
            await self._rounds()
            for slot in self.slots:  # stopping: settle what is pending, reserve nothing
                if slot.pending is not None:
                    await self._flush(slot)
        finally:
            # (Also when cancelled: closing a connection hands its reserved job back.)
            for slot in self.slots:
                await self._cut(slot)

    def _stopping(self) -> bool:
        return self.worker._stopping

    async def _rounds(self) -> None:
        while not self._stopping():
            live = await self._live()
            if not live:
                # Every server is down: wait for the first backoff to end, a second at most
                # at a time, so that a stop is noticed.
                retry = min(slot.member.retry_at for slot in self.slots)
                await self.sleep(min(1.0, max(0.0, retry - time.monotonic())))
                continue
            self.turn += 1
            took = False
            for slot in rotated_slots(live, self.turn):
                if self._stopping():
                    break
                if slot.pending is not None:
                    took = await self._turn(slot, self.sweep) or took
            if took or self._stopping():
                continue
            waiting = [slot for slot in live if slot.pending is not None]
            if waiting:
                await self._wait(waiting)

    async def _live(self) -> list[_AsyncSlot]:
        now = time.monotonic()
        live = []
        for slot in self.slots:
            if slot.pending is None and slot.member.retry_at <= now:
                await self._connect(slot)
            if slot.pending is not None:
                live.append(slot)
        return live

    async def _connect(self, slot: _AsyncSlot) -> None:
        member = slot.member
        client = self.servers._new_client(member.address)
        try:
            await client.connect()
        except Exception as error:
            await client.close()
            self._mark_down(slot, error)
            return
        except BaseException:
            await client.close()  # cancelled while connecting
            raise
        slot.client = client
        if member.failures:
            log.info("server %s is back", member.name)
        slot.steps = self.worker._procedure(client, AsyncWorkerJob)
        try:
            await self._advance(slot, None)
        except _BROKEN as error:
            await self._down(slot, error)

    async def _wait(self, waiting: list[_AsyncSlot]) -> None:
        """Wait on every server of ``waiting`` at once; take the first job that comes."""
        self.won = []
        await self.race([_waiter(self._wait_on, slot) for slot in waiting])
        won, self.won = self.won, []
        for slot, _ in won[1:]:
            await self._cut(slot)  # a job that came meanwhile: back to ready at once
        if won:
            slot, events = won[0]
            try:
                await self._advance(slot, events)
            except _BROKEN as error:
                await self._down(slot, error)
                return
            if slot.pending is not None and not self._stopping():
                await self._turn(slot, self.sweep)  # its settle, with the next reserve there

    async def _wait_on(self, slot: _AsyncSlot) -> bool:
        assert slot.pending is not None
        commands = slot.pending.commands
        commands[-1] = self.wait
        try:
            events = await slot.client._execute_many(commands)
        except _BROKEN as error:
            await self._down(slot, error)
            return False
        except BaseException:
            await self._cut(slot)  # cut off: no job stays reserved for a wait that is gone
            raise
        slot.job = None
        self.servers._ok(slot.member)
        if not isinstance(events[-1], e.Reserved):
            return False  # (the procedure is still at its reserve: nothing to tell it)
        self.won.append((slot, events))
        return True

    async def _turn(self, slot: _AsyncSlot, reserve: c.ReserveWithTimeout) -> bool:
        """As the blocking driver's ``_turn``: the jobs ``slot``'s server has, for up to a
        second, each settle sent with the next reserve. Returns whether a job was handled."""
        started = time.monotonic()
        handled = False
        while slot.pending is not None:
            commands = slot.pending.commands
            enough = handled and (self._stopping() or time.monotonic() - started >= _WAIT)
            if enough:
                if len(commands) == 1:
                    return handled
                commands.pop()  # settle alone: reserve nothing more this turn
            else:
                commands[-1] = reserve
            try:
                events = await slot.client._execute_many(commands)
            except _BROKEN as error:
                await self._down(slot, error)
                return handled
            slot.job = None
            self.servers._ok(slot.member)
            if enough:
                events.append(e.TimedOut())
            took = isinstance(events[-1], e.Reserved)
            try:
                await self._advance(slot, events)
            except _BROKEN as error:
                await self._down(slot, error)
                return handled or took
            if not took or enough:
                return handled or took
            handled = True
            reserve = self.sweep
        return handled

    async def _flush(self, slot: _AsyncSlot) -> None:
        assert slot.pending is not None
        commands = slot.pending.commands
        commands.pop()
        try:
            events = await slot.client._execute_many(commands) if commands else []
            slot.job = None
            events.append(e.TimedOut())
            await self._advance(slot, events)
        except _BROKEN as error:
            await self._down(slot, error)

    async def _advance(self, slot: _AsyncSlot, result: Any) -> None:
        """Resume the procedure with ``result`` and run its steps up to its next reserve
        (``slot.pending``), or to its end."""
        assert slot.steps is not None
        while True:
            try:
                step = slot.steps.send(result)
            except StopIteration:
                slot.pending = None
                slot.steps = None
                return
            if isinstance(step, Execute):
                if isinstance(step.commands[-1], c.ReserveWithTimeout):
                    slot.pending = step
                    return
                result = await slot.client._execute_many(step.commands)
            elif isinstance(step, Handle):
                assert isinstance(step.job, AsyncWorkerJob)
                slot.job = step.job
                result = await self.run_handler(step)
            else:
                result = await self.worker._call_hook(step)

    async def _cut(self, slot: _AsyncSlot) -> None:
        """Close ``slot``'s connection (no checkpoint: it runs in cancelled tasks too) and
        forget its procedure; the server is connected again by the next round."""
        slot.pending = None
        slot.job = None
        if slot.steps is not None:
            slot.steps.close()
            slot.steps = None
        if slot.client is not None:
            client, slot.client = slot.client, None
            await client.close()

    async def _down(self, slot: _AsyncSlot, error: BaseException) -> None:
        """``slot``'s server failed: count its unsettled job as lost, drop its connection
        and skip it for its backoff."""
        job = slot.job
        if job is not None and not job._settled:
            log.warning(
                "job %s/%d lost: its server failed before the job was settled (%s: %s)",
                slot.member.name,
                job.id,
                type(error).__name__,
                error,
            )
            self.worker.lost += 1
            self.worker.processed -= 1
        await self._cut(slot)
        self._mark_down(slot, error)

    def _mark_down(self, slot: _AsyncSlot, error: BaseException) -> None:
        member = slot.member
        self.servers._mark_down(member, error)
        log.warning(
            "server %s down (%s); trying again in %.3g s",
            member.name,
            member.reason,
            max(0.0, member.retry_at - time.monotonic()),
        )


def _waiter(
    wait_on: Callable[[_AsyncSlot], Awaitable[bool]], slot: _AsyncSlot
) -> Callable[[], Awaitable[bool]]:
    return lambda: wait_on(slot)


async def _race_asyncio(calls: list[Callable[[], Awaitable[bool]]]) -> None:
    import asyncio

    tasks: list[asyncio.Task[None]] = []

    async def run(call: Callable[[], Awaitable[bool]]) -> None:
        if await call():
            current = asyncio.current_task()
            for task in tasks:
                if task is not current:
                    task.cancel()

    tasks.extend(asyncio.ensure_future(run(call)) for call in calls)
    try:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome


async def _race_trio(calls: list[Callable[[], Awaitable[bool]]]) -> None:
    import trio

    async with trio.open_nursery() as nursery:

        async def run(call: Callable[[], Awaitable[bool]]) -> None:
            if await call():
                nursery.cancel_scope.cancel()

        for call in calls:
            nursery.start_soon(run, call)
