"""jackstalk: a beanstalkd client built on a sans-IO protocol core.

The package is layered; each layer imports only the ones below it (a test walks the imports
and fails on a cycle):

    jackstalk/__init__.py    the public names; the clients and the worker load on first use
    jackstalk/_app/          4. on top of the clients: the worker, the command line
    jackstalk/transports/    3. I/O only: blocking sockets, asyncio, trio, the embedded
                                server's listener (transports/ at the top of the repository)
    jackstalk/_api/          2. the client API without I/O: options, jobs, the operations,
                                and the methods generated from them
    jackstalk/_engine/       2. the embedded server's engine: tubes and jobs, no I/O
    jackstalk/_protocol/     1. the protocol core: commands, replies, framing, stats parsing;
                                no socket, asyncio, threading or trio import
    jackstalk/testing.py     servers for tests (real beanstalkd, or the embedded one)
    jackstalk/pytest_plugin.py   the pytest fixtures

Importing ``jackstalk`` loads the core and the client API, never an I/O module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jackstalk._api.base import DEFAULT_PORT, Codec
from jackstalk._api.errors import BatchError, BodyDecodeError, JobBodyTooLarge
from jackstalk._api.jobs import KEEP, AsyncJob, BaseJob, Job, Keep
from jackstalk._api.stats import JobStats, ServerStats, TubeStats
from jackstalk._protocol.commands import (
    DEFAULT_PRIORITY,
    DEFAULT_TTR,
    Bury,
    Command,
    Delete,
    Ignore,
    Kick,
    KickJob,
    ListTubes,
    ListTubesWatched,
    ListTubeUsed,
    PauseTube,
    Peek,
    PeekBuried,
    PeekDelayed,
    PeekReady,
    Put,
    Quit,
    Release,
    Reserve,
    ReserveJob,
    ReserveWithTimeout,
    Stats,
    StatsJob,
    StatsTube,
    Touch,
    Use,
    Watch,
)
from jackstalk._protocol.connection import MAX_LINE, Connection, ConnectionState
from jackstalk._protocol.errors import (
    ArgumentTypeError,
    BadFormatError,
    BuriedError,
    ClientBusyError,
    CommandError,
    ConnectionClosedError,
    DeadlineSoonError,
    DrainingError,
    Error,
    ExpectedCrlfError,
    InternalError,
    InvalidArgument,
    InvalidEncoding,
    InvalidTubeName,
    JackstalkError,
    JobTooBigError,
    NotFoundError,
    NotIgnoredError,
    OutOfMemoryError,
    ProtocolError,
    ReplyTooLargeError,
    ServerError,
    TimedOutError,
    UnknownCommandError,
)
from jackstalk._protocol.events import (
    NEED_DATA,
    BadFormat,
    Buried,
    Closed,
    DeadlineSoon,
    Deleted,
    Draining,
    Event,
    ExpectedCrlf,
    Found,
    Inserted,
    Internal,
    JobTooBig,
    Kicked,
    NeedData,
    NotFound,
    NotIgnored,
    Ok,
    OutOfMemory,
    Paused,
    Released,
    Reserved,
    TimedOut,
    Touched,
    UnknownCommand,
    Using,
    Watching,
)
from jackstalk._protocol.server_connection import Rejected, ServerConnection
from jackstalk._protocol.yaml_subset import format_dict, format_list, parse_list, parse_stats
from jackstalk._version import __version__

if TYPE_CHECKING:
    from jackstalk._app.async_cluster import AsyncCluster
    from jackstalk._app.cluster import (
        AsyncClusterJob,
        Cluster,
        ClusterJob,
        ClusterJobId,
        ClusterStats,
        JobLostError,
    )
    from jackstalk._app.trio_cluster import TrioCluster
    from jackstalk._app.worker import Worker
    from jackstalk.transports.asyncio import AsyncClient
    from jackstalk.transports.blocking import Client
    from jackstalk.transports.trio import TrioClient

_LAZY = {
    "Client": "jackstalk.transports.blocking",
    "AsyncClient": "jackstalk.transports.asyncio",
    "TrioClient": "jackstalk.transports.trio",
    "Worker": "jackstalk._app.worker",
    "Cluster": "jackstalk._app.cluster",
    "ClusterJob": "jackstalk._app.cluster",
    "ClusterJobId": "jackstalk._app.cluster",
    "ClusterStats": "jackstalk._app.cluster",
    "JobLostError": "jackstalk._app.cluster",
    "AsyncCluster": "jackstalk._app.async_cluster",
    "AsyncClusterJob": "jackstalk._app.cluster",
    "TrioCluster": "jackstalk._app.trio_cluster",
}


def __getattr__(name: str) -> Any:
    # The clients (and the worker) import socket, asyncio, trio or logging: load each only
    # when it is asked for, so that importing jackstalk stays free of I/O modules.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jackstalk' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    # The public names, the lazily loaded ones included, as tab completion should offer them.
    return sorted(__all__)


__all__ = [
    "DEFAULT_PORT",
    "AsyncClient",
    "AsyncCluster",
    "AsyncClusterJob",
    "AsyncJob",
    "BaseJob",
    "BatchError",
    "BodyDecodeError",
    "Client",
    "Cluster",
    "ClusterJob",
    "ClusterJobId",
    "ClusterStats",
    "Codec",
    "Job",
    "JobBodyTooLarge",
    "JobStats",
    "KEEP",
    "Keep",
    "ServerStats",
    "TrioClient",
    "TrioCluster",
    "TubeStats",
    "DEFAULT_PRIORITY",
    "DEFAULT_TTR",
    "MAX_LINE",
    "NEED_DATA",
    "ArgumentTypeError",
    "BadFormat",
    "BadFormatError",
    "Buried",
    "BuriedError",
    "Bury",
    "ClientBusyError",
    "Closed",
    "Command",
    "CommandError",
    "Connection",
    "ConnectionClosedError",
    "ConnectionState",
    "DeadlineSoon",
    "DeadlineSoonError",
    "Delete",
    "Deleted",
    "Draining",
    "DrainingError",
    "Error",
    "Event",
    "ExpectedCrlf",
    "ExpectedCrlfError",
    "Found",
    "Ignore",
    "Inserted",
    "Internal",
    "InternalError",
    "InvalidArgument",
    "InvalidEncoding",
    "InvalidTubeName",
    "JackstalkError",
    "JobLostError",
    "JobTooBig",
    "JobTooBigError",
    "Kick",
    "KickJob",
    "Kicked",
    "ListTubeUsed",
    "ListTubes",
    "ListTubesWatched",
    "NeedData",
    "NotFound",
    "NotFoundError",
    "NotIgnored",
    "NotIgnoredError",
    "Ok",
    "OutOfMemory",
    "OutOfMemoryError",
    "PauseTube",
    "Paused",
    "Peek",
    "PeekBuried",
    "PeekDelayed",
    "PeekReady",
    "ProtocolError",
    "Put",
    "Quit",
    "Rejected",
    "Release",
    "Released",
    "ReplyTooLargeError",
    "Reserve",
    "ReserveJob",
    "ReserveWithTimeout",
    "Reserved",
    "ServerConnection",
    "ServerError",
    "Stats",
    "StatsJob",
    "StatsTube",
    "TimedOut",
    "TimedOutError",
    "Touch",
    "Touched",
    "UnknownCommand",
    "UnknownCommandError",
    "Use",
    "Using",
    "Watch",
    "Watching",
    "Worker",
    "__version__",
    "format_dict",
    "format_list",
    "parse_list",
    "parse_stats",
]
