"""Start a private, throw-away beanstalkd for tests.

The listening socket is bound here, on a free loopback port (or a Unix socket path), and
handed to beanstalkd through systemd-style socket activation (``LISTEN_FDS``), which the
Debian build supports. So the server accepts connections the moment this returns: no port
race, no polling, no sleeping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["BeanstalkdServer", "beanstalkd_available", "run_beanstalkd"]


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
