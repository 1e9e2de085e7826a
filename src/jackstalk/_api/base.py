"""What every client shares that is not a command: its options and conversions; no I/O."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from jackstalk._api.errors import BodyDecodeError, JobBodyTooLarge
from jackstalk._api.jobs import BaseJob
from jackstalk._api.replies import error_for
from jackstalk._protocol import commands as c
from jackstalk._protocol import events as e
from jackstalk._protocol import validate as v
from jackstalk._protocol.errors import ArgumentTypeError, InvalidArgument, InvalidEncoding

if TYPE_CHECKING:
    from ssl import SSLContext

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_JOB_SIZE",
    "DEFAULT_PORT",
    "Address",
    "ClientBase",
    "Codec",
    "CodecOption",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11300
DEFAULT_MAX_JOB_SIZE = 65535

Address: TypeAlias = "tuple[str, int] | str | os.PathLike[str]"


class Codec(Protocol):
    """What ``codec=`` takes besides ``"json"``: any object (or module) with ``dumps`` and
    ``loads``, such as ``msgpack``, ``orjson`` or a user's own.

    ``dumps`` turns a value into the body: ``bytes`` as they are, or ``str``, encoded with
    the client's encoding (UTF-8 when it is ``None``). ``loads`` gets the body's raw bytes;
    whatever it raises makes the reserve or peek raise :class:`BodyDecodeError`.
    """

    def dumps(self, obj: Any, /) -> str | bytes: ...
    def loads(self, data: bytes, /) -> Any: ...


CodecOption: TypeAlias = 'Literal["json"] | Codec | None'
"""The ``codec=`` option: ``"json"``, a :class:`Codec`, or ``None`` (bodies as they are)."""


class ClientBase:
    """Options and conversions shared by every client; no I/O.

    ``address``: ``(host, port)`` for TCP (default ``("127.0.0.1", 11300)``) or a path for a
    Unix socket. ``encoding``: how ``str`` bodies are encoded and bodies decoded (``None``:
    bytes in and out). ``use``/``watch``: the tube to use and the tube(s) to watch, set on
    every (re)connection. ``parse_yaml``: ``True`` parses stats and lists into dicts and lists
    with typed values, ``False`` returns the raw text, a callable is given the text.
    ``max_job_size``: the largest job body ``put`` sends and a reserve or peek takes (the
    server's ``-z``, 65535 by default); a larger reply raises :class:`ReplyTooLargeError`
    before its body is read.
    ``ssl``: an :class:`ssl.SSLContext` to speak TLS (to a TLS terminator in front of
    beanstalkd); the certificate is checked against the address's host. ``codec="json"``:
    ``put`` takes any JSON-serialisable value and jobs come back with the decoded value as
    their ``body`` (a body that is not JSON raises :class:`BodyDecodeError`). ``codec`` may
    also be any object with ``dumps`` and ``loads`` (``msgpack``, ``orjson``, your own; see
    :class:`Codec`), with the same guarantee: a body ``loads`` refuses raises
    :class:`BodyDecodeError` with the job, which a worker buries.
    """

    _job_type: type[BaseJob] = BaseJob

    def __init__(
        self,
        address: Address | None = None,
        *,
        encoding: str | None = "utf-8",
        use: str = "default",
        watch: str | Iterable[str] = "default",
        parse_yaml: bool | Callable[[str], Any] = True,
        max_job_size: int = DEFAULT_MAX_JOB_SIZE,
        ssl: SSLContext | None = None,
        codec: CodecOption = None,
    ) -> None:
        if address is None:
            address = (DEFAULT_HOST, DEFAULT_PORT)
        elif isinstance(address, tuple):
            if len(address) != 2 or not isinstance(address[0], str):  # type: ignore[redundant-expr]
                raise ArgumentTypeError("a TCP address is a (host, port) tuple")
            v.integer(address[1], "port", 0, 65535)
        elif isinstance(address, os.PathLike):
            address = os.fspath(address)
        elif not isinstance(address, str):
            raise ArgumentTypeError(
                "address must be a (host, port) tuple or a Unix socket path,"
                f" not {type(address).__name__}"
            )
        self.address: tuple[str, int] | str = address
        if encoding is not None:
            try:
                "".encode(encoding)  # fail now on an unknown codec, not at the first put
            except LookupError as error:  # also a ValueError, as argument errors are
                raise InvalidEncoding(f"encoding {encoding!r}: {error}") from None
        self.encoding = encoding
        self._use = v.tube_name(use)
        tubes = [watch] if isinstance(watch, str) else list(watch)
        if not tubes:
            raise InvalidArgument("watch needs at least one tube")
        self._watch = list(dict.fromkeys(v.tube_name(tube) for tube in tubes))
        if not callable(parse_yaml) and not isinstance(parse_yaml, bool):
            raise ArgumentTypeError("parse_yaml must be True, False or a callable")
        self.parse_yaml = parse_yaml
        self.max_job_size = v.integer(max_job_size, "max_job_size", 0, 2**30)
        if ssl is not None:
            import ssl as ssl_module  # only when asked for: the core imports no I/O module

            if not isinstance(ssl, ssl_module.SSLContext):
                raise ArgumentTypeError(
                    f"ssl must be an ssl.SSLContext or None, not {type(ssl).__name__}"
                )
            if isinstance(address, str):
                raise InvalidArgument("ssl needs a TCP (host, port) address")
        self.ssl = ssl
        given: object = codec  # any object may arrive here; compare without -bb warnings
        if isinstance(given, str):
            if given != "json":
                raise InvalidArgument(f'codec must be "json", a codec or None, not {codec!r}')
        elif given is not None and not (
            callable(getattr(given, "dumps", None)) and callable(getattr(given, "loads", None))
        ):
            raise InvalidArgument(
                f'codec must be "json", an object with dumps and loads, or None, not {codec!r}'
            )
        self.codec = codec

    # -- state to restore on every (re)connection

    def _remember(self, used: str, watching: Sequence[str]) -> None:
        """Record the tube state a live connection confirmed, to restore after a reconnect."""
        self._use = used
        self._watch = list(watching)

    def _restore_commands(self) -> list[c.Command]:
        """The commands that bring a fresh connection to the remembered tube state."""
        commands: list[c.Command] = []
        if self._use != "default":
            commands.append(c.Use(self._use))
        commands.extend(c.Watch(tube) for tube in self._watch if tube != "default")
        if "default" not in self._watch:
            commands.append(c.Ignore("default"))
        return commands

    def _check_restored(self, events: Sequence[e.Event]) -> None:
        """Raise if the server refused a command of :meth:`_restore_commands`."""
        for event in events:
            if not isinstance(event, e.Using | e.Watching):
                raise error_for(event)

    # -- conversions

    def _encode(self, body: Any) -> bytes:
        codec = self.codec
        if codec is not None:
            if isinstance(codec, str):  # "json"
                try:
                    body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                except (TypeError, ValueError) as error:
                    raise ArgumentTypeError(f"job body is not JSON-serialisable: {error}") from None
            else:
                try:
                    body = codec.dumps(body)
                except (TypeError, ValueError) as error:
                    raise ArgumentTypeError(
                        f"job body is not serialisable by the codec: {error}"
                    ) from None
                if not isinstance(body, str | bytes | bytearray | memoryview):
                    raise ArgumentTypeError(
                        f"codec.dumps returned {type(body).__name__}, not str or bytes"
                    )
            if isinstance(body, str):
                body = body.encode(self.encoding or "utf-8")
        if type(body) is bytes:
            data = body
        elif isinstance(body, str):
            if self.encoding is None:
                raise ArgumentTypeError("body must be bytes when the client has encoding=None")
            data = body.encode(self.encoding)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            data = bytes(body)
        else:
            raise ArgumentTypeError(f"job body must be str or bytes, not {type(body).__name__}")
        if len(data) > self.max_job_size:
            raise JobBodyTooLarge(
                f"job body is {len(data)} bytes, over max_job_size {self.max_job_size}"
            )
        return data

    def _job(self, job_id: int, data: bytes, job_type: type[BaseJob] | None = None) -> Any:
        """The job a reply handed out, its body decoded as the options say; ``job_type``
        (the worker's) replaces the client's job class."""
        make: Any = job_type or self._job_type
        encoding = self.encoding
        codec = self.codec
        if codec is None:
            if encoding is None:
                return make(job_id, data, self)
            try:
                return make(job_id, data.decode(encoding), self)
            except ValueError as error:  # UnicodeDecodeError
                job = make(job_id, data, self)
                raise BodyDecodeError(f"job {job_id}: body does not decode: {error}", job) from None
        try:
            if isinstance(codec, str):  # "json"
                body: Any = json.loads(data.decode(encoding or "utf-8"))
            else:
                body = codec.loads(data)
        except Exception as error:  # whatever a codec raises: the body does not decode
            job = make(job_id, data, self)
            raise BodyDecodeError(f"job {job_id}: body does not decode: {error}", job) from None
        return make(job_id, body, self)

    def _yaml(self, data: bytes, parse: Callable[[bytes], Any]) -> Any:
        option = self.parse_yaml
        if option is True:
            return parse(data)
        text = data.decode("utf-8", "surrogateescape")
        if option is False:
            return text
        return option(text)
