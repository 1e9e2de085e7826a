"""The pytest plugin: its fixtures on each backend, its options, and silence when unused.

Each case runs pytest in a subprocess on a small test file, the way another project would
(with ``pytester``, or by hand for the cases that change ``PATH``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jackstalk.testing import beanstalkd_available

pytest_plugins = ["pytester"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

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


# --------------------------------------------------------------------- client fixtures

CLIENTS = """
import asyncio
import os

import trio

import jackstalk


def test_blocking(beanstalkd_client, beanstalkd_address):
    assert isinstance(beanstalkd_client, jackstalk.Client)
    assert beanstalkd_client.address == beanstalkd_address
    assert beanstalkd_client._sock is not None  # connected already
    job_id = beanstalkd_client.put("blocking")
    assert beanstalkd_client.reserve(timeout=0).id == job_id


def test_asyncio_without_a_plugin(beanstalkd_async_client, beanstalkd_address):
    assert beanstalkd_async_client.address == beanstalkd_address

    async def main():
        async with beanstalkd_async_client(use="a", watch="a", codec="json") as client:
            assert isinstance(client, jackstalk.AsyncClient)
            job_id = await client.put({"n": 1})
            job = await client.reserve(timeout=0)
            assert (job.id, job.body) == (job_id, {"n": 1})
        other = beanstalkd_async_client()
        assert other is not client  # a new client per call
        await other.close()

    asyncio.run(main())


def test_trio_without_a_plugin(beanstalkd_trio_client):
    async def main():
        async with beanstalkd_trio_client(use="t") as client:
            assert isinstance(client, jackstalk.TrioClient)
            assert await client.using() == "t"

    trio.run(main)


def test_backend(beanstalkd_backend, beanstalkd_client, beanstalkd_async_client):
    assert beanstalkd_async_client.backend == beanstalkd_backend
    in_process = beanstalkd_client.stats()["pid"] == os.getpid()
    print("BACKEND", beanstalkd_backend, in_process)
"""


@pytest.mark.parametrize("backend", ["real", "embedded"])
def test_client_fixtures_work_with_plain_pytest(pytester: pytest.Pytester, backend: str) -> None:
    if backend == "real" and not beanstalkd_available():
        pytest.skip("beanstalkd is not on PATH")
    pytester.makepyfile(test_inner=CLIENTS)
    result = pytester.runpytest_subprocess(
        "-s", "-p", "no:cacheprovider", f"--beanstalkd-backend={backend}"
    )
    result.assert_outcomes(passed=4)
    # The embedded server answers from the test's own process, the real one from its own.
    expected = "BACKEND embedded True" if backend == "embedded" else "BACKEND real False"
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_auto_backend_reports_what_it_picked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
def test_backend(beanstalkd_backend):
    print("BACKEND", beanstalkd_backend)
"""
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    picked = "real" if beanstalkd_available() else "embedded"
    result.stdout.fnmatch_lines([f"*BACKEND {picked}*"])


def test_trio_fixture_skips_without_trio(pytester: pytest.Pytester) -> None:
    # A module named trio that fails to import, found first: as if trio were not installed.
    pytester.makepyfile(trio="raise ModuleNotFoundError('trio is not installed here')")
    pytester.makepyfile(
        test_inner="""
def test_trio(beanstalkd_trio_client):
    raise AssertionError("not reached")
"""
    )
    # (Hypothesis's plugin loads the entry points trio registers with it: kept out.)
    result = pytester.runpytest_subprocess(
        "-rs",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "--beanstalkd-backend=embedded",
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*could not import 'trio': trio is not installed here*"])


# --------------------------------------------------------------------- session scope

SHARED = """
seen = []


def test_first(beanstalkd_address, beanstalkd_client):
    seen.append(beanstalkd_address)
    beanstalkd_client.use("shared")
    beanstalkd_client.put("left behind")


def test_second(beanstalkd_address, beanstalkd_client):
    seen.append(beanstalkd_address)
    tubes = beanstalkd_client.tubes()
    print("SAME", seen[0] == seen[1], "SHARED", "shared" in tubes)
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("default", "SAME False SHARED False"),
        ("--beanstalkd-scope=function", "SAME False SHARED False"),
        ("--beanstalkd-scope=session", "SAME True SHARED True"),
        ("ini session", "SAME True SHARED True"),
        ("ini session, --beanstalkd-scope=function", "SAME False SHARED False"),
    ],
)
def test_scope_option_and_ini_setting(pytester: pytest.Pytester, how: str, expected: str) -> None:
    pytester.makepyfile(test_inner=SHARED)
    options = ["-s", "-p", "no:randomly", "-p", "no:cacheprovider", "--beanstalkd-backend=embedded"]
    if how.startswith("ini"):
        pytester.makeini("[pytest]\nbeanstalkd_scope = session\n")
    options += [word for word in how.split() if word.startswith("--")]
    result = pytester.runpytest_subprocess(*options)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*{expected}*"])


def test_backend_ini_setting(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nbeanstalkd_backend = embedded\n")
    pytester.makepyfile(
        test_inner="""
def test_backend(beanstalkd_backend):
    print("BACKEND", beanstalkd_backend)
"""
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*BACKEND embedded*"])


@pytest.mark.parametrize("setting", ["beanstalkd_backend = docker", "beanstalkd_scope = module"])
def test_bad_ini_setting_is_a_usage_error(pytester: pytest.Pytester, setting: str) -> None:
    pytester.makeini(f"[pytest]\n{setting}\n")
    pytester.makepyfile(test_inner="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    name = setting.split()[0]
    result.stderr.fnmatch_lines([f"ERROR: {name} must be one of *"])


# --------------------------------------------------------------------- the docs' example


def docs_example() -> str:
    """The example test module of docs/testing.md (its block that uses the fixtures)."""
    fence = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
    blocks = [match.group(1) for match in fence.finditer(DOCS.read_text(encoding="utf-8"))]
    (module,) = [block for block in blocks if "def test_" in block and "beanstalkd_client" in block]
    return str(module)


@pytest.mark.parametrize(
    "options",
    [
        ["--beanstalkd-backend=real"],
        ["--beanstalkd-backend=embedded"],
        ["--beanstalkd-backend=embedded", "--beanstalkd-scope=session"],
    ],
    ids=["real", "embedded", "embedded-session"],
)
def test_the_docs_example_passes(pytester: pytest.Pytester, options: list[str]) -> None:
    if "--beanstalkd-backend=real" in options and not beanstalkd_available():
        pytest.skip("beanstalkd is not on PATH")
    pytester.makepyfile(test_example=docs_example())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *options)
    result.assert_outcomes(passed=4)
