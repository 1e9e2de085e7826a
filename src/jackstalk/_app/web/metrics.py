"""``/metrics``: the latest snapshot in the Prometheus text format, by prometheus_client.

A custom collector reports what the poller read last (a scrape never talks to beanstalkd):
``jackstalk_web_server_up{server}``, then for each server that is up its counters and
gauges (label ``server``) and its tubes' (labels ``server`` and ``tube``). The names are
``beanstalkd_`` and the stats field with ``-`` as ``_`` (tubes: ``beanstalkd_tube_``);
counters end in ``_total``, as the format wants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jackstalk._api.stats import ServerStats
from jackstalk._app.web.poller import Snapshot

__all__ = [
    "SERVER_COUNTERS",
    "SERVER_GAUGES",
    "TUBE_COUNTERS",
    "TUBE_GAUGES",
    "SnapshotCollector",
    "metric_names",
    "registry_for",
]

SERVER_COUNTERS: Sequence[str] = (
    *(name for name in ServerStats.__annotations__ if name.startswith("cmd-")),
    "job-timeouts",
    "total-jobs",
    "total-connections",
)
"""Server counters (``beanstalkd_cmd_put_total{server}`` ...)."""

SERVER_GAUGES: Sequence[str] = (
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "current-tubes",
    "current-connections",
    "current-producers",
    "current-workers",
    "current-waiting",
    "uptime",
    "max-job-size",
)
"""Server gauges (``beanstalkd_current_jobs_ready{server}`` ...)."""

TUBE_COUNTERS: Sequence[str] = ("total-jobs", "cmd-delete", "cmd-pause-tube")
"""Tube counters (``beanstalkd_tube_total_jobs_total{server,tube}`` ...)."""

TUBE_GAUGES: Sequence[str] = (
    "current-jobs-urgent",
    "current-jobs-ready",
    "current-jobs-reserved",
    "current-jobs-delayed",
    "current-jobs-buried",
    "current-using",
    "current-watching",
    "current-waiting",
    "pause",
    "pause-time-left",
)
"""Tube gauges (``beanstalkd_tube_current_jobs_ready{server,tube}`` ...)."""


def _name(prefix: str, field: str) -> str:
    return prefix + field.replace("-", "_")


def metric_names() -> list[str]:
    """Every metric name the collector reports, as a scrape shows them."""
    return [
        "jackstalk_web_server_up",
        *(_name("beanstalkd_", f) + "_total" for f in SERVER_COUNTERS),
        *(_name("beanstalkd_", f) for f in SERVER_GAUGES),
        *(_name("beanstalkd_tube_", f) + "_total" for f in TUBE_COUNTERS),
        *(_name("beanstalkd_tube_", f) for f in TUBE_GAUGES),
    ]


class SnapshotCollector(Collector):
    """Reports the snapshot ``latest()`` returns when scraped."""

    def __init__(self, latest: Callable[[], Snapshot]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        snapshot = self.latest()
        up = GaugeMetricFamily(
            "jackstalk_web_server_up",
            "1 if the server answered the console's last refresh, else 0",
            labels=["server"],
        )
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

        def family(
            prefix: str, field: str, counter: bool, labels: list[str]
        ) -> CounterMetricFamily | GaugeMetricFamily:
            name = _name(prefix, field)
            found = families.get(name)
            if found is None:
                text = f"beanstalkd's {field}" + (" of the tube" if "tube" in labels else "")
                made = CounterMetricFamily if counter else GaugeMetricFamily
                found = families[name] = made(name, text, labels=labels)
            return found

        for server in snapshot.servers:
            up.add_metric([server.name], 1.0 if server.up else 0.0)
            if not server.up:
                continue
            for fields, counter in ((SERVER_COUNTERS, True), (SERVER_GAUGES, False)):
                for field in fields:
                    if field in server.stats:
                        family("beanstalkd_", field, counter, ["server"]).add_metric(
                            [server.name], float(server.stats[field])
                        )
            for tube, stats in server.tubes.items():
                for fields, counter in ((TUBE_COUNTERS, True), (TUBE_GAUGES, False)):
                    for field in fields:
                        if field in stats:
                            family(
                                "beanstalkd_tube_", field, counter, ["server", "tube"]
                            ).add_metric([server.name, tube], float(stats[field]))
        yield up
        yield from families.values()


def registry_for(latest: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own (not the process-wide one) holding only the console's
    collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(latest))
    return registry
