"""What the tube page reads and does: peeks, stats-job and the actions, one server at a time.

Each request opens its own short connection to each server it needs (never the polling
one: peeking a tube's jobs needs ``use``, which is connection state), bounded by a timeout,
so a server that is down or hostile gives an error message instead of a hung page.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from jackstalk._api.base import Address
from jackstalk.transports.asyncio import AsyncClient

__all__ = ["BODY_LIMIT", "Body", "PeekedJob", "ServerCalls", "render_body"]

T = TypeVar("T")

BODY_LIMIT = 4096
"""Bytes of a body the tube page shows; a longer body is cut, its size shown."""


@dataclass(frozen=True)
class Body:
    """A job body ready to show: ``text`` (UTF-8 text, JSON pretty-printed, or a hex dump),
    which of those it is, its full ``size`` in bytes and whether ``text`` is ``cut``."""

    text: str
    kind: str
    size: int
    cut: bool


def _hex(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        lines.append(f"{offset:08x}  {chunk.hex(' ')}")
    return "\n".join(lines)


def _text(data: bytes, cut: bool) -> str | None:
    """``data`` as text if it is UTF-8 without control bytes other than whitespace (a cut
    may split the last character: up to three bytes of it are let go)."""
    for drop in range(4 if cut else 1):
        try:
            text = data[: len(data) - drop].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(char.isprintable() or char in "\t\n\r" for char in text):
            return text
        return None
    return None


def render_body(body: bytes, limit: int = BODY_LIMIT) -> Body:
    """How the tube page shows ``body``: JSON (an object or array) pretty-printed, other
    UTF-8 text as it is, anything else as a hex dump; cut to ``limit`` bytes."""
    cut = len(body) > limit
    shown = body[:limit]
    text = _text(shown, cut)
    if text is None:
        return Body(_hex(shown), "hex", len(body), cut)
    if not cut and text.lstrip()[:1] in ("{", "["):
        try:
            value = json.loads(text)
        except ValueError:
            pass
        else:
            return Body(json.dumps(value, indent=2, ensure_ascii=False), "json", len(body), cut)
    return Body(text, "text", len(body), cut)


@dataclass(frozen=True)
class PeekedJob:
    """The next job of one state on one server."""

    server: str
    id: int
    body: Body


class ServerCalls:
    """Short-lived connections to the servers, each call bounded by ``timeout`` seconds."""

    def __init__(
        self,
        servers: Mapping[str, Address],
        *,
        timeout: float,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.servers = dict(servers)
        self.timeout = timeout
        self.client_options = dict(client_options or {})

    async def on(
        self, name: str, call: Callable[[AsyncClient], Awaitable[T]], *, use: str = "default"
    ) -> T:
        """Run ``call`` on a new connection to the server ``name`` (using tube ``use``)."""
        client = AsyncClient(self.servers[name], encoding=None, use=use, **self.client_options)
        try:
            async with asyncio.timeout(self.timeout):
                return await call(client)
        finally:
            await client.close()

    async def each(
        self, names: Sequence[str], call: Callable[[AsyncClient], Awaitable[T]], *, use: str
    ) -> list[tuple[str, T | BaseException]]:
        """``call`` on every server of ``names`` at once: each one's result or error."""
        results = await asyncio.gather(
            *(self.on(name, call, use=use) for name in names), return_exceptions=True
        )
        return list(zip(names, results, strict=True))

    async def peeks(self, tube: str) -> tuple[dict[str, list[PeekedJob]], dict[str, str]]:
        """The next ready, delayed and buried job of ``tube`` on each server, and the
        servers that could not be read (with the reason)."""

        async def peek(client: AsyncClient) -> list[Any]:
            return list(
                await asyncio.gather(
                    client.peek_ready(), client.peek_delayed(), client.peek_buried()
                )
            )

        found: dict[str, list[PeekedJob]] = {"ready": [], "delayed": [], "buried": []}
        errors: dict[str, str] = {}
        for name, result in await self.each(list(self.servers), peek, use=tube):
            if isinstance(result, BaseException):
                errors[name] = reason(result)
                continue
            for state, job in zip(("ready", "delayed", "buried"), result, strict=True):
                if job is not None:
                    found[state].append(PeekedJob(name, job.id, render_body(job.body)))
        return found, errors


def reason(error: BaseException) -> str:
    """An error as a short phrase for a page."""
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error) or type(error).__name__
    return text if isinstance(error, OSError) else f"{type(error).__name__}: {text}"
