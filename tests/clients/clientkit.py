"""Helpers for the client suite: the few concurrency tools (run tasks side by side, cancel a
task, wait on the server's stats) written once for asyncio and trio. The stand-in server, and
the waits on its thread, are in ``standin``.

Nothing here sleeps to synchronise: every wait is on an event, a server reply, or a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from conftest import ClientView

# --------------------------------------------------------------------- concurrency, per kind


async def settle(kind: str) -> None:
    """Let the other tasks run until they all wait again (e.g. for bytes already sent to
    them to be read). Not a synchronisation point that correctness depends on."""
    if kind == "trio":
        await trio.testing.wait_all_tasks_blocked()
    else:
        for _ in range(10):
            await asyncio.sleep(0)  # yields one loop iteration; no time passes


async def gather(kind: str, *calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run ``calls`` side by side in tasks; return their results in order."""
    if kind != "trio":
        return list(await asyncio.gather(*(call() for call in calls)))
    results: list[Any] = [None] * len(calls)

    async def run(index: int) -> None:
        results[index] = await calls[index]()

    async with trio.open_nursery() as nursery:
        for index in range(len(calls)):
            nursery.start_soon(run, index)
    return results


async def cancel_when(
    kind: str, call: Callable[[], Awaitable[Any]], ready: Callable[[], Awaitable[None]]
) -> None:
    """Start ``call`` in a task, wait for ``ready()``, then cancel the task.

    Checks that the call ended by the cancellation alone: it neither returned nor raised
    anything else.
    """
    if kind == "trio":
        returned: list[Any] = []
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                returned.append(await call())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await ready()
            await settle(kind)
            scope.cancel()
        assert scope.cancelled_caught, f"the call was not cancelled: {returned!r}"
        assert not returned
        return
    task = asyncio.ensure_future(call())
    await ready()
    await settle(kind)
    assert not task.done(), task
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def until_stat(view: ClientView, name: str, value: int) -> None:
    """Ask the server for its stats until ``name`` equals ``value``: waits on server state,
    one round trip at a time (bounded by the test's time limit)."""
    while (await view.stats())[name] != value:
        pass
