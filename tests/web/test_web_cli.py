"""``jackstalk web`` as a user runs it: the listening line, a real HTTP round trip, a clean
stop on SIGINT and SIGTERM, usage errors, and the message when the web extra is missing."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jackstalk.testing import BeanstalkdServer

TIME_LIMIT = 60.0
LISTENING = re.compile(r"^jackstalk web listening on (http://127\.0\.0\.1:(\d+)/)$")


def _address(server: BeanstalkdServer) -> str:
    assert isinstance(server.address, tuple)
    return f"{server.address[0]}:{server.address[1]}"


@contextmanager
def web(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``jackstalk web ARGS`` and wait (bounded) for its listening line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "jackstalk", "web", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(TIME_LIMIT), "no listening line in time"
        line = process.stdout.readline().rstrip("\n")
        found = LISTENING.match(line)
        assert found, (line, process.stderr.read() if process.poll() is not None else "")  # type: ignore[union-attr]
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIME_LIMIT)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serves_and_stops_cleanly(beanstalkd: BeanstalkdServer, stop: signal.Signals) -> None:
    with web("--address", _address(beanstalkd), "--interval", "0.2") as (process, url):
        with urllib.request.urlopen(url + "api/snapshot", timeout=TIME_LIMIT) as answer:
            data = json.load(answer)
        assert data["servers"][0]["name"] == _address(beanstalkd)
        assert data["servers"][0]["state"] == "up"
        with urllib.request.urlopen(url + "events", timeout=TIME_LIMIT) as stream:
            assert stream.readline().startswith(b"retry:")  # a live stream is open
            process.send_signal(stop)
            _, err = process.communicate(timeout=TIME_LIMIT)
        assert process.returncode == 0, err
        assert "Traceback" not in err


@pytest.mark.parametrize("token_from", ["option", "environment"])
def test_address_from_the_environment(beanstalkd: BeanstalkdServer, token_from: str) -> None:
    env = {**os.environ, "BEANSTALKD_ADDRESS": f"{_address(beanstalkd)},127.0.0.1:1"}
    args = ["--token", "abc"]
    if token_from == "environment":
        env["JACKSTALK_WEB_TOKEN"] = "abc"  # kept off the command line, where ps shows it
        args = []
    with web(*args, env=env) as (process, url):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + "api/snapshot", timeout=TIME_LIMIT)
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(
            url + "api/snapshot", headers={"authorization": "Bearer abc"}
        )
        with urllib.request.urlopen(request, timeout=TIME_LIMIT) as answer:
            data = json.load(answer)
        names = [server["name"] for server in data["servers"]]
        assert names == [_address(beanstalkd), "127.0.0.1:1"]
        assert data["servers"][1]["state"] == "down"
        process.send_signal(signal.SIGTERM)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jackstalk", "web", *args],
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nowhere"], "invalid listen address"),
        (["--listen", "127.0.0.1:99999"], "invalid listen address"),
        (["--interval", "0"], "at least 0.05"),
        (["--basic-auth", "nocolon"], "USER:PASSWORD"),
        (["--token", ""], "must not be empty"),
        (["--address", "/tmp/x.sock", "--tls"], "TLS needs a HOST:PORT"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    done = _run(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_port_in_use_is_exit_3(beanstalkd: BeanstalkdServer) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = _run("--address", _address(beanstalkd), "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 3
    assert "cannot listen" in done.stderr


def test_missing_extra_says_how_to_install(tmp_path: Path) -> None:
    # A starlette that cannot be imported stands for an install without the extra.
    (tmp_path / "starlette").mkdir()
    (tmp_path / "starlette" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'starlette'\", name='starlette')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = _run("--address", "127.0.0.1:1", env=env)
    assert done.returncode == 2
    assert "pip install 'jackstalk[web]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_other_commands_do_not_import_the_web_stack() -> None:
    code = (
        "import sys, jackstalk, jackstalk.__main__\n"
        "from jackstalk._app import cli\n"
        "bad = [m for m in ('starlette', 'uvicorn', 'jinja2', 'prometheus_client')"
        " if m in sys.modules]\n"
        "print(bad)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=TIME_LIMIT, check=True
    )
    assert done.stdout.strip() == "[]"


class _Announced:
    """A stdout stand-in that remembers the listening line and wakes whoever waits."""

    def __init__(self) -> None:
        import threading

        self.text = ""
        self.event = threading.Event()

    def write(self, text: str) -> int:
        self.text += text
        if "\n" in self.text:
            self.event.set()
        return len(text)

    def flush(self) -> None:
        pass


def test_serve_in_process_stops_on_sigterm(beanstalkd: BeanstalkdServer) -> None:
    # The same run as the command's, in this process, so that its coverage is measured
    # here: SIGTERM once the listening line is out, and serve() returns 0.
    import threading

    from jackstalk._app.web import WebConfig, serve

    out = _Announced()

    def stop() -> None:
        if out.event.wait(TIME_LIMIT):
            os.kill(os.getpid(), signal.SIGTERM)

    stopper = threading.Thread(target=stop)
    stopper.start()
    try:
        status = serve(WebConfig([beanstalkd.address]), "127.0.0.1", 0, out=out)  # type: ignore[arg-type]
    finally:
        out.event.set()
        stopper.join(TIME_LIMIT)
    assert status == 0
    assert LISTENING.match(out.text.strip())
    assert signal.getsignal(signal.SIGTERM) is not None


def test_serve_in_process_cannot_listen(beanstalkd: BeanstalkdServer) -> None:
    import socket

    from jackstalk._app.web import WebConfig, serve

    out = _Announced()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status = serve(WebConfig([beanstalkd.address]), "127.0.0.1", port, out=out)  # type: ignore[arg-type]
    assert status == 3
    assert out.text == ""
