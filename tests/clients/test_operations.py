"""The operations and reply conversions (``_api/operations.py``, ``_api/replies.py``) are the
one definition the generated client methods are written from. Here they run themselves, on
the same arguments and the same replies as the generated blocking method: both must send the
same commands and give the same result, or raise the same error. So a change to an operation
that the generated module has not caught up with fails here too, beside the staleness test.
No server is involved: the client's transport is replaced by a recorder."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

import jackstalk
from jackstalk._api import operations
from jackstalk._protocol import events as e
from jackstalk._protocol.commands import Command

CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("put", (b"body",), {}),
    ("put", (b"body", 1, 2, 3), {}),
    ("put", (b"body",), {"tube": "elsewhere"}),
    ("put_many", ([b"a", b"b"],), {}),
    ("put_many", ([b"a"],), {"tube": "elsewhere"}),
    ("use", ("tube",), {}),
    ("using", (), {}),
    ("watch", ("tube",), {}),
    ("ignore", ("tube",), {}),
    ("watching", (), {}),
    ("tubes", (), {}),
    ("reserve", (), {}),
    ("reserve", (), {"timeout": 0.5}),
    ("reserve_job", (7,), {}),
    ("delete", (7,), {}),
    ("release", (7, 5, 6), {}),
    ("bury", (7, 5), {}),
    ("touch", (7,), {}),
    ("kick", (3,), {}),
    ("kick_job", (7,), {}),
    ("peek", (7,), {}),
    ("peek_ready", (), {}),
    ("peek_delayed", (), {}),
    ("peek_buried", (), {}),
    ("stats", (), {}),
    ("stats_tube", ("tube",), {}),
    ("stats_job", (7,), {}),
    ("pause_tube", ("tube", 10), {}),
]

REFUSED: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("put", ("text, with encoding=None",), {}),
    ("put", (b"body",), {"tube": "bad tube"}),
    ("reserve", (), {"timeout": "soon"}),
    ("reserve", (), {"timeout": -1}),
    ("delete", (0,), {}),
    ("release", (7, -1), {}),
]
"""Calls whose arguments the operation refuses before anything is sent."""

_SIMPLE = {
    cls.word: cls
    for cls in (
        e.Deleted,
        e.Released,
        e.Touched,
        e.Paused,
        e.NotFound,
        e.TimedOut,
        e.DeadlineSoon,
        e.JobTooBig,
        e.Draining,
        e.NotIgnored,
        e.ExpectedCrlf,
        e.OutOfMemory,
        e.Internal,
        e.BadFormat,
        e.UnknownCommand,
    )
}


def _replies(command: Command) -> list[e.Event]:
    """One reply of every kind ``command`` may get (and one it may not)."""
    events: list[e.Event] = []
    for word, fields in command.replies.items():
        if word in _SIMPLE:
            events.append(_SIMPLE[word]())
        elif word == b"INSERTED":
            events.append(e.Inserted(11))
        elif word == b"BURIED":
            events.append(e.Buried(11) if fields else e.Buried())
        elif word == b"KICKED":
            events.append(e.Kicked(2) if fields else e.Kicked())
        elif word == b"RESERVED":
            events.append(e.Reserved(11, b"hi"))
        elif word == b"FOUND":
            events.append(e.Found(11, b"hi"))
        elif word == b"OK":
            events += [e.Ok(b"---\nname: tube\ncurrent-jobs-ready: 1\n"), e.Ok(b"---\n- tube\n")]
        elif word == b"USING":
            events.append(e.Using("tube"))
        elif word == b"WATCHING":
            events.append(e.Watching(2))
    events.append(e.Watching(9) if command.word != b"watch" else e.Using("odd"))  # unexpected
    return events


class Recorder(jackstalk.Client):
    """A blocking client whose transport records the commands and answers from a script."""

    def __init__(self, answers: list[e.Event]) -> None:
        super().__init__(encoding=None)
        self.answers = answers
        self.sent: list[Command] = []

    def _execute(self, command: Command, /) -> e.Event:
        self.sent.append(command)
        return self.answers[0]

    def _execute_many(self, commands: list[Command], /) -> list[e.Event]:
        self.sent += commands
        return self.answers[: len(commands)]


class AsyncRecorder(jackstalk.AsyncClient):
    """The same for the async methods (asyncio and trio share them)."""

    def __init__(self, answers: list[e.Event]) -> None:
        super().__init__(encoding=None)
        self.answers = answers
        self.sent: list[Command] = []

    async def _execute(self, command: Command, /) -> e.Event:
        self.sent.append(command)
        return self.answers[0]

    async def _execute_many(self, commands: list[Command], /) -> list[e.Event]:
        self.sent += commands
        return self.answers[: len(commands)]


def _outcome(run: Any) -> tuple[str, Any]:
    try:
        result = run()
    except jackstalk.BatchError as error:
        return "batch", [type(item).__name__ for item in error.results]
    except Exception as error:
        return "error", (type(error), str(error))
    if isinstance(result, jackstalk.BaseJob):
        return "job", (result.id, result.body)
    return "result", result


def _template(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], answers: list[e.Event]
) -> tuple[list[Command], tuple[str, Any]]:
    """Run the operation itself and the conversion it names: (commands, outcome)."""
    client = Recorder(answers)
    built, conversion = getattr(operations, name)(client, *args, **kwargs)
    if isinstance(built, list):
        sent = list(built)
        return sent, _outcome(lambda: conversion(client, answers[: len(built)]))
    return [built], _outcome(lambda: conversion(client, answers[0]))


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=lambda value: str(value)[:20])
def test_generated_methods_do_what_their_operations_say(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    probe = Recorder([e.Inserted(1)])
    commands, _ = _template(name, args, kwargs, [e.Inserted(1)] * 4)
    last = commands[-1]
    tried = 0
    for reply in _replies(last):
        answers = [e.Using("elsewhere")] * (len(commands) - 1) + [reply]
        if name == "put_many" and "tube" not in kwargs:
            answers = [reply] * len(commands)
        expected_sent, expected = _template(name, args, kwargs, answers)
        client = Recorder(answers)
        got = _outcome(functools.partial(getattr(client, name), *args, **kwargs))
        assert client.sent == expected_sent, (name, reply)
        assert got == expected, (name, reply)
        async_client = AsyncRecorder(answers)
        method = getattr(async_client, name)
        got = _outcome(lambda: asyncio.run(method(*args, **kwargs)))  # noqa: B023
        assert async_client.sent == expected_sent, (name, reply)
        assert got == expected, (name, reply)
        tried += 1
    assert tried >= 2
    assert probe.sent == []


@pytest.mark.parametrize(("name", "args", "kwargs"), REFUSED, ids=lambda value: str(value)[:20])
def test_generated_methods_refuse_what_their_operations_refuse(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    client = Recorder([e.Inserted(1)])
    expected = _outcome(lambda: getattr(operations, name)(client, *args, **kwargs))
    assert expected[0] == "error"
    assert issubclass(expected[1][0], ValueError | TypeError)
    assert _outcome(functools.partial(getattr(client, name), *args, **kwargs)) == expected
    assert client.sent == []  # refused before a byte


def test_the_list_of_calls_covers_every_operation() -> None:
    assert {name for name, _, _ in CALLS} == {op.__name__ for op in operations.OPERATIONS}
