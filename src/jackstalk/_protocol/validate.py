"""Argument checks shared by every command: the protocol's ranges and the tube-name grammar.

Each check returns the value it accepted (normalised to a plain ``int`` or ``str``) or raises
an argument error, so commands can never be built with something the wire cannot carry.
"""

from __future__ import annotations

import operator
import re

from jackstalk._protocol.errors import ArgumentTypeError, InvalidArgument, InvalidTubeName

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
RESERVE_TIMEOUT_MAX = 2**31 - 1
MAX_TUBE_NAME = 200

# beanstalkd's tube grammar: A-Z a-z 0-9 - + / ; . $ _ ( ), 1-200 bytes, no leading '-'.
_TUBE_RE = re.compile(r"[A-Za-z0-9+/;.$_()][A-Za-z0-9+/;.$_()\-]{0,199}")


def tube_name(value: object, what: str = "tube") -> str:
    """Accept a valid tube name (``str``) or raise."""
    if type(value) is not str:
        if not isinstance(value, str):
            raise ArgumentTypeError(f"{what} name must be str, not {type(value).__name__}")
        value = str(value)
    if _TUBE_RE.fullmatch(value) is None:
        raise InvalidTubeName(
            f"invalid {what} name {value!r}: 1-200 characters from A-Z a-z 0-9 - + / ; . $ _ ( ),"
            " not starting with '-'"
        )
    return value


def integer(value: object, what: str, low: int, high: int) -> int:
    """Accept an integer in ``low..high`` (bools are refused: they are a likely mistake)."""
    if type(value) is int:
        number = value
    elif isinstance(value, bool):
        raise ArgumentTypeError(f"{what} must be an integer, not bool")
    else:
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            raise ArgumentTypeError(
                f"{what} must be an integer, not {type(value).__name__}"
            ) from None
    if not low <= number <= high:
        raise InvalidArgument(f"{what} must be between {low} and {high}, got {number}")
    return number


def u32(value: object, what: str) -> int:
    """Accept an unsigned 32-bit integer (priority, delay, ttr, kick bound)."""
    if type(value) is int and 0 <= value <= U32_MAX:
        return value
    return integer(value, what, 0, U32_MAX)


def job_id(value: object) -> int:
    """Accept a job id: 1 ... 2**64-1 (beanstalkd never hands out 0)."""
    if type(value) is int and 0 < value <= U64_MAX:
        return value
    return integer(value, "job id", 1, U64_MAX)


def seconds(value: object, what: str) -> float | None:
    """Accept a time limit: ``None`` (no limit) or seconds above 0, at most
    :data:`RESERVE_TIMEOUT_MAX` (a socket cannot wait much longer; 0 would mean "never wait")."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ArgumentTypeError(
            f"{what} must be a number of seconds or None, not {type(value).__name__}"
        )
    if not 0 < value <= RESERVE_TIMEOUT_MAX:  # also refuses NaN and infinities
        raise InvalidArgument(
            f"{what} must be above 0 and at most {RESERVE_TIMEOUT_MAX} s (None: no limit),"
            f" got {value}"
        )
    return value


def body(value: object) -> bytes:
    """Accept a job body, which must already be ``bytes``."""
    if type(value) is not bytes:
        if isinstance(value, bytes):
            return body(bytes(value))
        raise ArgumentTypeError(
            f"job body must be bytes, not {type(value).__name__}"
            " (give the client an encoding to send str)"
        )
    if len(value) > U32_MAX:  # the protocol's size field is 32 bits
        raise InvalidArgument(f"job body of {len(value)} bytes is over the protocol's limit")
    return value
