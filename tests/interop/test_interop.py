"""Other Python clients work against the embedded server unchanged: greenstalk and pystalk.

Run by ``nox -s interop``, which installs them; elsewhere these tests skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from jackstalk.testing import embedded_server


@pytest.fixture
def address() -> Iterator[tuple[str, int]]:
    with embedded_server() as server:
        assert isinstance(server.address, tuple)
        yield server.address


def test_greenstalk(address: tuple[str, int]) -> None:
    greenstalk: Any = pytest.importorskip("greenstalk")
    with greenstalk.Client(address, use="interop", watch="interop") as client:
        job_id = client.put("hello from greenstalk", priority=5, ttr=30)
        job = client.reserve(timeout=5)
        assert (job.id, job.body) == (job_id, "hello from greenstalk")
        assert client.stats_job(job)["state"] == "reserved"
        client.delete(job)
        with pytest.raises(greenstalk.TimedOutError):
            client.reserve(timeout=0)
        stats = client.stats()
        assert (stats["cmd-put"], stats["cmd-delete"], stats["current-jobs-ready"]) == (1, 1, 0)
        assert stats["max-job-size"] == 65535
        assert client.stats_tube("interop")["total-jobs"] == 1


def test_pystalk(address: tuple[str, int]) -> None:
    pystalk: Any = pytest.importorskip("pystalk")
    client = pystalk.BeanstalkClient(address[0], address[1], auto_decode=True)
    try:
        client.watch("interop")
        inserted = client.put_job_into("interop", "hello from pystalk", pri=5, ttr=30)
        job_id = inserted[1] if isinstance(inserted, tuple) else inserted  # (b"INSERTED", id)
        job = client.reserve_job(timeout=5)
        assert (job.job_id, job.job_data) == (job_id, "hello from pystalk")
        assert client.stats_job(job_id)["state"] == "reserved"
        client.delete_job(job.job_id)
        stats = client.stats()
        assert (stats["cmd-put"], stats["cmd-delete"], stats["current-jobs-ready"]) == (1, 1, 0)
        assert str(stats["version"]) == "1.12"
        assert client.stats_tube("interop")["total-jobs"] == 1
    finally:
        client.close()
