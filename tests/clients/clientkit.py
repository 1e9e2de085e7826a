"""Helpers for the client suite: scripted stand-in servers, and the few concurrency tools
(run tasks side by side, cancel a task, wait for a thread) written once for asyncio and trio.

Nothing here sleeps to synchronise: every wait is on an event, a server reply, or a socket.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import pytest
import trio
import trio.testing
from conftest import ClientView

LIMIT = 20.0
"""Upper bound, in seconds, on any single wait of a stand-in server (a failing test's bound,
never a synchronisation delay)."""


# --------------------------------------------------------------------- stand-in servers


class Peer:
    """One accepted connection of a stand-in server, with a read buffer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(LIMIT)
        self.buf = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def line(self) -> bytes:
        """The next command line, without its ``\\r\\n``."""
        while (end := self.buf.find(b"\r\n")) < 0:
            if not self._fill():
                raise EOFError("client closed before sending a line")
        line = bytes(self.buf[:end])
        del self.buf[: end + 2]
        return line

    def exact(self, size: int) -> bytes:
        """The next ``size`` bytes."""
        while len(self.buf) < size:
            if not self._fill():
                raise EOFError("client closed mid-body")
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data

    def put(self) -> bytes:
        """Read a whole ``put`` command (line and body); return its body."""
        words = self.line().split(b" ")
        assert words[0] == b"put", words
        body = self.exact(int(words[-1]) + 2)
        assert body.endswith(b"\r\n")
        return body[:-2]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def wait_closed(self) -> bytes:
        """Read until the client closes its end; return what it sent meanwhile."""
        while self._fill():
            pass
        return bytes(self.buf)


Script = Callable[[Peer], None]


class StandIn:
    """A scripted stand-in for beanstalkd on 127.0.0.1, on a thread.

    It accepts one connection per script, in order, and runs the script on it. An assertion
    failing in a script is raised again when the ``with`` block ends. ``listener`` stays
    usable afterwards (``run_beanstalkd(listener=...)`` can take over the same port).
    """

    def __init__(self, *scripts: Script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(LIMIT)
        host, port = self.listener.getsockname()[:2]
        self.address: tuple[str, int] = (host, port)
        self.scripts = scripts
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            for script in self.scripts:
                sock, _ = self.listener.accept()
                with sock:
                    script(Peer(sock))
        except BaseException as error:  # reported by __exit__
            self.errors.append(error)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def join(self) -> None:
        """Wait until every script has run (each one is bounded by ``LIMIT``)."""
        self.thread.join(LIMIT * 2)
        assert not self.thread.is_alive(), "stand-in server did not finish"
        if self.errors:
            raise self.errors[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is None:
                self.join()
        finally:
            self.listener.close()


# --------------------------------------------------------------------- concurrency, per kind


async def wait_event(kind: str, event: threading.Event) -> None:
    """Wait (without blocking the event loop) until a stand-in's thread sets ``event``."""
    if kind == "trio":
        done = await trio.to_thread.run_sync(event.wait, LIMIT)
    else:
        done = await asyncio.to_thread(event.wait, LIMIT)
    assert done, "the stand-in server never got there"


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
