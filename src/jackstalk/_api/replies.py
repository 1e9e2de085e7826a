"""Reply events turned into results or exceptions: what the operations and methods return.

Each conversion takes the client (for decoding bodies and stats) and the reply event. The
error replies map to one exception class each (:func:`error_for`); a reply the command may
not get is a :class:`ProtocolError`, though the core already refuses those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jackstalk._api.errors import BatchError
from jackstalk._protocol import events as e
from jackstalk._protocol import yaml_subset
from jackstalk._protocol.errors import (
    BadFormatError,
    BuriedError,
    CommandError,
    DeadlineSoonError,
    DrainingError,
    ExpectedCrlfError,
    InternalError,
    JackstalkError,
    JobTooBigError,
    NotFoundError,
    NotIgnoredError,
    OutOfMemoryError,
    ProtocolError,
    TimedOutError,
    UnknownCommandError,
)

__all__ = ["Decoder", "error_for"]


class Decoder(Protocol):
    """What a conversion needs of the client: how it builds jobs and reads stats."""

    def _job(self, job_id: int, data: bytes) -> Any: ...
    def _yaml(self, data: bytes, parse: Callable[[bytes], Any]) -> Any: ...


_ERRORS: dict[type[e.Event], type[CommandError]] = {
    e.NotFound: NotFoundError,
    e.TimedOut: TimedOutError,
    e.DeadlineSoon: DeadlineSoonError,
    e.JobTooBig: JobTooBigError,
    e.Draining: DrainingError,
    e.NotIgnored: NotIgnoredError,
    e.ExpectedCrlf: ExpectedCrlfError,
    e.OutOfMemory: OutOfMemoryError,
    e.Internal: InternalError,
    e.BadFormat: BadFormatError,
    e.UnknownCommand: UnknownCommandError,
}


def error_for(event: e.Event) -> JackstalkError:
    """The exception a failure reply stands for."""
    if isinstance(event, e.Buried):
        return BuriedError("the server buried the job", event.id)
    cls = _ERRORS.get(type(event))
    if cls is None:
        return ProtocolError(f"unexpected reply {event!r}")
    return cls(event.word.decode())


_DONE = frozenset({e.Deleted, e.Released, e.Touched, e.Paused, e.Kicked})


def done(client: Decoder, event: e.Event) -> None:
    """A command that returns nothing: DELETED, RELEASED, TOUCHED, PAUSED or KICKED."""
    if event.__class__ in _DONE:
        return None
    raise error_for(event)


def buried(client: Decoder, event: e.Event) -> None:
    """bury: BURIED with no id."""
    if type(event) is e.Buried:
        return None
    raise error_for(event)


# The two hottest conversions read the events' slots directly (as the parser fills them):
# one property call fewer per field, on every put and every reserve.
_Inserted = e.Inserted
_Reserved = e.Reserved
_TimedOut = e.TimedOut


def inserted(client: Decoder, event: e.Event) -> int:
    """put: the new job's id."""
    if type(event) is _Inserted:
        return event._id
    raise error_for(event)


def inserted_into(client: Decoder, events: list[e.Event]) -> int:
    """use + put: the new job's id; the use's error if the server refused the use."""
    use_reply, event = events
    if type(use_reply) is not e.Using:
        raise error_for(use_reply)
    if type(event) is _Inserted:
        return event._id
    raise error_for(event)


def reserved(client: Decoder, event: e.Event) -> Any:
    """reserve: the job, or None when the timeout ran out."""
    if type(event) is _Reserved:
        return client._job(event._id, event._body)
    if type(event) is _TimedOut:
        return None
    raise error_for(event)


def reserved_job(client: Decoder, event: e.Event) -> Any:
    """reserve-job: the job."""
    if type(event) is _Reserved:
        return client._job(event._id, event._body)
    raise error_for(event)


def found(client: Decoder, event: e.Event) -> Any:
    """peek: the job, or None when there is none."""
    if type(event) is e.Found:
        return client._job(event.id, event.body)
    if type(event) is e.NotFound:
        return None
    raise error_for(event)


def using(client: Decoder, event: e.Event) -> str:
    """use, list-tube-used: the tube's name."""
    if type(event) is e.Using:
        return event.tube
    raise error_for(event)


def watching(client: Decoder, event: e.Event) -> int:
    """watch, ignore: how many tubes are watched."""
    if type(event) is e.Watching:
        return event.count
    raise error_for(event)


def kicked(client: Decoder, event: e.Event) -> int:
    """kick: how many jobs moved."""
    if type(event) is e.Kicked and event.count is not None:
        return event.count
    raise error_for(event)


def stats(client: Decoder, event: e.Event) -> Any:
    """stats, stats-tube, stats-job: the parsed document."""
    if type(event) is e.Ok:
        return client._yaml(event.data, yaml_subset.parse_stats)
    raise error_for(event)


def tube_list(client: Decoder, event: e.Event) -> Any:
    """list-tubes, list-tubes-watched: the parsed list."""
    if type(event) is e.Ok:
        return client._yaml(event.data, yaml_subset.parse_list)
    raise error_for(event)


def put_many_results(client: Decoder, events: list[e.Event]) -> list[int]:
    """put_many: every id, or :class:`BatchError` with each id or error once all are read."""
    results: list[Any] = []
    failed = 0
    for event in events:
        if type(event) is _Inserted:
            results.append(event.id)
        else:
            results.append(error_for(event))
            failed += 1
    if failed:
        raise BatchError(f"{failed} of {len(events)} puts failed", results)
    return results


def put_many_into(client: Decoder, events: list[e.Event]) -> list[int]:
    """use + put_many: as :func:`put_many_results`, after the use's reply."""
    if type(events[0]) is not e.Using:
        raise error_for(events[0])
    return put_many_results(client, events[1:])
