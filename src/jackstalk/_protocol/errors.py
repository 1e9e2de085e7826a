"""Every exception jackstalk raises, in one tree under :class:`JackstalkError`.

Three families, so callers can tell them apart:

* argument errors (``InvalidArgument``, ``InvalidTubeName``, ``ArgumentTypeError``): the caller
  passed something the protocol cannot carry; raised before any byte exists;
* connection-level errors (``ProtocolError``, ``ConnectionClosedError``): the stream is no
  longer trustworthy and must be dropped;
* server replies that report a failure (``CommandError`` and its subclasses): the connection
  is fine and stays usable.
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "BadFormatError",
    "BuriedError",
    "ClientBusyError",
    "CommandError",
    "ConnectionClosedError",
    "DeadlineSoonError",
    "DrainingError",
    "Error",
    "ExpectedCrlfError",
    "InternalError",
    "InvalidArgument",
    "InvalidEncoding",
    "InvalidTubeName",
    "JackstalkError",
    "JobTooBigError",
    "NotFoundError",
    "NotIgnoredError",
    "OutOfMemoryError",
    "ProtocolError",
    "ReplyTooLargeError",
    "ServerError",
    "TimedOutError",
    "UnknownCommandError",
]


class JackstalkError(Exception):
    """Base class of every exception raised by jackstalk."""


Error = JackstalkError
"""Short alias of :class:`JackstalkError`."""


class InvalidArgument(JackstalkError, ValueError):
    """An argument is out of the range or grammar the protocol allows."""


class InvalidEncoding(InvalidArgument, LookupError):
    """An ``encoding`` Python has no text codec for (a ``LookupError`` too, as codecs say)."""


class InvalidTubeName(InvalidArgument):
    """A tube name is empty, too long, or uses a character beanstalkd rejects."""


class ArgumentTypeError(JackstalkError, TypeError):
    """An argument has the wrong type (for example a ``str`` body with ``encoding=None``)."""


class ProtocolError(JackstalkError):
    """The peer sent something malformed, unexpected or unsolicited.

    The connection that raised it is in a terminal error state: every later call raises.
    """


class ReplyTooLargeError(ProtocolError):
    """A reply declared a body larger than the client accepts (its ``max_job_size`` for a
    job, 16 MiB for a stats or list document). Raised before a byte of the body is read;
    the connection is closed, so a job it carried goes back to ready on the server."""


class ConnectionClosedError(JackstalkError, ConnectionError):
    """The connection closed (or failed) before the replies that were due arrived.

    Any command whose reply was not seen has an unknown outcome: a ``put`` may or may not
    have been stored. jackstalk never retries it silently.
    """


class ClientBusyError(JackstalkError, RuntimeError):
    """A command was issued while a reserve waits on the same async client.

    beanstalkd reads nothing from a connection while its reserve waits, so the command
    could only wait behind it. Use a second client for producing while a worker waits.
    """


class CommandError(JackstalkError):
    """The server answered a command with an error reply; the connection stays usable."""

    reply: str = ""
    """The reply word, such as ``NOT_FOUND``."""


class NotFoundError(CommandError):
    """The job or tube does not exist, or is not in a state this command can act on."""

    reply = "NOT_FOUND"


class TimedOutError(CommandError):
    """A reserve with a timeout found no job in time (raised only where None cannot be returned)."""

    reply = "TIMED_OUT"


class DeadlineSoonError(CommandError):
    """A job this connection holds is within a second of its time-to-run running out."""

    reply = "DEADLINE_SOON"


class JobTooBigError(CommandError):
    """The body is larger than the server's ``max-job-size``."""

    reply = "JOB_TOO_BIG"


class BuriedError(CommandError):
    """The server buried the job instead of queueing it (it ran out of memory for its queue).

    ``job_id`` is the buried job's id when the server said it (``put``), else ``None``.
    """

    reply = "BURIED"

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class DrainingError(CommandError):
    """The server is in drain mode and accepts no new jobs."""

    reply = "DRAINING"


class NotIgnoredError(CommandError):
    """The tube is the last one watched; a connection must watch at least one tube."""

    reply = "NOT_IGNORED"


class ExpectedCrlfError(CommandError):
    """The server did not find ``\\r\\n`` after a job body (a client bug if it ever happens)."""

    reply = "EXPECTED_CRLF"


class ServerError(CommandError):
    """The server reported an internal problem or could not parse a command."""


class OutOfMemoryError(ServerError):
    """The server could not allocate memory for the command."""

    reply = "OUT_OF_MEMORY"


class InternalError(ServerError):
    """The server hit an internal error (for example a failed binlog write)."""

    reply = "INTERNAL_ERROR"


class BadFormatError(ServerError):
    """The server could not parse the command line (jackstalk never sends one it should not)."""

    reply = "BAD_FORMAT"


class UnknownCommandError(ServerError):
    """The server does not know the command (an older server without ``reserve-job``, say)."""

    reply = "UNKNOWN_COMMAND"
