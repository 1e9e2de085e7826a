"""Start a private, throw-away beanstalkd for tests: the real one, or the embedded one.

:func:`run_beanstalkd` binds the listening socket here, on a free loopback port (or a Unix
socket path), and hands it to beanstalkd through systemd-style socket activation
(``LISTEN_FDS``), which the Debian build supports. So the server accepts connections the
moment this returns: no port race, no polling, no sleeping.

:func:`embedded_server` runs jackstalk's own in-memory server (the same protocol) in a
background thread, for blocking code and for machines without beanstalkd. It too is
listening when it returns.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from jackstalk.transports.server import EmbeddedServer

__all__ = [
    "BeanstalkdServer",
    "EmbeddedBeanstalkd",
    "beanstalkd_available",
    "embedded_server",
    "run_beanstalkd",
]


@dataclass(frozen=True)
class BeanstalkdServer:
    """A running server: where to reach it, and its process."""

    address: tuple[str, int] | str
    process: subprocess.Popen[bytes]
    max_job_size: int

    @property
    def host(self) -> str:
        """The TCP host (``127.0.0.1``); empty for a Unix socket."""
        return self.address[0] if isinstance(self.address, tuple) else ""

    @property
    def port(self) -> int:
        """The TCP port; 0 for a Unix socket."""
        return self.address[1] if isinstance(self.address, tuple) else 0


def beanstalkd_available(binary: str = "beanstalkd") -> bool:
    """True when a ``beanstalkd`` binary is on ``PATH``."""
    return shutil.which(binary) is not None


@contextmanager
def run_beanstalkd(
    *,
    unix_path: str | None = None,
    max_job_size: int = 65535,
    binary: str = "beanstalkd",
    listener: socket.socket | None = None,
) -> Iterator[BeanstalkdServer]:
    """Run beanstalkd on a fresh loopback port (or ``unix_path``) until the block ends.

    ``listener`` hands over an already bound, listening socket instead (to restart a
    server on the same port); the caller keeps ownership of it.
    """
    path = shutil.which(binary)
    if path is None:
        raise FileNotFoundError(f"{binary} is not on PATH")
    own = listener is None
    if listener is None:
        if unix_path is not None:
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(unix_path)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
        listener.listen(512)
    if listener.family in (socket.AF_INET, socket.AF_INET6):
        # beanstalkd sets TCP_NODELAY on a listener it makes, not on one handed over (it
        # takes the socket as configured): without it, Nagle holds back the second of two
        # replies to one write until the client's delayed ACK, ~40 ms per pipelined batch.
        # Accepted sockets inherit the option.
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        name = listener.getsockname()
        address: tuple[str, int] | str = name if isinstance(name, str) else (name[0], name[1])
        # The socket arrives as the shell's stdin; the shell moves it to fd 3, where socket
        # activation expects it, and names itself in LISTEN_PID before it execs.
        script = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -z "$1" 3<&0 0</dev/null'
        process = subprocess.Popen(
            ["/bin/sh", "-c", script, path, str(max_job_size)],
            stdin=listener.fileno(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        try:
            yield BeanstalkdServer(address, process, max_job_size)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        if own:
            listener.close()
            if unix_path is not None:
                try:
                    os.unlink(unix_path)
                except FileNotFoundError:
                    pass


class EmbeddedBeanstalkd:
    """A running embedded server: where to reach it, and a way to make it drain."""

    def __init__(
        self, server: EmbeddedServer, loop: asyncio.AbstractEventLoop, max_job_size: int
    ) -> None:
        self._server = server
        self._loop = loop
        self.address: tuple[str, int] | str = server.address
        self.max_job_size = max_job_size

    @property
    def host(self) -> str:
        """The TCP host (``127.0.0.1``); empty for a Unix socket."""
        return self.address[0] if isinstance(self.address, tuple) else ""

    @property
    def port(self) -> int:
        """The TCP port; 0 for a Unix socket."""
        return self.address[1] if isinstance(self.address, tuple) else 0

    def drain(self) -> None:
        """Refuse new jobs from now on (``DRAINING``), like beanstalkd after SIGUSR1."""
        done = threading.Event()

        def drain() -> None:
            self._server.drain()
            done.set()

        self._loop.call_soon_threadsafe(drain)
        done.wait()


@contextmanager
def embedded_server(
    *,
    unix_path: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    max_job_size: int = 65535,
) -> Iterator[EmbeddedBeanstalkd]:
    """Run the embedded server in a background thread until the block ends.

    It listens on ``host``:``port`` (a free loopback port by default) or on the Unix socket
    ``unix_path``, and is ready when this yields. Errors binding the address are raised
    here.
    """
    import asyncio

    from jackstalk.transports.server import start_server

    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    servers: list[EmbeddedServer] = []
    stop: asyncio.Future[None] | None = None

    async def main() -> None:
        nonlocal stop
        stop = loop.create_future()
        try:
            server = await start_server(host, port, unix_path=unix_path, max_job_size=max_job_size)
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        servers.append(server)
        started.set()
        try:
            await stop
        finally:
            server.close()
            await server.wait_closed()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="jackstalk-embedded", daemon=True
    )
    thread.start()
    started.wait()
    try:
        if failure:
            raise failure[0]
        yield EmbeddedBeanstalkd(servers[0], loop, max_job_size)
    finally:
        if not failure:

            def finish() -> None:
                if stop is not None and not stop.done():
                    stop.set_result(None)

            loop.call_soon_threadsafe(finish)
        thread.join()
        loop.close()
