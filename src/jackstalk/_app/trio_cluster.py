"""Several beanstalkd servers as one queue, for trio: :class:`TrioCluster`, the logic of
``async_cluster`` with trio's sleep and nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from jackstalk._api.base import Address
from jackstalk._app.async_cluster import AsyncSpread, OneConnection
from jackstalk._app.cluster import AsyncClusterJob
from jackstalk.transports.trio import TrioClient

__all__ = ["TrioCluster"]


class _TrioOne(OneConnection, TrioClient):
    """The trio client, connected once."""


class TrioCluster(AsyncSpread):
    """A trio client of several beanstalkd servers: :class:`Cluster`'s methods, awaited.

    Options as :class:`Cluster`'s, given to each server's :class:`TrioClient` (which has no
    ``timeout``: use ``trio.fail_after()``). Puts and reserves may run in different tasks.
    """

    def _new_client(self, address: Address) -> OneConnection:
        return _TrioOne(address, use=self._use, watch=self._watch, **self._options)

    async def _sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def _race(
        self, calls: list[Callable[[], Awaitable[AsyncClusterJob | None]]]
    ) -> tuple[list[AsyncClusterJob], list[Exception]]:
        jobs: list[AsyncClusterJob] = []
        errors: list[Exception] = []
        try:
            async with trio.open_nursery() as nursery:

                async def run(call: Callable[[], Awaitable[AsyncClusterJob | None]]) -> None:
                    try:
                        job = await call()
                    except Exception as error:
                        errors.append(error)
                        nursery.cancel_scope.cancel()
                        return
                    if job is not None:
                        jobs.append(job)
                        nursery.cancel_scope.cancel()

                for call in calls:
                    nursery.start_soon(run, call)
        except BaseException:
            for job in jobs:
                await self._give_back(job)  # (no checkpoint: runs while cancelled)
            raise
        return jobs, errors
