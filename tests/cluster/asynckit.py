"""The event loop libraries the async cluster tests run on, behind one small interface."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

import jackstalk


class Kit:
    """One event loop library: its cluster, how to run, deadlines, a task, a thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cluster: type[jackstalk.AsyncCluster] | type[jackstalk.TrioCluster] = (
            jackstalk.AsyncCluster if name == "asyncio" else jackstalk.TrioCluster
        )
        slow: type[BaseException] = TimeoutError if name == "asyncio" else trio.TooSlowError
        self.too_slow = slow

    def run(self, main: Callable[[], Awaitable[None]]) -> None:
        if self.name == "asyncio":
            asyncio.run(main())  # type: ignore[arg-type]
        else:
            trio.run(main)

    @asynccontextmanager
    async def fail_after(self, seconds: float) -> AsyncIterator[None]:
        if self.name == "asyncio":
            async with asyncio.timeout(seconds):
                yield
        else:
            with trio.fail_after(seconds):
                yield

    async def thread(self, call: Callable[[], Any]) -> Any:
        if self.name == "asyncio":
            return await asyncio.to_thread(call)
        return await trio.to_thread.run_sync(call)

    @asynccontextmanager
    async def background(self, call: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """Run ``call`` in a task for the block, cancelled when the block ends."""
        if self.name == "asyncio":
            task = asyncio.ensure_future(call())
            try:
                yield
            finally:
                task.cancel()
                await asyncio.wait([task])
        else:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                yield
                nursery.cancel_scope.cancel()
