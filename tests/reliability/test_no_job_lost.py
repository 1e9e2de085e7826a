"""No job lost: a few seconds of the soak (``soak.py``) per client kind, through the fault
proxy, with consumers killed mid-job. The long run is ``nox -s soak``."""

from __future__ import annotations

import os

from soak import BACKLOG, run_soak

from jackstalk.testing import BeanstalkdServer

SECONDS = float(os.environ.get("JACKSTALK_SOAK_SECONDS", "3"))


def test_no_job_lost(transport: str, beanstalkd: BeanstalkdServer) -> None:
    address = beanstalkd.address
    assert isinstance(address, tuple)
    report = run_soak(seconds=SECONDS, kinds=[transport], address=address, seed=7)
    print("\n".join(report.lines()))  # shown with -s, or when the test fails
    assert report.ok, "\n".join(report.lines())
    # The run did what it is for: real load, faults, and consumers dying mid-job.
    assert report.puts_confirmed >= 100
    assert report.faults_injected >= 5
    assert report.kills >= 5
    assert report.failures.get("ConnectionClosedError", 0) >= 1
    # Producers waited for consumers: the backlog stayed bounded (a batch per producer
    # may land after the last look, and puts of unknown outcome may never be processed).
    assert report.peak_backlog <= BACKLOG + 6 * report.producers + report.puts_unknown
