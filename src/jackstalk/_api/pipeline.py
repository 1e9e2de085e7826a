"""Rules every transport follows when it waits for replies and pipelines batches.

They live here, once, so that the blocking, asyncio and trio clients agree on them.
"""

from __future__ import annotations

from collections.abc import Sequence

from jackstalk._protocol import commands as c

__all__ = ["IDLE_CHECK", "WINDOW_BYTES", "WINDOW_COMMANDS", "batch_wait", "reply_wait", "windows"]

IDLE_CHECK = 1.0
"""Seconds a connection may sit unused before a transport checks, before it sends, whether
the server closed it meanwhile (a restart, an idle timeout in a proxy). Such a connection is
replaced silently: nothing was sent on it, so nothing can be lost or done twice."""

WINDOW_COMMANDS = 256
"""Most commands a batch sends before it reads replies again."""

WINDOW_BYTES = 256 * 1024
"""Most body bytes a batch sends before it reads replies again."""


def reply_wait(command: c.Command, timeout: float | None) -> float | None:
    """How long a transport may wait for ``command``'s reply; ``None`` means for ever.

    ``timeout`` is the client's margin for the server to answer. A plain ``reserve`` waits
    as long as it takes, so no margin applies to it; a reserve with a timeout gets that
    timeout plus the margin.
    """
    if type(command) is c.Reserve:
        return None
    if timeout is not None and type(command) is c.ReserveWithTimeout:
        return timeout + command.timeout
    return timeout


def batch_wait(commands: Sequence[c.Command], timeout: float | None) -> float | None:
    """How long a transport may wait for each reply of a pipelined batch: the longest
    :func:`reply_wait` of its commands."""
    longest: float | None = timeout
    for command in commands:
        if command.waits:
            wait = reply_wait(command, timeout)
            if wait is None:
                return None
            if longest is None or wait > longest:
                longest = wait
    return longest


def windows(commands: Sequence[c.Command]) -> list[Sequence[c.Command]]:
    """Cut a batch into windows small enough that sending one while the replies of the
    previous one wait unread can never fill both directions' buffers and deadlock.

    (beanstalkd stops reading while it cannot write a reply, protocol-notes §1.) A short
    batch, such as a worker's delete and next reserve, is its own single window.
    """
    if len(commands) <= WINDOW_COMMANDS:
        # The common case, a worker's delete and next reserve among them, in one pass
        # without cutting: a batch within both bounds is its own single window.
        size = 0
        for command in commands:
            if type(command) is c.Put:
                size += len(command.body)
        if size <= WINDOW_BYTES:
            return [commands] if commands else []
    cuts: list[Sequence[c.Command]] = []
    start = 0
    size = 0
    for index, command in enumerate(commands):
        if type(command) is c.Put:
            size += len(command.body)
        if index - start >= WINDOW_COMMANDS or (size > WINDOW_BYTES and index > start):
            cuts.append(commands[start:index])
            start = index
            size = len(command.body) if type(command) is c.Put else 0
    if start < len(commands):
        cuts.append(commands[start:] if start else commands)
    return cuts
