"""Helpers for the command-line tests: run ``python -m jackstalk`` as a user would, against a
server the test started (never anything outside loopback)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from jackstalk.testing import BeanstalkdServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TIME_LIMIT = 60.0
"""Seconds any one command may take before the test fails (a bound, not a timing assert)."""


def environment(server: BeanstalkdServer | None) -> dict[str, str]:
    """The command's environment: ``BEANSTALKD_ADDRESS`` names ``server`` (or is unset)."""
    env = dict(os.environ)
    env.pop("BEANSTALKD_ADDRESS", None)
    if server is not None:
        address = server.address
        env["BEANSTALKD_ADDRESS"] = (
            address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        )
    return env


def jackstalk_cli(
    server: BeanstalkdServer | None, *args: str, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jackstalk ARGS`` to the end; stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-m", "jackstalk", *args],
        input=stdin.decode("latin-1"),
        capture_output=True,
        text=True,
        env=environment(server),
        timeout=TIME_LIMIT,
        check=False,
    )


def jackstalk_bytes(
    server: BeanstalkdServer | None, *args: str
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m jackstalk ARGS`` to the end; stdout and stderr as bytes (for
    ``peek --raw``, whose output is the body itself)."""
    return subprocess.run(
        [sys.executable, "-m", "jackstalk", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=environment(server),
        timeout=TIME_LIMIT,
        check=False,
    )


def show(address: tuple[str, int] | str) -> str:
    """An address as ``--address`` takes it."""
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


def load_tlskit() -> ModuleType:
    """tests/reliability/tlskit.py (throw-away certificates, stunnel), loaded by its path:
    pytest puts only the running test's own folder on ``sys.path``."""
    loaded = sys.modules.get("tlskit")
    if loaded is not None:
        return loaded
    path = ROOT / "tests" / "reliability" / "tlskit.py"
    spec = importlib.util.spec_from_file_location("tlskit", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["tlskit"] = module
    spec.loader.exec_module(module)
    return module
