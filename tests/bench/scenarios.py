"""The scenarios: which kits do which kind of work on which body size, and the checks.

``scenarios()`` lists them (scenarios 1-7); ``Sample`` and ``Row`` hold what a client
measured in them. ``_expected`` and ``_verify`` are the server counters a run must leave,
checked after every measurement so that a client that skipped work would be caught.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from kits import (
    AiostalkKit,
    BareAsyncioKit,
    BareClientKit,
    BareTrioKit,
    BeanstalkcKit,
    GreenstalkKit,
    JackstalkAsyncKit,
    JackstalkKit,
    JackstalkTrioKit,
    JackstalkWorkerKit,
    Kit,
    PystalkKit,
    RawAsyncioKit,
    RawPipelinedKit,
    RawSequentialKit,
    RawTrioKit,
    RawWorkerKit,
)
from wire import LARGE, SMALL, Address, server_stats

ONE_AT_A_TIME = ("put", "reserve-delete", "roundtrip")
"""The scenario kinds that send one command at a time (scenarios 1-3)."""


# ======================================================================== scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    group: str
    kind: str
    body: int
    ops: int
    kits: tuple[Kit, ...]
    references: tuple[str, ...]


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Row:
    client: str
    samples: list[Sample] = field(default_factory=list)


GROUPS = {
    "blocking": "Blocking clients, one command at a time (scenarios 1-4)",
    "batch": "Batch put (scenario 5): jackstalk's put_many, the others put one by one",
    "asyncio": "asyncio (scenario 6)",
    "trio": "trio (scenario 6)",
    "worker": "Worker cycles (scenario 7): delete + next reserve in one write",
}

KIND_TITLES = {
    "put": "put",
    "reserve-delete": "reserve + delete",
    "roundtrip": "put → reserve → delete",
    "stats": "stats (parsed)",
    "batch": "batch put",
    "worker": "worker cycle",
}


def _size_name(size: int) -> str:
    return "16 KiB" if size == LARGE else f"{size} B"


def scenarios(ops: int, batch: int) -> list[Scenario]:
    blocking: tuple[Kit, ...] = (
        JackstalkKit(),
        GreenstalkKit(),
        PystalkKit(),
        BeanstalkcKit(),
        BareClientKit(),
        RawSequentialKit(),
        RawPipelinedKit(),
    )
    asyncio_kits: tuple[Kit, ...] = (
        JackstalkAsyncKit(),
        AiostalkKit(),
        BareAsyncioKit(),
        RawAsyncioKit(),
    )
    trio_kits: tuple[Kit, ...] = (JackstalkTrioKit(), BareTrioKit(), RawTrioKit())
    out: list[Scenario] = []

    def add(
        group: str, kind: str, size: int, n: int, kits: tuple[Kit, ...], refs: tuple[str, ...]
    ) -> None:
        usable = tuple(kit for kit in kits if kind in kit.kinds)
        title = KIND_TITLES[kind] + ("" if kind == "stats" else f" {_size_name(size)}")
        if kind == "batch":
            title = f"batch put {n:,} x {_size_name(size)}"
        key = f"{group}/{kind}/{size}"
        out.append(Scenario(key, title, group, kind, size, n, usable, refs))

    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            refs: tuple[str, ...] = ("greenstalk", "raw-sequential")
            if kind != "roundtrip":
                refs += ("raw-pipelined",)
            add("blocking", kind, size, ops, blocking, refs)
    add("blocking", "stats", 0, ops, blocking, ("greenstalk", "raw-sequential"))
    add(
        "batch",
        "batch",
        SMALL,
        batch,
        (
            JackstalkKit(),
            JackstalkAsyncKit(),
            JackstalkTrioKit(),
            GreenstalkKit(),
            PystalkKit(),
            BeanstalkcKit(),
            AiostalkKit(),
            RawSequentialKit(),
            RawPipelinedKit(),
        ),
        ("greenstalk", "raw-pipelined"),
    )
    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            add("asyncio", kind, size, ops, asyncio_kits, ("aiostalk", "raw-asyncio"))
    for kind in ONE_AT_A_TIME:
        for size in (SMALL, LARGE):
            add("trio", kind, size, ops, trio_kits, ("raw-trio",))
    for size in (SMALL, LARGE):
        add(
            "worker",
            "worker",
            size,
            ops,
            (JackstalkWorkerKit(), _GreenstalkAsWorker(), RawWorkerKit(), _SequentialAsWorker()),
            ("greenstalk", "raw-worker", "raw-sequential"),
        )
    return out


class _SequentialAsWorker(RawSequentialKit):
    """raw-sequential's reserve + delete, listed under scenario 7 for comparison."""

    kinds = frozenset({"worker"})

    def worker(self, sock: socket.socket, body: bytes, n: int) -> None:
        self.reserve_delete(sock, body, n)


class _GreenstalkAsWorker(GreenstalkKit):
    """greenstalk's reserve + delete loop (its fastest worker), under scenario 7."""

    kinds = frozenset({"worker"})

    def worker(self, client: Any, body: bytes, n: int) -> None:
        self.reserve_delete(client, body, n)


# ====================================================================== verification


def _expected(kind: str, n: int) -> dict[str, int]:
    """Server counters a run of ``kind`` must leave (beyond the pre-fill)."""
    if kind in ("put", "batch"):
        return {"cmd-put": n, "current-jobs-ready": n}
    if kind in ("reserve-delete", "worker"):
        return {"cmd-delete": n, "current-jobs-ready": 0, "current-jobs-reserved": 0}
    if kind == "roundtrip":
        return {"cmd-put": n, "cmd-delete": n, "current-jobs-ready": 0}
    return {"cmd-stats": n}


def _verify(address: Address, kit: Kit, kind: str, n: int, prefill: int) -> None:
    stats = server_stats(address)
    expected = _expected(kind, n)
    if "cmd-put" in expected:
        expected["cmd-put"] += prefill
    for key, value in expected.items():
        got = stats[key]
        # cmd-stats counts the check's own stats too.
        ok = got >= value if key == "cmd-stats" else got == value
        if not ok:
            raise RuntimeError(f"{kit.name} {kind}: server reports {key}={got}, expected {value}")
