"""The ``jackstalk`` command line (also ``python -m jackstalk``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from jackstalk._app.cli import ADDRESS_ENV, EXIT_STATUSES, add_commands, run
from jackstalk._app.serve import add_server_commands
from jackstalk._version import __version__

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]

EPILOG = f"""\
Each command that talks to a server finds it with --address HOST:PORT (or a Unix socket
path); without it, in the {ADDRESS_ENV} environment variable, else at 127.0.0.1:11300.
--tls, --tls-ca FILE, --tls-cert FILE, --tls-key FILE and --tls-insecure speak TLS to it.
"jackstalk COMMAND --help" describes a command.

{EXIT_STATUSES}
"""


def _example(args: argparse.Namespace) -> int:
    """Drive a client and a server connection against each other in memory: no sockets."""
    from jackstalk._protocol import events as e
    from jackstalk._protocol.commands import Put, Reserve
    from jackstalk._protocol.connection import Connection
    from jackstalk._protocol.server_connection import ServerConnection

    client, server = Connection(), ServerConnection()
    replies = {Put: e.Inserted(1), Reserve: e.Reserved(1, b"hello")}
    for command in (Put(b"hello", priority=10), Reserve()):
        wire = client.send(command)
        print(f"client sends   {wire!r}")
        server.receive_data(wire)
        received = server.next_event()
        reply = replies[type(received)]
        answer = server.send(reply)
        print(f"server answers {answer!r}")
        client.receive_data(answer)
        print(f"client event   {client.next_event()!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one sub-command per task."""
    parser = argparse.ArgumentParser(
        prog="jackstalk",
        description="beanstalkd from the shell",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"jackstalk {__version__}",
        help="print the version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    example = commands.add_parser("example", help="a sans-IO round trip through the core")
    example.set_defaults(handler=_example)
    add_commands(commands)
    add_server_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    return run(handler, args)


if __name__ == "__main__":
    sys.exit(main())
