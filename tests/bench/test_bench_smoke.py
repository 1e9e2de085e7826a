"""Smoke test of the client benchmark: a --quick run of tests/bench/bench_clients.py.

The competitors (greenstalk, pystalk, aiostalk, beanstalkc) are not installed in the test
environment; the script skips them, so this checks jackstalk's rows and the raw references.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from report import write_docs  # (pytest puts this folder on sys.path)

from jackstalk.testing import beanstalkd_available

SCRIPT = Path(__file__).with_name("bench_clients.py")


def test_quick_benchmark_run_writes_jackstalk_and_raw_rows(tmp_path: Path) -> None:
    if not beanstalkd_available():
        if os.environ.get("CI"):
            pytest.fail("beanstalkd is not installed, and CI must run the real-server tests")
        pytest.skip("beanstalkd is not on PATH")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--no-docs", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    clients = {row["client"] for scenario in result["scenarios"] for row in scenario["rows"]}
    assert {"jackstalk", "jackstalk-asyncio", "jackstalk-trio"} <= clients
    assert {"raw-sequential", "raw-pipelined", "raw-asyncio", "raw-trio", "raw-worker"} <= clients
    assert {"bare-client", "bare-asyncio", "bare-trio"} <= clients
    for scenario in result["scenarios"]:
        for row in scenario["rows"]:
            assert row["median"] > 0, (scenario["key"], row["client"])
    assert result["memory"], "the memory checks ran"
    assert result["targets"], "the targets were evaluated"
    floors = {item["floor_client"] for item in result["targets"] if item["floor"] is not None}
    assert floors == {"bare-client", "bare-asyncio", "bare-trio"}, "each kind's floor is shown"
    for item in result["targets"]:
        if item["met"] is False and item["floor"] is not None:
            assert item["limit"] in ("the floor misses it too", "jackstalk's route"), item
        else:
            assert item["limit"] == "", item
    for item in result["memory"]:
        assert 1.0 <= item["floor_ratio"] <= item["ratio"], item  # the floor holds the bodies
    places = [row["place"] for row in result["placement"]["rows"]]
    assert places == ["none", "before the send", "between send and reply", "after the reply"]
    assert result["placement"]["work_us"] > 0
    assert not (tmp_path / "docs").exists()
    _check_docs(result, tmp_path / "performance.md")


def _check_docs(result: dict[str, Any], path: Path) -> None:
    """The page nox -s bench writes, rendered from the quick run's results."""
    write_docs(
        path,
        result["meta"],
        result["scenarios"],
        result["targets"],
        result["memory"],
        result["skipped"],
        result["placement"],
    )
    page = path.read_text(encoding="utf-8")
    for heading in (
        "### blocking, one at a time ≥ 0.95x raw-sequential",
        "### asyncio ≥ 0.9x raw-asyncio",
        "### trio ≥ 0.9x raw-trio",
        "| target | scenario | ratio | range | verdict | floor | limit |",
        "| case | bodies | peak | ratio | floor | beyond the body, per job |",
    ):
        assert heading in page, heading
    missed = sum(item["met"] is False for item in result["targets"])
    if missed:
        assert "## What limits the targets jackstalk misses" in page
        assert f"jackstalk misses {missed} of the {len(result['targets'])} targets" in page
