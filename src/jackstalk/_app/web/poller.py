"""The live data of the console: every ``interval`` seconds, one snapshot of every server.

Each server has its own polling connection (an :class:`AsyncClient`, whose concurrent calls
are pipelined): ``stats``, ``list-tubes`` and the ``stats-tube`` of every tube the last
refresh found go out together, so a refresh is one round trip per server however many tubes
there are (one more when new tubes appeared, for theirs).
Each server's fetch is bounded by a timeout: a server that is down, frozen or answers
garbage becomes a ``down`` row with the reason, and the others are not held up.

Rates per second come from the counters' differences between two snapshots of the same
server: a tube's puts from its ``total-jobs``, its deletes from its ``cmd-delete``; a
server's puts, reserves and deletes from ``cmd-put``, ``cmd-reserve`` (plus
``cmd-reserve-with-timeout``) and ``cmd-delete``. beanstalkd counts no reserves per tube,
so a tube's reserve rate is unknown (``None``) and says so; a counter that went down (a
restarted server) counts as no change.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jackstalk._api.base import Address
from jackstalk._api.stats import TubeStats
from jackstalk._app.cluster import server_name
from jackstalk._app.web.jobs import reason
from jackstalk._protocol.errors import NotFoundError
from jackstalk.transports.asyncio import AsyncClient

__all__ = [
    "SERVER_FIELDS",
    "TUBE_FIELDS",
    "Poller",
    "ServerSnapshot",
    "Snapshot",
]

SERVER_FIELDS = (
    "current-connections",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
)
"""The server counts the overview shows (beside version and uptime), summed in the total."""

TUBE_FIELDS = (
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "current-waiting",
    "pause-time-left",
)
"""The tube counts the overview shows, summed over the servers (``pause-time-left``: the
longest)."""

RATES = ("puts", "reserves", "deletes")

HISTORY_SECONDS = 300.0
"""How far back each tube's rate history (its chart) goes..."""
HISTORY_POINTS = 300
"""...in at most this many refreshes (a short ``interval`` shortens the span instead)."""


@dataclass
class ServerSnapshot:
    """One server at one refresh: its stats and its tubes' (empty when down)."""

    name: str
    up: bool
    error: str = ""
    stats: Mapping[str, Any] = field(default_factory=dict)
    tubes: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    tube_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    taken: float = 0.0


@dataclass
class Snapshot:
    """Every server at one refresh, numbered by ``seq`` (0: none taken yet)."""

    seq: int
    taken: float
    servers: list[ServerSnapshot]
    _json: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    _text: str | None = field(default=None, repr=False, compare=False)

    def json(self) -> dict[str, Any]:
        """The snapshot as the pages' live updates and ``/api/snapshot`` carry it (built
        once: every open page gets the same)."""
        if self._json is None:
            self._json = self._build()
        return self._json

    def text(self) -> str:
        """:meth:`json` as JSON text (encoded once)."""
        if self._text is None:
            self._text = json.dumps(self.json())
        return self._text

    def _build(self) -> dict[str, Any]:
        up = [server for server in self.servers if server.up]
        total: dict[str, Any] = {
            key: sum(int(server.stats.get(key, 0)) for server in up) for key in SERVER_FIELDS
        }
        total["state"] = f"{len(up)}/{len(self.servers)} up"
        total["version"] = "/".join(sorted({str(s.stats.get("version", "?")) for s in up}))
        total["uptime"] = ""
        total["error"] = ""
        total.update(_summed_rates(server.rates for server in up))
        tubes: dict[str, dict[str, Any]] = {}
        for server in up:
            for tube, stats in server.tubes.items():
                row = tubes.setdefault(
                    tube, {"name": tube, **dict.fromkeys(TUBE_FIELDS, 0), "servers": 0}
                )
                row["servers"] += 1
                for key in TUBE_FIELDS:
                    value = int(stats.get(key, 0))
                    row[key] = (
                        max(row[key], value) if key == "pause-time-left" else row[key] + value
                    )
                for rate, per_second in server.tube_rates.get(tube, {}).items():
                    row[f"rate-{rate}"] = row.get(f"rate-{rate}", 0.0) + per_second
        for row in tubes.values():
            row.setdefault("rate-puts", 0.0)
            row.setdefault("rate-deletes", 0.0)
            row["rate-reserves"] = None  # beanstalkd keeps no per-tube reserve counter
        return {
            "seq": self.seq,
            "time": self.taken,
            "servers": [
                {
                    "name": server.name,
                    "state": "up" if server.up else "down",
                    "error": server.error,
                    "version": str(server.stats.get("version", "")) if server.up else "",
                    "uptime": server.stats.get("uptime", "") if server.up else "",
                    **{key: server.stats.get(key, "") for key in SERVER_FIELDS},
                    **{f"rate-{rate}": server.rates.get(rate) for rate in RATES},
                }
                for server in self.servers
            ],
            "total": total,
            "tubes": [tubes[name] for name in sorted(tubes)],
        }


def _summed_rates(rates: Any) -> dict[str, float]:
    summed = dict.fromkeys((f"rate-{rate}" for rate in RATES), 0.0)
    for one in rates:
        for rate, value in one.items():
            summed[f"rate-{rate}"] += value
    return summed


def _delta(now: Mapping[str, Any], before: Mapping[str, Any], *keys: str) -> int:
    """How much the counters ``keys`` grew (0 if they went down: a restarted server)."""
    grown = sum(int(now.get(key, 0)) for key in keys) - sum(int(before.get(k, 0)) for k in keys)
    return max(0, grown)


async def fetch(
    client: AsyncClient, known: Sequence[str] = ()
) -> tuple[Mapping[str, Any], dict[str, Mapping[str, Any]]]:
    """A server's stats and every tube's, in one pipelined batch: ``stats``, ``list-tubes``
    and the ``stats-tube`` of every tube ``known`` from the last refresh go out together.
    Tubes the list names that were not known take one more batch; a tube that vanished
    meanwhile (NOT_FOUND) is left out."""
    asked = list(known)
    stats, names, found = await asyncio.gather(
        client.stats(),
        client.tubes(),
        asyncio.gather(*(client.stats_tube(name) for name in asked), return_exceptions=True),
    )
    results: dict[str, TubeStats | BaseException] = dict(zip(asked, found, strict=True))
    new = [name for name in names if name not in results]
    if new:
        more = await asyncio.gather(
            *(client.stats_tube(name) for name in new), return_exceptions=True
        )
        results.update(zip(new, more, strict=True))
    tubes: dict[str, Mapping[str, Any]] = {}
    for name in names:
        result = results[name]
        if isinstance(result, NotFoundError):
            continue
        if isinstance(result, BaseException):
            raise result
        tubes[name] = result
    return stats, tubes


class Poller:
    """Takes a :class:`Snapshot` of every server every ``interval`` seconds (see the module
    docstring), keeps the latest and each tube's recent rates, and wakes whoever waits for
    the next one."""

    def __init__(
        self,
        addresses: Sequence[Address],
        *,
        interval: float = 1.0,
        timeout: float = 5.0,
        client_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.addresses = list(addresses)
        self.names = [server_name(address) for address in self.addresses]
        self.interval = interval
        self.timeout = timeout
        self.client_options = dict(client_options or {})
        self.clock = clock
        self.latest = Snapshot(
            0, time.time(), [ServerSnapshot(name, False, "not read yet") for name in self.names]
        )
        self.history: dict[str, deque[tuple[float, float]]] = {}
        self._clients: dict[str, AsyncClient] = {}
        self._previous: dict[str, ServerSnapshot] = {}
        self._changed = asyncio.Condition()
        self.closed = False

    @property
    def history_points(self) -> int:
        """How many refreshes the rate history keeps."""
        return max(2, min(HISTORY_POINTS, int(HISTORY_SECONDS / self.interval)))

    def _client(self, name: str, address: Address) -> AsyncClient:
        client = self._clients.get(name)
        if client is None:
            client = AsyncClient(address, encoding=None, **self.client_options)
            self._clients[name] = client
        return client

    async def _drop(self, name: str) -> None:
        client = self._clients.pop(name, None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def _one(self, name: str, address: Address) -> ServerSnapshot:
        client = self._client(name, address)
        before = self._previous.get(name)
        known = list(before.tubes) if before is not None and before.up else []
        try:
            async with asyncio.timeout(self.timeout):
                stats, tubes = await fetch(client, known)
        except Exception as error:  # down, frozen or hostile: an error row, never a crash
            await self._drop(name)  # a fresh connection next time, nothing left in flight
            return ServerSnapshot(name, False, reason(error))
        now = self.clock()
        snapshot = ServerSnapshot(name, True, stats=stats, tubes=tubes, taken=now)
        if before is not None and before.up and now > before.taken:
            elapsed = now - before.taken
            snapshot.rates = {
                "puts": _delta(stats, before.stats, "cmd-put") / elapsed,
                "reserves": _delta(stats, before.stats, "cmd-reserve", "cmd-reserve-with-timeout")
                / elapsed,
                "deletes": _delta(stats, before.stats, "cmd-delete") / elapsed,
            }
            for tube, now_stats in tubes.items():
                old = before.tubes.get(tube, {})
                snapshot.tube_rates[tube] = {
                    "puts": _delta(now_stats, old, "total-jobs") / elapsed,
                    "deletes": _delta(now_stats, old, "cmd-delete") / elapsed,
                }
        self._previous[name] = snapshot
        return snapshot

    async def refresh(self) -> Snapshot:
        """Take a snapshot of every server now (concurrently), keep it and announce it."""
        servers = await asyncio.gather(
            *(
                self._one(name, address)
                for name, address in zip(self.names, self.addresses, strict=True)
            )
        )
        snapshot = Snapshot(self.latest.seq + 1, time.time(), list(servers))
        self._record(snapshot)
        async with self._changed:
            self.latest = snapshot
            self._changed.notify_all()
        return snapshot

    def _record(self, snapshot: Snapshot) -> None:
        """Add each tube's summed put and delete rates to its history (a tube gone from
        every server is forgotten)."""
        keep = self.history_points
        rows = {row["name"]: row for row in snapshot.json()["tubes"]}
        for tube in list(self.history):
            if tube not in rows:
                del self.history[tube]
        for tube, row in rows.items():
            points = self.history.get(tube)
            if points is None:
                points = self.history[tube] = deque(maxlen=keep)
            points.append((round(row["rate-puts"], 2), round(row["rate-deletes"], 2)))

    async def wait_after(self, seq: int) -> Snapshot:
        """The first snapshot numbered above ``seq`` (or the latest once the console
        stops); callers bound the wait with ``asyncio.timeout``."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.latest.seq > seq or self.closed)
            return self.latest

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled, the first an interval from
        now (the caller took the first snapshot); a slow refresh is not followed by a burst:
        the next one starts an interval after the previous began, or at once if later."""
        started = self.clock()
        while True:
            await asyncio.sleep(max(0.0, self.interval - (self.clock() - started)))
            started = self.clock()
            await self.refresh()

    async def stop_waiters(self) -> None:
        """Wake every waiter for good (the live streams end): the console is stopping."""
        self.closed = True
        async with self._changed:
            self._changed.notify_all()

    async def close(self) -> None:
        """Close the polling connections and wake every waiter."""
        await self.stop_waiters()
        for name in list(self._clients):
            await self._drop(name)
