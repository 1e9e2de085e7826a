"""The queue-inspection sub-commands of ``jackstalk`` (stats, put, peek, kick, top ...).

Exit statuses: 0 done, 1 not found or empty, 2 usage error, 3 cannot connect. Expected
failures print one line on stderr (usage errors also the command's usage line, as argparse
does), never a traceback.

Several servers (``--address`` repeated, or a comma-separated ``BEANSTALKD_ADDRESS``) are
one :class:`~jackstalk.Cluster` for ``stats``, ``tubes``, ``top``, ``put`` and ``drain``:
the readers show each server and the total, a server that is down included as down; the
other commands act on one server's jobs by id or tube, so they take one address.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from jackstalk._api.base import DEFAULT_HOST, DEFAULT_PORT
from jackstalk._protocol.errors import ConnectionClosedError, JackstalkError, NotFoundError
from jackstalk._protocol.validate import U32_MAX, U64_MAX

if TYPE_CHECKING:
    import ssl

    from jackstalk._app.cluster import Cluster, ClusterStats
    from jackstalk.transports.blocking import Client

__all__ = [
    "EXIT_CONNECT",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_STATUSES",
    "add_commands",
    "body_text",
    "parse_address",
    "tls_context",
]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3

EXIT_STATUSES = (
    "exit statuses:\n"
    f"  {EXIT_OK}  done\n"
    f"  {EXIT_NOT_FOUND}  not found, or nothing to do\n"
    f"  {EXIT_USAGE}  usage error\n"
    f"  {EXIT_CONNECT}  cannot connect (or the connection was lost, or no answer in time)"
)
"""The exit statuses, as the help's epilogs print them."""

ADDRESS_ENV = "BEANSTALKD_ADDRESS"

PEEK_STATES = ("ready", "delayed", "buried")

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²', int() does not


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


class _AddressAction(argparse.Action):
    """``--address``, once per server: the first one given replaces the default (the
    environment's), the next ones add servers."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        given = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, [*(given if isinstance(given, list) else []), values])


def _resolve_addresses(args: argparse.Namespace, several: bool) -> None:
    """Set ``args.addresses`` (every server, in order) and ``args.address`` (the first): from
    the ``--address`` options, else from ``$BEANSTALKD_ADDRESS`` (commas separate servers),
    else the default. Raises :class:`CliError` (a usage error) for an address that does
    not parse, one given twice, or several for a command that works on one server."""
    given: list[tuple[str, int] | str] | None = args.address
    source = "--address"
    if given is None:
        text = os.environ.get(ADDRESS_ENV, f"{DEFAULT_HOST}:{DEFAULT_PORT}")
        source = f"${ADDRESS_ENV}"
        parts = [text]
        if "," in text:  # else exactly as one address was always read
            parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            given = [parse_address(part) for part in parts or [""]]
        except argparse.ArgumentTypeError as error:
            raise CliError(f"argument --address: {error}", EXIT_USAGE) from None
    for index, address in enumerate(given):
        if address in given[:index]:
            raise CliError(f"address {_show(address)} is given twice ({source})", EXIT_USAGE)
    if len(given) > 1 and not several:
        raise CliError(
            f"{getattr(args, 'command', 'this command')} works on one server, and {source}"
            f" names {len(given)}: give a single --address",
            EXIT_USAGE,
        )
    args.addresses = given
    args.address = given[0]


def _tube(text: str) -> str:
    from jackstalk._protocol.validate import tube_name

    try:
        return tube_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _job_id(text: str) -> int:
    """A job id argument: 1 to 2**64-1, as beanstalkd hands them out."""
    if _DIGITS.fullmatch(text) is None or not 0 < int(text) <= U64_MAX:
        raise argparse.ArgumentTypeError(
            f"invalid job id {text!r}: a whole number from 1 to {U64_MAX}"
        )
    return int(text)


def _peek_target(text: str) -> str | int:
    """``peek``'s first argument: a job state to peek at in a tube, or a job id."""
    if text in PEEK_STATES:
        return text
    if _DIGITS.fullmatch(text.lstrip("+-")) is not None:  # meant as a number
        return _job_id(text)
    raise argparse.ArgumentTypeError(
        f"invalid job id {text!r}: ready, delayed, buried or a whole number from 1 to {U64_MAX}"
    )


def _u32(text: str) -> int:
    """A priority, delay, ttr, kick bound or pause: what the protocol carries in 32 bits."""
    if _DIGITS.fullmatch(text) is None or int(text) > U32_MAX:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: 0 to {U32_MAX}")
    return int(text)


def _interval(text: str) -> float:
    """Seconds between ``top`` screens: a finite number, not negative."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: seconds, 0 or more")
    return seconds


# ------------------------------------------------------------------------------ TLS


def _wants_tls(args: argparse.Namespace) -> bool:
    """Any ``--tls*`` option turns TLS on: each of them means nothing over plain TCP."""
    return bool(args.tls or args.tls_ca or args.tls_cert or args.tls_key or args.tls_insecure)


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context the ``--tls*`` options ask for, or ``None`` for plain TCP.

    ``--tls`` verifies the server against the system's CAs, ``--tls-ca`` against the given
    CAs only; either way the certificate must name the address's host. ``--tls-cert`` (and
    ``--tls-key``) present a client certificate. ``--tls-insecure`` checks nothing.
    Contradictory options and unreadable files raise :class:`CliError` (a usage error).
    """
    if not _wants_tls(args):
        return None
    if args.tls_key and not args.tls_cert:
        raise CliError("--tls-key needs --tls-cert", EXIT_USAGE)
    if args.tls_insecure and args.tls_ca:
        raise CliError(
            "--tls-insecure checks no certificate, so --tls-ca would be ignored: give one or"
            " the other",
            EXIT_USAGE,
        )
    import ssl

    try:
        context = ssl.create_default_context(cafile=args.tls_ca)
    except OSError as error:  # ssl.SSLError included: not PEM, or no certificate in it
        raise CliError(
            f"cannot load --tls-ca {args.tls_ca}: {_reason(error)}", EXIT_USAGE
        ) from None
    if args.tls_cert:
        try:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        except OSError as error:
            files = args.tls_cert + (f" and --tls-key {args.tls_key}" if args.tls_key else "")
            reason = _reason(error)
            if isinstance(error, ssl.SSLError):  # OpenSSL says little more than "PEM lib"
                reason = f"not a PEM certificate and its key, or they do not match ({reason})"
            raise CliError(f"cannot load --tls-cert {files}: {reason}", EXIT_USAGE) from None
    if args.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reason(error: OSError) -> str:
    """An OS or OpenSSL error as a short phrase, without OpenSSL's source location."""
    return re.sub(r" \(_ssl\.c:\d+\)$", "", error.strerror or str(error))


@contextmanager
def _connect(args: argparse.Namespace) -> Iterator[Client]:
    from jackstalk.transports.blocking import Client

    context = tls_context(args)
    if context is not None and isinstance(args.address, str):
        raise CliError(f"TLS needs a HOST:PORT address, not {args.address}", EXIT_USAGE)
    client = Client(
        args.address, encoding=None, timeout=args.timeout, connect_timeout=5.0, ssl=context
    )
    try:
        client.connect()
    except OSError as error:  # ssl.SSLCertVerificationError included
        raise CliError(f"cannot connect to {_show(args.address)}: {error}", EXIT_CONNECT) from None
    try:
        yield client
    except ConnectionClosedError as error:
        raise CliError(f"connection to {_show(args.address)} lost: {error}", EXIT_CONNECT) from None
    finally:
        client.close()


def _show(address: tuple[str, int] | str) -> str:
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


def _several(args: argparse.Namespace) -> bool:
    """Whether the command was given several servers (a cluster) rather than one."""
    return len(args.addresses) > 1


@contextmanager
def _cluster(args: argparse.Namespace, **options: Any) -> Iterator[Cluster]:
    """The servers of ``args.addresses`` as one :class:`Cluster` (``options`` go to it):
    a put or reserve that no server took, or whose outcome is unknown, is exit status 3."""
    from jackstalk._app.cluster import Cluster

    context = tls_context(args)
    if context is not None:
        for address in args.addresses:
            if isinstance(address, str):
                raise CliError(f"TLS needs a HOST:PORT address, not {address}", EXIT_USAGE)
    cluster = Cluster(
        args.addresses,
        encoding=None,
        timeout=args.timeout,
        connect_timeout=5.0,
        ssl=context,
        **options,
    )
    try:
        yield cluster
    except (ConnectionClosedError, TimeoutError) as error:
        raise CliError(str(error), EXIT_CONNECT) from None
    finally:
        cluster.close()


def _why(reason: str) -> str:
    """A down server's reason for people: without the name of a private exception class
    (``_Something: ``) that may lead it."""
    return re.sub(r"^_\w+: ", "", reason)


def _down(found: Mapping[str, str]) -> dict[str, str]:
    return {name: _why(reason) for name, reason in found.items()}


def _check_some_up(names: list[str], down: Mapping[str, str]) -> None:
    """Exit status 3 when no server answered at all."""
    if names and all(name in down for name in names):
        reasons = "; ".join(f"{name}: {down[name]}" for name in names)
        raise CliError(f"cannot connect to any server: {reasons}", EXIT_CONNECT)


def _warn_down(down: Mapping[str, str], what: str = "") -> None:
    for name, reason in down.items():
        print(f"jackstalk: {name} is down{what} ({reason})", file=sys.stderr)


def _not_found(what: str) -> CliError:
    """The one wording of every not-found failure: ``<what> not found``, exit status 1."""
    return CliError(f"{what} not found", EXIT_NOT_FOUND)


def _job_refused(client: Client, job_id: int, needs: str) -> CliError:
    """Why the server answered NOT_FOUND about an existing job id: it does not exist, or it
    is in a state the command cannot act on (one more round trip, on failure only)."""
    try:
        state = client.stats_job(job_id)["state"]
    except NotFoundError:
        return _not_found(f"job {job_id}")
    return CliError(f"job {job_id} is {state}: {needs}", EXIT_NOT_FOUND)


def _emit(args: argparse.Namespace, value: Any, text: Callable[[], str]) -> None:
    out: TextIO = sys.stdout
    if args.json:
        json.dump(value, out, sort_keys=False)
        out.write("\n")
    elif shown := text():  # nothing at all rather than an empty line
        out.write(shown + "\n")


def _table(mapping: Mapping[str, Any]) -> str:
    width = max((len(key) for key in mapping), default=0)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in mapping.items())


def body_text(body: bytes) -> str:
    """A job body on one line, for people: UTF-8 text whose printable characters stand as
    themselves, a backslash doubled, and every other byte (control bytes such as NUL, tab
    and newline, and bytes that are not UTF-8) as ``\\xNN``. Reversible, and never a raw
    control byte on the terminal."""
    out: list[str] = []
    for char in body.decode("utf-8", "surrogateescape"):
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        else:  # a surrogate escape stands for one undecodable byte; else encode the char
            raw = char.encode("utf-8", "surrogateescape")
            out.append("".join(f"\\x{byte:02x}" for byte in raw))
    return "".join(out)


def _job_json(job_id: int, body: bytes) -> dict[str, Any]:
    try:
        return {"id": job_id, "body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"id": job_id, "body_hex": body.hex()}


# ------------------------------------------------------------------------------ commands


def _cell(value: Any) -> str:
    """A value of the server columns, as the one-server table prints it."""
    return "-" if value is None else str(value)


def _total_cell(value: Any) -> str:
    """A value of the total column: a field that does not add up (``pid``, ``version``
    ...) comes as one value per server, shown when all of them agree, else ``-``."""
    if isinstance(value, list):
        return str(value[0]) if value and all(item == value[0] for item in value) else "-"
    return _cell(value)


def _columns(rows: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns two spaces apart, no trailing spaces."""
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "\n".join(
        "  ".join(f"{cell:<{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _stats_table(
    names: list[str],
    servers: Mapping[str, Mapping[str, Any] | None],
    total: Mapping[str, Any],
    down: Mapping[str, str],
) -> str:
    """One row per field; a column per server (``down``, or ``-`` for a tube it does not
    have), then the total."""
    fields: dict[str, None] = {}
    for document in servers.values():
        fields.update(dict.fromkeys(document or ()))
    fields.update(dict.fromkeys(total))
    rows = [["", *names, "total"]]
    for field in fields:
        row = [field]
        for name in names:
            document = servers.get(name)
            row.append("down" if name in down else _cell(document and document.get(field)))
        row.append(_total_cell(total.get(field)))
        rows.append(row)
    return _columns(rows)


def _stats_several(args: argparse.Namespace) -> int:
    with _cluster(args) as cluster:
        names = cluster.servers
        try:
            result = cluster.stats_tube(args.tube) if args.tube else cluster.stats()
        except NotFoundError:
            raise _not_found(f"tube {args.tube}") from None
    down = _down(result.down)
    _check_some_up(names, down)
    # A server without the tube answered, and has no statistics of it: null.
    servers = {name: result.servers.get(name) for name in names if name not in down}
    _warn_down(down)
    _emit(
        args,
        {"servers": servers, "total": result.total, "down": down},
        lambda: _stats_table(names, servers, result.total, down),
    )
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    if _several(args):
        return _stats_several(args)
    with _connect(args) as client:
        try:
            stats = client.stats_tube(args.tube) if args.tube else client.stats()
        except NotFoundError:
            raise _not_found(f"tube {args.tube}") from None
    _emit(args, stats, lambda: _table(stats))
    return EXIT_OK


def cmd_stats_job(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        try:
            stats = client.stats_job(args.id)
        except NotFoundError:
            raise _not_found(f"job {args.id}") from None
    _emit(args, stats, lambda: _table(stats))
    return EXIT_OK


def _tubes_several(args: argparse.Namespace) -> int:
    with _cluster(args) as cluster:
        names = cluster.servers
        listing = cluster.stats()  # which servers answer
        found: dict[str, list[str]] = {name: [] for name in listing.servers}
        down = dict(listing.down)
        for tube in cluster.tubes():
            try:
                result = cluster.stats_tube(tube)
            except NotFoundError:  # gone since it was listed
                continue
            down.update(result.down)
            for name in result.servers:
                found.setdefault(name, []).append(tube)
    down = _down(down)
    _check_some_up(names, down)
    servers = {name: found.get(name, []) for name in names if name not in down}
    total = list(dict.fromkeys(tube for tubes in servers.values() for tube in tubes))
    _warn_down(down)

    def text() -> str:
        rows = [[name, "down" if name in down else " ".join(servers[name])] for name in names]
        return _columns([*rows, ["total", " ".join(total)]])

    _emit(args, {"servers": servers, "total": total, "down": down}, text)
    return EXIT_OK


def cmd_tubes(args: argparse.Namespace) -> int:
    if _several(args):
        return _tubes_several(args)
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
    if _several(args):
        # The server decides the largest body; it answers JOB_TOO_BIG if needed.
        with _cluster(args, use=args.tube, max_job_size=2**30) as cluster:
            where = cluster.put(body, args.priority, args.delay, args.ttr)
        _emit(args, {"server": where.server, "id": where.id}, lambda: str(where))
        return EXIT_OK
    with _connect(args) as client:
        client.max_job_size = 2**30  # the server decides; it answers JOB_TOO_BIG if needed
        client.use(args.tube)
        job_id = client.put(body, args.priority, args.delay, args.ttr)
    _emit(args, {"id": job_id}, lambda: str(job_id))
    return EXIT_OK


def cmd_peek(args: argparse.Namespace) -> int:
    what: str | int = args.what
    if isinstance(what, int) and args.tube is not None:
        raise CliError(f"peek {what} takes no tube (peek ID, or peek STATE TUBE)", EXIT_USAGE)
    if isinstance(what, str) and args.tube is None:
        raise CliError(f"peek {what} needs a TUBE", EXIT_USAGE)
    if args.raw and args.json:
        raise CliError("--raw and --json exclude each other", EXIT_USAGE)
    with _connect(args) as client:
        if isinstance(what, int):
            job = client.peek(what)
            missing = f"job {what}"
        else:
            client.use(args.tube)
            peekers = {
                "ready": client.peek_ready,
                "delayed": client.peek_delayed,
                "buried": client.peek_buried,
            }
            job = peekers[what]()
            missing = f"{what} job in tube {args.tube}"
    if job is None:
        raise _not_found(missing)
    if args.raw:  # the body's own bytes, nothing around them
        sys.stdout.flush()
        sys.stdout.buffer.write(job.body)
        sys.stdout.buffer.flush()
        return EXIT_OK
    _emit(args, _job_json(job.id, job.body), lambda: f"{job.id}\n{body_text(job.body)}")
    return EXIT_OK


def cmd_kick(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        client.use(args.tube)
        kicked = client.kick(args.bound)
    _emit(args, {"kicked": kicked}, lambda: str(kicked))
    return EXIT_OK if kicked else EXIT_NOT_FOUND


def cmd_kick_job(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        try:
            client.kick_job(args.id)
        except NotFoundError:
            raise _job_refused(client, args.id, "only a buried or delayed job is kicked") from None
    _emit(args, {"kicked": args.id}, lambda: f"kicked {args.id}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    refused: list[CliError] = []
    missing: list[int] = []
    deleted: list[int] = []
    with _connect(args) as client:
        for job_id in args.ids:
            try:
                client.delete(job_id)
                deleted.append(job_id)
            except NotFoundError:
                missing.append(job_id)
                refused.append(_job_refused(client, job_id, "only its reserver may delete it"))
    for error in refused:
        print(f"jackstalk: {error}", file=sys.stderr)
    _emit(
        args,
        {"deleted": deleted, "not_found": missing},
        lambda: "\n".join(f"deleted {job_id}" for job_id in deleted),
    )
    return EXIT_NOT_FOUND if missing else EXIT_OK


def cmd_pause(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        try:
            client.pause_tube(args.tube, args.seconds)
        except NotFoundError:
            raise _not_found(f"tube {args.tube}") from None
    _emit(args, {"paused": args.tube, "seconds": args.seconds}, lambda: f"paused {args.tube}")
    return EXIT_OK


def _drain_several(args: argparse.Namespace) -> int:
    from jackstalk._app.cluster import JobLostError

    # A server that fails is left alone for the rest of the run (the backoff outlasts it),
    # and reported as down at the end: its jobs were not drained.
    with _cluster(
        args, use=args.tube, watch=args.tube, backoff=3600.0, max_backoff=3600.0
    ) as cluster:
        counts = dict.fromkeys(cluster.servers, 0)
        if args.all:
            while cluster.kick(U32_MAX):
                pass
        while (job := cluster.reserve(timeout=0)) is not None:
            try:
                job.delete()
            except JobLostError:  # back to ready on a server now down: not drained
                continue
            counts[job.server] += 1
        down = _down(cluster.down())
    count = sum(counts.values())
    _warn_down(down, f": its jobs of {args.tube} were not drained")
    _emit(
        args,
        {"deleted": count, "servers": counts, "down": down},
        lambda: f"deleted {count} job(s) from {args.tube}",
    )
    if down:
        return EXIT_CONNECT
    return EXIT_OK if count else EXIT_NOT_FOUND


def cmd_drain(args: argparse.Namespace) -> int:
    if _several(args):
        return _drain_several(args)
    count = 0
    with _connect(args) as client:
        client.watch(args.tube)
        if args.tube != "default":
            client.ignore("default")
        # Reserve and delete everything ready now; with --all, buried and delayed jobs
        # are kicked to ready first.
        if args.all:
            client.use(args.tube)
            while client.kick(U32_MAX):
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
    server: Mapping[str, Any],
    tubes: Mapping[str, Mapping[str, Any]],
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
    return lines


def _snapshot(client: Client) -> tuple[Mapping[str, Any], dict[str, Mapping[str, Any]]]:
    """The server's statistics and every tube's, read now."""
    server: Mapping[str, Any] = client.stats()
    tubes: dict[str, Mapping[str, Any]] = {}
    for name in sorted(client.tubes()):
        try:
            tubes[name] = client.stats_tube(name)
        except NotFoundError:  # the tube vanished between the two calls
            continue
    return server, tubes


class _ClusterSnapshot:
    """Every server's statistics and its tubes', read now: ``servers`` those that answered
    throughout, ``down`` those that did not (with the reason), ``total`` the cluster's
    aggregates (see :class:`ClusterStats`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.names = cluster.servers
        stats = cluster.stats()
        down = dict(stats.down)
        tubes: dict[str, dict[str, Mapping[str, Any]]] = {}
        self.total_tubes: dict[str, Mapping[str, Any]] = {}
        for tube in sorted(cluster.tubes()):
            try:
                result: ClusterStats = cluster.stats_tube(tube)
            except NotFoundError:  # the tube vanished between the two calls
                continue
            down.update(result.down)
            for name, document in result.servers.items():
                tubes.setdefault(name, {})[tube] = document
            self.total_tubes[tube] = result.total
        self.down = _down(down)
        self.total_server: Mapping[str, Any] = stats.total
        self.servers = {
            name: (stats.servers[name], tubes.get(name, {}))
            for name in self.names
            if name in stats.servers and name not in self.down
        }

    def json(self) -> dict[str, Any]:
        return {
            "servers": {
                name: {"server": server, "tubes": tubes}
                for name, (server, tubes) in self.servers.items()
            },
            "total": {"server": self.total_server, "tubes": self.total_tubes},
            "down": self.down,
        }


def render_top_cluster(
    snapshot: _ClusterSnapshot,
    previous: dict[tuple[str, str], int],
    elapsed: float,
) -> list[str]:
    """The lines of one ``top`` screen over several servers: a summary, one row per server
    (a server that is down says so, and why) and their total, then one row per tube with
    its counts and rate summed over the servers.

    ``previous`` holds each ``(server, "")`` and ``(server, tube)``'s ``total-jobs`` of the
    previous screen; the rates count, per server, the jobs put since (so a server coming or
    going does not show as a burst of puts), and ``previous`` is updated in place.
    """
    width = max(24, *(len(name) + 2 for name in snapshot.names))
    servers = snapshot.servers

    def rate(key: tuple[str, str], stats: Mapping[str, Any]) -> float:
        total = int(stats.get("total-jobs", 0))
        before = previous.get(key, total)
        previous[key] = total
        return max(0, total - before) / elapsed if elapsed > 0 else 0.0

    def row(name: str, stats: Mapping[str, Any], puts: float) -> str:
        cells = "".join(f"{stats.get(key, 0)!s:>10}" for key, _ in _TOP_FIELDS)
        return f"{name[:width]:<{width}}{cells}{puts:>10.1f}"

    def summed(documents: Iterable[Mapping[str, Any]]) -> dict[str, int]:
        return {key: sum(int(d.get(key, 0)) for d in documents) for key, _ in _TOP_FIELDS}

    header = "".join(f"{label:>10}" for _, label in _TOP_FIELDS) + f"{'puts/s':>10}"
    shown = [server for server, _ in servers.values()]
    versions = sorted({str(server.get("version", "?")) for server in shown}) or ["?"]
    connections = sum(int(server.get("current-connections", 0)) for server in shown)
    total = summed(shown)
    lines = [
        f"beanstalkd {'/'.join(versions)}  servers {len(snapshot.names)}"
        f" down {len(snapshot.down)}  connections {connections}  "
        f"jobs ready {total['current-jobs-ready']} reserved {total['current-jobs-reserved']}",
        "",
        f"{'server':<{width}}{header}",
    ]
    all_puts = 0.0
    for name in snapshot.names:
        if name in servers:
            puts = rate((name, ""), servers[name][0])
            all_puts += puts
            lines.append(row(name, servers[name][0], puts))
        else:
            lines.append(f"{name[:width]:<{width}}{'down':>10}  {snapshot.down.get(name, '')}")
    lines += [row("total", total, all_puts), "", f"{'tube':<{width}}{header}"]
    for tube in snapshot.total_tubes:
        documents = [(name, tubes[tube]) for name, (_, tubes) in servers.items() if tube in tubes]
        puts = sum(rate((name, tube), stats) for name, stats in documents)
        lines.append(row(tube, summed([stats for _, stats in documents]), puts))
    return lines


@contextmanager
def _top_screens(
    args: argparse.Namespace,
) -> Iterator[Callable[[float], tuple[list[str], float]]]:
    """Connected, a function that reads a snapshot and returns its screen's lines and the
    time it was read (given the time the previous one was read, for the rates)."""
    if not _several(args):
        with _connect(args) as client:
            previous: dict[str, int] = {}

            def one(last: float) -> tuple[list[str], float]:
                server, tubes = _snapshot(client)
                now = time.monotonic()
                lines = render_top(server, tubes, previous, now - last)
                previous.clear()
                previous.update((name, int(stats["total-jobs"])) for name, stats in tubes.items())
                return lines, now

            yield one
        return
    # A server that failed is tried again after about one refresh (not at every tube of
    # the same screen), and shows as down meanwhile.
    wait = max(1.0, args.interval)
    with _cluster(args, backoff=wait, max_backoff=wait) as cluster:
        totals: dict[tuple[str, str], int] = {}

        def several(last: float) -> tuple[list[str], float]:
            snapshot = _ClusterSnapshot(cluster)
            now = time.monotonic()
            return render_top_cluster(snapshot, totals, now - last), now

        yield several


def cmd_top(args: argparse.Namespace) -> int:
    """Redraw the tubes table; on a pipe or file, print plain snapshots one after another
    (no screen-clearing codes); with ``--json``, print one JSON snapshot and stop."""
    if args.json and _several(args):
        with _cluster(args) as cluster:
            snapshot = _ClusterSnapshot(cluster)
        _check_some_up(snapshot.names, snapshot.down)
        _emit(args, snapshot.json(), lambda: "")
        return EXIT_OK
    if args.json:
        with _connect(args) as client:
            server, tubes = _snapshot(client)
        _emit(args, {"server": server, "tubes": tubes}, lambda: "")
        return EXIT_OK

    import select
    import termios
    import tty

    keys = sys.stdin.isatty()  # q quits when there is a keyboard to read
    screen = sys.stdout.isatty()  # else no escape codes: plain snapshots, one per interval
    saved = termios.tcgetattr(sys.stdin) if keys else None
    last = time.monotonic()
    try:
        if keys:
            tty.setcbreak(sys.stdin.fileno())
        with _top_screens(args) as draw:
            rounds = 0
            while True:
                rounds += 1
                lines, last = draw(last)
                if screen:
                    lines = ["\x1b[H\x1b[2J" + lines[0], *lines[1:], "", "q or Ctrl-C quits"]
                elif rounds > 1:
                    lines.insert(0, "")  # a blank line between snapshots
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
                if args.iterations is not None and rounds >= args.iterations:
                    break
                # Wait for the refresh interval, or a key press on a terminal.
                if not keys:
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


# ------------------------------------------------------------------------------ web

WEB_EXTRA = "the web console needs the web extra: pip install 'jackstalk[web]'"
_WEB_MODULES = {"starlette", "uvicorn", "jinja2", "prometheus_client", "multipart", "anyio"}


def _listen(text: str) -> tuple[str, int]:
    """``--listen HOST:PORT`` (``[::1]:PORT`` for IPv6; port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}: HOST:PORT")
    return host, int(port)


def _refresh(text: str) -> float:
    """``--interval`` of the web console: seconds, at least 0.05."""
    seconds = _interval(text)
    if seconds < 0.05:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: at least 0.05 seconds")
    return seconds


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the web console until SIGINT or SIGTERM."""
    host, port = args.listen
    if not _loopback(host) and not (args.token or args.basic_auth):
        raise CliError(
            f"--listen {host}:{port} is not a loopback address: give --token or --basic-auth"
            " so that the console is not open to anyone who can reach it",
            EXIT_USAGE,
        )
    if args.basic_auth is not None and ":" not in args.basic_auth:
        raise CliError("--basic-auth takes USER:PASSWORD", EXIT_USAGE)
    if args.token == "":
        raise CliError("--token must not be empty", EXIT_USAGE)
    try:
        from jackstalk._app.web import WebConfig, serve
    except ImportError as error:
        if (error.name or "").partition(".")[0] not in _WEB_MODULES:
            raise
        raise CliError(f"{WEB_EXTRA} ({error})", EXIT_USAGE) from None
    context = tls_context(args)
    options: dict[str, Any] = {}
    if context is not None:
        for address in args.addresses:
            if isinstance(address, str):
                raise CliError(f"TLS needs a HOST:PORT address, not {address}", EXIT_USAGE)
        options["ssl"] = context
    config = WebConfig(
        addresses=args.addresses,
        interval=args.interval,
        timeout=args.timeout,
        read_only=args.read_only,
        token=args.token,
        basic_auth=args.basic_auth,
        client_options=options,
    )
    status = serve(config, host, port)
    if status:
        raise CliError(f"cannot listen on {host}:{port}", EXIT_CONNECT)
    return EXIT_OK


def _add_web(commands: Any, common: argparse.ArgumentParser) -> None:
    summary = "a live console of the servers in the browser, with /metrics"
    parser: argparse.ArgumentParser = commands.add_parser(
        "web",
        help=summary,
        description=summary[:1].upper() + summary[1:] + " (needs: pip install 'jackstalk[web]').",
        parents=[common],
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=_with_addresses(cmd_web, True), parser=parser)
    parser.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 8080),
        metavar="HOST:PORT",
        help="where the console listens (default: 127.0.0.1:8080; port 0 picks a free one);"
        " an address that is not loopback needs --token or --basic-auth",
    )
    parser.add_argument(
        "--interval",
        type=_refresh,
        default=1.0,
        help="seconds between refreshes of the live data (default: %(default)s)",
    )
    parser.add_argument(
        "--read-only", action="store_true", help="show no actions, and refuse every POST"
    )
    # (From the environment too: a secret on the command line is visible to every user.)
    parser.add_argument(
        "--token",
        default=os.environ.get("JACKSTALK_WEB_TOKEN") or None,
        help="require this token (Bearer header, or ?token= once); default: $JACKSTALK_WEB_TOKEN",
    )
    parser.add_argument(
        "--basic-auth",
        default=os.environ.get("JACKSTALK_WEB_BASIC_AUTH") or None,
        metavar="USER:PASSWORD",
        help="require basic auth; default: $JACKSTALK_WEB_BASIC_AUTH",
    )


# ------------------------------------------------------------------------------ wiring


def _with_addresses(
    handler: Callable[[argparse.Namespace], int], several: bool
) -> Callable[[argparse.Namespace], int]:
    """``handler``, run once the servers are known (see :func:`_resolve_addresses`)."""

    def resolved(args: argparse.Namespace) -> int:
        _resolve_addresses(args, several)
        return handler(args)

    resolved.__name__ = resolved.__qualname__ = handler.__name__
    resolved.__doc__ = handler.__doc__
    return resolved


def add_commands(commands: Any) -> None:
    """Register the queue sub-commands on an argparse sub-parsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--address",
        type=parse_address,
        action=_AddressAction,
        default=None,
        help="HOST:PORT or a Unix socket path; repeat it for several servers (stats, tubes,"
        f" top, put and drain) (default: ${ADDRESS_ENV}, commas separating several,"
        " or 127.0.0.1:11300)",
    )
    common.add_argument(
        "--timeout", type=float, default=10.0, help="reply timeout in seconds (default: 10)"
    )
    tls = common.add_argument_group("TLS (to a TLS terminator in front of beanstalkd)")
    tls.add_argument(
        "--tls",
        action="store_true",
        help="speak TLS, checking the server's certificate against the system's CAs"
        " and the address's host name",
    )
    tls.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="trust only the CA certificate(s) in this PEM file instead; implies --tls",
    )
    tls.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="present this client certificate (PEM, the key may follow it); implies --tls",
    )
    tls.add_argument(
        "--tls-key", metavar="FILE", help="the client certificate's key, if not in its file"
    )
    tls.add_argument(
        "--tls-insecure",
        action="store_true",
        help="INSECURE: speak TLS but check no certificate and no host name, so anyone"
        " between here and the server can read and change the traffic; implies --tls",
    )
    reading = argparse.ArgumentParser(add_help=False, parents=[common])
    reading.add_argument("--json", action="store_true", help="print JSON for scripts")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        summary: str,
        several: bool = False,
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name,
            help=summary,
            description=summary[:1].upper() + summary[1:] + ".",
            parents=[reading],
            epilog=EXIT_STATUSES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # The parser rides along, so that a usage error found later prints its usage.
        parser.set_defaults(handler=_with_addresses(handler, several), parser=parser)
        return parser

    stats = add("stats", cmd_stats, "server or tube statistics", several=True)
    stats.add_argument("tube", nargs="?", type=_tube)
    add("stats-job", cmd_stats_job, "job statistics").add_argument("id", type=_job_id)
    add("tubes", cmd_tubes, "list tubes", several=True)
    put = add("put", cmd_put, "put a job (body from the argument or stdin)", several=True)
    put.add_argument("tube", type=_tube)
    put.add_argument("body", nargs="?", help="the body, or - (the default) for stdin")
    put.add_argument(
        "--priority",
        type=_u32,
        default=2**31,
        help="0 (most urgent) to 4294967295 (default: %(default)s)",
    )
    put.add_argument(
        "--delay",
        type=_u32,
        default=0,
        help="seconds before the job is ready (default: %(default)s)",
    )
    put.add_argument(
        "--ttr",
        type=_u32,
        default=120,
        help="time to run: seconds a worker may hold the job reserved (default: %(default)s)",
    )
    peek = add("peek", cmd_peek, "peek {ready,delayed,buried} TUBE, or peek ID")
    peek.add_argument("what", metavar="{ready,delayed,buried}|ID", type=_peek_target)
    peek.add_argument("tube", nargs="?", type=_tube)
    peek.add_argument(
        "--raw",
        action="store_true",
        help="write the body's bytes themselves to stdout (no id, no escaping, no newline)",
    )
    kick = add("kick", cmd_kick, "kick up to N buried (or delayed) jobs of a tube")
    kick.add_argument("tube", type=_tube)
    kick.add_argument("bound", metavar="N", nargs="?", type=_u32, default=1)
    add("kick-job", cmd_kick_job, "kick one job").add_argument("id", type=_job_id)
    add("delete", cmd_delete, "delete jobs by id").add_argument("ids", nargs="+", type=_job_id)
    pause = add("pause", cmd_pause, "pause a tube")
    pause.add_argument("tube", type=_tube)
    pause.add_argument("seconds", type=_u32)
    drain = add("drain", cmd_drain, "reserve and delete every ready job of a tube", several=True)
    drain.add_argument("tube", type=_tube)
    drain.add_argument("--all", action="store_true", help="kick buried and delayed jobs first")
    top = add("top", cmd_top, "a live view of tubes and rates (--json: one snapshot)", several=True)
    top.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        help="seconds between refreshes (default: %(default)s)",
    )
    top.add_argument("--iterations", type=int, default=None, help=argparse.SUPPRESS)
    _add_web(commands, common)


def run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a handler, turning expected failures into one line and an exit status."""
    try:
        status = handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
        return status
    except BrokenPipeError:
        # The reader went away (``jackstalk top | head``): stop quietly. Later writes,
        # the interpreter's final flush included, go to /dev/null instead.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except CliError as error:
        return _fail(args, str(error), error.status)
    except NotFoundError:  # each command names what it missed; this is only a fallback
        return _fail(args, "not found", EXIT_NOT_FOUND)
    except TimeoutError:
        return _fail(args, "the server did not answer in time", EXIT_CONNECT)
    except (JackstalkError, ValueError) as error:
        status = EXIT_USAGE if isinstance(error, ValueError) else EXIT_NOT_FOUND
        return _fail(args, str(error), status)


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """Print a failure on stderr: a usage error as argparse prints its own (the command's
    usage line, then the message), anything else as one ``jackstalk: ...`` line."""
    parser: argparse.ArgumentParser | None = getattr(args, "parser", None)
    if status == EXIT_USAGE and parser is not None:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
    else:
        print(f"jackstalk: {message}", file=sys.stderr)
    return status
