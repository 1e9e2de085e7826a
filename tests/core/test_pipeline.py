"""How transports cut a pipelined batch into windows, and how long they wait for replies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jackstalk._api.pipeline import (
    WINDOW_BYTES,
    WINDOW_COMMANDS,
    batch_wait,
    reply_wait,
    windows,
)
from jackstalk._protocol.commands import Command, Delete, Put, Reserve, ReserveWithTimeout, Touch


def test_a_short_batch_is_its_own_window() -> None:
    batch: list[Command] = [Delete(1), ReserveWithTimeout(5)]
    (only,) = windows(batch)
    assert only is batch  # no copy for the common case


def test_an_empty_batch_has_no_window() -> None:
    assert windows([]) == []


def test_windows_cut_by_count() -> None:
    batch: list[Command] = [Touch(n) for n in range(1, 2 * WINDOW_COMMANDS + 2)]
    cut = windows(batch)
    assert [len(window) for window in cut] == [WINDOW_COMMANDS, WINDOW_COMMANDS, 1]


def test_windows_cut_by_body_bytes_and_a_huge_body_goes_alone() -> None:
    half = Put(b"x" * (WINDOW_BYTES // 2))
    huge = Put(b"y" * (2 * WINDOW_BYTES))
    cut = windows([half, half, half, huge, half])
    assert [list(window) for window in cut] == [[half, half], [half], [huge], [half]]


# A few shared bodies (the puts hold references, not copies), around the byte bound.
_BODIES = [
    b"",
    b"b" * 1000,
    b"b" * (WINDOW_BYTES // 3),
    b"b" * WINDOW_BYTES,
    b"b" * (WINDOW_BYTES + 1),
]


@given(
    st.lists(
        st.one_of(st.sampled_from(_BODIES).map(Put), st.integers(1, 9).map(Touch)),
        max_size=3 * WINDOW_COMMANDS,
    )
)
def test_windows_keep_order_and_bounds(batch: list[Command]) -> None:
    cut = windows(batch)
    assert [command for window in cut for command in window] == batch
    for window in cut:
        assert 1 <= len(window) <= WINDOW_COMMANDS
        bodies = sum(len(command.body) for command in window if isinstance(command, Put))
        # Over the byte bound only when one body alone is over it.
        assert bodies <= WINDOW_BYTES or len(window) == 1


def test_reply_waits() -> None:
    assert reply_wait(Delete(1), 3.0) == 3.0
    assert reply_wait(Reserve(), 3.0) is None  # waits for a job as long as it takes
    assert reply_wait(ReserveWithTimeout(5), 3.0) == 8.0
    assert reply_wait(ReserveWithTimeout(5), None) is None
    assert batch_wait([Delete(1), ReserveWithTimeout(5)], 3.0) == 8.0
    assert batch_wait([Delete(1), Reserve()], 3.0) is None
    assert batch_wait([Delete(1)], 3.0) == 3.0
