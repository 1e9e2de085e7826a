"""Tools for the reliability suite: a fault-injecting TCP proxy, clients of every kind whose
calls are bounded in time, and a bounded poll of the server's statistics.

The proxy listens on 127.0.0.1 and forwards each connection it accepts to a real beanstalkd,
with a :class:`Plan` of faults for that connection: split every write into 1-byte pieces,
delay each piece, and at a chosen byte offset in one direction drop the connection (FIN),
reset it (RST: ``SO_LINGER`` 0) or stall it (nothing more is forwarded that way, for ever).
Everything is bounded: each socket wait by :data:`LIMIT`, each proxy by a connection count.
An injected delay is a fault under test, never a way to wait for something.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import trio

import jackstalk

KINDS = ("blocking", "asyncio", "trio")
"""The three clients, by the name the ``transport`` fixture gives them."""

LIMIT = 30.0
"""Seconds any single wait of the proxy may last (a failing test's bound, never a delay)."""

CALL_LIMIT = 10.0
"""Seconds a client call may take in these tests before it counts as hung."""

Direction = Literal["up", "down"]
"""``up``: client to server; ``down``: server to client."""

Cut = Literal["drop", "reset", "stall"]

EXPECTED_FAILURES = (jackstalk.ConnectionClosedError, TimeoutError)
"""What a fault may make a call raise; anything else is a bug."""


@dataclass(frozen=True)
class Plan:
    """The faults of one proxied connection.

    ``cut`` happens once ``offset`` bytes have been forwarded in ``direction``: the byte after
    them is never delivered. A cut whose offset is never reached does not happen.
    """

    split: bool = False
    delay: float = 0.0
    """Most seconds to hold each piece back (a random share of it each time)."""
    cut: Cut | None = None
    direction: Direction = "up"
    offset: int = 0

    def __str__(self) -> str:
        parts = []
        if self.split:
            parts.append("split")
        if self.delay:
            parts.append(f"delay<={self.delay * 1000:.0f}ms")
        if self.cut is not None:
            parts.append(f"{self.cut}-{self.direction}@{self.offset}")
        return "+".join(parts) or "clean"


CLEAN = Plan()


def random_plan(
    rng: random.Random,
    *,
    cuts: tuple[Cut, ...] = ("drop", "reset"),
    max_offset: int = 80,
    fault_share: float = 0.8,
    max_delay: float = 0.002,
) -> Plan:
    """A random plan: ``fault_share`` of them cut the connection; some split or delay."""
    cut: Cut | None = rng.choice(cuts) if cuts and rng.random() < fault_share else None
    return Plan(
        split=rng.random() < 0.3,
        delay=max_delay if rng.random() < 0.2 else 0.0,
        cut=cut,
        direction=rng.choice(("up", "down")),
        offset=rng.randrange(max_offset + 1),
    )


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of ``upstream`` that injects faults.

    Each accepted connection takes the next plan queued with :meth:`plan`, or else one from
    ``default`` (a plan, or a function making one). ``fired`` counts the faults injected:
    cuts that happened (``drop-up``, ``reset-down``, ``stall-up`` ...), and connections that
    were split or delayed. Use it as a context manager; leaving it closes every connection.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        default: Plan | Callable[[], Plan] = CLEAN,
        max_connections: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream
        self.default = default
        self.max_connections = max_connections
        self.connections = 0
        self.fired: Counter[str] = Counter()
        self.rng = random.Random(seed)
        self._queue: deque[Plan] = deque()
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self._accepter = threading.Thread(target=self._accept_loop, daemon=True)

    def plan(self, *plans: Plan) -> None:
        """Queue the plans of the next connections, in order."""
        with self._lock:
            self._queue.extend(plans)

    def count(self, name: str) -> None:
        with self._lock:
            self.fired[name] += 1

    @property
    def faults(self) -> int:
        """How many faults were injected so far."""
        with self._lock:
            return sum(self.fired.values())

    def _next_plan(self) -> Plan:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        default = self.default
        return default if isinstance(default, Plan) else default()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was shut down
            with self._lock:
                refuse = self._closed or self.connections >= self.max_connections
                self.connections += 1
            if refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=LIMIT)
            except OSError:
                client.close()
                continue
            link = _Link(self, client, server, self._next_plan())
            with self._lock:
                self._links.add(link)
            link.start()

    def forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def __enter__(self) -> FaultProxy:
        self._accepter.start()
        return self

    def close(self) -> None:
        """Stop accepting and end every connection; wait (bounded) for the threads."""
        with self._lock:
            self._closed = True
            links = list(self._links)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        except OSError:
            pass
        self._listener.close()
        if self._accepter.is_alive():
            self._accepter.join(LIMIT)
        for link in links:
            link.shutdown(reset=False)
        for link in links:
            link.join()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Link:
    """One proxied connection: two pump threads, one per direction."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, server: socket.socket, plan: Plan
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.plan = plan
        self.rng = random.Random(proxy.rng.random())
        self._lock = threading.Lock()
        self._closed = False
        self._reset = False
        self._running = 2
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(LIMIT)
        self.threads = [
            threading.Thread(target=self._pump, args=("up", client, server), daemon=True),
            threading.Thread(target=self._pump, args=("down", server, client), daemon=True),
        ]

    def start(self) -> None:
        if self.plan.split:
            self.proxy.count("split")
        if self.plan.delay:
            self.proxy.count("delay")
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            if thread.is_alive():
                thread.join(LIMIT)

    def _forward(self, dst: socket.socket, data: bytes) -> None:
        plan = self.plan
        if plan.delay:
            time.sleep(self.rng.uniform(0, plan.delay))  # the injected fault
        if plan.split:
            for index in range(len(data)):
                dst.sendall(data[index : index + 1])
        elif data:
            dst.sendall(data)

    def _pump(self, direction: Direction, src: socket.socket, dst: socket.socket) -> None:
        plan = self.plan
        cut = plan.cut if plan.direction == direction else None
        forwarded = 0
        stalled = False
        reset = False
        try:
            while not self._closed:
                data = src.recv(65536)
                if not data:
                    break
                if stalled:
                    continue  # swallowed: the stall lasts until one side goes away
                if cut is not None and forwarded + len(data) > plan.offset:
                    self._forward(dst, data[: plan.offset - forwarded])
                    forwarded = plan.offset
                    self.proxy.count(f"{cut}-{direction}")
                    if cut == "stall":
                        stalled = True
                        continue
                    reset = cut == "reset"
                    break
                self._forward(dst, data)
                forwarded += len(data)
        except OSError:
            pass  # the other pump closed the link, or a peer reset it
        finally:
            self.shutdown(reset=reset)
            self._finish()

    def shutdown(self, *, reset: bool) -> None:
        """End the link: wake both pumps; the last one closes the sockets (with an RST to
        both peers when ``reset``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._reset = reset
        for sock in (self.client, self.server):
            try:
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)  # wakes the other pump, sends nothing
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _finish(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.client.close()
            self.server.close()
            self.proxy.forget(self)


# ------------------------------------------------------------------------- clients


def make_client(kind: str, address: tuple[str, int] | str, **options: Any) -> Any:
    """A client of ``kind``; a blocking one gets :data:`CALL_LIMIT` as its timeouts."""
    if kind == "blocking":
        options.setdefault("timeout", CALL_LIMIT)
        options.setdefault("connect_timeout", CALL_LIMIT)
        return jackstalk.Client(address, **options)
    if kind == "asyncio":
        return jackstalk.AsyncClient(address, **options)
    if kind == "trio":
        return jackstalk.TrioClient(address, **options)
    raise ValueError(kind)


class Driver:
    """A client of any kind behind awaitable methods, each call bounded by ``limit``.

    A blocking client is bounded by its own ``timeout``; an async one by ``asyncio.timeout``
    or ``trio.fail_after``. Either way a call that takes too long raises ``TimeoutError``.
    """

    def __init__(
        self,
        kind: str,
        address: tuple[str, int] | str,
        *,
        limit: float = CALL_LIMIT,
        **options: Any,
    ) -> None:
        if kind == "blocking":
            options.setdefault("timeout", limit)
        self.kind = kind
        self.limit = limit
        self.client = make_client(kind, address, **options)

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.client, name)
        if self.kind == "blocking":
            return method(*args, **kwargs)
        if self.kind == "asyncio":
            async with asyncio.timeout(self.limit):
                return await method(*args, **kwargs)
        try:
            with trio.fail_after(self.limit):
                return await method(*args, **kwargs)
        except trio.TooSlowError as error:
            raise TimeoutError(f"{name} took over {self.limit} s") from error

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.call(name, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        result = self.client.close()
        if result is not None:
            await result


@contextmanager
def observer(address: tuple[str, int] | str) -> Iterator[jackstalk.Client]:
    """A blocking client straight to the server (no proxy), to look at its state."""
    with jackstalk.Client(address, timeout=CALL_LIMIT) as client:
        yield client


async def apoll(
    kind: str,
    check: Callable[[], bool],
    *,
    what: str,
    tries: int = 20_000,
    limit: float = LIMIT,
) -> None:
    """Call ``check`` (which asks the server something) until it holds, a bounded number of
    times; fail with ``what`` if it never does. Each try is a round trip, not a sleep, and
    the event loop runs other tasks between tries."""
    deadline = time.monotonic() + limit
    for _ in range(tries):
        if check():
            return
        if time.monotonic() > deadline:
            break
        await checkpoint(kind)
    raise AssertionError(f"never happened: {what}")


async def checkpoint(kind: str) -> None:
    """Let the event loop run other tasks once (no time passes)."""
    if kind == "trio":
        await trio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


def tube_jobs(client: jackstalk.Client, tube: str) -> dict[str, int]:
    """The job counts of ``tube`` (all zero if it does not exist)."""
    try:
        stats = client.stats_tube(tube)
    except jackstalk.NotFoundError:
        return dict.fromkeys(("ready", "reserved", "delayed", "buried", "total"), 0)
    return {
        "ready": stats["current-jobs-ready"],
        "reserved": stats["current-jobs-reserved"],
        "delayed": stats["current-jobs-delayed"],
        "buried": stats["current-jobs-buried"],
        "total": stats["total-jobs"],
    }
