"""Run the console with uvicorn: announce the address once it accepts connections, and
stop cleanly on SIGINT or SIGTERM (the live streams are ended, then the poller)."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Any, TextIO

import uvicorn

from jackstalk._app.web.app import WebConfig, create_app

__all__ = ["serve"]


class _Server(uvicorn.Server):
    """uvicorn's server, printing the listening line (with the real port) once started, and
    ending the console's event streams when asked to exit (else they would hold the
    shutdown until its grace period ends)."""

    def __init__(self, config: uvicorn.Config, out: TextIO, on_exit: Any) -> None:
        super().__init__(config)
        self.out = out
        self.on_exit = on_exit

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"jackstalk web listening on http://{shown}:{port}/", file=self.out, flush=True)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self.on_exit()


def serve(config: WebConfig, host: str, port: int, *, out: TextIO = sys.stdout) -> int:
    """Serve the console for ``config`` on ``host:port`` (0: a free port) until SIGINT or
    SIGTERM; returns the exit status (0, or 3 if it could not listen)."""
    app = create_app(config)
    poller = app.state.poller
    uvicorn_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    loop_holder: dict[str, asyncio.AbstractEventLoop] = {}

    def on_exit() -> None:
        loop = loop_holder.get("loop")
        if loop is not None:
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(poller.stop_waiters()))

    server = _Server(uvicorn_config, out, on_exit)

    async def main() -> None:
        loop_holder["loop"] = asyncio.get_running_loop()
        await server.serve()

    # uvicorn sends the signal that stopped it again once it has shut down: SIGINT ends
    # as KeyboardInterrupt, SIGTERM as _Stopped (instead of killing the process).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stopped) if main_thread else None
    try:
        asyncio.run(main())
    except SystemExit as error:  # uvicorn exits 1 when it cannot bind
        return 3 if error.code else 0
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0 if server.started else 3


class _Stopped(Exception):
    """SIGTERM arrived (again, from uvicorn, once it had shut down)."""


def _stopped(signum: int, frame: Any) -> None:
    raise _Stopped
