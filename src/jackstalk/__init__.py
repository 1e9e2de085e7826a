"""jackstalk: a beanstalkd client built on a sans-IO protocol core.

The core (``Connection``, the command and event classes, the errors and the stats parser)
does no I/O and imports no socket, asyncio, threading or trio module. The clients live in
``jackstalk.transports`` and are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import (
    DEFAULT_PORT,
    AsyncJob,
    BaseJob,
    BatchError,
    BodyDecodeError,
    Job,
    JobBodyTooLarge,
)
from ._commands import (
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
from ._connection import MAX_LINE, Connection, ConnectionState
from ._errors import (
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
    ServerError,
    TimedOutError,
    UnknownCommandError,
)
from ._events import (
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
from ._server import Rejected, ServerConnection
from ._version import __version__
from ._yaml import format_dict, format_list, parse_list, parse_stats

if TYPE_CHECKING:
    from jackstalk.transports.asyncio import AsyncClient
    from jackstalk.transports.blocking import Client
    from jackstalk.transports.trio import TrioClient

    from ._worker import Worker

_LAZY = {
    "Client": "jackstalk.transports.blocking",
    "AsyncClient": "jackstalk.transports.asyncio",
    "TrioClient": "jackstalk.transports.trio",
    "Worker": "jackstalk._worker",
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


__all__ = [
    "DEFAULT_PORT",
    "AsyncClient",
    "AsyncJob",
    "BaseJob",
    "BatchError",
    "BodyDecodeError",
    "Client",
    "Job",
    "JobBodyTooLarge",
    "TrioClient",
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
