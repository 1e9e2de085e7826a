"""``/metrics``: parsed by prometheus_client's own parser; names and labels as documented."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from webkit import console, name_of, snapshot_after

import jackstalk
from jackstalk._app.web.metrics import metric_names
from jackstalk.testing import BeanstalkdServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"


def test_metrics_parse_with_names_and_labels(beanstalkd: BeanstalkdServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        gone = probe.getsockname()[:2]
    with jackstalk.Client(beanstalkd.address) as c:
        for _ in range(3):
            c.put(b"x", tube="emails")
    up, down = name_of(beanstalkd.address), name_of(gone)
    with console([beanstalkd.address, gone]) as web:
        snapshot_after(web)
        answer = web.get("/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("jackstalk_web_server_up", (("server", up),))] == 1.0
    assert samples[("jackstalk_web_server_up", (("server", down),))] == 0.0
    assert samples[("beanstalkd_cmd_put_total", (("server", up),))] == 3.0
    assert samples[("beanstalkd_current_jobs_ready", (("server", up),))] == 3.0
    tube = (("server", up), ("tube", "emails"))
    assert samples[("beanstalkd_tube_current_jobs_ready", tube)] == 3.0
    assert samples[("beanstalkd_tube_total_jobs_total", tube)] == 3.0
    assert families["beanstalkd_cmd_put"].type == "counter"
    assert families["beanstalkd_tube_current_jobs_ready"].type == "gauge"
    # A server that is down has only its up metric.
    assert not [
        key
        for key in samples
        if dict(key[1]).get("server") == down and key[0] != "jackstalk_web_server_up"
    ]
    # Every sample's name is one the docs list, and every listed name is reported.
    reported = {name for name, _ in samples}
    assert reported <= set(metric_names())
    assert set(metric_names()) - reported <= {"beanstalkd_tube_cmd_pause_tube_total"} | {
        n for n in metric_names() if not n.startswith("beanstalkd_tube_")
    }


def test_every_metric_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"`((?:beanstalkd|jackstalk_web)_[a-z_]+)", text))
    assert set(metric_names()) <= documented
