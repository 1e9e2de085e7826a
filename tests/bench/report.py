"""Reporting: the summaries and paired ratios, the targets and their verdicts, the text
tables printed after a run, the machine's description and ``write_docs``, which writes
docs/performance.md."""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import textwrap
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from cluster_bench import markdown_cluster
from scenarios import GROUPS, ONE_AT_A_TIME, Row, Sample, Scenario
from sharing import markdown_sharing
from wire import PIPELINE_BYTES, PIPELINE_COMMANDS, SMALL

# ======================================================================== reporting


def _rate(sample: Sample, ops: int) -> float:
    return ops / sample.wall


def summarise(selected: list[Scenario], results: dict[str, list[Row]]) -> list[dict[str, Any]]:
    """Medians, ranges and paired ratios (median over repetitions of A_i / B_i)."""
    out: list[dict[str, Any]] = []
    for scenario in selected:
        rows = results.get(scenario.key, [])
        by_name = {row.client: row for row in rows}
        table: list[dict[str, Any]] = []
        for row in rows:
            rates = [_rate(s, scenario.ops) for s in row.samples]
            ratios: dict[str, float] = {}
            for ref in scenario.references:
                other = by_name.get(ref)
                if other is None or other is row:
                    continue
                pairs = [
                    _rate(a, scenario.ops) / _rate(b, scenario.ops)
                    for a, b in zip(row.samples, other.samples, strict=True)
                ]
                ratios[ref] = statistics.median(pairs)
            table.append(
                {
                    "client": row.client,
                    "median": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "rates": rates,
                    "cpu_us_per_op": statistics.median(
                        s.cpu / scenario.ops * 1e6 for s in row.samples
                    ),
                    "ratios": ratios,
                }
            )
        out.append(
            {
                "key": scenario.key,
                "title": scenario.title,
                "group": scenario.group,
                "kind": scenario.kind,
                "body_bytes": scenario.body,
                "ops": scenario.ops,
                "references": list(scenario.references),
                "rows": table,
            }
        )
    return out


@dataclass(frozen=True)
class Target:
    text: str
    group: str
    kinds: tuple[str, ...]
    client: str
    reference: str
    at_least: float


TARGETS = (
    Target(
        "blocking, one at a time ≥ 0.95x raw-sequential",
        "blocking",
        ONE_AT_A_TIME,
        "jackstalk",
        "raw-sequential",
        0.95,
    ),
    Target(
        "blocking, one at a time ≥ 1.02x greenstalk",
        "blocking",
        ONE_AT_A_TIME,
        "jackstalk",
        "greenstalk",
        1.02,
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined", "batch", ("batch",), "jackstalk", "raw-pipelined", 0.85
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined",
        "batch",
        ("batch",),
        "jackstalk-asyncio",
        "raw-pipelined",
        0.85,
    ),
    Target(
        "put_many ≥ 0.85x raw-pipelined",
        "batch",
        ("batch",),
        "jackstalk-trio",
        "raw-pipelined",
        0.85,
    ),
    Target("stats ≥ 1.2x greenstalk", "blocking", ("stats",), "jackstalk", "greenstalk", 1.2),
    Target(
        "worker cycles ≥ 1.3x greenstalk's reserve + delete",
        "worker",
        ("worker",),
        "jackstalk-worker",
        "greenstalk",
        1.3,
    ),
    Target(
        "asyncio ≥ 0.9x raw-asyncio",
        "asyncio",
        ONE_AT_A_TIME,
        "jackstalk-asyncio",
        "raw-asyncio",
        0.9,
    ),
    Target(
        "asyncio ≥ 1.0x aiostalk",
        "asyncio",
        ONE_AT_A_TIME,
        "jackstalk-asyncio",
        "aiostalk",
        1.0,
    ),
    Target(
        "trio ≥ 0.9x raw-trio",
        "trio",
        ONE_AT_A_TIME,
        "jackstalk-trio",
        "raw-trio",
        0.9,
    ),
)


def _judged_by(target: Target, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The scenarios a target is judged on."""
    return [s for s in summaries if s["group"] == target.group and s["kind"] in target.kinds]


def _pairs(summary: dict[str, Any], client: str, reference: str) -> list[float] | None:
    """client/reference op/s in each repetition (also when the reference is not a column)."""
    rows = {row["client"]: row for row in summary["rows"]}
    if client not in rows or reference not in rows:
        return None
    return [a / b for a, b in zip(rows[client]["rates"], rows[reference]["rates"], strict=True)]


FLOORS = {"blocking": "bare-client", "asyncio": "bare-asyncio", "trio": "bare-trio"}
"""Per group, the reference whose ratio shows, next to a target, what the least possible
client reaches."""


def check_targets(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's paired ratio (the median; its verdict), the range of the ratio over
    the repetitions, which shows how far machine noise moves it, and the same ratio for the
    group's floor where it ran (``floor``), which shows whether any client could meet it."""
    out: list[dict[str, Any]] = []
    for target in TARGETS:
        for summary in _judged_by(target, summaries):
            pairs = _pairs(summary, target.client, target.reference)
            ratio = None if pairs is None else float(statistics.median(pairs))
            floor_client = FLOORS.get(target.group)
            floor = (
                None if floor_client is None else _pairs(summary, floor_client, target.reference)
            )
            out.append(
                {
                    "target": target.text,
                    "scenario": f"{summary['title']} ({target.client})",
                    "ratio": ratio,
                    "low": None if pairs is None else min(pairs),
                    "high": None if pairs is None else max(pairs),
                    "threshold": target.at_least,
                    "met": None if ratio is None else ratio >= target.at_least,
                    "floor": None if floor is None else float(statistics.median(floor)),
                    "floor_client": None if floor is None else floor_client,
                    "limit": _limit(ratio, floor, target.at_least),
                }
            )
    return out


def _limit(ratio: float | None, floor: list[float] | None, at_least: float) -> str:
    """What keeps a missed target out of reach in this run: the floor missing it too (no
    client with a method per command reaches it), or jackstalk's own cost per command,
    the route every command takes through its layers."""
    if ratio is None or ratio >= at_least or floor is None:
        return ""
    if statistics.median(floor) < at_least:
        return "the floor misses it too"
    return "jackstalk's route"


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _fmt_range(item: dict[str, Any]) -> str:
    """A target's range of paired ratios over the repetitions."""
    if item["low"] is None:
        return ""
    return f"{item['low']:.2f}-{item['high']:.2f}x"


def text_tables(summaries: list[dict[str, Any]], skipped: dict[str, dict[str, str]]) -> str:
    lines: list[str] = []
    for summary in summaries:
        refs = summary["references"]
        lines.append("")
        lines.append(f"{summary['title']}  [{summary['group']}, {summary['ops']:,} ops]")
        head = f"  {'client':<20}{'median op/s':>13}{'min-max':>22}{'CPU µs/op':>11}"
        head += "".join(f"{'x' + ref:>17}" for ref in refs)
        lines.append(head)
        for row in summary["rows"]:
            span = f"{_fmt_rate(row['min'])}-{_fmt_rate(row['max'])}"
            line = f"  {row['client']:<20}{_fmt_rate(row['median']):>13}{span:>22}"
            line += f"{row['cpu_us_per_op']:>11.1f}"
            line += "".join(f"{_fmt_ratio(row['ratios'].get(ref)):>17}" for ref in refs)
            lines.append(line)
        for name, why in skipped.get(summary["key"], {}).items():
            lines.append(f"  {name:<20}skipped: {why}")
    return "\n".join(lines)


def text_targets(targets: list[dict[str, Any]]) -> str:
    lines = ["", "Targets"]
    for item in targets:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[item["met"]]
        floor = item["floor"]
        lines.append(
            f"  {verdict:<7}{_fmt_ratio(item['ratio']):>8} {_fmt_range(item):>12}"
            f"  {item['target']}: {item['scenario']}"
            + ("" if floor is None else f"  ({item['floor_client']} {_fmt_ratio(floor)})")
            + (f"  limit: {item['limit']}" if item["limit"] else "")
        )
    return "\n".join(lines)


def text_memory(memory: list[dict[str, Any]]) -> str:
    lines = ["", "Memory (tracemalloc peak / body bytes held; target ≤ 2.0x)"]
    lines.extend(
        f"  {item['ratio']:>6.2f}x  {item['case']}: peak {item['peak_bytes'] / 2**20:,.1f} MiB"
        f" for {item['bodies_bytes'] / 2**20:,.1f} MiB of bodies"
        f" ({item['overhead_per_job']:,.0f} B/job beyond the body; floor"
        f" {item['floor_ratio']:.2f}x)"
        for item in memory
    )
    return "\n".join(lines)


def _placement_lines(placement: dict[str, Any]) -> list[str]:
    return [
        f"| {row['place']} | {row['us_per_op']:.1f} | {row['added_us']:+.1f}"
        f" | {row['added_per_work_us']:.2f} |"
        for row in placement["rows"]
    ]


def text_placement(placement: dict[str, Any]) -> str:
    lines = [
        "",
        f"Placement: {placement['work_us']:.1f} µs of CPU per put in raw-sequential's loop",
    ]
    lines.extend(
        f"  {row['place']:<24} {row['us_per_op']:6.1f} µs/op  added {row['added_us']:+5.1f} µs"
        f"  ({row['added_per_work_us']:.2f} µs per µs of work)"
        for row in placement["rows"]
    )
    return "\n".join(lines)


# ======================================================================== the machine


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        done = subprocess.run(
            ["beanstalkd", "-v"], capture_output=True, text=True, timeout=10, check=False
        )
        server = (done.stdout or done.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        server = "unknown"
    versions: dict[str, str] = {}
    for dist in ("jackstalk", "greenstalk", "pystalk", "aiostalk", "beanstalkc3", "trio", "PyYAML"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "beanstalkd": server,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions,
    }


# ================================================================ docs/performance.md


def _md_table(summaries: list[dict[str, Any]], group: str) -> list[str]:
    chosen = [s for s in summaries if s["group"] == group]
    refs: list[str] = []
    for summary in chosen:
        refs.extend(ref for ref in summary["references"] if ref not in refs)
    head = ["scenario", "client", "median op/s", "min-max op/s", "client CPU µs/op"]
    head += [f"x {ref}" for ref in refs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for summary in chosen:
        for row in summary["rows"]:
            name = (
                f"**{row['client']}**" if row["client"].startswith("jackstalk") else row["client"]
            )
            cells = [
                summary["title"],
                name,
                _fmt_rate(row["median"]),
                f"{_fmt_rate(row['min'])}-{_fmt_rate(row['max'])}",
                f"{row['cpu_us_per_op']:.1f}",
            ]
            cells += [_fmt_ratio(row["ratios"].get(ref)) for ref in refs]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


RIVALS = {"blocking": ("greenstalk",), "asyncio": ("aiostalk",), "trio": ()}
"""Per kind, the other clients whose CPU the cost tables show next to jackstalk's."""


def _budget_targets() -> list[Target]:
    """The one-at-a-time targets set against a raw reference: one per kind of client."""
    return [
        target
        for target in TARGETS
        if target.group in FLOORS
        and target.reference.startswith("raw-")
        and target.kinds == ONE_AT_A_TIME
    ]


def _time_budget(summaries: list[dict[str, Any]]) -> list[str]:
    """Where the time of a one-at-a-time command goes, per kind of client: the reference's
    round trip, the budget its target ratio leaves a client, and the CPU each client spends
    beyond the reference."""
    lines = [
        "## Where the time goes (one command at a time)",
        "",
        "One command at a time, a client waits for every reply, so the CPU it spends",
        "before each send and after each reply adds to the round trip (the next section",
        "measures by how much). *round trip* is the raw reference's time per operation;",
        "reaching the target's share of its rate (0.95x or 0.9x) leaves a client the rest",
        "(*budget*). The other columns are each client's CPU µs/op minus the reference's in",
        "the same run: what building, checking, sending and parsing cost it over writing",
        "pre-built bytes. The floor (bare-client, bare-asyncio, bare-trio) spends the least",
        "any client with a method per command can: where its column is above the budget,",
        "the target is out of reach for such a client, whatever it skips. What jackstalk",
        "spends beyond the floor is its route: see *What limits the targets jackstalk misses*.",
        "",
    ]
    shown = False
    for target in _budget_targets():
        chosen = _judged_by(target, summaries)
        present = {row["client"] for s in chosen for row in s["rows"]}
        clients = [
            c for c in (target.client, *RIVALS[target.group], FLOORS[target.group]) if c in present
        ]
        if target.reference not in present or target.client not in present:
            continue
        reference = target.reference
        head = ["scenario", f"{reference} round trip µs/op"]
        head += [f"budget for {target.at_least:g}x µs/op"]
        head += [f"{client} CPU beyond {reference} µs/op" for client in clients]
        lines += [
            f"### {target.text}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for summary in chosen:
            rows = {row["client"]: row for row in summary["rows"]}
            raw = rows.get(reference)
            if raw is None:
                continue
            trip = 1e6 / raw["median"]
            cells = [summary["title"], f"{trip:.1f}", f"{trip * (1 / target.at_least - 1):.1f}"]
            for client in clients:
                row = rows.get(client)
                extra = None if row is None else row["cpu_us_per_op"] - raw["cpu_us_per_op"]
                cells.append("" if extra is None else f"{extra:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        shown = True
    return lines if shown else []


def _own_cost(summaries: list[dict[str, Any]], target: Target) -> tuple[float, float] | None:
    """The lowest and highest CPU µs/op jackstalk spent beyond its floor in the scenarios
    of a one-at-a-time target."""
    extra = []
    for summary in _judged_by(target, summaries):
        rows = {row["client"]: row for row in summary["rows"]}
        mine, floor = rows.get(target.client), rows.get(FLOORS[target.group])
        if mine is not None and floor is not None:
            extra.append(mine["cpu_us_per_op"] - floor["cpu_us_per_op"])
    return (min(extra), max(extra)) if extra else None


def _limits(summaries: list[dict[str, Any]], targets: list[dict[str, Any]]) -> list[str]:
    """Why the missed targets are missed: the section after the targets table."""
    missed = [item for item in targets if item["met"] is False]
    if not missed:
        return []
    costs = []
    for target in _budget_targets():
        span = _own_cost(summaries, target)
        if span is not None:
            costs.append(f"{target.client} {span[0]:.1f} to {span[1]:.1f} µs")
    out_of_reach = sum(item["limit"] == "the floor misses it too" for item in missed)
    route = sum(item["limit"] == "jackstalk's route" for item in missed)
    unexplained = len(missed) - out_of_reach - route
    spent = f" ({'; '.join(costs)} in this run)" if costs else ""
    summary = (
        f"In this run jackstalk misses {len(missed)} of the {len(targets)} targets. For"
        f" {out_of_reach} of them the floor misses the target too: no client with a method"
        f" per command would meet it on this machine, however little it checked. {route}"
        " more are missed by jackstalk's route, the CPU it spends per operation beyond the"
        f" floor of its kind{spent}."
        + (f" Missed without a floor to compare with: {unexplained}." if unexplained else "")
    )
    return [
        "",
        "## What limits the targets jackstalk misses",
        "",
        *textwrap.wrap(summary, width=86),
        "",
        "The route is the steps every command passes through, on which each rule of the",
        "protocol sits once: the method; the operation, which checks the arguments and",
        "builds the command object; the transport's command loop (for the async clients",
        "also the command lock, the idle check and a coroutine per send and per read); the",
        "core, which records the command, encodes it and checks the reply against it; and",
        "the conversion of the reply event into the result. None of these steps is large on",
        "its own, and the checks are not what costs: a put written out in one function,",
        "with the same checks, the same command object and the same reply check, runs",
        "about as many instructions as the floor's put (counted with callgrind, outside",
        "this suite). The cost is the number of steps, each a Python call. jackstalk keeps",
        "the route: it is what lets the three clients share every rule, lets the core be",
        "used without them, and checks every reply against its command.",
        "",
    ]


def _one_at_a_time_puts(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Each async client's median rate for put 100 B one at a time (scenario 6)."""
    rates: dict[str, float] = {}
    for summary in summaries:
        if summary["kind"] == "put" and summary["body_bytes"] == SMALL:
            for row in summary["rows"]:
                kind = {"jackstalk-asyncio": "asyncio", "jackstalk-trio": "trio"}.get(row["client"])
                if kind is not None:
                    rates[kind] = row["median"]
    return rates


def write_docs(
    path: Path,
    meta: dict[str, Any],
    summaries: list[dict[str, Any]],
    targets: list[dict[str, Any]],
    memory: list[dict[str, Any]],
    skipped: dict[str, dict[str, str]],
    placement: dict[str, Any] | None = None,
    sharing: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
) -> None:
    m = meta["machine"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    out = [
        "# Performance",
        "",
        "<!-- Generated by tests/bench/bench_clients.py (nox -s bench). Do not edit by hand:"
        " re-run the suite. -->",
        "",
        "How fast jackstalk is against the other Python beanstalkd clients and against",
        "plain-socket references, measured by `tests/bench/bench_clients.py`. This page is",
        "written by that script; every number on it comes from the run described here.",
        "",
        "## The run",
        "",
        "```sh",
        meta["command"],
        "```",
        "",
        f"- Date: {m['date']}",
        f"- CPU: {m['cpu']}, {m['cores']} cores ({m['platform']})",
        f"- Python: {m['implementation']} {m['python']}",
        f"- Server: {m['beanstalkd']}, a fresh process on a free loopback port per measurement",
        f"- Clients: {versions}",
        f"- Repetitions: {meta['repeat']}; operations per measurement: {meta['ops']:,}"
        f" (batch: {meta['batch']:,})",
        "",
        "## How it is measured",
        "",
        "- Every measurement starts its own beanstalkd, so no run inherits another's jobs.",
        "  Connecting and pre-filling a tube (for the reserve scenarios) are not timed.",
        "- Within a scenario the clients take turns, repetition after repetition, and the",
        "  order rotates each repetition, so drift of the machine hits all of them alike.",
        "- All clients send the same commands with the same priority, delay, ttr and body",
        "  bytes, and get bodies back as `bytes` (no decoding). After each run the server's",
        "  own counters are checked, so a client that skipped work would be caught.",
        "- *median op/s*: the median over repetitions; *min-max*: the range.",
        "  *client CPU µs/op*: CPU time of the benchmark process per operation (the server's",
        "  is not included); it is less disturbed by other load on the machine than op/s.",
        "- *x X* is the **paired** ratio: the median over repetitions of",
        "  (this client's op/s ÷ X's op/s in the same repetition).",
        "- An operation is one command, except: *reserve + delete* and *worker cycle* count",
        "  one job (two commands), *put → reserve → delete* one job (three commands).",
        "- Every client runs with its defaults, except that bodies are bytes (jackstalk's",
        "  blocking client thus keeps its 30 s reply timeout).",
        "- References: *raw-sequential* is a plain blocking socket with TCP_NODELAY,",
        "  pre-built command bytes and one command at a time, reading only the reply line",
        "  (and skipping the body by its length). *raw-pipelined* writes windows of up to",
        f"  {PIPELINE_COMMANDS} commands or {PIPELINE_BYTES // 1024} KiB of bodies while it reads",
        "  the replies of the window before. *raw-asyncio* is an `asyncio.Protocol` with",
        "  one future per reply (it used less CPU than asyncio streams here). *raw-trio*",
        "  drives a non-blocking socket with `trio.lowlevel.wait_readable` (one pass",
        "  through the scheduler per reply, where `SocketStream` takes two; jackstalk's",
        "  trio client does the same). *raw-worker* sends each job's",
        "  `delete` and the next `reserve` in one write.",
        "- *bare-client* is a floor for real clients: raw-sequential's framing plus only",
        "  what every client API must do, a method call per command that formats the",
        "  command from its arguments and returns the job id or body. It checks nothing",
        "  and builds no objects; what jackstalk and the others spend beyond it is their",
        "  own (argument checks, command and reply objects, error handling).",
        "  *bare-asyncio* and *bare-trio* are the same methods, as coroutines, over",
        "  raw-asyncio's and raw-trio's I/O: the floors for the async clients.",
        "- The two references that send several commands per write (raw-pipelined,",
        "  raw-worker) re-arm `TCP_QUICKACK` after every read, a guard against Nagle's",
        "  delay on a server socket without TCP_NODELAY (when one write makes the server",
        "  answer twice, the second answer would wait up to 40 ms for a delayed ACK).",
        "  The servers here have TCP_NODELAY: the socket-activated listener that",
        "  `jackstalk.testing` hands beanstalkd sets it, so the guard costs one system",
        "  call per read and changes nothing else; the clients do not use it.",
        "- For *stats*, raw-sequential does not parse the body; the clients return it",
        "  parsed: jackstalk types every field by key, greenstalk calls `int()` on every",
        "  value, pystalk and beanstalkc use PyYAML's C safe loader (beanstalkc's own",
        "  default, a bare `yaml.load`, fails on PyYAML 6).",
        "- pystalk has no plain `reserve`; it uses `reserve-with-timeout 0` on a full tube.",
        "- Other processes may share the machine: prefer the ratios and CPU µs/op to the",
        "  absolute op/s, and compare runs made on the same machine only.",
        "",
    ]
    for group, title in GROUPS.items():
        if not any(s["group"] == group for s in summaries):
            continue
        out += [f"## {title}", "", *_md_table(summaries, group), ""]
    out += _time_budget(summaries)
    if placement:
        out += [
            "## Where client CPU costs wall time",
            "",
            f"raw-sequential's put loop (100 B) with {placement['work_us']:.1f} µs of plain Python",
            "work per put placed at one point of the round trip, the places taking turns as",
            "the clients of a scenario do. *added* is the paired median increase of the time",
            "per put over the loop without work. Work between the send and the reply can",
            "overlap the server's turn (when the server runs on another CPU); work before",
            "the send or after the reply cannot. A client's argument checks and command",
            "building come before its send, and its reply parsing after the reply. Single",
            "runs of this probe are noisy: compare the rows of one run with each other.",
            "",
            "| work placed | µs/op | added µs/op | added per µs of work |",
            "|---|---|---|---|",
            *_placement_lines(placement),
            "",
        ]
    missing = sorted({f"{name} ({why})" for per in skipped.values() for name, why in per.items()})
    if missing:
        out += ["Not measured: " + "; ".join(missing) + ".", ""]
    out += [
        "## Targets",
        "",
        "*ratio* is the paired ratio the verdict is judged on; *range* is the lowest and",
        "highest paired ratio of the single repetitions, how far noise moved it in this run.",
        "*floor* is the same ratio for the floor of the client's kind (bare-client,",
        "bare-asyncio or bare-trio; see the references), where it ran: a target above it",
        "is out of reach for any client with a method per command. *limit* says, for a",
        "missed target, which of the two kept it out of reach in this run.",
        "",
        "| target | scenario | ratio | range | verdict | floor | limit |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in targets:
        verdict = {True: "met", False: "**missed**", None: "n/a"}[item["met"]]
        ratio = _fmt_ratio(item["ratio"])
        out.append(
            f"| {item['target']} | {item['scenario']} | {ratio} | {_fmt_range(item)}"
            f" | {verdict} | {_fmt_ratio(item['floor'])} | {item['limit']} |"
        )
    out += _limits(summaries, targets)
    out += [
        "",
        "## Memory",
        "",
        "Peak memory traced by `tracemalloc` while jackstalk's blocking client works, divided",
        "by the body bytes the work holds (the bodies are created after tracing starts, so",
        "1.0x would mean nothing beyond the bodies). Target: at most 2.0x for 16 KiB bodies.",
        "*floor* is the same ratio for a list of the bodies and a list of as many job ids,",
        "and nothing else: Python's own cost per object, which any client that returns the",
        "ids (or keeps the jobs) pays. For 100 B bodies it leaves little of the 2.0x, so",
        "that row shows the fixed per-job cost rather than a target.",
        "",
        "| case | bodies | peak | ratio | floor | beyond the body, per job |",
        "|---|---|---|---|---|---|",
    ]
    for item in memory:
        out.append(
            f"| {item['case']} | {item['bodies_bytes'] / 2**20:,.1f} MiB"
            f" | {item['peak_bytes'] / 2**20:,.1f} MiB | {item['ratio']:.2f}x"
            f" | {item['floor_ratio']:.2f}x | {item['overhead_per_job']:,.0f} B |"
        )
    out.append("")
    if sharing is not None:
        out += markdown_sharing(sharing, _one_at_a_time_puts(summaries))
    if cluster is not None:
        out += markdown_cluster(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
