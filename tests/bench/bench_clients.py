"""jackstalk against the other Python beanstalkd clients and plain-socket references.

Run: ``nox -s bench`` (installs the competitors), or with whatever is installed::

    python tests/bench/bench_clients.py [--repeat 9] [--ops 3000] [--json PATH]
                                        [--write-docs | --no-docs] [--quick]

Every measurement gets its own fresh beanstalkd (``jackstalk.testing.run_beanstalkd``) on a
free loopback port, so no run inherits another's jobs, ids or memory. Within a scenario the
competitors are measured in turn, repetition after repetition (A B C, B C A, C A B ...: the
order rotates), so that drift of the machine hits all of them alike. Every competitor sends
the same commands (same priority, delay, ttr and body bytes, bodies as ``bytes`` with no
decoding) and the same number of them; each run is checked afterwards against the server's
own counters, so a client that skipped work would be caught. Setup (connecting, pre-filling
a tube) is never timed.

Clients that are not installed are skipped (the test environment has none of them);
``--quick`` runs a few operations once, as a smoke test. Not collected by pytest.

This file is the entry point: the arguments and ``main``. The harness is in the modules
beside it, imported by their plain names (a script's folder is on ``sys.path``): ``wire``
(the shared wire parameters and raw socket I/O), ``kits`` (one kit per client),
``scenarios`` (what is measured, and the server counters each run must leave),
``measuring`` (timed runs, memory checks, placement probe), ``sharing`` (K tasks sharing
one async client), ``cluster_bench`` (the Cluster's overhead and its rates on 1-3 servers)
and ``report`` (summaries, targets, the text tables and
docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from cluster_bench import measure_cluster, text_cluster
from measuring import memory_checks, placement_probe, run_all
from report import (
    check_targets,
    machine,
    summarise,
    text_memory,
    text_placement,
    text_tables,
    text_targets,
    write_docs,
)
from scenarios import scenarios
from sharing import measure_sharing, text_sharing

from jackstalk.testing import beanstalkd_available

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "performance.md"


# ======================================================================== main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark jackstalk against other beanstalkd clients and raw sockets."
    )
    parser.add_argument("--repeat", type=int, default=9, help="repetitions (default 9)")
    parser.add_argument("--ops", type=int, default=3000, help="operations per measurement")
    parser.add_argument("--batch", type=int, default=6000, help="jobs per batch put")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument(
        "--write-docs",
        dest="docs",
        action="store_true",
        default=False,
        help=f"regenerate {DOCS.relative_to(ROOT)} (the nox session does)",
    )
    parser.add_argument("--no-docs", dest="docs", action="store_false", help="leave docs alone")
    parser.add_argument(
        "--quick", action="store_true", help="few ops, one repetition: a smoke test"
    )
    parser.add_argument("--only", default="", help="run scenarios whose key contains this")
    parser.add_argument(
        "--share-total",
        type=int,
        default=20_000,
        help="puts per measurement of 'K tasks share one client' (0 skips it)",
    )
    parser.add_argument(
        "--no-cluster", action="store_true", help="skip the Cluster's overhead and scaling"
    )
    args = parser.parse_args(argv)
    if not beanstalkd_available():
        print("beanstalkd is not on PATH: install it (e.g. apt-get install beanstalkd)")
        return 2
    if args.quick:
        args.repeat, args.ops, args.batch, args.share_total = 1, 50, 200, 512
    if args.repeat < 1 or args.ops < 1 or args.batch < 1:
        parser.error("--repeat, --ops and --batch must be at least 1")

    command = os.environ.get("JACKSTALK_BENCH_COMMAND") or shlex.join(
        ["python", "tests/bench/bench_clients.py", *(sys.argv[1:] if argv is None else argv)]
    )
    selected = [s for s in scenarios(args.ops, args.batch) if args.only in s.key]
    started = time.perf_counter()
    results, skipped = run_all(
        selected, args.repeat, warmup=not args.quick, log=lambda text: print(text, flush=True)
    )
    summaries = summarise(selected, results)
    targets = check_targets(summaries)
    memory = memory_checks(200, 50) if args.quick else memory_checks(args.batch, 1000)
    placement = placement_probe(args.ops, args.repeat)
    sharing = (
        measure_sharing(args.share_total, args.repeat, log=lambda text: print(text, flush=True))
        if args.share_total and not args.only
        else None
    )
    cluster = (
        measure_cluster(args.ops, args.batch, args.repeat, log=lambda text: print(text, flush=True))
        if not args.no_cluster and not args.only
        else None
    )
    meta = {
        "command": command,
        "repeat": args.repeat,
        "ops": args.ops,
        "batch": args.batch,
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    print(text_tables(summaries, skipped))
    print(text_targets(targets))
    print(text_memory(memory))
    print(text_placement(placement))
    if sharing is not None:
        print(text_sharing(sharing))
    if cluster is not None:
        print(text_cluster(cluster))
    print(f"\n{meta['seconds']} s")
    document = {
        "meta": meta,
        "scenarios": summaries,
        "skipped": skipped,
        "targets": targets,
        "memory": memory,
        "placement": placement,
        "sharing": sharing,
        "cluster": cluster,
    }
    with open(args.json, "w", encoding="utf-8") as file:
        json.dump(document, file, indent=1)
    if args.docs:
        if args.quick or args.only:
            print("not writing docs for a --quick or --only run")
        else:
            write_docs(DOCS, meta, summaries, targets, memory, skipped, placement, sharing, cluster)
            print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
