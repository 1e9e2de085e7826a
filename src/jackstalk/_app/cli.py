"""The queue-inspection sub-commands of ``jackstalk`` (stats, put, peek, kick, top ...).

Exit statuses: 0 done, 1 not found or empty, 2 usage error, 3 cannot connect. Expected
failures print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from jackstalk._api.base import DEFAULT_HOST, DEFAULT_PORT
from jackstalk._protocol.errors import ConnectionClosedError, JackstalkError, NotFoundError

if TYPE_CHECKING:
    from jackstalk.transports.blocking import Client

__all__ = [
    "EXIT_CONNECT",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_commands",
    "parse_address",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3

ADDRESS_ENV = "BEANSTALKD_ADDRESS"


class CliError(Exception):
    """An expected failure: print ``message`` and exit with ``status``."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def parse_address(text: str) -> tuple[str, int] | str:
    """``HOST:PORT``, ``HOST`` (port 11300), ``[::1]:PORT`` or a Unix socket path."""
    if text.startswith(("/", ".", "unix:")):
        return text.removeprefix("unix:")
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port = text, str(DEFAULT_PORT)
    host = host.strip("[]")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"bad port in address {text!r}")
    return (host or DEFAULT_HOST, int(port))


def _tube(text: str) -> str:
    from jackstalk._protocol.validate import tube_name

    try:
        return tube_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _job_id(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a job id: {text!r}")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[Client]:
    from jackstalk.transports.blocking import Client

    client = Client(args.address, encoding=None, timeout=args.timeout, connect_timeout=5.0)
    try:
        client.connect()
    except OSError as error:
        raise CliError(f"cannot connect to {_show(args.address)}: {error}", EXIT_CONNECT) from None
    try:
        yield client
    except ConnectionClosedError as error:
        raise CliError(f"connection to {_show(args.address)} lost: {error}", EXIT_CONNECT) from None
    finally:
        client.close()


def _show(address: tuple[str, int] | str) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


def _emit(args: argparse.Namespace, value: Any, text: Callable[[], str]) -> None:
    out: TextIO = sys.stdout
    if args.json:
        json.dump(value, out, sort_keys=False)
        out.write("\n")
    else:
        out.write(text() + "\n")


def _table(mapping: dict[str, Any]) -> str:
    width = max((len(key) for key in mapping), default=0)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in mapping.items())


def _body_text(body: bytes) -> str:
    return body.decode("utf-8", "backslashreplace")


def _job_json(job_id: int, body: bytes) -> dict[str, Any]:
    text = body.decode("utf-8", "surrogateescape")
    try:
        body.decode("utf-8")
        return {"id": job_id, "body": text}
    except UnicodeDecodeError:
        return {"id": job_id, "body_hex": body.hex()}


# ------------------------------------------------------------------------------ commands


def cmd_stats(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        stats = client.stats_tube(args.tube) if args.tube else client.stats()
    _emit(args, stats, lambda: _table(stats))
    return EXIT_OK


def cmd_stats_job(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        stats = client.stats_job(args.id)
    _emit(args, stats, lambda: _table(stats))
    return EXIT_OK


def cmd_tubes(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        tubes = client.tubes()
    _emit(args, tubes, lambda: "\n".join(tubes))
    return EXIT_OK


def cmd_put(args: argparse.Namespace) -> int:
    body: bytes
    if args.body is None or args.body == "-":
        body = sys.stdin.buffer.read()
    else:
        body = os.fsencode(args.body)
    with _connect(args) as client:
        client.max_job_size = 2**30  # the server decides; it answers JOB_TOO_BIG if needed
        client.use(args.tube)
        job_id = client.put(body, args.priority, args.delay, args.ttr)
    _emit(args, {"id": job_id}, lambda: str(job_id))
    return EXIT_OK


def cmd_peek(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        if args.what.isdigit():
            if args.tube is not None:
                raise CliError("peek ID takes no tube", EXIT_USAGE)
            job = client.peek(_job_id(args.what))
        else:
            if args.what not in ("ready", "delayed", "buried") or args.tube is None:
                raise CliError("usage: peek {ready,delayed,buried} TUBE | peek ID", EXIT_USAGE)
            client.use(args.tube)
            peekers = {
                "ready": client.peek_ready,
                "delayed": client.peek_delayed,
                "buried": client.peek_buried,
            }
            job = peekers[args.what]()
    if job is None:
        raise CliError("no such job", EXIT_NOT_FOUND)
    _emit(args, _job_json(job.id, job.body), lambda: f"{job.id}\n{_body_text(job.body)}")
    return EXIT_OK


def cmd_kick(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        client.use(args.tube)
        kicked = client.kick(args.bound)
    _emit(args, {"kicked": kicked}, lambda: str(kicked))
    return EXIT_OK if kicked else EXIT_NOT_FOUND


def cmd_kick_job(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        client.kick_job(args.id)
    _emit(args, {"kicked": args.id}, lambda: f"kicked {args.id}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    missing: list[int] = []
    deleted: list[int] = []
    with _connect(args) as client:
        for job_id in args.ids:
            try:
                client.delete(job_id)
                deleted.append(job_id)
            except NotFoundError:
                missing.append(job_id)
    for job_id in missing:
        print(f"jackstalk: job {job_id} not found", file=sys.stderr)
    _emit(
        args,
        {"deleted": deleted, "not_found": missing},
        lambda: "\n".join(f"deleted {job_id}" for job_id in deleted),
    )
    return EXIT_NOT_FOUND if missing else EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        client.pause_tube(args.tube, args.seconds)
    _emit(args, {"paused": args.tube, "seconds": args.seconds}, lambda: f"paused {args.tube}")
    return EXIT_OK


def cmd_drain(args: argparse.Namespace) -> int:
    count = 0
    with _connect(args) as client:
        client.watch(args.tube)
        if args.tube != "default":
            client.ignore("default")
        # Reserve and delete everything ready now; with --all, buried and delayed jobs
        # are kicked to ready first.
        if args.all:
            client.use(args.tube)
            while client.kick(2**32 - 1):
                pass
        while (job := client.reserve(timeout=0)) is not None:
            client.delete(job)
            count += 1
    _emit(args, {"deleted": count}, lambda: f"deleted {count} job(s) from {args.tube}")
    return EXIT_OK if count else EXIT_NOT_FOUND


# ------------------------------------------------------------------------------ top

_TOP_FIELDS = (
    ("current-jobs-ready", "ready"),
    ("current-jobs-reserved", "reserved"),
    ("current-jobs-delayed", "delayed"),
    ("current-jobs-buried", "buried"),
    ("current-waiting", "waiting"),
    ("total-jobs", "total"),
)


def render_top(
    server: dict[str, Any],
    tubes: dict[str, dict[str, Any]],
    previous: dict[str, int],
    elapsed: float,
) -> list[str]:
    """The lines of one ``top`` screen: a server summary, then one row per tube with the
    rate of new jobs since the previous screen."""
    lines = [
        f"beanstalkd {server.get('version', '?')}  uptime {server.get('uptime', 0)}s  "
        f"connections {server.get('current-connections', 0)}  "
        f"jobs ready {server.get('current-jobs-ready', 0)} "
        f"reserved {server.get('current-jobs-reserved', 0)}",
        "",
        f"{'tube':<24}" + "".join(f"{label:>10}" for _, label in _TOP_FIELDS) + f"{'puts/s':>10}",
    ]
    for name, stats in sorted(tubes.items()):
        total = int(stats.get("total-jobs", 0))
        rate = (total - previous.get(name, total)) / elapsed if elapsed > 0 else 0.0
        cells = "".join(f"{stats.get(key, 0)!s:>10}" for key, _ in _TOP_FIELDS)
        lines.append(f"{name[:24]:<24}{cells}{rate:>10.1f}")
    lines.append("")
    lines.append("q or Ctrl-C quits")
    return lines


def cmd_top(args: argparse.Namespace) -> int:
    import select
    import termios
    import tty

    interactive = sys.stdin.isatty()
    saved = termios.tcgetattr(sys.stdin) if interactive else None
    previous: dict[str, int] = {}
    last = time.monotonic()
    try:
        if interactive:
            tty.setcbreak(sys.stdin.fileno())
        with _connect(args) as client:
            rounds = 0
            while args.iterations is None or rounds < args.iterations:
                rounds += 1
                server = client.stats()
                tubes: dict[str, dict[str, Any]] = {}
                for name in client.tubes():
                    try:
                        tubes[name] = client.stats_tube(name)
                    except NotFoundError:  # the tube vanished between the two calls
                        continue
                now = time.monotonic()
                lines = render_top(server, tubes, previous, now - last)
                previous = {name: int(stats["total-jobs"]) for name, stats in tubes.items()}
                last = now
                sys.stdout.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
                sys.stdout.flush()
                # Wait for the refresh interval, or a key press on a terminal.
                if not interactive:
                    time.sleep(args.interval)
                    continue
                ready, _, _ = select.select([sys.stdin], [], [], args.interval)
                if ready and sys.stdin.read(1) in ("q", "Q"):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)
    return EXIT_OK


# ------------------------------------------------------------------------------ wiring


def add_commands(commands: Any) -> None:
    """Register the queue sub-commands on an argparse sub-parsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--address",
        type=parse_address,
        default=os.environ.get(ADDRESS_ENV, f"{DEFAULT_HOST}:{DEFAULT_PORT}"),
        help=f"HOST:PORT or a Unix socket path (default: ${ADDRESS_ENV} or 127.0.0.1:11300)",
    )
    common.add_argument("--timeout", type=float, default=10.0, help="reply timeout in seconds")
    reading = argparse.ArgumentParser(add_help=False, parents=[common])
    reading.add_argument("--json", action="store_true", help="print JSON for scripts")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        json_out: bool = True,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=summary, parents=[reading if json_out else common]
        )
        parser.set_defaults(handler=handler)
        if not json_out:
            parser.set_defaults(json=False)
        return parser

    add("stats", cmd_stats, "server or tube statistics").add_argument("tube", nargs="?", type=_tube)
    add("stats-job", cmd_stats_job, "job statistics").add_argument("id", type=_job_id)
    add("tubes", cmd_tubes, "list tubes")
    put = add("put", cmd_put, "put a job (body from the argument or stdin)")
    put.add_argument("tube", type=_tube)
    put.add_argument("body", nargs="?", help="the body, or - (the default) for stdin")
    put.add_argument("--priority", type=_count, default=2**31)
    put.add_argument("--delay", type=_count, default=0)
    put.add_argument("--ttr", type=_count, default=120)
    peek = add("peek", cmd_peek, "peek {ready,delayed,buried} TUBE, or peek ID")
    peek.add_argument("what", metavar="{ready,delayed,buried}|ID")
    peek.add_argument("tube", nargs="?", type=_tube)
    kick = add("kick", cmd_kick, "kick up to N buried (or delayed) jobs of a tube")
    kick.add_argument("tube", type=_tube)
    kick.add_argument("bound", nargs="?", type=_count, default=1)
    add("kick-job", cmd_kick_job, "kick one job").add_argument("id", type=_job_id)
    add("delete", cmd_delete, "delete jobs by id").add_argument("ids", nargs="+", type=_job_id)
    pause = add("pause", cmd_pause, "pause a tube")
    pause.add_argument("tube", type=_tube)
    pause.add_argument("seconds", type=_count)
    drain = add("drain", cmd_drain, "reserve and delete every ready job of a tube")
    drain.add_argument("tube", type=_tube)
    drain.add_argument("--all", action="store_true", help="kick buried and delayed jobs first")
    top = add("top", cmd_top, "a live view of tubes and rates", json_out=False)
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    top.add_argument("--iterations", type=int, default=None, help=argparse.SUPPRESS)


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a handler, turning expected failures into one line and an exit status."""
    try:
        return handler(args)
    except CliError as error:
        print(f"jackstalk: {error}", file=sys.stderr)
        return error.status
    except NotFoundError:
        print("jackstalk: not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except TimeoutError:
        print("jackstalk: the server did not answer in time", file=sys.stderr)
        return EXIT_CONNECT
    except (JackstalkError, ValueError) as error:
        print(f"jackstalk: {error}", file=sys.stderr)
        return EXIT_USAGE if isinstance(error, ValueError) else EXIT_NOT_FOUND
