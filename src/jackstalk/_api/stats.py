"""The documents ``stats()``, ``stats_tube()`` and ``stats_job()`` return, as TypedDicts.

The value types are the ones the stats parser gives each field (by its name, never by how
the value looks: see ``jackstalk._protocol.yaml_subset``). A field a newer server adds that
is not listed here is still in the dict, as ``str``. These types describe the default
``parse_yaml=True``; with ``parse_yaml=False`` the methods return the raw text (``str``) and
with a callable whatever it returns: then ``typing.cast`` the result to what it is.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["JobStats", "ServerStats", "TubeStats"]

ServerStats = TypedDict(
    "ServerStats",
    {
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "cmd-put": int,
        "cmd-peek": int,
        "cmd-peek-ready": int,
        "cmd-peek-delayed": int,
        "cmd-peek-buried": int,
        "cmd-reserve": int,
        "cmd-reserve-with-timeout": int,
        "cmd-delete": int,
        "cmd-release": int,
        "cmd-use": int,
        "cmd-watch": int,
        "cmd-ignore": int,
        "cmd-bury": int,
        "cmd-kick": int,
        "cmd-touch": int,
        "cmd-stats": int,
        "cmd-stats-job": int,
        "cmd-stats-tube": int,
        "cmd-list-tubes": int,
        "cmd-list-tube-used": int,
        "cmd-list-tubes-watched": int,
        "cmd-pause-tube": int,
        "job-timeouts": int,
        "total-jobs": int,
        "max-job-size": int,
        "current-tubes": int,
        "current-connections": int,
        "current-producers": int,
        "current-workers": int,
        "current-waiting": int,
        "total-connections": int,
        "pid": int,
        "version": str,
        "rusage-utime": float,
        "rusage-stime": float,
        "uptime": int,
        "binlog-oldest-index": int,
        "binlog-current-index": int,
        "binlog-records-migrated": int,
        "binlog-records-written": int,
        "binlog-max-size": int,
        "draining": bool,
        "id": str,
        "hostname": str,
        "os": str,
        "platform": str,
    },
    total=False,
)
ServerStats.__doc__ = """
``stats()``: the server's counters. Not total: which fields a server reports depends on
its version (``draining``, ``os`` and ``platform`` are recent), so a field may be missing.
"""

TubeStats = TypedDict(
    "TubeStats",
    {
        "name": str,
        "current-jobs-urgent": int,
        "current-jobs-ready": int,
        "current-jobs-reserved": int,
        "current-jobs-delayed": int,
        "current-jobs-buried": int,
        "total-jobs": int,
        "current-using": int,
        "current-waiting": int,
        "current-watching": int,
        "pause": int,
        "cmd-delete": int,
        "cmd-pause-tube": int,
        "pause-time-left": int,
    },
)
TubeStats.__doc__ = """
``stats_tube(tube)``: one tube's counters.
"""

JobStats = TypedDict(
    "JobStats",
    {
        "id": int,
        "tube": str,
        "state": str,
        "pri": int,
        "age": int,
        "delay": int,
        "ttr": int,
        "time-left": int,
        "file": int,
        "reserves": int,
        "timeouts": int,
        "releases": int,
        "buries": int,
        "kicks": int,
    },
)
JobStats.__doc__ = """
``stats_job(job)``: one job's state (``ready``, ``reserved``, ``delayed``, ``buried``),
priority (``pri``), counters and times in seconds (``time-left`` may be negative).
"""
