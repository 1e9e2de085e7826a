"""beanstalkd's YAML subset: parse the bodies of stats and list replies, and write them.

beanstalkd does not speak general YAML. A ``stats``/``stats-tube``/``stats-job`` body is
``---\\n`` followed by one ``key: value\\n`` line per field, and a ``list-tubes*`` body is
``---\\n`` followed by one ``- name\\n`` line per tube. Nothing is escaped; a few values are
wrapped in double quotes (``version`` always, and in 1.13 also ``name``, ``tube``,
``hostname``, ``os`` and ``platform``).

A generic YAML loader gets this wrong: 1.12's ``os: #1 SMP ...`` reads as a comment, and
legal tube names such as ``true``, ``123`` or ``null`` come back as bool/int/None. So the
values here are typed by *key*, from a fixed table of the fields beanstalkd documents, never
by how they look. Unknown keys are kept as ``str``, so a newer server's extra field does
not break the client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from functools import partial
from itertools import repeat
from operator import call
from typing import TypeAlias

from jackstalk._protocol.errors import InvalidArgument, ProtocolError

__all__ = ["format_dict", "format_list", "parse_list", "parse_stats"]

_Value: TypeAlias = int | float | bool | str
_Converter: TypeAlias = Callable[[bytes], _Value]

_HEADER = b"---\n"
_QUOTE = 0x22  # b'"'


# --- converters: each takes the raw value (one pair of quotes already stripped) and either
# returns the typed value or raises ValueError; the parser turns that into ProtocolError.


def _to_uint(raw: bytes) -> int:
    """An unsigned decimal: ASCII digits only (no sign, space, ``_`` or ``0x``)."""
    if raw.isdigit():  # bytes.isdigit() is ASCII-only and False for b""
        return int(raw)  # ValueError only past int's max string digits
    raise ValueError("not an unsigned decimal integer")


def _to_int(raw: bytes) -> int:
    """A signed decimal: an optional ``-`` then ASCII digits (``pause-time-left``)."""
    digits = raw[1:] if raw[:1] == b"-" else raw
    if digits.isdigit():
        return int(raw)
    raise ValueError("not a decimal integer")


def _to_float(raw: bytes) -> float:
    """A fixed-point decimal ``digits.digits`` (``rusage-*``, printed as ``%.6f``)."""
    whole, dot, frac = raw.partition(b".")
    if dot and whole.isdigit() and frac.isdigit():
        return float(raw)
    raise ValueError("not a digits.digits decimal")


def _to_bool(raw: bytes) -> bool:
    """``true`` or ``false``, nothing else (``draining``)."""
    if raw == b"true":
        return True
    if raw == b"false":
        return False
    raise ValueError("not true or false")


def _to_str(raw: bytes) -> str:
    """Text, with undecodable bytes kept as surrogates so nothing is lost."""
    return raw.decode("utf-8", "surrogateescape")


_UINT_FIELDS = (
    # stats
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "cmd-put",
    "cmd-peek",
    "cmd-peek-ready",
    "cmd-peek-delayed",
    "cmd-peek-buried",
    "cmd-reserve",
    "cmd-reserve-with-timeout",
    "cmd-delete",
    "cmd-release",
    "cmd-use",
    "cmd-watch",
    "cmd-ignore",
    "cmd-bury",
    "cmd-kick",
    "cmd-touch",
    "cmd-stats",
    "cmd-stats-job",
    "cmd-stats-tube",
    "cmd-list-tubes",
    "cmd-list-tube-used",
    "cmd-list-tubes-watched",
    "cmd-pause-tube",
    "job-timeouts",
    "total-jobs",
    "max-job-size",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "total-connections",
    "pid",
    "uptime",
    "binlog-oldest-index",
    "binlog-current-index",
    "binlog-records-migrated",
    "binlog-records-written",
    "binlog-max-size",
    # stats-tube (besides the ones shared with stats above)
    "current-using",
    "current-watching",
    "pause",
    # stats-job
    "pri",
    "age",
    "delay",
    "ttr",
    "file",
    "reserves",
    "timeouts",
    "releases",
    "buries",
    "kicks",
)

# ``id`` is deliberately a str field here: in ``stats`` it is the server's 16-hex-char id
# (which may happen to be all digits), in ``stats-job`` it is the job id. parse_stats
# converts it to int afterwards, only when the document also has a ``tube`` key, i.e. only
# for a ``stats-job`` body.
_STR_FIELDS = ("name", "tube", "state", "version", "id", "hostname", "os", "platform")

_CONVERTERS: dict[str, _Converter] = {
    **dict.fromkeys(_UINT_FIELDS, _to_uint),
    # Signed: beanstalkd 1.12 can report a negative time-left for a reserved job whose
    # time-to-run ran out while its connection sat idle (seen on the wire).
    "pause-time-left": _to_int,
    "time-left": _to_int,
    "rusage-utime": _to_float,
    "rusage-stime": _to_float,
    "draining": _to_bool,
    **dict.fromkeys(_STR_FIELDS, _to_str),
}

# The same table keyed by the raw key bytes, holding the str key too, so the hot loop
# neither decodes known keys nor looks anything up twice.
_FIELDS: dict[bytes, tuple[str, _Converter]] = {
    key.encode("ascii"): (key, conv) for key, conv in _CONVERTERS.items()
}

# The unsigned-integer fields (most of every document) alone: raw key -> str key.
_UINT_KEYS: dict[bytes, str] = {key.encode("ascii"): key for key in _UINT_FIELDS}


def _body_lines(data: bytes, what: str) -> list[bytes]:
    """Check the ``---\\n`` header and final newline; return the lines between them."""
    if not data.startswith(_HEADER):
        raise ProtocolError(f"{what} reply does not start with '---\\n': {data[:40]!r}")
    if len(data) == len(_HEADER):
        raise ProtocolError(f"{what} reply is an empty document")
    if data[-1] != 0x0A:
        # Covers both a missing final newline and stray bytes after it.
        raise ProtocolError(f"{what} reply does not end with a newline: {data[-40:]!r}")
    return data[len(_HEADER) : -1].split(b"\n")


def _unquote(raw: bytes) -> bytes:
    """Strip exactly one pair of surrounding double quotes, if there is one."""
    if len(raw) > 1 and raw[0] == _QUOTE and raw[-1] == _QUOTE:
        return raw[1:-1]
    return raw


class _Shape:
    """A document layout seen before (its keys in order, and which values were quoted),
    compiled into one regular expression that checks the whole body and captures every
    value in a single C call.

    Each value's pattern is its converter's rule (``_to_uint``: ASCII digits, ``_to_int``:
    an optional ``-`` then digits, ``_to_float``: ``digits.digits``, ``_to_bool``: ``true``
    or ``false``, text: the rest of the line), inside quotes where the sample had them; an
    unquoted text value refuses a quoted one. So every capture goes straight to a C-level
    converter (``int``, ``float``, a dict lookup, a decode), with no Python call per field.
    A body that does not match falls back to the general parser.
    """

    __slots__ = ("converters", "names", "pattern")

    def __init__(self, keys: tuple[bytes, ...], quoted: tuple[bool, ...]) -> None:
        parts = [re.escape(_HEADER)]
        names: list[str] = []
        converters: list[_Converter] = []
        for key, is_quoted in zip(keys, quoted, strict=True):
            spec = _FIELDS.get(key)
            name, conv = (key.decode("utf-8", "surrogateescape"), _to_str) if spec is None else spec
            names.append(name)
            value, fast = _PATTERNS[conv]
            if is_quoted:
                value = b'"' + value + b'"'
            elif conv is _to_str:
                value = b'(?!"[^\n]*"\n)' + value  # a quoted value would lose its quotes
            converters.append(fast)
            parts.append(re.escape(key + b": ") + value + b"\n")
        self.pattern = re.compile(b"".join(parts))
        self.names = tuple(names)
        self.converters = tuple(converters)

    def parse(self, data: bytes) -> dict[str, _Value] | None:
        match = self.pattern.fullmatch(data)
        if match is None:
            return None
        try:
            # One C-level pass: each value through its converter, in document order.
            return dict(zip(self.names, map(call, self.converters, match.groups()), strict=True))
        except ValueError:
            return None  # the general parser reports it


# Each converter's rule as a pattern capturing the value, and a C-level callable that does
# what the converter does to a value the pattern matched.
_PATTERNS: dict[_Converter, tuple[bytes, _Converter]] = {
    _to_uint: (b"([0-9]+)", int),
    _to_int: (b"(-?[0-9]+)", int),
    _to_float: (b"([0-9]+\\.[0-9]+)", float),
    _to_bool: (b"(true|false)", {b"true": True, b"false": False}.__getitem__),
    _to_str: (b"([^\n]*)", partial(str, encoding="utf-8", errors="surrogateescape")),
}


_Layout: TypeAlias = tuple[tuple[bytes, ...], tuple[bool, ...]]
"""A document's keys in order, and whether each value was quoted."""

_SHAPES: dict[_Layout, _Shape] = {}
_SHAPES_MAX = 8
"""A server sends a handful of layouts (stats, stats-tube, stats-job) again and again."""
_SEEN: set[_Layout] = set()


def _learn_shape(lines: list[bytes]) -> None:
    """Compile a layout the second time it parses cleanly (compiling costs about as much
    as a hundred parses, so a one-off layout is never compiled)."""
    split = [line.partition(b": ") for line in lines]
    layout = (
        tuple(key for key, _, _ in split),
        tuple(raw != _unquote(raw) for _, _, raw in split),
    )
    if layout in _SHAPES:
        return
    if layout not in _SEEN:
        if len(_SEEN) >= 4 * _SHAPES_MAX:
            _SEEN.clear()
        _SEEN.add(layout)
        return
    if len(_SHAPES) >= _SHAPES_MAX:
        _SHAPES.pop(next(iter(_SHAPES)))
    _SHAPES[layout] = _Shape(*layout)


def parse_stats(data: bytes) -> dict[str, int | float | bool | str]:
    """Parse a ``stats``, ``stats-tube`` or ``stats-job`` body into a typed dict.

    ``data`` is exactly the ``<bytes>`` of the ``OK <bytes>`` reply (no closing ``\\r\\n``).
    Known fields are converted by key; unknown ones stay ``str``. Raises ``ProtocolError``
    on anything that is not the exact shape beanstalkd writes.
    """
    if type(data) is not bytes:
        data = bytes(data)  # a bytearray/memoryview slice: keys must be hashable
    for shape in tuple(_SHAPES.values()):
        fast = shape.parse(data)
        if fast is not None:
            _stats_job_id(fast)
            return fast
    out = _parse_stats_general(data)
    _stats_job_id(out)
    return out


def _parse_stats_general(data: bytes) -> dict[str, _Value]:
    """Line by line, with precise errors; a layout parsed cleanly is learnt for next time."""
    lines = _body_lines(data, "stats")
    out: dict[str, _Value] = {}
    get_field = _FIELDS.get
    get_uint = _UINT_KEYS.get
    isdigit = bytes.isdigit
    key = sep = raw = b""
    try:
        # map(bytes.partition, ...) splits every line at its first ": " without a Python-level
        # method call per line; it is measurably faster than line.partition in the loop.
        for key, sep, raw in map(bytes.partition, lines, repeat(b": ")):
            # Fast path for the common case, an unquoted unsigned integer of a known field
            # (same rule as _to_uint; anything else takes the general path below).
            uint_name = get_uint(key)
            if uint_name is not None and isdigit(raw):
                out[uint_name] = int(raw)
                continue
            spec = get_field(key)
            if spec is not None:
                name, conv = spec
            if not sep:
                raise ValueError("no ': ' separator")
            value = _unquote(raw)
            if spec is not None:
                out[name] = conv(value)
            elif key:
                out[key.decode("utf-8", "surrogateescape")] = value.decode(
                    "utf-8", "surrogateescape"
                )
            else:
                raise ValueError("empty key")
    except ValueError as exc:
        raise ProtocolError(f"malformed stats line {key + sep + raw!r}: {exc}") from exc
    if len(out) != len(lines):
        raise ProtocolError(f"duplicate key in stats reply: {_first_duplicate(lines)!r}")
    _learn_shape(lines)
    return out


def _stats_job_id(out: dict[str, _Value]) -> None:
    # The ``id`` rule (see _STR_FIELDS): a ``tube`` key marks a stats-job body, whose ``id``
    # is the job id (u64); anywhere else ``id`` is the server's hex id and stays str.
    if "tube" in out:
        job_id = out.get("id")
        if isinstance(job_id, str):
            try:
                out["id"] = _to_uint(job_id.encode("utf-8", "surrogateescape"))
            except ValueError as exc:
                raise ProtocolError(f"malformed stats-job id {job_id!r}: {exc}") from exc


def _first_duplicate(lines: list[bytes]) -> bytes:
    """The first key that appears twice (only called once a duplicate is known to exist)."""
    seen: set[bytes] = set()
    for line in lines:
        key = line.partition(b": ")[0]
        if key in seen:
            return key
        seen.add(key)
    return b""  # pragma: no cover - unreachable when called as documented


def parse_list(data: bytes) -> list[str]:
    """Parse a ``list-tubes`` or ``list-tubes-watched`` body into a list of tube names.

    Names always stay ``str``, whatever they look like (``true``, ``123``, ``null`` ...).
    Raises ``ProtocolError`` on a malformed body, including an empty list or an empty name
    (beanstalkd never sends either).
    """
    if type(data) is not bytes:
        data = bytes(data)
    items: list[str] = []
    for line in _body_lines(data, "list"):
        if line[:2] != b"- ":
            raise ProtocolError(f"malformed list line (no '- ' prefix): {line!r}")
        # Servers never quote list items, and a tube name cannot contain '"', so stripping
        # a pair loses nothing and keeps one quoting rule for dicts and lists.
        item = _unquote(line[2:])
        if not item:
            raise ProtocolError(f"empty item in list reply: {line!r}")
        items.append(item.decode("utf-8", "surrogateescape"))
    return items


def _check_text(text: str, what: str) -> None:
    """Refuse text that would break the line structure of the document."""
    if "\n" in text or "\r" in text:
        raise InvalidArgument(f"{what} contains a line break: {text!r}")


def format_dict(
    fields: Iterable[tuple[str, int | float | bool | str]],
    *,
    quoted: Collection[str] = (),
) -> bytes:
    """Write ``fields`` as a beanstalkd stats body (used by the embedded server).

    ints are decimal, floats have exactly six fractional digits (``%.6f``), bools are
    ``true``/``false`` and str values are written as they are. A value whose key is in
    ``quoted`` is wrapped in double quotes (pass ``{"version"}`` to look like 1.12).
    """
    parts = ["---\n"]
    for key, value in fields:
        if value is True:
            text = "true"
        elif value is False:
            text = "false"
        elif isinstance(value, int):
            text = str(value)
        elif isinstance(value, float):
            text = f"{value:.6f}"
        else:
            text = value
            _check_text(text, f"value of {key!r}")
        if not key or ": " in key:
            raise InvalidArgument(f"invalid stats key: {key!r}")
        _check_text(key, "key")
        if key in quoted:
            text = f'"{text}"'
        parts.append(f"{key}: {text}\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def format_list(items: Iterable[str]) -> bytes:
    """Write ``items`` as a beanstalkd list body (``---\\n`` then ``- item\\n`` each)."""
    parts = ["---\n"]
    for item in items:
        _check_text(item, "list item")
        parts.append(f"- {item}\n")
    return "".join(parts).encode("utf-8", "surrogateescape")
