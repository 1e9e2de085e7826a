"""The pytest plugin: ``beanstalkd_address`` on each backend, and silence when unused.

Each case runs pytest in a subprocess on a small test file, the way another project would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jackstalk.testing import beanstalkd_available

USES_FIXTURE = """
import socket, threading

def test_server(beanstalkd_address):
    with socket.create_connection(beanstalkd_address, timeout=10) as sock:
        sock.sendall(b"put 0 0 10 2\\r\\nhi\\r\\nreserve\\r\\n")
        data = b""
        while not data.endswith(b"hi\\r\\n"):
            chunk = sock.recv(100)
            assert chunk
            data += chunk
    assert data == b"INSERTED 1\\r\\nRESERVED 1 2\\r\\nhi\\r\\n"
    print("THREADS", threading.active_count())
"""

NO_FIXTURE = """
import sys, threading

def test_untouched():
    assert "jackstalk.testing" not in sys.modules
    assert "jackstalk.transports.server" not in sys.modules
    assert threading.active_count() == 1
"""


def run_pytest(
    tmp_path: Path, source: str, *options: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *options],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_embedded_backend(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, USES_FIXTURE, "--beanstalkd-backend=embedded")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "THREADS 2" in result.stdout  # the embedded server's thread


def test_real_backend(tmp_path: Path) -> None:
    if not beanstalkd_available():
        pytest.skip("beanstalkd is not on PATH")
    result = run_pytest(tmp_path, USES_FIXTURE, "--beanstalkd-backend=real")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "THREADS 1" in result.stdout  # a subprocess, no thread


def test_auto_backend_picks_the_real_server_when_it_is_there(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, USES_FIXTURE)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = "THREADS 1" if beanstalkd_available() else "THREADS 2"
    assert expected in result.stdout


def test_real_backend_without_beanstalkd_fails_clearly(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, USES_FIXTURE, "--beanstalkd-backend=real", path=str(tmp_path))
    assert result.returncode == 1
    assert "beanstalkd is not on PATH" in result.stdout


def test_projects_that_do_not_use_the_fixture_see_nothing(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, NO_FIXTURE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_backend_is_a_usage_error(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, NO_FIXTURE, "--beanstalkd-backend=docker")
    assert result.returncode == 4
    assert "invalid choice" in result.stderr
