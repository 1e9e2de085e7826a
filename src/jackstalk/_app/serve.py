"""The ``jackstalk serve`` and ``jackstalk demo`` sub-commands: the embedded server.

``serve`` takes beanstalkd's own flags (``-l ADDR``, ``-p PORT``, ``-z BYTES``; ``-l
unix:/path`` for a Unix socket). ``demo`` walks a producer and two consumers through
priorities, a delay, release, bury and kick, on the embedded server unless ``--address``
points at another one.

Scripts start a server and connect at once, so ``serve`` listens before it imports asyncio
and the engine (connections wait in the system's queue meanwhile), and it exits at once on
SIGTERM or SIGINT, as beanstalkd does. Only what building the parser needs is imported at
the top of this module.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from jackstalk._app.cli import parse_address

if TYPE_CHECKING:
    import asyncio

    from jackstalk.transports.blocking import Client
    from jackstalk.transports.server import EmbeddedServer

__all__ = ["add_server_commands"]

MAX_JOB_SIZE_LIMIT = 2**30  # beanstalkd clamps -z to 1 GiB


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: 0 to 65535")
    return int(text)


def _size(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"invalid job size {text!r}: a number of bytes")
    return int(text)


# ------------------------------------------------------------------------------ serve


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the embedded server until SIGINT or SIGTERM, then exit the process at once.

    Returns only when the address cannot be used (status 1).
    """
    from jackstalk.transports.server import bind

    max_job_size = args.max_job_size
    if max_job_size > MAX_JOB_SIZE_LIMIT:
        print(
            f"jackstalk serve: -z {max_job_size} is more than the limit;"
            f" using {MAX_JOB_SIZE_LIMIT}",
            file=sys.stderr,
        )
        max_job_size = MAX_JOB_SIZE_LIMIT
    listen: str = args.listen
    unix_path = listen[5:] if listen.startswith("unix:") else None
    where = unix_path if unix_path is not None else f"{listen}:{args.port}"
    try:
        sockets = bind(listen, args.port, unix_path=unix_path)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"jackstalk serve: cannot listen on {where}: {reason}", file=sys.stderr)
        return 1
    # Signals that come while the rest loads: stop at once, or remember to drain.
    import signal

    drain_asked: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: _exit_now(0))
    signal.signal(signal.SIGUSR1, lambda signum, _: drain_asked.append(signum))
    name = sockets[0].getsockname()
    shown = name if isinstance(name, str) else f"{name[0]}:{name[1]}"
    print(f"jackstalk serve: listening on {shown}", file=sys.stderr, flush=True)

    import asyncio

    from jackstalk.transports.server import start_server

    kept: list[EmbeddedServer] = []  # its jobs are left for the system to free at exit

    async def serve() -> None:
        server = await start_server(max_job_size=max_job_size, sockets=sockets)
        kept.append(server)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, server.drain)  # as beanstalkd does
        if drain_asked:
            server.drain()
        collector = _IdleCollector(server, loop)
        async with server:
            await stop.wait()
        collector.stop()

    asyncio.run(serve())
    _exit_now(0)


class _IdleCollector:
    """Full garbage collections while the server is idle, not in the middle of a burst.

    CPython's full collection walks every object: about 40 ms per 200,000 jobs here. Left
    to itself it runs whenever the heap has grown by a quarter, that is in the middle of a
    burst of puts, where it would hold up every client. So ``serve`` (its own process)
    turns the automatic full collections off and runs one after a second without work, or
    after a minute of work without a pause. The young generations are collected as usual.
    """

    PERIOD = 1.0  # seconds between looks at the server
    LONGEST = 60.0  # seconds of work after which the collection runs anyway

    def __init__(self, server: EmbeddedServer, loop: asyncio.AbstractEventLoop) -> None:
        import gc

        self._gc = gc
        self._server = server
        self._loop = loop
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, 2**31 - 1)
        self._seen = self._collected = server.turns
        self._last = loop.time()
        self._handle = loop.call_later(self.PERIOD, self._look)

    def _look(self) -> None:
        turns = self._server.turns
        now = self._loop.time()
        worked = turns != self._collected  # since the last collection
        idle = turns == self._seen  # for the last period
        if worked and (idle or now - self._last >= self.LONGEST):
            self._gc.collect()
            self._collected = turns
            self._last = now
        self._seen = turns
        self._handle = self._loop.call_later(self.PERIOD, self._look)

    def stop(self) -> None:
        """Stop looking."""
        self._handle.cancel()


def _exit_now(status: int) -> NoReturn:
    """Exit at once, as beanstalkd does: the system takes the jobs' memory back.

    Freeing them one by one, and the interpreter's teardown, would take a quarter of a
    second per 200,000 jobs. Exit handlers (coverage's, say) still run.
    """
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    atexit._run_exitfuncs()
    os._exit(status)


# ------------------------------------------------------------------------------ demo


class _Narrator:
    """Prints who did what, with the time since the start."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self, who: str, text: str) -> None:
        print(f"{time.monotonic() - self.start:5.2f}s  {who:<10} {text}", flush=True)


@contextmanager
def _server(address: tuple[str, int] | str | None) -> Iterator[tuple[str, int] | str]:
    if address is not None:
        yield address
        return
    from jackstalk.testing import embedded_server

    with embedded_server() as server:
        yield server.address


def _demo(
    address: tuple[str, int] | str, say: Callable[[str, str], None], suffix: str = ""
) -> None:
    from jackstalk.transports.blocking import Client

    def client(**options: Any) -> Client:
        return Client(address, timeout=10.0, **options)

    emails, thumbnails = "emails" + suffix, "thumbnails" + suffix
    with (
        client(use=emails) as producer,
        client(watch=emails) as mailer,
        client(watch=thumbnails) as imager,
    ):
        say("producer", "puts three emails with different priorities (lower is sooner)")
        for body, priority in (("newsletter", 2000), ("password reset", 10), ("invoice", 500)):
            job_id = producer.put(body, priority=priority)
            say("producer", f"  put {body!r:<18} priority {priority:<5} -> job {job_id}")
        producer.use(thumbnails)
        job_id = producer.put("resize cat.jpg", delay=1)
        say(
            "producer",
            f"put 'resize cat.jpg' in tube {thumbnails} with a 1 s delay -> job {job_id}",
        )

        say("mailer", f"reserves from tube {emails}: the most urgent job comes first")
        first = mailer.reserve(timeout=0)
        assert first is not None
        say("mailer", f"  got job {first.id} {first.body!r}; sending it, then deleting it")
        first.delete()
        second = mailer.reserve(timeout=0)
        assert second is not None
        say("mailer", f"  got job {second.id} {second.body!r}: the mail server is down,")
        say("mailer", "  so it releases the job with a lower priority, to retry later")
        second.release(priority=3000)
        third = mailer.reserve(timeout=0)
        assert third is not None
        say("mailer", f"  got job {third.id} {third.body!r} (the released one now waits)")
        third.delete()
        again = mailer.reserve(timeout=0)
        assert again is not None
        say("mailer", f"  got job {again.id} {again.body!r} again, and this time it works")
        again.delete()

        say("imager", f"waits on tube {thumbnails}; its job is still delayed")
        job = imager.reserve(timeout=5)
        assert job is not None
        say("imager", f"  got job {job.id} {job.body!r} once its delay ended")
        say("imager", "  the image is corrupt: it buries the job for a human to look at")
        job.bury()
        stats = producer.stats_tube(thumbnails)
        say("producer", f"tube {thumbnails}: {stats['current-jobs-buried']} buried job")
        kicked = producer.kick(10)
        say("producer", f"fixes the image and kicks the buried jobs: {kicked} back to ready")
        job = imager.reserve(timeout=5)
        assert job is not None
        job_stats = imager.stats_job(job)
        say("imager", f"  got job {job.id} again (reserved {job_stats['reserves']} times,")
        say(
            "imager",
            f"  buried {job_stats['buries']}, kicked {job_stats['kicks']}); done, deleting it",
        )
        job.delete()
        for tube in (emails, thumbnails):
            stats = producer.stats_tube(tube)
            say(
                "server",
                f"tube {tube}: put {stats['total-jobs']}, deleted {stats['cmd-delete']},"
                f" still ready {stats['current-jobs-ready']}",
            )


def cmd_demo(args: argparse.Namespace) -> int:
    """Walk a producer and two consumers through the main job states."""
    say = _Narrator()
    with _server(args.address) as address:
        where = "the embedded server" if args.address is None else "the server"
        shown = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        say("demo", f"using {where} at {shown}")
        # On someone else's server, tubes of our own keep the story (and their jobs) apart.
        _demo(address, say, "" if args.address is None else f"-demo-{os.getpid()}")
    say("demo", "done")
    return 0


# ------------------------------------------------------------------------------ wiring


def add_server_commands(commands: Any) -> None:
    """Register ``serve`` and ``demo`` on an argparse sub-parsers object."""
    serve: argparse.ArgumentParser = commands.add_parser(
        "serve",
        help="run the embedded beanstalkd (in memory)",
        description="Run jackstalk's embedded beanstalkd: the same protocol, in memory.",
    )
    serve.add_argument(
        "-l",
        dest="listen",
        metavar="ADDR",
        default="127.0.0.1",
        help="listen on ADDR (default 127.0.0.1); unix:/path for a Unix socket",
    )
    serve.add_argument(
        "-p", dest="port", metavar="PORT", type=_port, default=11300, help="TCP port (11300)"
    )
    serve.add_argument(
        "-z",
        dest="max_job_size",
        metavar="BYTES",
        type=_size,
        default=65535,
        help="largest job body accepted (65535)",
    )
    serve.set_defaults(handler=cmd_serve)
    demo: argparse.ArgumentParser = commands.add_parser(
        "demo", help="a producer and two consumers, narrated (embedded server by default)"
    )
    demo.add_argument(
        "--address",
        type=parse_address,
        default=None,
        help="HOST:PORT or a Unix socket path of a server to use instead",
    )
    demo.set_defaults(handler=cmd_demo)
